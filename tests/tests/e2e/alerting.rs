//! Alerting as its own process on SQLite, fed scores the way scoring's outbox feeds it: one
//! alert per condition whatever the flapping, pending and exit periods that survive a
//! SIGKILL, the lifecycle by hand, signed webhooks checked by Python's hmac, and a watch that
//! resumes without gaps.

use rapport_proto::alerting::v1::{self as pb, alerting_service_client::AlertingServiceClient};
use rapport_proto::common::v1::Tier;
use rapport_tests::{
    Proc, bin, channel, eventually, free_port, python, repo_root, req, service_req,
    webhook_receiver,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tonic::transport::Channel;

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// One alerting process, restartable on the same database.
pub(crate) struct Alerting {
    dir: tempfile::TempDir,
    addr: String,
    env: Vec<(String, String)>,
    proc: Option<Proc>,
}

impl Alerting {
    pub(crate) fn start(config_toml: &str, env: &[(&str, &str)]) -> Alerting {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alerting.toml");
        std::fs::write(&config, config_toml).unwrap();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push(("RAPPORT_ALERT_CONFIG".into(), config.display().to_string()));
        env.push(("RAPPORT_ALERT_SWEEP_MS".into(), "100".into()));
        let mut a = Alerting {
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            env,
            proc: None,
        };
        a.restart();
        a
    }

    fn restart(&mut self) {
        let mut cmd = Command::new(bin("rapport-alerting"));
        cmd.arg("--listen")
            .arg(&self.addr)
            .arg("--data-dir")
            .arg(self.dir.path())
            .env("RUST_LOG", "info")
            .env("RAPPORT_ALLOW_DEV_KEYS", "true")
            .env_remove("DATABASE_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.proc = Some(Proc::spawn(
            "alerting",
            cmd,
            self.dir.path(),
            "listening on",
        ));
    }

    fn kill(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.kill();
        }
    }

    pub(crate) fn client(&self) -> AlertingServiceClient<Channel> {
        AlertingServiceClient::new(channel(&self.addr))
    }
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn change(customer: &str, score: f64) -> pb::ScoreChange {
    // Distinct, increasing computation times, as scoring makes them.
    std::thread::sleep(Duration::from_millis(2));
    pb::ScoreChange {
        customer_id: customer.to_owned(),
        score,
        tier: Tier::Gold.into(),
        computed_at: Some(rapport_proto::convert::timestamp(now_ms())),
        ..Default::default()
    }
}

pub(crate) async fn notify(a: &Alerting, changes: Vec<pb::ScoreChange>) {
    a.client()
        .notify_scores(service_req(pb::NotifyScoresRequest { scores: changes }))
        .await
        .expect("notify scores");
}

pub(crate) async fn score(a: &Alerting, customer: &str, score: f64) -> pb::ScoreChange {
    let c = change(customer, score);
    notify(a, vec![c.clone()]).await;
    c
}

pub(crate) async fn alerts_of(a: &Alerting, customer: &str) -> Vec<pb::Alert> {
    a.client()
        .list_alerts(req(pb::ListAlertsRequest {
            customer_id: customer.to_owned(),
            ..Default::default()
        }))
        .await
        .expect("list alerts")
        .into_inner()
        .alerts
}

pub(crate) async fn standing(a: &Alerting, customer: &str) -> Option<pb::Alert> {
    alerts_of(a, customer)
        .await
        .into_iter()
        .find(|x| x.state != pb::AlertState::Resolved as i32)
}

pub(crate) async fn until_standing(a: &Alerting, customer: &str) -> pb::Alert {
    eventually(&format!("an alert for {customer}"), WAIT, || {
        standing(a, customer)
    })
    .await
}

async fn until_resolved(a: &Alerting, customer: &str) {
    eventually(&format!("{customer}'s alert resolved"), WAIT, || async {
        standing(a, customer).await.is_none().then_some(())
    })
    .await
}

const RULES: &str = "holdout_share = 0.0\n\
    [health_below]\nenter_below = 50.0\nexit_at_or_above = 60.0\n\
    pending_secs = 3\nresolve_after_secs = 3\n";

