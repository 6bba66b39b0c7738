//! API keys managed by the platform, on PostgreSQL with two replicas of every service: a key
//! created through `rapport keys` works on every replica, a revoked one is refused by every
//! replica within seconds, an expired one too; the table holds digests, not secrets; every
//! key call is audited; the development keys are refused outside `rapport up`; the service
//! key calls only the internal RPCs and only it names a tenant.

use rapport_proto::alerting::v1 as alerting;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::segmentation::v1 as segmentation;
use rapport_tests::{Addrs, Backing, Postgres, Proc, Service, bin, channel, free_port, keyed};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SERVICE_KEY: &str = "svc-7f3a9c";
const ACME_ADMIN: &str = "boot-acme-admin";
const OPERATOR: &str = "boot-operator";

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Two replicas of every service on `pg`, with bootstrap keys and no development keys.
struct Platform {
    replicas: BTreeMap<Service, Vec<String>>,
    _procs: Vec<Proc>,
}

impl Platform {
    fn start(pg: &Postgres, logs: &Path) -> Platform {
        let replicas: BTreeMap<Service, Vec<String>> = Service::ALL
            .into_iter()
            .map(|s| (s, vec![loopback(), loopback()]))
            .collect();
        let keys = format!("{ACME_ADMIN}=acme:admin,{OPERATOR}=*:operator");
        let env = [
            ("RAPPORT_API_KEYS", keys.as_str()),
            ("RAPPORT_SERVICE_KEY", SERVICE_KEY),
            ("RAPPORT_ALLOW_DEV_KEYS", "false"),
        ];
        let url = pg.url();
        let backing = Backing::database(&url);
        let mut procs = Vec::new();
        // Ingestion first: it migrates the key table the others read through it.
        for service in Service::ALL {
            for (i, own) in replicas[&service].iter().enumerate() {
                let list = |s: Service| replicas[&s].join(",");
                let mut addrs = Addrs {
                    ingestion: list(Service::Ingestion),
                    scoring: list(Service::Scoring),
                    segmentation: list(Service::Segmentation),
                    alerting: list(Service::Alerting),
                    metrics: BTreeMap::new(),
                };
                *addrs.of_mut(service) = own.clone();
                let name = format!("{service}-{i}");
                procs.push(rapport_tests::start_replica(
                    &name, service, &addrs, &backing, logs, &env,
                ));
            }
        }
        Platform {
            replicas,
            _procs: procs,
        }
    }

    /// What every replica answers a read call made with `key`, as (replica, code).
    async fn probe(&self, key: &str) -> Vec<(String, tonic::Code)> {
        let mut codes = Vec::new();
        for (service, addrs) in &self.replicas {
            for addr in addrs {
                let code = read_call(*service, addr, key).await;
                codes.push((format!("{service}@{addr}"), code));
            }
        }
        codes
    }
}

