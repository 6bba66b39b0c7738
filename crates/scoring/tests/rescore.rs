//! Scores move with time alone: the scheduled re-score, driven by an injected clock, on a real
//! (SQLite) store. Only changed scores are stored; history, trends and overrides follow.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rapport_cache::{AnyCache, MemoryCache};
use rapport_domain::event::{Event, Payload};
use rapport_domain::scorecard::DEFAULT_TOML;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_scoring::engine::{Builtin, Clock, Engine};
use rapport_scoring::evaluate::{CustomerState, OverrideTarget};
use rapport_scoring::store::{Columns, OverrideChange, Rescored, Store};
use rapport_scoring::{Work, run_once};
use rapport_storage::outbox::RelayWaker;

const TENANT: &str = "acme";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
}

fn order(customer: &str, at: DateTime<Utc>, amount: f64) -> Event {
    Event {
        event_id: format!("{customer}-{at}"),
        customer_id: customer.to_owned(),
        occurred_at: at,
        payload: Payload::Order {
            order_id: format!("o-{at}"),
            amount,
            currency: "EUR".into(),
            items: 1,
        },
    }
}

/// An engine and, beside it, its store, which the tests seed and read directly.
struct Rig {
    engine: Engine,
    store: Store,
}

impl std::ops::Deref for Rig {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

async fn engine(dir: &std::path::Path, clock: Clock) -> Rig {
    let url = format!("sqlite://{}?mode=rwc", dir.join("scoring.db").display());
    let db = rapport_storage::open::<rapport_scoring::migration::Migrator>(&url)
        .await
        .unwrap();
    // Ingestion is never called here: customers are stored directly.
    let channel = rapport_server::peer_channel("127.0.0.1:1").unwrap();
    let store = Store::new(db);
    let engine = Engine::new(
        store.clone(),
        AnyCache::Memory(MemoryCache::new(1_000, std::time::Duration::from_secs(60))),
        IngestionServiceClient::new(channel),
        "test".into(),
        Builtin::new(DEFAULT_TOML).unwrap(),
        RelayWaker::default(),
        clock,
    );
    Rig { engine, store }
}

/// Stores customers with these events, as folding them would.
async fn seed(engine: &Rig, customers: &[(&str, Vec<Event>)]) {
    let rows: Vec<Rescored> = customers
        .iter()
        .map(|(id, events)| {
            let mut state = CustomerState::default();
            events.iter().for_each(|e| state.metrics.apply(e));
            Rescored {
                customer_id: (*id).to_owned(),
                state,
                snapshot: None,
                notification: None,
            }
        })
        .collect();
    engine
        .store
        .save(TENANT, &rows, Columns::All, None)
        .await
        .unwrap();
}

/// Two customers as of `t0`: "silent" bought twice in the last three days and then nothing,
/// "regular" buys every week.
async fn seed_silent_and_regular(engine: &Rig, t0: DateTime<Utc>) {
    seed(
        engine,
        &[
            (
                "silent",
                vec![
                    order("silent", t0 - Duration::days(3), 120.0),
                    order("silent", t0 - Duration::days(2), 80.0),
                ],
            ),
            (
                "regular",
                (0..12)
                    .map(|w| order("regular", t0 - Duration::days(7 * w), 30.0))
                    .collect(),
            ),
        ],
    )
    .await;
}

/// The customer's latest snapshot (it must have one).
async fn latest(engine: &Rig, customer: &str) -> rapport_scoring::store::Snapshot {
    engine
        .store
        .latest(TENANT, customer)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{customer} has no snapshot"))
}

async fn history(engine: &Rig, customer: &str) -> Vec<f64> {
    engine
        .store
        .history(TENANT, customer, 0, i64::MAX, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|s| s.score)
        .collect()
}

#[tokio::test]
async fn a_silent_customer_falls_with_time_through_the_scheduled_rescore() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(start());
    let engine = engine(dir.path(), clock.clone()).await;
    let t0 = start();
    seed_silent_and_regular(&engine, t0).await;

    run_once(&engine, Work::Rescore).await;
    let first = latest(&engine, "silent").await;
    // A second run at the same time changes nothing, so stores nothing.
    run_once(&engine, Work::Rescore).await;
    assert_eq!(history(&engine, "silent").await.len(), 1);

    clock.set(t0 + Duration::days(45));
    run_once(&engine, Work::Rescore).await;
    let later = latest(&engine, "silent").await;
    clock.set(t0 + Duration::days(200));
    run_once(&engine, Work::Rescore).await;
    let much_later = latest(&engine, "silent").await;

