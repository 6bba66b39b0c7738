//! Tenant isolation over every RPC the servers advertise through reflection: tenant B's key,
//! given the identifiers of tenant A's customers, alerts, webhooks, silences and keys, gets
//! nothing of A's and changes nothing of A's.

use rapport_proto::alerting::v1 as alerting;
use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::keys::v1 as keys;
use rapport_proto::keys::v1::key_service_client::KeyServiceClient;
use rapport_proto::segmentation::v1 as segmentation;
use rapport_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use rapport_tests::scenario::{nps, order};
use rapport_tests::{
    Addrs, Backing, Postgres, Proc, Service, channel, eventually, keyed, repo_root,
};
use std::time::Duration;

const KEY_A: &str = "acme-admin-key";
const KEY_B: &str = "globex-admin-key";
/// What only tenant A's data holds: no answer to B may contain any of it.
const A_DATA: [&str; 5] = [
    "acme-hook-token",
    "acme-silence-token",
    "acme-key-token",
    "acme-backfill-token",
    "acme_segment_token",
];
/// The prefix of A's customer ids.
const A_CUSTOMER: &str = "acme-cust-";

/// A's data: customers, a standing detractor alert, a webhook, a silence, a key, a segment.
struct Acme {
    alert: String,
    webhook: String,
    silence: String,
    key: String,
}