#[tokio::test(flavor = "multi_thread")]
async fn one_alert_per_condition_through_flapping_restarts_and_people() {
    let mut a = Alerting::start(RULES, &[]);

    // A condition shorter than the pending period notifies nobody.
    score(&a, "brief", 40.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    score(&a, "brief", 70.0).await;

    // Flapping inside the hysteresis band: one alert, counted once per fall under the
    // threshold (a further score still under it is the same trigger).
    score(&a, "flap", 40.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        standing(&a, "flap").await.is_none(),
        "opened before pending"
    );
    let opened = until_standing(&a, "flap").await;
    assert_eq!(opened.trigger_count, 1);
    for s in [55.0, 45.0, 58.0, 42.0] {
        score(&a, "flap", s).await;
    }
    let last = change("flap", 41.0);
    notify(&a, vec![last.clone()]).await;
    // The same notification again (an outbox redelivery) counts nothing.
    notify(&a, vec![last]).await;
    let alerts = alerts_of(&a, "flap").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].trigger_count, 3,
        "40, 45 and 42 fell under 50; 41 did not"
    );
    // Resolves only after the exit condition held for its period.
    score(&a, "flap", 65.0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(standing(&a, "flap").await.is_some(), "resolved too early");
    until_resolved(&a, "flap").await;
    // A trigger after resolution: a new incarnation, same dedup key.
    score(&a, "flap", 30.0).await;
    let again = until_standing(&a, "flap").await;
    assert_ne!(again.id, opened.id);
    assert_eq!(again.dedup_key, opened.dedup_key);
    assert!(alerts_of(&a, "brief").await.is_empty());

    // SIGKILL during a pending period: the period keeps its start; a recovery before it
    // ends still notifies nobody.
    let pending_from = score(&a, "pending-then-open", 40.0).await;
    score(&a, "pending-then-ok", 40.0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill();
    a.restart();
    score(&a, "pending-then-ok", 75.0).await;
    let opened = until_standing(&a, "pending-then-open").await;
    let started = rapport_proto::convert::millis(pending_from.computed_at.as_ref()).unwrap();
    let opened_at = rapport_proto::convert::millis(opened.opened_at.as_ref()).unwrap();
    // Opened on the 3 s period begun before the kill, not one begun again after it.
    assert!(
        opened_at - started < 4_000,
        "opened {} ms after",
        opened_at - started
    );
    // SIGKILL during the exit period: a relapse into the band resets it after restart.
    score(&a, "hysteresis", 40.0).await;
    until_standing(&a, "hysteresis").await;
    score(&a, "hysteresis", 65.0).await;
    a.kill();
    a.restart();
    score(&a, "hysteresis", 55.0).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        standing(&a, "hysteresis").await.is_some(),
        "spurious resolve"
    );
    assert!(alerts_of(&a, "pending-then-ok").await.is_empty());

    // Acknowledged, then the customer recovers: resolved.
    let ack = a
        .client()
        .acknowledge_alert(req(pb::AlertActionRequest {
            id: again.id.clone(),
            actor: "dana".into(),
            reason: "calling them".into(),
        }))
        .await
        .expect("ack")
        .into_inner();
    assert_eq!(ack.state, pb::AlertState::Acknowledged as i32);
    score(&a, "flap", 80.0).await;
    until_resolved(&a, "flap").await;

    // A snooze of more than 7 days is refused; one that ends while the condition still
    // holds re-opens the alert un-acknowledged.
    let alert = until_standing(&a, "pending-then-open").await;
    let snooze = |until_ms: i64| pb::SnoozeAlertRequest {
        id: alert.id.clone(),
        actor: "dana".into(),
        reason: "on holiday".into(),
        until: Some(rapport_proto::convert::timestamp(until_ms)),
    };
    let refused = a
        .client()
        .snooze_alert(req(snooze(now_ms() + 8 * 86_400_000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("until"), "{refused:?}");
    let snoozed = a
        .client()
        .snooze_alert(req(snooze(now_ms() + 1_000)))
        .await
        .expect("snooze")
        .into_inner();
    assert_eq!(snoozed.state, pb::AlertState::Snoozed as i32);
    eventually("the snooze to end", WAIT, || async {
        let x = standing(&a, "pending-then-open").await?;
        (x.state == pb::AlertState::Open as i32).then_some(())
    })
    .await;
    let trail = a
        .client()
        .get_alert(req(pb::GetAlertRequest { id: alert.id }))
        .await
        .expect("get alert")
        .into_inner()
        .transitions;
    let states: Vec<&str> = trail.iter().map(|t| t.to_state.as_str()).collect();
    assert_eq!(states, ["open", "snoozed", "open"], "{trail:?}");
    assert_eq!(trail[1].actor, "dana");
    assert!(trail.iter().all(|t| !t.config_version.is_empty()));

    // Resolving by hand needs a reason; afterwards the same trigger does not re-open it.
    let hysteresis = standing(&a, "hysteresis").await.unwrap();
    let no_reason = a
        .client()
        .resolve_alert(req(pb::AlertActionRequest {
            id: hysteresis.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    a.client()
        .resolve_alert(req(pb::AlertActionRequest {
            id: hysteresis.id,
            actor: "dana".into(),
            reason: "spoke to them; fine".into(),
        }))
        .await
        .expect("resolve");
    // An alert resolved by hand while its condition still fires stays resolved: the same
    // trigger does not open another, even after a pending period of sweeps.
    let firing = standing(&a, "pending-then-open").await.unwrap();
    a.client()
        .resolve_alert(req(pb::AlertActionRequest {
            id: firing.id,
            actor: "dana".into(),
            reason: "handled on the phone".into(),
        }))
        .await
        .expect("resolve");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(standing(&a, "hysteresis").await.is_none());
    assert!(standing(&a, "pending-then-open").await.is_none());
}

/// A route that sends each change at once.
pub(crate) fn immediate() -> pb::WebhookRoute {
    pb::WebhookRoute {
        group_wait: Some(prost_types::Duration::default()),
        group_interval: Some(prost_types::Duration::default()),
        ..Default::default()
    }
}

/// The requests the receiver logged for `path`, oldest first.
pub(crate) fn logged(log: &Path, path: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["path"] == path)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_retried_once_delivered_and_disabled_by_410() {
    let rules =
        "holdout_share = 0.0\n[health_below]\nenter_below = 50.0\nexit_at_or_above = 60.0\n";
    let a = Alerting::start(
        rules,
        &[
            ("RAPPORT_WEBHOOK_BACKOFF_MS", "100"),
            ("RAPPORT_WEBHOOK_MAX_ATTEMPTS", "4"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, base, log) = webhook_receiver(
        dir.path(),
        r#"{"/flaky": [500, 500, 200], "/gone": [410], "/down": [500], "/busy": [429, 200]}"#,
    );
    // No waiting and no interval: each change is its own delivery, as the retry checks
    // below count them.
    let create = |path: &str| pb::CreateWebhookRequest {
        url: format!("{base}{path}"),
        route: Some(immediate()),
    };
    let flaky = a
        .client()
        .create_webhook(req(create("/flaky")))
        .await
        .expect("create webhook")
        .into_inner();
    assert!(flaky.secret.starts_with("whsec_"));
    let gone = a
        .client()
        .create_webhook(req(create("/gone")))
        .await
        .expect("create webhook")
        .into_inner();
    let down = a
        .client()
        .create_webhook(req(create("/down")))
        .await
        .expect("create webhook")
        .into_inner();
    a.client()
        .create_webhook(req(create("/busy")))
        .await
        .expect("create webhook");
    let bad = a
        .client()
        .create_webhook(req(pb::CreateWebhookRequest {
            url: "ftp://x".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    score(&a, "c1", 30.0).await;
    until_standing(&a, "c1").await;

    let verify_with = |secret: &str| {
        let out = Command::new(python())
            .arg(repo_root().join("tests/python/webhook_receiver.py"))
            .arg("verify")
            .arg(&log)
            .arg("/flaky")
            .arg(secret)
            .output()
            .expect("run the verifier");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let verify = || verify_with(&flaky.secret);
    eventually("three attempts at /flaky", WAIT, || async {
        (verify().len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = verify();
    assert_eq!(requests.len(), 3, "one logical delivery: {requests:?}");
    let statuses: Vec<i64> = requests
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert!(requests.iter().all(|r| r["valid"] == true), "{requests:?}");
    assert!(
        requests.iter().all(|r| r["id"] == requests[0]["id"]),
        "{requests:?}"
    );
    assert_eq!(requests[0]["type"], "alert.group");
    let body: serde_json::Value =
        serde_json::from_str(logged(&log, "/flaky")[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["alerts"][0]["change"], "opened", "{body}");
    assert_eq!(body["data"]["alerts"][0]["customer_id"], "c1", "{body}");

    // 410 Gone disables the endpoint; its delivery is a dead letter.
    let hooks = eventually("the 410 endpoint disabled", WAIT, || async {
        let hooks = a
            .client()
            .list_webhooks(req(pb::ListWebhooksRequest {}))
            .await
            .ok()?
            .into_inner()
            .webhooks;
        hooks
            .iter()
            .any(|w| w.id == gone.id && !w.enabled)
            .then_some(hooks)
    })
    .await;
    let disabled = hooks.iter().find(|w| w.id == gone.id).unwrap();
    assert!(disabled.disabled_reason.contains("410"), "{disabled:?}");
    assert!(hooks.iter().any(|w| w.id == flaky.id && w.enabled));
    // 429 with Retry-After: 1 is honoured (the backoff alone would retry within 100 ms).
    let busy: Vec<serde_json::Value> = eventually("two attempts at /busy", WAIT, || async {
        let r = logged(&log, "/busy");
        (r.len() >= 2).then_some(r)
    })
    .await;
    let waited = busy[1]["at"].as_f64().unwrap() - busy[0]["at"].as_f64().unwrap();
    assert!(waited >= 0.9, "retried after {waited:.3} s");
    assert_eq!(
        busy[0]["headers"]["webhook-id"],
        busy[1]["headers"]["webhook-id"]
    );

    // An endpoint that keeps failing: its delivery is a dead letter after four attempts,
    // and a replay tries again with the same webhook-id.
    let dead = eventually("two dead letters", WAIT, || async {
        let dead = a
            .client()
            .list_dead_letters(req(pb::ListDeadLettersRequest {}))
            .await
            .ok()?
            .into_inner()
            .dead_letters;
        (dead.len() == 2).then_some(dead)
    })
    .await;
    assert!(dead.iter().any(|d| d.webhook_id == gone.id), "{dead:?}");
    let exhausted = dead
        .iter()
        .find(|d| d.webhook_id == down.id)
        .expect("/down's");
    assert_eq!(exhausted.attempts, 4);
    let attempts_at = |path: &str| -> Vec<String> {
        logged(&log, path)
            .iter()
            .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(attempts_at("/down"), vec![exhausted.message_id.clone(); 4]);
    a.client()
        .replay_dead_letter(req(pb::ReplayDeadLetterRequest {
            id: exhausted.id.clone(),
        }))
        .await
        .expect("replay");
    eventually("four more attempts", WAIT, || async {
        (attempts_at("/down").len() == 8).then_some(())
    })
    .await;
    assert!(
        attempts_at("/down")
            .iter()
            .all(|id| *id == exhausted.message_id)
    );
    let gone_letter = dead.iter().find(|d| d.webhook_id == gone.id).unwrap();
    let refused = a
        .client()
        .replay_dead_letter(req(pb::ReplayDeadLetterRequest {
            id: gone_letter.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    // During a rotation, deliveries carry a signature for the new and the old secret.
    let rotated = a
        .client()
        .rotate_webhook_secret(req(pb::RotateWebhookSecretRequest {
            id: flaky.id.clone(),
            keep_previous_secs: 3_600,
        }))
        .await
        .expect("rotate")
        .into_inner();
    assert_ne!(rotated.secret, flaky.secret);
    score(&a, "c2", 30.0).await;
    let with_new = eventually("a delivery after the rotation", WAIT, || async {
        let r = verify_with(&rotated.secret);
        (r.len() == 4).then_some(r)
    })
    .await;
    assert_eq!(with_new[3]["valid"], true, "{with_new:?}");
    assert_eq!(verify_with(&flaky.secret)[3]["valid"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_resumes_without_gaps_and_refuses_compacted_revisions() {
    let rules =
        "holdout_share = 0.0\n[health_below]\nenter_below = 50.0\nexit_at_or_above = 60.0\n";
    let a = Alerting::start(
        rules,
        &[
            ("RAPPORT_WATCH_KEEP_REVISIONS", "15"),
            ("RAPPORT_WATCH_COMPACT_SECS", "1"),
            ("RAPPORT_WATCH_HEARTBEAT_SECS", "1"),
        ],
    );
    let changes: Vec<pb::ScoreChange> =
        (0..20).map(|i| change(&format!("w{i:02}"), 30.0)).collect();
    notify(&a, changes).await;

    let watch = |after: u64| {
        let mut client = a.client();
        async move {
            client
                .watch_alerts(req(pb::WatchAlertsRequest {
                    after_revision: after,
                }))
                .await
        }
    };
    let mut stream = watch(0).await.expect("watch").into_inner();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let m = stream
            .message()
            .await
            .expect("message")
            .expect("open stream");
        if !m.bookmark {
            assert_eq!(m.change, pb::ChangeKind::Opened as i32);
            seen.push(m.revision);
        }
    }
    drop(stream);
    let resume_from = *seen.last().unwrap();
    let mut stream = watch(resume_from).await.expect("resume").into_inner();
    let mut bookmark = None;
    while bookmark.is_none() {
        let m = stream
            .message()
            .await
            .expect("message")
            .expect("open stream");
        if m.bookmark {
            bookmark = Some(m.revision);
        } else {
            seen.push(m.revision);
        }
    }
    // From the oldest kept: 1, or 6 once the log was trimmed to its latest 15.
    let first = seen[0];
    assert!(first == 1 || first == 6, "started at {first}");
    let expected: Vec<u64> = (first..=20).collect();
    assert_eq!(seen, expected, "every revision once, in order");
    assert_eq!(bookmark, Some(20));

    let status = eventually("revision 2 compacted", WAIT, || async {
        watch(2).await.err()
    })
    .await;
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_that_stops_reading_is_ended_with_resource_exhausted() {
    let rules =
        "holdout_share = 0.0\n[health_below]\nenter_below = 50.0\nexit_at_or_above = 60.0\n";
    let a = Alerting::start(
        rules,
        &[
            ("RAPPORT_WATCH_BUFFER", "1"),
            ("RAPPORT_WATCH_SLOW_SECS", "1"),
        ],
    );
    // Enough changes to fill every buffer between the service and a client that does not
    // read (HTTP/2 windows included): a few megabytes.
    for batch in 0..3 {
        let changes = (0..1_000)
            .map(|i| change(&format!("slow-{batch}-{i:04}"), 30.0))
            .collect();
        notify(&a, changes).await;
    }
    // A client with the smallest HTTP/2 windows, so what it does not read backs up fast.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", a.addr))
        .unwrap()
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect_lazy();
    let mut watch = req(pb::WatchAlertsRequest { after_revision: 0 });
    watch.metadata_mut().remove("grpc-timeout");
    let mut stream = AlertingServiceClient::new(channel)
        .watch_alerts(watch)
        .await
        .expect("watch")
        .into_inner();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0;
    let status = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => received += 1,
                Ok(None) => panic!("the watch ended without a status after {received} changes"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("the watch of a reader that fell behind ends");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        received < 3_000,
        "{received} changes arrived before the end"
    );
}

/// Rows of a table, each row's columns as text, in the order `sql` gives (which casts its
/// numbers to BIGINT, read alike from both databases).
async fn rows_of(database_url: &str, sql: &str) -> Vec<Vec<String>> {
    use rapport_storage::sea_orm::ConnectionTrait;
    let db = rapport_storage::connect(database_url).await.unwrap();
    let backend = db.get_database_backend();
    db.query_all_raw(rapport_storage::sea_orm::Statement::from_string(
        backend, sql,
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (0..)
            .map_while(|i| {
                match r.try_get_by_index::<Option<i64>>(i) {
                    Ok(n) => Some(n.map(|n| n.to_string())),
                    Err(_) => r.try_get_by_index::<Option<String>>(i).ok(),
                }
                .map(Option::unwrap_or_default)
            })
            .collect()
    })
    .collect()
}

/// Notifications stepping customers through opening, re-triggering, resolving and opening
/// again within one call leave the same alerts, audit trail, watch revisions and effect
/// outcomes on PostgreSQL (whose changed alerts are written in one statement) as on SQLite.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_steps_alerts_alike_on_sqlite_and_postgres() {
    let pg = rapport_tests::Postgres::start();
    let rules = "holdout_share = 0.0\n\
        [health_below]\nenter_below = 50.0\nexit_at_or_above = 60.0\n\
        pending_secs = 0\nresolve_after_secs = 0\n";
    let mut seen = Vec::new();
    for on_postgres in [false, true] {
        let env = if on_postgres {
            vec![("DATABASE_URL", pg.url())]
        } else {
            Vec::new()
        };
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = Alerting::start(rules, &env);
        let url = if on_postgres {
            pg.url()
        } else {
            rapport_storage::sqlite_url(a.dir.path(), "alerting")
        };
        let first: Vec<pb::ScoreChange> = [
            ("x", 40.0),
            ("y", 40.0),
            ("x", 45.0),
            ("x", 65.0),
            ("y", 42.0),
            ("x", 30.0),
            ("z", 70.0),
            ("x", 35.0),
        ]
        .into_iter()
        .map(|(c, s)| change(c, s))
        .collect();
        notify(&a, first).await;
        let second = ["y", "x", "y"]
            .into_iter()
            .zip([65.0, 62.0, 20.0])
            .map(|(c, s)| change(c, s))
            .collect();
        notify(&a, second).await;

        let alerts = rows_of(
            &url,
            "SELECT id, customer_id, state, CAST(trigger_count AS BIGINT), \
             CAST(score AS BIGINT), open_key, \
             CASE WHEN resolved_at IS NULL THEN 'standing' ELSE 'resolved' END, \
             CAST(outcome_score AS BIGINT), \
             CASE WHEN outcome_at IS NULL THEN 'none' ELSE 'measured' END \
             FROM alerting_alerts ORDER BY id",
        )
        .await;
        let trail = rows_of(
            &url,
            "SELECT alert_id, from_state, to_state, reason FROM alerting_transitions ORDER BY id",
        )
        .await;
        let revisions = rows_of(
            &url,
            "SELECT revision, alert_id, change FROM alerting_revisions ORDER BY revision",
        )
        .await;
        seen.push((alerts, trail, revisions));
    }
    let (alerts, trail, revisions) = &seen[0];
    let states: Vec<(&str, &str)> = alerts
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("x", "resolved"),
            ("x", "resolved"),
            ("y", "resolved"),
            ("y", "open")
        ],
        "{alerts:?}"
    );
    // Each alert's outcome is the last score observed after it opened (customers are
    // stepped one after another, each through its scores in order).
    let outcomes: Vec<&str> = alerts.iter().map(|r| r[7].as_str()).collect();
    assert_eq!(outcomes, ["62", "62", "20", ""], "{alerts:?}");
    assert_eq!(trail.len(), revisions.len());
    assert!(revisions.len() >= 7, "{revisions:?}");
    assert_eq!(seen[1], seen[0], "PostgreSQL as SQLite");
}