    assert!(
        first.score > later.score && later.score > much_later.score,
        "{} > {} > {}",
        first.score,
        later.score,
        much_later.score
    );
    assert_eq!(
        history(&engine, "silent").await,
        [first.score, later.score, much_later.score]
    );
    let recency = |s: &rapport_scoring::store::Snapshot| {
        s.measures
            .iter()
            .find(|m| m.measure == "recency_days")
            .and_then(|m| m.value)
    };
    assert_eq!(recency(&first), Some(2.0));
    assert_eq!(recency(&much_later), Some(202.0));
    // 45 days on, the closing score 30 days before (day 15) was the first one.
    assert_eq!(later.detail.trend_30d, Some(later.score - first.score));
    assert_eq!(
        later.computed_at,
        (t0 + Duration::days(45)).timestamp_millis()
    );
    // Each snapshot's contributions add up to its score.
    for s in [&first, &later, &much_later] {
        let sum: f64 = s.measures.iter().map(|m| m.contribution).sum();
        assert!((sum - s.score).abs() < 1e-9, "{sum} vs {}", s.score);
    }
}

#[tokio::test]
async fn an_override_holds_until_it_expires_then_the_computed_score_returns() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = start();
    let clock = Clock::fixed(t0);
    let engine = engine(dir.path(), clock.clone()).await;
    seed(
        &engine,
        &[("c", vec![order("c", t0 - Duration::days(1), 50.0)])],
    )
    .await;
    run_once(&engine, Work::Rescore).await;
    let computed = latest(&engine, "c").await.score;

    let set = OverrideChange {
        customer_id: "c".into(),
        target: OverrideTarget::Score,
        author: "ann@csm".into(),
        reason: "escalation after outage".into(),
        set: Some((15.0, (t0 + Duration::days(3)).timestamp_millis())),
    };
    let h = engine.change_override(TENANT, set).await.unwrap().unwrap();
    assert_eq!(h.score, 15.0);
    assert_eq!(h.computed_score, computed);
    assert_eq!(h.overrides[0].author, "ann@csm");

    // Before the expiry the sweep does nothing; after it, the computed score is back.
    clock.set(t0 + Duration::days(2));
    run_once(&engine, Work::Overrides).await;
    assert_eq!(latest(&engine, "c").await.score, 15.0);
    clock.set(t0 + Duration::days(3) + Duration::minutes(1));
    run_once(&engine, Work::Overrides).await;
    let back = engine
        .snapshot_at(TENANT, "c", None)
        .await
        .unwrap()
        .unwrap();
    assert!(back.detail.overrides.is_empty());
    assert!(back.score > 15.0, "{}", back.score);
    assert_eq!(back.detail.computed_score, Some(back.score));
    // The sweep applies each expiry once.
    assert!(
        engine
            .store
            .expired_overrides(clock.now().timestamp_millis(), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Unknown customers cannot be overridden.
    let unknown = OverrideChange {
        customer_id: "nobody".into(),
        target: OverrideTarget::Sentiment,
        author: "ann".into(),
        reason: "x".into(),
        set: Some((50.0, (t0 + Duration::days(9)).timestamp_millis())),
    };
    assert!(engine.change_override(TENANT, unknown).await.is_err());
}

#[tokio::test]
async fn percentile_measures_rank_customers_within_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = start();
    let engine = engine(dir.path(), Clock::fixed(t0)).await;
    let customers: Vec<(String, Vec<Event>)> = (1..=50)
        .map(|i| {
            let id = format!("c{i:02}");
            let events = vec![order(&id, t0 - Duration::days(5), f64::from(i) * 10.0)];
            (id, events)
        })
        .collect();
    let refs: Vec<(&str, Vec<Event>)> = customers
        .iter()
        .map(|(id, e)| (id.as_str(), e.clone()))
        .collect();
    seed(&engine, &refs).await;
    run_once(&engine, Work::Rescore).await;
    let spend = |s: rapport_scoring::store::Snapshot| {
        s.measures
            .iter()
            .find(|m| m.measure == "spend_365d")
            .and_then(|m| m.score)
    };
    let low = spend(
        engine
            .snapshot_at(TENANT, "c01", None)
            .await
            .unwrap()
            .unwrap(),
    );
    let high = spend(
        engine
            .snapshot_at(TENANT, "c50", None)
            .await
            .unwrap()
            .unwrap(),
    );
    let (low, high) = (low.expect("ranked"), high.expect("ranked"));
    assert!(low < 5.0 && high > 95.0, "{low} {high}");
}

