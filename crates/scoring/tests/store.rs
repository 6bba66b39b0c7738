//! The store's walks and rankings, on both databases: a percentile pre-pass over a large
//! tenant reads a sample of its customers (about the share asked for, in id order, the same
//! customers on every walk), the lowest scores come first whatever their index holds, the
//! latest snapshot is the last stored, the migration filled the steps as the service
//! computes them, and scores stored before they moved to a table of their own read the same.

use chrono::NaiveDate;
use rapport_domain::lifecycle::Stage;
use rapport_domain::metrics::CustomerMetrics;
use rapport_domain::scorecard::Band;
use rapport_domain::tier::Tier;
use rapport_scoring::evaluate::{CustomerState, DayScore};
use rapport_scoring::migration::{Migrator, score_step_sql};
use rapport_scoring::store::{
    Columns, ListFilter, NewSnapshot, Rescored, Snapshot, Store, TierChange, score_step,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

const CUSTOMERS: usize = 2_000;

async fn seed(store: &Store, tenant: &str, n: usize) {
    let rows: Vec<Rescored> = (0..n)
        .map(|i| Rescored {
            customer_id: format!("c{i:05}"),
            state: CustomerState::default(),
            snapshot: None,
            notification: None,
        })
        .collect();
    store.save(tenant, &rows, Columns::All, None).await.unwrap();
}

async fn walk(store: &Store, one_in: u64) -> Vec<String> {
    let mut pages = store.sample("t", 100, one_in);
    let mut ids = Vec::new();
    while let Some(page) = pages.next().await.unwrap() {
        ids.extend(page.into_iter().map(|row| row.customer_id));
    }
    ids
}

async fn a_sample_is_a_stable_ordered_share_of_the_tenant(store: Store) {
    seed(&store, "t", CUSTOMERS).await;
    seed(&store, "other", 500).await;

    let all = walk(&store, 1).await;
    assert_eq!(
        all.len(),
        CUSTOMERS,
        "one in one is every customer of the tenant"
    );

    for (one_in, around) in [(4, 500), (10, 200)] {
        let sample = walk(&store, one_in).await;
        let share = around as f64;
        assert!(
            (sample.len() as f64 - share).abs() < share * 0.25,
            "one in {one_in} of {CUSTOMERS} chose {}",
            sample.len()
        );
        assert!(
            sample.windows(2).all(|w| w[0] < w[1]),
            "a sample is walked in id order"
        );
        assert!(
            sample.iter().all(|id| all.binary_search(id).is_ok()),
            "a sample holds only the tenant's customers"
        );
        assert_eq!(
            walk(&store, one_in).await,
            sample,
            "a second walk chooses the same"
        );
    }
}

/// Scores on both sides of step boundaries, with ties.
const SCORES: [f64; 10] = [72.0, 4.999, 5.0, 99.9, 0.0, 50.5, 49.99, 5.0, 100.0, 4.2];

/// Customers `r00`, `r01`… with these scores.
fn scored(scores: &[f64]) -> Vec<Rescored> {
    scores
        .iter()
        .enumerate()
        .map(|(i, score)| Rescored {
            customer_id: format!("r{i:02}"),
            state: CustomerState {
                score: Some(*score),
                ..CustomerState::default()
            },
            snapshot: None,
            notification: None,
        })
        .collect()
}

/// `rows` as if computed from the customers' stored states: at their stored revisions.
async fn at_stored_revisions(
    store: &Store,
    tenant: &str,
    mut rows: Vec<Rescored>,
) -> Vec<Rescored> {
    let ids: Vec<String> = rows.iter().map(|r| r.customer_id.clone()).collect();
    let stored = store.states(tenant, &ids).await.unwrap();
    for r in &mut rows {
        r.state.revision = stored[&r.customer_id].revision;
    }
    rows
}

/// Two writers of one customer: a fold or a re-score computed from a state that another
/// write replaced meanwhile is refused, and the newer state stays, in both tables; a tier
/// from an older grading run does not replace a newer run's.
async fn a_write_from_a_replaced_state_is_refused(store: Store) {
    let ids = ["w".to_owned()];
    let scored_at = |seq: i64, score: f64, revision: i64| Rescored {
        customer_id: "w".to_owned(),
        state: CustomerState {
            last_event_seq: seq,
            score: Some(score),
            revision,
            ..CustomerState::default()
        },
        snapshot: None,
        notification: None,
    };
    store
        .save("w", &[scored_at(5, 50.0, 0)], Columns::All, None)
        .await
        .unwrap();
    let read = store.states("w", &ids).await.unwrap()["w"].revision;

    // Two folds from the same read: the first stores, the second is stale.
    let first = store
        .save("w", &[scored_at(20, 70.0, read)], Columns::All, None)
        .await
        .unwrap();
    assert!(first.stale.is_empty() && first.stored.contains("w"));
    let second = store
        .save("w", &[scored_at(10, 60.0, read)], Columns::All, None)
        .await
        .unwrap();
    assert_eq!(second.stale, ["w"], "a fold of a replaced state is refused");
    assert!(second.stored.is_empty());
    let now = &store.states("w", &ids).await.unwrap()["w"];
    assert_eq!(
        (now.last_event_seq, now.score),
        (20, Some(70.0)),
        "the newer fold stays"
    );

    // A re-score computed before the fold is refused; one computed after it is stored.
    let late = store
        .save("w", &[scored_at(5, 10.0, read)], Columns::Score, None)
        .await
        .unwrap();
    assert_eq!(
        late.stale,
        ["w"],
        "a re-score of a replaced state is refused"
    );
    let fresh = store
        .save(
            "w",
            &[scored_at(20, 75.0, now.revision)],
            Columns::Score,
            None,
        )
        .await
        .unwrap();
    assert!(fresh.stale.is_empty() && fresh.stored.contains("w"));
    let now = &store.states("w", &ids).await.unwrap()["w"];
    assert_eq!((now.last_event_seq, now.score), (20, Some(75.0)));

    // A tier update moves the revision: a re-score from before it is refused.
    let tier = |t: Tier, graded_at: i64| TierChange {
        customer_id: "w".to_owned(),
        tier: t,
        stage: None,
        graded_at: Some(graded_at),
    };
    let before_tier = now.revision;
    assert_eq!(
        store
            .apply_tiers("w", &[tier(Tier::Gold, 200)], 1)
            .await
            .unwrap(),
        ["w"]
    );
    let late = store
        .save(
            "w",
            &[scored_at(20, 10.0, before_tier)],
            Columns::Score,
            None,
        )
        .await
        .unwrap();
    assert_eq!(late.stale, ["w"]);
    // An older run's tier arrives late: ignored.
    assert!(
        store
            .apply_tiers("w", &[tier(Tier::Bronze, 100)], 1)
            .await
            .unwrap()
            .is_empty()
    );
    let now = &store.states("w", &ids).await.unwrap()["w"];
    assert_eq!((now.tier, now.score), (Some(Tier::Gold), Some(75.0)));
}

/// The ids of `rows` by score, then id.
fn by_score(rows: &[Rescored]) -> Vec<String> {
    let mut order: Vec<(f64, String)> = rows
        .iter()
        .map(|r| (r.state.score.unwrap_or_default(), r.customer_id.clone()))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    order.into_iter().map(|(_, id)| id).collect()
}

async fn the_lowest_scores_come_first_in_score_then_id_order(store: Store) {
    let rows = scored(&SCORES);
    store.save("r", &rows, Columns::All, None).await.unwrap();
    let expected = by_score(&rows);
    assert_eq!(
        store
            .lowest("r", &ListFilter::default(), 100)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        store.lowest("r", &ListFilter::default(), 4).await.unwrap(),
        expected[..4],
        "a limit keeps the lowest"
    );

    // A re-score writes only the score columns: the steps move with the scores, across
    // steps and within one.
    let mut moved = SCORES;
    moved.reverse();
    moved[0] += 0.5;
    let rows = at_stored_revisions(&store, "r", scored(&moved)).await;
    store.save("r", &rows, Columns::Score, None).await.unwrap();
    assert_eq!(
        store
            .lowest("r", &ListFilter::default(), 100)
            .await
            .unwrap(),
        by_score(&rows),
        "after a re-score"
    );

    // A tier (the customers' rows) and a band (the scores') narrow the list, in its order.
    let gold: Vec<String> = by_score(&rows).into_iter().step_by(3).collect();
    let tiers: Vec<_> = gold
        .iter()
        .map(|id| TierChange {
            customer_id: id.clone(),
            tier: Tier::Gold,
            stage: None,
            graded_at: Some(1),
        })
        .collect();
    store.apply_tiers("r", &tiers, 1).await.unwrap();
    let of_gold = ListFilter {
        tier: Some(Tier::Gold),
        ..Default::default()
    };
    assert_eq!(listed(&store, of_gold).await, gold);
    // A stage (also the customers' rows) narrows it too, alone or with the tier.
    let at_risk: Vec<String> = gold.iter().step_by(2).cloned().collect();
    let stages: Vec<_> = at_risk
        .iter()
        .map(|id| TierChange {
            customer_id: id.clone(),
            tier: Tier::Gold,
            stage: Some(Stage::AtRisk),
            graded_at: Some(2),
        })
        .collect();
    store.apply_tiers("r", &stages, 2).await.unwrap();
    for tier in [None, Some(Tier::Gold)] {
        let filter = ListFilter {
            tier,
            stage: Some(Stage::AtRisk),
            ..Default::default()
        };
        assert_eq!(listed(&store, filter).await, at_risk);
    }
    let churned = ListFilter {
        stage: Some(Stage::Churned),
        ..Default::default()
    };
    assert!(listed(&store, churned).await.is_empty());
    let mut red = at_stored_revisions(&store, "r", rows.clone()).await;
    for (i, r) in red.iter_mut().enumerate() {
        r.state.band = Some(if i % 2 == 0 { Band::Red } else { Band::Green });
    }
    store.save("r", &red, Columns::Score, None).await.unwrap();
    let red_ids: Vec<String> = by_score(&rows)
        .into_iter()
        .filter(|id| {
            red.iter()
                .any(|r| &r.customer_id == id && r.state.band == Some(Band::Red))
        })
        .collect();
    assert_eq!(
        store
            .lowest(
                "r",
                &ListFilter {
                    band: Some(Band::Red),
                    ..Default::default()
                },
                100
            )
            .await
            .unwrap(),
        red_ids
    );
    // A tier with a band: the holders' scores are filtered as the walk filters them.
    let gold_red = ListFilter {
        band: Some(Band::Red),
        ..of_gold
    };
    let expected: Vec<String> = red_ids
        .iter()
        .filter(|id| gold.contains(id))
        .cloned()
        .collect();
    assert!(!expected.is_empty() && expected.len() < gold.len());
    assert_eq!(listed(&store, gold_red).await, expected);

    // P(alive) (the scores' rows) keeps those below it; customers without one are left out.
    let mut alive = at_stored_revisions(&store, "r", red.clone()).await;
    let n = alive.len() as f64;
    for (i, r) in alive.iter_mut().enumerate() {
        r.state.p_alive = (i % 3 != 2).then_some(i as f64 / n);
    }
    store.save("r", &alive, Columns::Score, None).await.unwrap();
    let below: Vec<String> = by_score(&rows)
        .into_iter()
        .filter(|id| {
            alive
                .iter()
                .any(|r| &r.customer_id == id && r.state.p_alive.is_some_and(|p| p < 0.5))
        })
        .collect();
    assert!(!below.is_empty() && below.len() < alive.len());
    let filter = ListFilter {
        p_alive_below: Some(0.5),
        ..Default::default()
    };
    assert_eq!(store.lowest("r", &filter, 100).await.unwrap(), below);
    let gold_below = ListFilter {
        p_alive_below: Some(0.5),
        ..of_gold
    };
    let expected: Vec<String> = below
        .iter()
        .filter(|id| gold.contains(id))
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(listed(&store, gold_below).await, expected);
}

/// The listing `filter` asks of tenant "r", the same from the holders of its tier or stage as
/// by walking the scores.
async fn listed(store: &Store, filter: ListFilter) -> Vec<String> {
    let held = store.lowest("r", &filter, 100).await.unwrap();
    let walked = store
        .clone()
        .listing_from_holders_up_to(0)
        .lowest("r", &filter, 100)
        .await
        .unwrap();
    assert_eq!(held, walked, "{filter:?}: from the holders and by the walk");
    held
}

/// Rows of `customers`, each with a snapshot of `score` computed at `at`.
fn snapshots(customers: &[&str], score: f64, at: i64) -> Vec<Rescored> {
    customers
        .iter()
        .map(|id| Rescored {
            customer_id: (*id).to_owned(),
            state: CustomerState::default(),
            snapshot: Some(NewSnapshot::of(Snapshot {
                customer_id: (*id).to_owned(),
                score,
                band: Band::Red,
                tier: None,
                scorecard_version: "v".to_owned(),
                measures: Vec::new(),
                computed_at: at,
                outlook: None,
                detail: Default::default(),
            })),
            notification: None,
        })
        .collect()
}

/// A customer's latest snapshot is the last stored, one at a time or many at once, also
/// when two share their time; a customer without one is left out.
async fn the_latest_snapshot_is_the_last_stored(store: Store) {
    let all = ["a", "b", "c"];
    store
        .save("s", &snapshots(&all, 10.0, 1_000), Columns::All, None)
        .await
        .unwrap();
    let later = at_stored_revisions(&store, "s", snapshots(&["a", "b"], 20.0, 2_000)).await;
    store.save("s", &later, Columns::All, None).await.unwrap();
    // The same time as the last: stored after it, so later.
    let same_time = at_stored_revisions(&store, "s", snapshots(&["a"], 30.0, 2_000)).await;
    store
        .save("s", &same_time, Columns::All, None)
        .await
        .unwrap();
    // Another tenant's later snapshot of the same customer is not this tenant's.
    store
        .save("other", &snapshots(&["a"], 40.0, 3_000), Columns::All, None)
        .await
        .unwrap();
    let ids: Vec<String> = ["a", "b", "c", "never"].map(str::to_owned).to_vec();
    let many = store.latest_many("s", &ids).await.unwrap();
    let mut scores: Vec<(&str, f64)> = many.iter().map(|(id, s)| (id.as_str(), s.score)).collect();
    scores.sort_by(|x, y| x.0.cmp(y.0));
    assert_eq!(scores, [("a", 30.0), ("b", 20.0), ("c", 10.0)]);
    for (id, score) in scores {
        let one = store.latest("s", id).await.unwrap().map(|s| s.score);
        assert_eq!(one, Some(score), "{id}");
    }
}

/// The migration that made `score_step` filled it from stored scores in SQL: the same steps
/// as the service's.
async fn the_migrations_steps_are_the_services(db: DatabaseConnection) {
    let store = Store::new(db.clone());
    store
        .save("q", &scored(&SCORES), Columns::All, None)
        .await
        .unwrap();
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT score, {} AS step FROM scoring_scores WHERE tenant_id = 'q'",
        score_step_sql(backend)
    );
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap();
    assert_eq!(rows.len(), SCORES.len());
    for row in rows {
        let score: f64 = row.try_get("", "score").unwrap();
        let step: i32 = row.try_get("", "step").unwrap();
        assert_eq!(step, score_step(score), "the step of {score}");
    }
}

