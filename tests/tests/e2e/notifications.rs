//! Alerts people do not mute: one alerting process fed scores as scoring's outbox feeds it,
//! webhook endpoints with routes, and the Python receiver. Changes travel in groups after
//! `group_wait`, each endpoint hears only what its route takes, an inhibited or silenced
//! alert notifies nobody until the inhibitor resolves or the silence ends, and a backfill's
//! alerts make one summary.

use crate::alerting::{Alerting, WAIT, change, logged, notify, now_ms, score, until_standing};
use rapport_proto::alerting::v1 as pb;
use rapport_proto::common::v1::Tier;
use rapport_tests::{eventually, python, repo_root, req, webhook_receiver};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RULES: &str = r#"
holdout_share = 0.0
[health_below]
enter_below = 50.0
exit_at_or_above = 60.0
[detractor]
nps_at_most = 6
within_days = 14
[[inhibit]]
source = { rules = ["detractor"] }
target = { rules = ["health_below"] }
[[inhibit]]
source_stages = ["churned"]
target = { rules = ["health_below"] }
"#;

fn secs(s: f64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s.trunc() as i64,
        nanos: (s.fract() * 1e9) as i32,
    })
}

/// The bodies the receiver got at `path`, oldest first.
fn bodies(log: &Path, path: &str) -> Vec<serde_json::Value> {
    logged(log, path)
        .iter()
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect()
}