async fn plant(addrs: &Addrs) -> Acme {
    let mut ingest = IngestionServiceClient::new(channel(&addrs.ingestion));
    let events = (1..=3)
        .map(|i| order(&format!("a-o{i}"), &format!("{A_CUSTOMER}{i}"), 5, 100.0))
        .collect();
    ingest
        .ingest(keyed(
            ingestion::IngestRequest {
                events,
                backfill: "acme-backfill-token".into(),
            },
            KEY_A,
        ))
        .await
        .unwrap();
    ingest
        .ingest_one(keyed(nps("a-n1", &format!("{A_CUSTOMER}1"), 0, 1), KEY_A))
        .await
        .unwrap();
    let mut alerts = AlertingServiceClient::new(channel(&addrs.alerting));
    let webhook = alerts
        .create_webhook(keyed(
            alerting::CreateWebhookRequest {
                url: "http://127.0.0.1:9/acme-hook-token".into(),
                route: None,
            },
            KEY_A,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let silence = alerts
        .create_silence(keyed(
            alerting::CreateSilenceRequest {
                matcher: Some(alerting::AlertMatcher {
                    customer_ids: vec![format!("{A_CUSTOMER}2")],
                    ..Default::default()
                }),
                reason: "acme-silence-token".into(),
                duration: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                ..Default::default()
            },
            KEY_A,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let key = KeyServiceClient::new(channel(&addrs.ingestion))
        .create_key(keyed(
            keys::CreateKeyRequest {
                role: keys::KeyRole::Read as i32,
                name: "acme-key-token".into(),
                ..Default::default()
            },
            KEY_A,
        ))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap()
        .id;
    SegmentationServiceClient::new(channel(&addrs.segmentation))
        .define_segment(keyed(
            segmentation::DefineSegmentRequest {
                name: "acme_segment_token".into(),
                expression: "score < 101.0".into(),
            },
            KEY_A,
        ))
        .await
        .unwrap();
    let alerting_addr = addrs.alerting.clone();
    let alert = eventually("A's detractor alert", Duration::from_secs(30), || {
        let mut alerts = AlertingServiceClient::new(channel(&alerting_addr));
        async move {
            let list = alerts
                .list_alerts(keyed(alerting::ListAlertsRequest::default(), KEY_A))
                .await
                .ok()?
                .into_inner();
            list.alerts.first().map(|a| a.id.clone())
        }
    })
    .await;
    Acme {
        alert,
        webhook,
        silence,
        key,
    }
}

/// Every RPC at `addrs`, called with `key` and `id` as the `id` field.
fn sweep(addrs: &Addrs, key: &str, acme: &Acme, id: &str) -> Vec<serde_json::Value> {
    let ids = serde_json::json!({
        "customer_id": format!("{A_CUSTOMER}1"),
        "customer_ids": format!("{A_CUSTOMER}1"),
        "after_customer_id": "",
        "id": id,
        "alert_id": acme.alert,
        "webhook_id": acme.webhook,
        "tenant": "acme",
        "name": "acme_segment_token",
    });
    let out = std::process::Command::new(rapport_tests::python())
        .arg(repo_root().join("tests/python/isolation.py"))
        .arg(key)
        .arg(ids.to_string())
        .args(Service::ALL.map(|s| addrs.of(s).clone()))
        .output()
        .expect("run isolation.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_b_gets_nothing_of_tenant_a_through_any_rpc() {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let addrs = Addrs::free();
    let keys = format!("{KEY_A}=acme:admin,{KEY_B}=globex:admin");
    let url = pg.url();
    let backing = Backing::database(&url);
    let _procs: Vec<Proc> = Service::ALL
        .into_iter()
        .map(|s| {
            rapport_tests::start_service_with(
                s,
                &addrs,
                &backing,
                logs.path(),
                &[("RAPPORT_API_KEYS", keys.as_str())],
            )
        })
        .collect();
    let acme = plant(&addrs).await;

    let mut calls = Vec::new();
    for id in [&acme.alert, &acme.webhook, &acme.silence, &acme.key] {
        calls.extend(sweep(&addrs, KEY_B, &acme, id));
    }
    let methods: std::collections::BTreeSet<&str> = calls
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert!(
        methods.len() >= 50,
        "{} methods: {methods:?}",
        methods.len()
    );
    for call in &calls {
        let (method, code) = (
            call["method"].as_str().unwrap(),
            call["code"].as_str().unwrap(),
        );
        let response = call["response"].as_str().unwrap();
        assert!(
            !matches!(
                code,
                "INTERNAL" | "UNKNOWN" | "UNAVAILABLE" | "DEADLINE_EXCEEDED"
            ),
            "{method}: {code} {response}"
        );
        for token in A_DATA {
            // What B named itself may come back in a refusal; what only A holds never.
            let asked = call["request"].as_str().unwrap().contains(token);
            if code == "OK" || !asked {
                assert!(
                    !response.contains(token),
                    "{method} answered B with A's {token}: {response}"
                );
            }
        }
        if code == "OK" {
            assert!(
                !response.contains(A_CUSTOMER),
                "{method} answered B with A's customer: {response}"
            );
            assert!(
                !response.contains(&acme.alert) || acme.alert.len() < 4,
                "{method}: {response}"
            );
        }
    }

    // Nothing of A's changed: its alert stands open, its silence, webhook and key remain.
    let mut alerts = AlertingServiceClient::new(channel(&addrs.alerting));
    let alert = alerts
        .get_alert(keyed(
            alerting::GetAlertRequest {
                id: acme.alert.clone(),
            },
            KEY_A,
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(alert.state, alerting::AlertState::Open as i32, "{alert:?}");
    let silences = alerts
        .list_silences(keyed(alerting::ListSilencesRequest {}, KEY_A))
        .await
        .unwrap()
        .into_inner()
        .silences;
    assert!(
        silences
            .iter()
            .any(|s| s.id == acme.silence && s.state == "active"),
        "{silences:?}"
    );
    let hooks = alerts
        .list_webhooks(keyed(alerting::ListWebhooksRequest {}, KEY_A))
        .await
        .unwrap()
        .into_inner()
        .webhooks;
    assert_eq!(hooks.len(), 1);
    let a_keys = KeyServiceClient::new(channel(&addrs.ingestion))
        .list_keys(keyed(keys::ListKeysRequest::default(), KEY_A))
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert!(
        a_keys
            .iter()
            .any(|k| k.id == acme.key && k.revoked_at.is_none()),
        "{a_keys:?}"
    );

    // The same sweep with A's own key reaches all of that data: the checks above can fail.
    let own = sweep(&addrs, KEY_A, &acme, &acme.alert);
    let answered: String = own
        .iter()
        .filter(|c| c["code"] == "OK")
        .map(|c| c["response"].as_str().unwrap())
        .collect();
    for token in A_DATA.iter().chain([&A_CUSTOMER]) {
        assert!(answered.contains(token), "A's own sweep never saw {token}");
    }
}