/// The code of one read call of `service` at `addr` with `key`.
async fn read_call(service: Service, addr: &str, key: &str) -> tonic::Code {
    let ch = channel(addr);
    let answer = match service {
        Service::Ingestion => ingestion::ingestion_service_client::IngestionServiceClient::new(ch)
            .list_quarantine(keyed(ingestion::ListQuarantineRequest::default(), key))
            .await
            .map(|_| ()),
        Service::Scoring => scoring::scoring_service_client::ScoringServiceClient::new(ch)
            .get_scorecard(keyed(scoring::GetScorecardRequest::default(), key))
            .await
            .map(|_| ()),
        Service::Segmentation => {
            segmentation::segmentation_service_client::SegmentationServiceClient::new(ch)
                .list_custom_segments(keyed(
                    segmentation::ListCustomSegmentsRequest::default(),
                    key,
                ))
                .await
                .map(|_| ())
        }
        Service::Alerting => alerting::alerting_service_client::AlertingServiceClient::new(ch)
            .list_alerts(keyed(alerting::ListAlertsRequest::default(), key))
            .await
            .map(|_| ()),
    };
    match answer {
        Ok(()) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

/// Polls until every replica answers `want` to `key`; how long that took.
async fn until_all(
    platform: &Platform,
    key: &str,
    want: tonic::Code,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let codes = platform.probe(key).await;
        if codes.iter().all(|(_, c)| *c == want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "after {within:?}, not every replica answers {want:?}: {codes:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rapport keys …` against the first ingestion replica with `key`; its JSON output.
fn cli(platform: &Platform, key: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(bin("rapport"))
        .arg("keys")
        .args(args)
        .args(["--json", "--api-key", key, "--ingestion"])
        .arg(&platform.replicas[&Service::Ingestion][0])
        .env_remove("RAPPORT_DATA_DIR")
        .output()
        .expect("run rapport");
    assert!(
        out.status.success(),
        "rapport keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_created_revoked_and_expire_on_every_replica() {
    let pg = Postgres::start();
    let logs = tempfile::tempdir().unwrap();
    let platform = Platform::start(&pg, logs.path());

    // The development keys are refused outside `rapport up`.
    let dev = platform.probe(rapport_tests::API_KEY).await;
    assert!(
        dev.iter().all(|(_, c)| *c == tonic::Code::Unauthenticated),
        "{dev:?}"
    );

    // A key created on one replica works on every replica within seconds.
    let created = cli(
        &platform,
        ACME_ADMIN,
        &["create", "--role", "read", "--name", "dashboards"],
    );
    let secret = created["secret"].as_str().expect("a secret").to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["tenant"], "acme");
    let known_in = until_all(&platform, &secret, tonic::Code::Ok, Duration::from_secs(5)).await;
    eprintln!("a new key was accepted by all 8 replicas after {known_in:?}");

    // The table holds its digest, never the secret.
    let row = pg.query(&format!(
        "SELECT id, tenant_id, role, encode(sha256, 'hex') FROM ingestion_keys WHERE id = '{id}'"
    ));
    let digest = hex::encode(rapport_server::auth::digest(&secret));
    assert_eq!(row.trim(), format!("{id}|acme|read|{digest}"));
    let dump = pg.query("SELECT row_to_json(k)::text FROM ingestion_keys k");
    let secret_part = secret.rsplit('_').next().unwrap();
    assert!(!dump.contains(secret_part), "{dump}");

    // Revoked on one replica, refused on every replica within 5 s.
    let revoked = cli(&platform, ACME_ADMIN, &["revoke", &id]);
    assert!(
        revoked["revoked_by"].as_str().unwrap().starts_with("env:"),
        "{revoked}"
    );
    let refused_in = until_all(
        &platform,
        &secret,
        tonic::Code::Unauthenticated,
        Duration::from_secs(5),
    )
    .await;
    eprintln!("a revoked key was refused by all 8 replicas after {refused_in:?}");

    // A key that expires is refused after its time, everywhere.
    let short = cli(
        &platform,
        ACME_ADMIN,
        &["create", "--role", "ingest", "--expires", "3s"],
    );
    let short = short["secret"].as_str().unwrap().to_owned();
    let ingest_ok = until_all(
        &platform,
        &short,
        tonic::Code::PermissionDenied,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        ingest_ok < Duration::from_secs(3),
        "an ingest key reads nothing, but is known"
    );
    until_all(
        &platform,
        &short,
        tonic::Code::Unauthenticated,
        Duration::from_secs(8),
    )
    .await;

    // An admin manages its own tenant's keys; an operator any tenant's, and reads nothing.
    let other = std::process::Command::new(bin("rapport"))
        .args([
            "keys",
            "create",
            "--tenant",
            "globex",
            "--role",
            "read",
            "--api-key",
            ACME_ADMIN,
            "--ingestion",
        ])
        .arg(&platform.replicas[&Service::Ingestion][1])
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("own tenant"));
    let globex = cli(
        &platform,
        OPERATOR,
        &["create", "--tenant", "globex", "--role", "admin"],
    );
    assert_eq!(globex["tenant"], "globex");
    let op = platform.probe(OPERATOR).await;
    assert!(
        op.iter().all(|(_, c)| *c == tonic::Code::PermissionDenied),
        "{op:?}"
    );
    let acme_keys = cli(&platform, ACME_ADMIN, &["list", "--all"]);
    let tenants: Vec<&str> = acme_keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["tenant"].as_str().unwrap())
        .collect();
    assert!(
        tenants.iter().all(|t| *t == "acme") && tenants.len() == 2,
        "{acme_keys}"
    );

    // Every key call is in the audit: who, what, when.
    let audit = cli(&platform, OPERATOR, &["audit"]);
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for action in ["create", "revoke", "list"] {
        assert!(
            actions
                .iter()
                .any(|(a, actor)| a == action && actor.starts_with("env:")),
            "{actions:?}"
        );
    }
    assert!(audit[0]["at"].as_str().unwrap().len() >= 19);

    // The service key calls the internal RPCs only, and only it names a tenant.
    let mut named = keyed(alerting::ListAlertsRequest::default(), SERVICE_KEY);
    named
        .metadata_mut()
        .insert(rapport_server::auth::TENANT_HEADER, "acme".parse().unwrap());
    let code = alerting::alerting_service_client::AlertingServiceClient::new(channel(
        &platform.replicas[&Service::Alerting][0],
    ))
    .list_alerts(named)
    .await
    .unwrap_err()
    .code();
    assert_eq!(code, tonic::Code::PermissionDenied);
    let mut impostor = keyed(scoring::GetScorecardRequest::default(), ACME_ADMIN);
    impostor.metadata_mut().insert(
        rapport_server::auth::TENANT_HEADER,
        "globex".parse().unwrap(),
    );
    let code = scoring::scoring_service_client::ScoringServiceClient::new(channel(
        &platform.replicas[&Service::Scoring][0],
    ))
    .get_scorecard(impostor)
    .await
    .unwrap_err()
    .code();
    assert_eq!(code, tonic::Code::PermissionDenied);
}