#[test]
fn a_step_never_falls_as_the_score_grows() {
    let mut scores = SCORES.to_vec();
    scores.sort_by(f64::total_cmp);
    let steps: Vec<i32> = scores.iter().map(|s| score_step(*s)).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    assert_eq!(
        (score_step(4.999), score_step(5.0), score_step(100.0)),
        (0, 1, 20)
    );
}

/// Migrations before scores moved to a table of their own.
const BEFORE_SCORES_APART: u32 = 10;

/// A customer scored before scores moved out of the customers' rows keeps its score, band,
/// fingerprint, signals and daily scores (stored as JSON then), and is listed by score; one
/// never scored has none. Its next re-score stores the days as bytes, read back the same.
async fn scores_move_out_of_the_customers_rows(url: &str) {
    use sea_orm_migration::MigratorTrait;
    let db = rapport_storage::connect(url).await.unwrap();
    Migrator::up(&db, Some(BEFORE_SCORES_APART)).await.unwrap();
    let metrics = serde_json::to_string(&CustomerMetrics::default()).unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO scoring_customers (tenant_id, customer_id, metrics, last_event_seq, tier, \
         score, score_step, band, fingerprint, signals, recent, updated_at) VALUES \
         ('m', 'a', '{metrics}', 7, 'gold', 63.5, 12, 'yellow', 42, 9, \
         '[{{\"day\":\"2026-06-01\",\"score\":60.0}},{{\"day\":\"2026-06-02\",\"score\":63.5}}]', 1), \
         ('m', 'b', '{metrics}', 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1)"
    ))
    .await
    .unwrap();
    Migrator::up(&db, None).await.unwrap();

    let store = Store::new(db);
    let ids = ["a".to_owned(), "b".to_owned()];
    let states = store.states("m", &ids).await.unwrap();
    let a = &states["a"];
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 6, d).unwrap();
    assert_eq!(
        (
            a.score,
            a.band,
            a.fingerprint,
            a.signals,
            a.tier,
            a.last_event_seq
        ),
        (
            Some(63.5),
            Some(Band::Yellow),
            Some(42),
            Some(9),
            Some(Tier::Gold),
            7
        )
    );
    assert_eq!(
        a.recent,
        [
            DayScore {
                day: day(1),
                score: 60.0
            },
            DayScore {
                day: day(2),
                score: 63.5
            }
        ]
    );
    let b = &states["b"];
    assert_eq!(
        (b.score, b.fingerprint, b.recent.len(), b.last_event_seq),
        (None, None, 0, 3)
    );
    assert_eq!(
        store.lowest("m", &ListFilter::default(), 10).await.unwrap(),
        ["a"]
    );

    let mut next = a.clone();
    next.recent.push(DayScore {
        day: day(3),
        score: 61.25,
    });
    next.score = Some(61.25);
    let rescored = Rescored {
        customer_id: "a".into(),
        state: next.clone(),
        snapshot: None,
        notification: None,
    };
    store
        .save("m", &[rescored], Columns::Score, None)
        .await
        .unwrap();
    let again = store.states("m", &ids).await.unwrap();
    assert_eq!(again["a"].recent, next.recent);
    assert_eq!(again["a"].score, Some(61.25));
    let page = store.features_page("m", "", 10).await.unwrap();
    assert_eq!(
        page[0].state.recent, next.recent,
        "a page reads the same state"
    );
    assert_eq!(page[1].state.score, None);
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = rapport_storage::sqlite_url(dir.path(), "scoring");
    let db = rapport_storage::open::<Migrator>(&url).await.unwrap();
    a_sample_is_a_stable_ordered_share_of_the_tenant(Store::new(db.clone())).await;
    the_lowest_scores_come_first_in_score_then_id_order(Store::new(db.clone())).await;
    the_latest_snapshot_is_the_last_stored(Store::new(db.clone())).await;
    a_write_from_a_replaced_state_is_refused(Store::new(db.clone())).await;
    the_migrations_steps_are_the_services(db).await;
    let url = rapport_storage::sqlite_url(dir.path(), "upgraded");
    scores_move_out_of_the_customers_rows(&url).await;
}

#[tokio::test]
async fn on_postgres() {
    let pg = rapport_tests::Postgres::start();
    let db = rapport_storage::open::<Migrator>(&pg.url()).await.unwrap();
    // A snapshot's insert maintains one index: the customers' history, not `id`.
    let indexes: Vec<String> = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT indexname FROM pg_indexes WHERE tablename = 'scoring_snapshots'",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("", "indexname").unwrap())
        .collect();
    assert_eq!(indexes, ["scoring_snapshots_history"]);
    a_sample_is_a_stable_ordered_share_of_the_tenant(Store::new(db.clone())).await;
    the_lowest_scores_come_first_in_score_then_id_order(Store::new(db.clone())).await;
    the_latest_snapshot_is_the_last_stored(Store::new(db.clone())).await;
    a_write_from_a_replaced_state_is_refused(Store::new(db.clone())).await;
    the_migrations_steps_are_the_services(db).await;
    pg.query("CREATE DATABASE upgraded");
    let url = pg.url().replace("/rapport", "/upgraded");
    scores_move_out_of_the_customers_rows(&url).await;
}