/// (change, customer, rule) of every alert in a group delivery.
fn alerts_in(body: &serde_json::Value) -> Vec<(String, String, String)> {
    body["data"]["alerts"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    (
                        a["change"].as_str().unwrap_or("").to_owned(),
                        a["customer_id"].as_str().unwrap_or("").to_owned(),
                        a["rule"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every (change, customer, rule) the endpoint at `path` heard of, in order.
fn heard(log: &Path, path: &str) -> Vec<(String, String, String)> {
    bodies(log, path).iter().flat_map(alerts_in).collect()
}

async fn create(a: &Alerting, url: String, route: pb::WebhookRoute) -> pb::Webhook {
    a.client()
        .create_webhook(req(pb::CreateWebhookRequest {
            url,
            route: Some(route),
        }))
        .await
        .expect("create webhook")
        .into_inner()
}

fn tiered(customer: &str, score: f64, tier: Tier) -> pb::ScoreChange {
    pb::ScoreChange {
        tier: tier.into(),
        ..change(customer, score)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_travel_in_groups_and_each_endpoint_hears_only_its_route() {
    let a = Alerting::start(RULES, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, base, log) = webhook_receiver(dir.path(), "{}");
    let route = |tiers: &[&str]| pb::WebhookRoute {
        matcher: Some(pb::AlertMatcher {
            tiers: tiers.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        }),
        group_by: vec!["rule".into()],
        group_wait: secs(2.0),
        group_interval: secs(2.0),
        repeat_interval: secs(0.0),
        ..Default::default()
    };
    let vip = create(&a, format!("{base}/vip-desk"), route(&["vip"])).await;
    create(&a, format!("{base}/automated-care"), route(&["regular"])).await;
    let bad = a
        .client()
        .create_webhook(req(pb::CreateWebhookRequest {
            url: format!("{base}/x"),
            route: Some(route(&["platinum"])),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("route.matcher.tiers:"), "{bad:?}");

    // Five customers fall within a second: three VIP, two Regular, one Gold (no route).
    let started = Instant::now();
    notify(
        &a,
        vec![
            tiered("v1", 30.0, Tier::Vip),
            tiered("r1", 30.0, Tier::Regular),
        ],
    )
    .await;
    notify(&a, vec![tiered("v2", 30.0, Tier::Vip)]).await;
    notify(
        &a,
        vec![
            tiered("v3", 30.0, Tier::Vip),
            tiered("r2", 30.0, Tier::Regular),
            tiered("g1", 30.0, Tier::Gold),
        ],
    )
    .await;
    until_standing(&a, "g1").await;
    let first = eventually("a delivery to each desk", WAIT, || async {
        let (v, r) = (logged(&log, "/vip-desk"), logged(&log, "/automated-care"));
        (!v.is_empty() && !r.is_empty()).then_some(started.elapsed())
    })
    .await;
    assert!(
        first >= Duration::from_millis(1_900),
        "sent after {first:?}"
    );
    // One more second: nothing else comes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let vip_bodies = bodies(&log, "/vip-desk");
    assert_eq!(
        vip_bodies.len(),
        1,
        "one delivery for the group: {vip_bodies:?}"
    );
    let mut opened: Vec<String> = alerts_in(&vip_bodies[0])
        .into_iter()
        .map(|(change, customer, _)| format!("{change} {customer}"))
        .collect();
    opened.sort();
    assert_eq!(opened, ["opened v1", "opened v2", "opened v3"]);
    assert_eq!(vip_bodies[0]["type"], "alert.group");
    assert_eq!(vip_bodies[0]["data"]["group"]["rule"], "health_below");
    let care = heard(&log, "/automated-care");
    let mut care: Vec<&str> = care.iter().map(|(_, c, _)| c.as_str()).collect();
    care.sort();
    assert_eq!(care, ["r1", "r2"]);
    assert_eq!(bodies(&log, "/automated-care").len(), 1);

    // The queue: VIP before Gold before Regular (equal severities, no fall), counted per
    // rule, tier and severity.
    let queue = a
        .client()
        .list_alerts(req(pb::ListAlertsRequest {
            order: pb::AlertOrder::Priority.into(),
            limit: 4,
            with_counts: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let first: Vec<&str> = queue.alerts.iter().map(|x| &x.customer_id[..1]).collect();
    assert_eq!(first, ["v", "v", "v", "g"], "{:?}", queue.alerts);
    assert_eq!(queue.total, 6);
    let vip_count = queue
        .counts
        .iter()
        .find(|c| c.tier == Tier::Vip as i32)
        .expect("VIP counted");
    assert_eq!(
        (vip_count.count, vip_count.rule.as_str()),
        (3, "health_below")
    );
    assert_eq!(queue.counts[0].count, 3, "largest group first");

    // A resolution is reported in its group, after the group's interval.
    score(&a, "v1", 80.0).await;
    let resolved = eventually("v1's resolution at the VIP desk", WAIT, || async {
        let b = bodies(&log, "/vip-desk");
        (b.len() >= 2).then_some(b)
    })
    .await;
    assert_eq!(
        alerts_in(&resolved[1]),
        [(
            "resolved".to_owned(),
            "v1".to_owned(),
            "health_below".to_owned()
        )]
    );
    // Every delivery is signed per Standard Webhooks (checked by Python's hmac).
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/webhook_receiver.py"))
        .arg("verify")
        .arg(&log)
        .arg("/vip-desk")
        .arg(&vip.secret)
        .output()
        .expect("run the verifier");
    let checked: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked.len(), 2);
    assert!(checked.iter().all(|r| r["valid"] == true), "{checked:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn inhibited_and_silenced_alerts_notify_only_when_nothing_mutes_them() {
    let a = Alerting::start(RULES, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, base, log) = webhook_receiver(dir.path(), "{}");
    create(
        &a,
        format!("{base}/all"),
        pb::WebhookRoute {
            group_wait: secs(0.0),
            group_interval: secs(1.0),
            ..Default::default()
        },
    )
    .await;
    let nps = |score: i32| pb::SurveyAnswer {
        score,
        answered_at: Some(rapport_proto::convert::timestamp(now_ms())),
    };

    // A detractor whose health is low too: the detractor alert holds the health alert back.
    notify(
        &a,
        vec![pb::ScoreChange {
            latest_nps: Some(nps(3)),
            ..change("d1", 30.0)
        }],
    )
    .await;
    // A churned customer's health alert notifies nobody.
    notify(
        &a,
        vec![pb::ScoreChange {
            stage: "churned".into(),
            ..change("gone", 30.0)
        }],
    )
    .await;
    // A silence for one customer, for four seconds.
    let silence = a
        .client()
        .create_silence(req(pb::CreateSilenceRequest {
            matcher: Some(pb::AlertMatcher {
                customer_ids: vec!["quiet".into()],
                ..Default::default()
            }),
            author: "ops".into(),
            reason: "known incident".into(),
            duration: secs(4.0),
            ..Default::default()
        }))
        .await
        .expect("silence")
        .into_inner();
    let silenced_at = Instant::now();
    score(&a, "quiet", 30.0).await;
    score(&a, "loud", 30.0).await;
    for c in ["d1", "gone", "quiet", "loud"] {
        until_standing(&a, c).await;
    }
    eventually("the detractor and loud heard", WAIT, || async {
        let h = heard(&log, "/all");
        (h.iter().any(|x| x.1 == "d1") && h.iter().any(|x| x.1 == "loud")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let so_far = heard(&log, "/all");
    assert!(
        so_far.contains(&("opened".into(), "d1".into(), "detractor".into())),
        "{so_far:?}"
    );
    for muted in [("d1", "health_below"), ("gone", "health_below")] {
        assert!(
            !so_far.iter().any(|x| (x.1.as_str(), x.2.as_str()) == muted),
            "{muted:?} was muted: {so_far:?}"
        );
    }
    // Quiet's alert is heard only once its silence has ended (a slow machine may already be
    // past the end: what counts is when the delivery came).
    let ends = silence
        .ends_at
        .as_ref()
        .map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
    for delivery in logged(&log, "/all") {
        let body: serde_json::Value =
            serde_json::from_str(delivery["body"].as_str().unwrap()).unwrap();
        if alerts_in(&body).iter().any(|x| x.1 == "quiet") {
            let at = delivery["at"].as_f64().unwrap();
            assert!(
                at >= ends,
                "quiet heard at {at}, before its silence ended at {ends}"
            );
        }
    }
    let listed = a
        .client()
        .list_silences(req(pb::ListSilencesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .silences;
    assert_eq!(listed[0].id, silence.id);
    assert_eq!(
        (listed[0].state.as_str(), listed[0].author.as_str()),
        ("active", "ops")
    );

    // The silence ends: what it held back goes out.
    eventually("quiet heard once the silence ended", WAIT, || async {
        heard(&log, "/all")
            .iter()
            .any(|x| x.1 == "quiet")
            .then_some(())
    })
    .await;
    assert!(silenced_at.elapsed() >= Duration::from_secs(4));

    // The detractor answers better: its alert resolves, and the health alert it held back
    // notifies.
    notify(
        &a,
        vec![pb::ScoreChange {
            latest_nps: Some(nps(9)),
            ..change("d1", 30.0)
        }],
    )
    .await;
    let after = eventually("d1's health alert heard", WAIT, || async {
        let h = heard(&log, "/all");
        h.iter()
            .any(|x| x.1 == "d1" && x.2 == "health_below")
            .then_some(h)
    })
    .await;
    assert!(
        after.contains(&("resolved".into(), "d1".into(), "detractor".into())),
        "{after:?}"
    );
    assert!(
        after.contains(&("opened".into(), "d1".into(), "health_below".into())),
        "{after:?}"
    );
    // The churned customer's alert stands, still unheard.
    assert!(!after.iter().any(|x| x.1 == "gone"), "{after:?}");
    until_standing(&a, "gone").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_makes_one_summary_and_live_alerts_after_it_their_groups() {
    let a = Alerting::start(RULES, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, base, log) = webhook_receiver(dir.path(), "{}");
    create(
        &a,
        format!("{base}/team"),
        pb::WebhookRoute {
            group_wait: secs(0.5),
            group_interval: secs(1.0),
            backfill_wait: secs(2.0),
            ..Default::default()
        },
    )
    .await;
    // 600 customers in six calls, as an import's scores come.
    for page in 0..6 {
        let changes = (0..100)
            .map(|i| pb::ScoreChange {
                backfill: "history.csv".into(),
                ..change(&format!("h{page}-{i}"), 30.0)
            })
            .collect();
        notify(&a, changes).await;
    }
    let summary = eventually("the import's summary", WAIT, || async {
        bodies(&log, "/team").into_iter().next()
    })
    .await;
    assert_eq!(summary["type"], "alert.backfill", "{summary}");
    assert_eq!(
        summary["data"]["text"],
        "600 customers below 50 after the import of history.csv"
    );
    assert_eq!(summary["data"]["by_rule"]["health_below"]["alerts"], 600);
    // The alerts exist and can be worked.
    assert_eq!(open_alerts(a.client()).await.len(), 600);

    // A live alert after the import: its own group, and the summary was the only message.
    score(&a, "live", 30.0).await;
    let live = eventually("the live alert's group", WAIT, || async {
        let b = bodies(&log, "/team");
        (b.len() >= 2).then_some(b)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(bodies(&log, "/team").len(), 2);
    assert_eq!(
        alerts_in(&live[1]),
        [(
            "opened".to_owned(),
            "live".to_owned(),
            "health_below".to_owned()
        )]
    );
}

/// Two alerting replicas on one PostgreSQL, four producers flapping sixty customers' scores
/// through both at once: every alert is told opened at most once, resolved at most once and
/// only after it was told opened, and each alert standing at the end was told of.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_postgres_tell_each_alert_once() {
    use rapport_tests::{Addrs, Backing, Postgres, Service, channel, start_replica};
    use std::collections::{BTreeMap, BTreeSet};

    let pg = Postgres::start();
    let db = pg.url();
    let backing = Backing::database(&db);
    let logs = tempfile::tempdir().unwrap();
    let config = logs.path().join("alerting.toml");
    std::fs::write(&config, RULES).unwrap();
    let config = config.display().to_string();
    let env = [
        ("RAPPORT_ALERT_CONFIG", config.as_str()),
        ("RAPPORT_ALERT_SWEEP_MS", "100"),
    ];
    let (one, two) = (Addrs::free(), Addrs::free());
    let _replicas = [
        start_replica(
            "alerting-1",
            Service::Alerting,
            &one,
            &backing,
            logs.path(),
            &env,
        ),
        start_replica(
            "alerting-2",
            Service::Alerting,
            &two,
            &backing,
            logs.path(),
            &env,
        ),
    ];
    let clients = [&one, &two]
        .map(|a| pb::alerting_service_client::AlertingServiceClient::new(channel(&a.alerting)));
    let (_receiver, base, log) = webhook_receiver(logs.path(), "{}");
    clients[0]
        .clone()
        .create_webhook(req(pb::CreateWebhookRequest {
            url: format!("{base}/hook"),
            route: Some(pb::WebhookRoute {
                group_by: vec!["customer".into()],
                group_wait: secs(0.2),
                group_interval: secs(0.3),
                repeat_interval: secs(0.0),
                ..Default::default()
            }),
        }))
        .await
        .expect("webhook");

    let producers = (0..4).map(|p| {
        let client = clients[p % 2].clone();
        tokio::spawn(async move {
            for round in 0..30 {
                let changes = (0..20)
                    .map(|i| {
                        let score = if (round + i) % 3 == 0 { 80.0 } else { 30.0 };
                        change(&format!("c{}", (p * 10 + i) % 60), score)
                    })
                    .collect();
                client
                    .clone()
                    .notify_scores(rapport_tests::service_req(pb::NotifyScoresRequest {
                        scores: changes,
                    }))
                    .await
                    .expect("notify");
            }
        })
    });
    for p in producers {
        p.await.unwrap();
    }
    // Everyone low at the end: sixty standing alerts.
    notify_through(
        &clients[1],
        (0..60).map(|i| change(&format!("c{i}"), 30.0)).collect(),
    )
    .await;
    let settled = || {
        pg.query(
            "SELECT (SELECT count(*) FROM alerting_deliveries) \
             + (SELECT count(*) FROM alerting_notices WHERE pending)",
        )
    };
    eventually("every notice delivered", WAIT, || async {
        (settled().trim() == "0").then_some(())
    })
    .await;

    // What the endpoint was told, per alert id, each message once (by webhook-id).
    let mut seen = BTreeSet::new();
    let mut told: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in logged(&log, "/hook") {
        if !seen.insert(r["headers"]["webhook-id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        for a in body["data"]["alerts"].as_array().unwrap() {
            told.entry(a["id"].as_str().unwrap().to_owned())
                .or_default()
                .push(a["change"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        told.len() > 60,
        "flapping made more than sixty alerts: {}",
        told.len()
    );
    for (id, changes) in &told {
        let count = |c: &str| changes.iter().filter(|x| *x == c).count();
        assert!(
            count("opened") <= 1,
            "alert {id} told opened twice: {changes:?}"
        );
        assert!(
            count("resolved") <= 1,
            "alert {id} told resolved twice: {changes:?}"
        );
        if count("resolved") == 1 {
            assert_eq!(
                changes.first().map(String::as_str),
                Some("opened"),
                "{id}: {changes:?}"
            );
            assert_eq!(
                changes.last().map(String::as_str),
                Some("resolved"),
                "{id}: {changes:?}"
            );
        }
    }
    let standing = open_alerts(clients[0].clone()).await;
    assert_eq!(standing.len(), 60);
    for a in standing {
        let changes = told.get(&a.id).cloned().unwrap_or_default();
        assert_eq!(
            changes.iter().filter(|c| *c == "opened").count(),
            1,
            "standing alert {} of {}: {changes:?}",
            a.id,
            a.customer_id
        );
        assert_ne!(changes.last().map(String::as_str), Some("resolved"));
    }
}

/// The open alerts (up to a thousand).
async fn open_alerts(
    mut client: pb::alerting_service_client::AlertingServiceClient<tonic::transport::Channel>,
) -> Vec<pb::Alert> {
    client
        .list_alerts(req(pb::ListAlertsRequest {
            state: pb::AlertState::Open.into(),
            ..Default::default()
        }))
        .await
        .expect("list alerts")
        .into_inner()
        .alerts
}

async fn notify_through(
    client: &pb::alerting_service_client::AlertingServiceClient<tonic::transport::Channel>,
    scores: Vec<pb::ScoreChange>,
) {
    client
        .clone()
        .notify_scores(rapport_tests::service_req(pb::NotifyScoresRequest {
            scores,
        }))
        .await
        .expect("notify");
}