/// Snapshots stored before bodies existed (their measures and detail as two JSON texts) read
/// back exactly as snapshots stored as a body do.
#[tokio::test]
async fn a_snapshot_stored_as_json_reads_as_one_stored_as_a_body() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), Clock::fixed(start())).await;
    let t0 = start();
    seed(
        &engine,
        &[(
            "older",
            vec![
                order("older", t0 - Duration::days(40), 25.0),
                order("older", t0 - Duration::days(3), 70.0),
            ],
        )],
    )
    .await;
    run_once(&engine, Work::Rescore).await;
    let from_body = engine
        .snapshot_at(TENANT, "older", None)
        .await
        .unwrap()
        .unwrap();
    assert!(!from_body.measures.is_empty());

    let url = format!("sqlite://{}", dir.path().join("scoring.db").display());
    let db = sea_orm::Database::connect(url).await.unwrap();
    let later = from_body.computed_at + 1;
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "INSERT INTO scoring_snapshots (tenant_id, customer_id, score, band, \
         scorecard_version, measures, computed_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            TENANT.into(),
            "older".into(),
            from_body.score.into(),
            from_body.band.name().into(),
            from_body.scorecard_version.clone().into(),
            serde_json::to_string(&from_body.measures).unwrap().into(),
            later.into(),
            serde_json::to_string(&from_body.detail).unwrap().into(),
        ],
    ))
    .await
    .unwrap();

    let from_json = engine
        .snapshot_at(TENANT, "older", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_json.computed_at, later, "the JSON row is the latest");
    assert_eq!(
        from_json,
        rapport_scoring::store::Snapshot {
            computed_at: later,
            ..from_body
        }
    );
}

#[tokio::test]
async fn each_walk_counts_the_bands_by_week_and_notes_the_steepest_falls() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(start());
    let engine = engine(dir.path(), clock.clone()).await;
    let t0 = start(); // a Saturday
    seed_silent_and_regular(&engine, t0).await;
    let band = |s: &rapport_scoring::store::Snapshot| s.band;
    run_once(&engine, Work::Rescore).await;
    let first = latest(&engine, "silent").await;
    // Eight days on (the next week), silent has not bought again.
    clock.set(t0 + Duration::days(8));
    run_once(&engine, Work::Rescore).await;
    let later = latest(&engine, "silent").await;
    let regular = latest(&engine, "regular").await;

    let weeks = engine.band_shares(TENANT, 12).await.unwrap();
    let mondays: Vec<i64> = weeks.iter().map(|(w, _)| *w).collect();
    let day = |t: DateTime<Utc>| t.timestamp().div_euclid(86_400);
    assert_eq!(
        mondays,
        [day(t0 - Duration::days(5)), day(t0 + Duration::days(2))],
        "the Mondays of the two walks' weeks"
    );
    for (_, d) in &weeks {
        let c = d.counts;
        assert_eq!(c.red + c.yellow + c.green + c.unscored, 2, "{c:?}");
    }
    let last = weeks[1].1.counts;
    let mut expected = rapport_scoring::store::BandCounts::default();
    expected.add(Some(band(&later)));
    expected.add(Some(band(&regular)));
    assert_eq!(last, expected);
    assert_eq!(
        weeks[1].1.counted_at,
        (t0 + Duration::days(8)).timestamp_millis()
    );

    // Over 7 days silent fell from its first score (regular too: its last order ages);
    // nobody has 30 days of history yet.
    assert!(
        later.score < first.score,
        "{} < {}",
        later.score,
        first.score
    );
    let (week, at) = engine.fallers(TENANT, 7, 10).await.unwrap();
    let fell: Vec<(&str, f64)> = week
        .iter()
        .map(|(h, c)| (h.customer_id.as_str(), *c))
        .collect();
    assert!(
        fell.contains(&("silent", later.score - first.score)),
        "{fell:?}"
    );
    assert!(fell.iter().all(|(_, c)| *c < 0.0));
    assert!(
        fell.windows(2)
            .all(|w| (w[0].1, w[0].0) <= (w[1].1, w[1].0)),
        "steepest first, ties by id: {fell:?}"
    );
    assert_eq!(at, Some((t0 + Duration::days(8)).timestamp_millis()));
    assert!(engine.fallers(TENANT, 30, 10).await.unwrap().0.is_empty());
}
