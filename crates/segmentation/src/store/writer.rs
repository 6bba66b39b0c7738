//! A run being stored: its pages of grades written, with the tier and stage changes they make
//! and the outbox messages announcing them, by a task that owns the run's one transaction.

use super::{Announced, CHUNK, Grade, RunStart, RunSummary, Standing, Store, StoreError};
use crate::entity::{customer, run, segment_member, stage_change, tier_change};
use crate::migration::OUTBOX;
use rapport_domain::lifecycle::Stage;
use rapport_domain::rfm::{RfmScore, RfmSegment};
use rapport_domain::standing::{Standing as Kept, regrade};
use rapport_domain::tier::{DEFAULT_CONFIRM_DOWNGRADE_RUNS, Tier, TierState};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QuerySelect, QueryTrait, Statement,
};
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Tier changes per outbox message.
const CHANGES_PER_MESSAGE: usize = 1_000;

/// A customer's stored grade, to tell whether a run changes it.
#[derive(Debug, Clone, Copy)]
struct Stored {
    kept: Kept,
    rfm: RfmScore,
    clv: Option<f64>,
    /// The named RFM segment is stored (rows graded before it existed have none).
    named: bool,
}

/// The stored columns `Stored` is read from.
type StoredRow = (
    String,
    String,
    Option<String>,
    i32,
    Option<String>,
    Option<i64>,
    i32,
    i32,
    i32,
    Option<f64>,
    Option<String>,
);

impl Store {
    /// Starts storing a run for `tenant`: its pages of grades go to the returned writer, and
    /// its tier and stage changes leave in outbox messages encoded by `encode`. Nothing of it
    /// is visible, and nothing announced, until the writer finishes.
    pub async fn begin_run<E: Fn(&[Announced]) -> Vec<u8>>(
        &self,
        tenant: &str,
        start: RunStart,
        encode: E,
    ) -> Result<RunWriter<E>, StoreError> {
        let txn = rapport_storage::begin_bulk_write(&self.db).await?;
        let run = run::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            started_at: Set(start.started_at),
            finished_at: Set(start.graded_at),
            customers: Set(0),
            tier_changes: Set(0),
            distribution: Set(None),
        }
        .insert(&txn)
        .await?;
        let (writes, mut queue) = mpsc::channel::<Write>(WRITES_AHEAD);
        let (owner, traceparent) = (tenant.to_owned(), start.traceparent.clone());
        let writer = tokio::spawn(async move {
            while let Some(write) = queue.recv().await {
                match write {
                    Write::Statement(statement) => {
                        txn.execute_raw(statement).await?;
                    }
                    Write::Announce(payload) => {
                        OUTBOX
                            .push(&txn, &owner, "tiers_changed", payload, traceparent.clone())
                            .await?;
                    }
                }
            }
            Ok(txn)
        });
        Ok(RunWriter {
            db: self.db.clone(),
            writes: Some(writes),
            writer,
            tenant: tenant.to_owned(),
            run,
            start,
            encode,
            announce: Vec::new(),
            summary: RunSummary::default(),
        })
    }
}

/// One write of a run, done in order by its writer task.
enum Write {
    Statement(Statement),
    /// An outbox message announcing changes.
    Announce(Vec<u8>),
}

/// `rows` in owned chunks of at most [`CHUNK`], for multi-row statements.
fn chunks<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut rows = rows.into_iter().peekable();
    std::iter::from_fn(move || {
        rows.peek()?;
        Some(rows.by_ref().take(CHUNK).collect())
    })
}

/// Writes queued ahead of the one being done: the next page is read, graded and built while
/// the database writes the last one. A writer that waited for each page in turn left the
/// machine idle a third of the time (38 % in a system-wide profile of `bench-segmentation`'s
/// first run on PostgreSQL).
const WRITES_AHEAD: usize = 16;

/// A run being stored, a page at a time, in one transaction.
pub struct RunWriter<E> {
    /// Reads the stored grades: the transaction's task is busy writing.
    db: DatabaseConnection,
    /// The queue of the task that owns the run's transaction; `None` once closed.
    writes: Option<mpsc::Sender<Write>>,
    writer: tokio::task::JoinHandle<Result<DatabaseTransaction, StoreError>>,
    tenant: String,
    run: run::Model,
    start: RunStart,
    encode: E,
    /// Changes not yet in an outbox message (fewer than a message holds).
    announce: Vec<Announced>,
    summary: RunSummary,
}

impl<E: Fn(&[Announced]) -> Vec<u8>> RunWriter<E> {
    /// Stores a page of grades (customers not in an earlier page), with the tier and stage
    /// changes they make; returns each customer's tier and stage after the run, in the order
    /// of `grades`.
    pub async fn page(&mut self, grades: &[Grade]) -> Result<Vec<Standing>, StoreError> {
        let tenant = self.tenant.as_str();
        let RunStart {
            graded_at: now,
            as_of,
            stage_rules,
            ref reason,
            ..
        } = self.start;
        let current = self.stored(grades).await?;
        let run_id = self.run.id;
        let mut change_rows = Vec::new();
        let mut stage_rows = Vec::new();
        let mut kept: Vec<Kept> = Vec::with_capacity(grades.len());
        // Only customers whose stored grade changes are written; those without one are new.
        let mut changed: Vec<usize> = Vec::new();
        let mut added: Vec<usize> = Vec::new();
        for (i, g) in grades.iter().enumerate() {
            let stored = current.get(&g.customer_id).copied();
            let before = stored.map(|s| s.kept).unwrap_or_default();
            let graded = regrade(
                before,
                g.tier,
                &g.facts,
                &stage_rules,
                as_of,
                DEFAULT_CONFIRM_DOWNGRADE_RUNS,
            );
            let now_kept = graded.standing;
            kept.push(now_kept);
            let unchanged = stored.is_some_and(|s| {
                s.named
                    && s.kept == now_kept
                    && s.rfm == g.rfm
                    && s.clv.map(f64::to_bits) == g.clv.map(f64::to_bits)
            });
            if stored.is_none() {
                added.push(i);
            } else if !unchanged {
                changed.push(i);
            }
            if let Some((from, to)) = graded.stage {
                stage_rows.push(stage_change::ActiveModel {
                    id: NotSet,
                    tenant_id: Set(tenant.to_owned()),
                    customer_id: Set(g.customer_id.clone()),
                    old_stage: Set(from.map(|s| s.name().to_owned())),
                    new_stage: Set(to.name().to_owned()),
                    run_id: Set(run_id),
                    at: Set(now),
                });
            }
            if let Some((tier, stage)) = graded.announcement() {
                self.announce.push((g.customer_id.clone(), tier, stage));
            }
            if let Some(moved) = graded.tier {
                let reason = if moved.downgrade {
                    format!(
                        "{reason}; downgrade confirmed over {DEFAULT_CONFIRM_DOWNGRADE_RUNS} runs"
                    )
                } else {
                    reason.clone()
                };
                change_rows.push(tier_change::ActiveModel {
                    id: NotSet,
                    tenant_id: Set(tenant.to_owned()),
                    customer_id: Set(g.customer_id.clone()),
                    old_tier: Set(moved.from.map(|t| t.name().to_owned())),
                    new_tier: Set(moved.to.name().to_owned()),
                    reason: Set(reason),
                    run_id: Set(run_id),
                    at: Set(now),
                });
            }
        }
        let segments: Vec<RfmSegment> = grades.iter().map(|g| RfmSegment::of(g.rfm)).collect();
        let row = |i: usize| {
            let (g, standing) = (&grades[i], &kept[i]);
            let state = standing.tier;
            customer::ActiveModel {
                tenant_id: Set(tenant.to_owned()),
                customer_id: Set(g.customer_id.clone()),
                tier: Set(state.tier.unwrap_or(g.tier).name().to_owned()),
                recency_score: Set(i32::from(g.rfm.r)),
                frequency_score: Set(i32::from(g.rfm.f)),
                monetary_score: Set(i32::from(g.rfm.m)),
                run_id: Set(run_id),
                rfm_segment: Set(Some(segments[i].name().to_owned())),
                pending_tier: Set(state.pending.map(|(t, _)| t.name().to_owned())),
                pending_runs: Set(state
                    .pending
                    .map_or(0, |(_, n)| i32::try_from(n).unwrap_or(0))),
                stage: Set(standing.stage.map(|(s, _)| s.name().to_owned())),
                stage_since: Set(standing.stage.map(|(_, since)| since)),
                clv: Set(g.clv),
            }
        };
        let backend = self.db.get_database_backend();
        let mut statements = Vec::new();
        // New customers are inserted outright: checking every row for a conflict was a fifth
        // of PostgreSQL's time in a first run. Runs take turns, so none stores them after
        // `current` was read; should another replica's run have, this one fails whole and
        // its retry sees them.
        for chunk in added.chunks(CHUNK) {
            statements
                .push(customer::Entity::insert_many(chunk.iter().map(|&i| row(i))).build(backend));
        }
        for chunk in changed.chunks(CHUNK) {
            statements.push(
                customer::Entity::insert_many(chunk.iter().map(|&i| row(i)))
                    .on_conflict(
                        OnConflict::columns([
                            customer::Column::TenantId,
                            customer::Column::CustomerId,
                        ])
                        .update_columns([
                            customer::Column::Tier,
                            customer::Column::RecencyScore,
                            customer::Column::FrequencyScore,
                            customer::Column::MonetaryScore,
                            customer::Column::RunId,
                            customer::Column::RfmSegment,
                            customer::Column::PendingTier,
                            customer::Column::PendingRuns,
                            customer::Column::Stage,
                            customer::Column::StageSince,
                            customer::Column::Clv,
                        ])
                        .to_owned(),
                    )
                    .build(backend),
            );
        }
        let (tier_changes, stage_changes) = (change_rows.len() as u64, stage_rows.len() as u64);
        for chunk in chunks(change_rows) {
            statements.push(tier_change::Entity::insert_many(chunk).build(backend));
        }
        for chunk in chunks(stage_rows) {
            statements.push(stage_change::Entity::insert_many(chunk).build(backend));
        }
        for statement in statements {
            self.send(Write::Statement(statement)).await?;
        }
        while self.announce.len() >= CHANGES_PER_MESSAGE {
            let rest = self.announce.split_off(CHANGES_PER_MESSAGE);
            let full = std::mem::replace(&mut self.announce, rest);
            self.send(Write::Announce((self.encode)(&full))).await?;
        }
        let summary = &mut self.summary;
        summary.customers += grades.len() as u64;
        summary.tier_changes += tier_changes;
        summary.stage_changes += stage_changes;
        for segment in segments {
            *summary.rfm_segments.entry(segment).or_default() += 1;
        }
        for g in grades {
            *summary.rfm_grid.entry((g.rfm.r, g.rfm.f)).or_default() += 1;
        }
        for k in &kept {
            if let Some(t) = k.tier.tier {
                *summary.tiers.entry(t).or_default() += 1;
            }
            if let Some((s, _)) = k.stage {
                *summary.stages.entry(s).or_default() += 1;
            }
        }
        Ok(kept
            .iter()
            .map(|k| (k.tier.tier, k.stage.map(|(stage, _)| stage)))
            .collect())
    }

    /// The stored grades of a page's customers, read in one range of the key.
    async fn stored(&self, grades: &[Grade]) -> Result<HashMap<String, Stored>, StoreError> {
        let ids = grades.iter().map(|g| g.customer_id.as_str());
        let (Some(first), Some(last)) = (ids.clone().min(), ids.max()) else {
            return Ok(HashMap::new());
        };
        let as_of = self.start.as_of;
        let rows = customer::Entity::find()
            .select_only()
            .columns([
                customer::Column::CustomerId,
                customer::Column::Tier,
                customer::Column::PendingTier,
                customer::Column::PendingRuns,
                customer::Column::Stage,
                customer::Column::StageSince,
                customer::Column::RecencyScore,
                customer::Column::FrequencyScore,
                customer::Column::MonetaryScore,
                customer::Column::Clv,
                customer::Column::RfmSegment,
            ])
            .filter(customer::Column::TenantId.eq(self.tenant.as_str()))
            .filter(customer::Column::CustomerId.gte(first))
            .filter(customer::Column::CustomerId.lte(last))
            .into_tuple::<StoredRow>()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, tier, pending, runs, stage, since, r, f, m, clv, segment)| {
                    let tier = TierState {
                        tier: Tier::from_name(&tier),
                        pending: pending
                            .as_deref()
                            .and_then(Tier::from_name)
                            .map(|t| (t, u32::try_from(runs).unwrap_or(0))),
                    };
                    let stage = stage
                        .as_deref()
                        .and_then(Stage::from_name)
                        .map(|s| (s, since.unwrap_or(as_of)));
                    let score = |v: i32| u8::try_from(v).unwrap_or(0);
                    let stored = Stored {
                        kept: Kept { tier, stage },
                        rfm: RfmScore {
                            r: score(r),
                            f: score(f),
                            m: score(m),
                        },
                        clv,
                        named: segment.is_some(),
                    };
                    (id, stored)
                },
            )
            .collect())
    }

    /// Queues a write; when the writer has stopped, its error.
    async fn send(&mut self, write: Write) -> Result<(), StoreError> {
        if let Some(writes) = &self.writes
            && writes.send(write).await.is_ok()
        {
            return Ok(());
        }
        self.writes = None;
        Err(match (&mut self.writer).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => StoreError::Writer("its queue closed".to_owned()),
            Err(e) => StoreError::Writer(e.to_string()),
        })
    }

    /// Empties the named custom segments, whose members this run stores anew
    /// ([`add_members`](Self::add_members)).
    pub async fn clear_members(&mut self, segments: &[String]) -> Result<(), StoreError> {
        if segments.is_empty() {
            return Ok(());
        }
        let delete = segment_member::Entity::delete_many()
            .filter(segment_member::Column::TenantId.eq(self.tenant.as_str()))
            .filter(segment_member::Column::Segment.is_in(segments.iter().map(String::as_str)))
            .build(self.db.get_database_backend());
        self.send(Write::Statement(delete)).await
    }

    /// Adds members to custom segments: (segment, customers) pairs.
    pub async fn add_members(
        &mut self,
        members: Vec<(String, Vec<String>)>,
    ) -> Result<(), StoreError> {
        let tenant = self.tenant.clone();
        let rows: Vec<segment_member::ActiveModel> = members
            .into_iter()
            .flat_map(|(segment, customers)| {
                let tenant = tenant.clone();
                customers
                    .into_iter()
                    .map(move |c| segment_member::ActiveModel {
                        tenant_id: Set(tenant.clone()),
                        segment: Set(segment.clone()),
                        customer_id: Set(c),
                    })
            })
            .collect();
        let backend = self.db.get_database_backend();
        for chunk in chunks(rows) {
            let insert = segment_member::Entity::insert_many(chunk).build(backend);
            self.send(Write::Statement(insert)).await?;
        }
        Ok(())
    }

    /// Announces the changes not yet announced, waits for the writes, records the run's
    /// totals and the spread `describe` makes of them, and commits it; returns what it changed.
    pub async fn finish(
        mut self,
        finished_at: i64,
        describe: impl FnOnce(&RunSummary) -> Vec<u8>,
    ) -> Result<RunSummary, StoreError> {
        let rest = std::mem::take(&mut self.announce);
        if !rest.is_empty() {
            self.send(Write::Announce((self.encode)(&rest))).await?;
        }
        // Closing the queue lets the writer finish and hand the transaction back.
        self.writes = None;
        let txn = self
            .writer
            .await
            .map_err(|e| StoreError::Writer(e.to_string()))??;
        let mut run: run::ActiveModel = self.run.into();
        run.finished_at = Set(finished_at);
        run.customers = Set(self.summary.customers as i64);
        run.tier_changes = Set(self.summary.tier_changes as i64);
        run.distribution = Set(Some(describe(&self.summary)));
        run.update(&txn).await?;
        txn.commit().await?;
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::GradeColumn;
    use rapport_domain::lifecycle::{StageFacts, StageRules};
    use rapport_domain::rank::IdRanks;
    use rapport_domain::tier::TierCutoffs;
    use std::collections::BTreeMap;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = rapport_storage::sqlite_url(dir.path(), "segmentation");
        let db = rapport_storage::open::<crate::migration::Migrator>(&url)
            .await
            .expect("a migrated SQLite database");
        Store::new(db)
    }

    /// One run over a hundred customers valued 1 to 100 and one more, `hover`, valued `value`:
    /// tiers by the default shares, as the service grades them.
    async fn run(store: &Store, hover: f64, run: i64) -> RunSummary {
        run_in_pages(store, hover, run, 101).await
    }

    /// [`run`], stored in pages of `page` customers.
    async fn run_in_pages(store: &Store, hover: f64, run: i64, page: usize) -> RunSummary {
        let ids: Vec<String> = (1..=100)
            .map(|i| format!("c{i:03}"))
            .chain(["hover".to_owned()])
            .collect();
        let values: Vec<f64> = ids
            .iter()
            .map(|id| {
                id.strip_prefix('c')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(hover)
            })
            .collect();
        let grades: Vec<Grade> = TierCutoffs::default()
            .assign(&values, &IdRanks::of(ids.iter().map(String::as_str)))
            .into_iter()
            .zip(&ids)
            .map(|(tier, id)| Grade {
                customer_id: id.clone(),
                tier,
                rfm: RfmScore { r: 3, f: 3, m: 3 },
                facts: StageFacts {
                    first_purchase_days: Some(200.0),
                    last_purchase_days: Some(10.0),
                    cancelled: false,
                    p_alive: None,
                },
                clv: None,
            })
            .collect();
        save(store, &grades, run, page).await
    }

    /// How run `run` grades: at time `run`, by the default rules.
    fn start(run: i64) -> RunStart {
        RunStart {
            started_at: run,
            graded_at: run,
            as_of: run,
            reason: "share of 12-month spend".to_owned(),
            stage_rules: StageRules::default(),
            traceparent: None,
        }
    }

    /// Stores `grades` as run `run` (its time too), in pages of `page` customers.
    async fn save(store: &Store, grades: &[Grade], run: i64, page: usize) -> RunSummary {
        let mut writer = store
            .begin_run("t", start(run), |_| Vec::new())
            .await
            .expect("a run begun");
        for chunk in grades.chunks(page) {
            let standings = writer.page(chunk).await.expect("a page stored");
            assert_eq!(standings.len(), chunk.len());
        }
        writer
            .finish(run, |_| Vec::new())
            .await
            .expect("a stored run")
    }

    /// Of 101 customers ranked from 0, ranks 2–5 are Gold and 6–20 Silver: `hover` at 95.5
    /// ranks 5th (Gold), at 94.5 6th (Silver). Ten runs alternate between the two, starting
    /// either side of the cut-off.
    #[tokio::test]
    async fn a_customer_hovering_at_a_cut_off_changes_tier_at_most_once_in_ten_stored_runs() {
        for (first, second, graded_first) in [(95.5, 94.5, Tier::Gold), (94.5, 95.5, Tier::Silver)]
        {
            let dir = tempfile::tempdir().expect("a temp dir");
            let store = store(&dir).await;
            for i in 0..10 {
                run(&store, if i % 2 == 0 { first } else { second }, i).await;
            }
            let history = store.tier_histories("t").await.expect("tier history");
            let hover = history.get("hover").expect("hover's history");
            let after_first_run = chrono::DateTime::from_timestamp_millis(1).expect("a time");
            assert_eq!(hover.held_before(after_first_run), Some(graded_first));
            assert!(
                hover.len() <= 2,
                "hover: its first grading and at most one change, not {}",
                hover.len()
            );
            // c095 (value 95) hovers with it, a rank either side of the cut-off.
            assert!(
                history.values().all(|h| h.len() <= 2),
                "nobody changed tier more than once"
            );
            let moved: Vec<&String> = history
                .iter()
                .filter(|(_, h)| h.len() == 2)
                .map(|(id, _)| id)
                .collect();
            assert_eq!(moved.len(), 1, "{moved:?}");
        }
    }

    /// A run grades everyone, so what it counts as it stores is the tenant's spread: equal to
    /// counting the stored grades after it (a pending downgrade counts at the tier kept), and
    /// what the run recorded of it is what the latest run answers.
    #[tokio::test]
    async fn a_run_s_counts_are_the_stored_spread_and_the_latest_run_keeps_them() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = store(&dir).await;
        assert_eq!(store.latest_distribution("t").await.expect("read"), None);
        let counted =
            |rows: Vec<(String, u64)>| -> BTreeMap<String, u64> { rows.into_iter().collect() };
        for (i, hover) in [0.5, 100.5, 100.5, 0.5, 0.5].into_iter().enumerate() {
            let summary = run_in_pages(&store, hover, i as i64, 7).await;
            let named = |m: &HashMap<String, u64>| -> BTreeMap<String, u64> {
                m.iter().map(|(k, v)| (k.clone(), *v)).collect()
            };
            let tiers = summary
                .tiers
                .iter()
                .map(|(t, n)| (t.name().to_owned(), *n))
                .collect();
            let stages = summary
                .stages
                .iter()
                .map(|(s, n)| (s.name().to_owned(), *n))
                .collect();
            let rfm = summary
                .rfm_segments
                .iter()
                .map(|(s, n)| (s.name().to_owned(), *n))
                .collect();
            let column = |c| store.count_by("t", c);
            assert_eq!(
                named(&tiers),
                counted(column(GradeColumn::Tier).await.expect("tiers"))
            );
            assert_eq!(
                named(&stages),
                counted(column(GradeColumn::Stage).await.expect("stages"))
            );
            assert_eq!(
                named(&rfm),
                counted(column(GradeColumn::RfmSegment).await.expect("rfm"))
            );
            let grid: BTreeMap<(u32, u32), u64> = summary
                .rfm_grid
                .iter()
                .map(|(&(r, f), &n)| ((u32::from(r), u32::from(f)), n))
                .collect();
            let stored_grid: BTreeMap<(u32, u32), u64> = store
                .rfm_grid("t")
                .await
                .expect("grid")
                .into_iter()
                .map(|(r, f, n)| ((r, f), n))
                .collect();
            assert_eq!(grid, stored_grid);
        }
        // What the last run described of itself is what the latest run answers.
        let mut writer = store
            .begin_run("t", start(9), |_| Vec::new())
            .await
            .expect("a run begun");
        writer.page(&[]).await.expect("an empty page");
        writer
            .finish(9, |s| format!("{} customers", s.customers).into_bytes())
            .await
            .expect("a stored run");
        assert_eq!(
            store.latest_distribution("t").await.expect("read"),
            Some(b"0 customers".to_vec())
        );
    }

    /// Pages are a run's unit of work, not of meaning: a run stored in pages (of sizes that do
    /// and do not divide the population) stores and reports what it does in one.
    #[tokio::test]
    async fn a_run_stored_in_pages_equals_one_stored_whole() {
        let ids: Vec<String> = (1..=100)
            .map(|i| format!("c{i:03}"))
            .chain(["hover".to_owned()])
            .collect();
        let mut outcomes = Vec::new();
        for page in [101, 7, 50] {
            let dir = tempfile::tempdir().expect("a temp dir");
            let store = store(&dir).await;
            // Hover climbs to VIP, then sinks to Regular: an upgrade and a confirmed downgrade.
            let mut summaries = Vec::new();
            for (i, hover) in [0.5, 100.5, 100.5, 0.5, 0.5, 0.5].into_iter().enumerate() {
                summaries.push(run_in_pages(&store, hover, i as i64, page).await);
            }
            let mut grades = store.grades("t", &ids).await.expect("stored grades");
            grades.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
            let mut history: Vec<(String, usize)> = store
                .tier_histories("t")
                .await
                .expect("tier history")
                .into_iter()
                .map(|(id, h)| (id, h.len()))
                .collect();
            history.sort();
            outcomes.push((summaries, grades, history));
        }
        assert_eq!(outcomes[0].1.len(), 101);
        assert!(outcomes[0].0.iter().any(|s| s.tier_changes > 0));
        assert_eq!(outcomes[1], outcomes[0], "pages of 7");
        assert_eq!(outcomes[2], outcomes[0], "pages of 50");
    }

    /// A write that fails ends the run with the database's error, not a hang, and stores
    /// nothing of it: here a page that repeats an earlier page's customers, which the run
    /// already inserted.
    #[tokio::test]
    async fn a_failed_write_fails_the_run_and_stores_nothing() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = store(&dir).await;
        let grades: Vec<Grade> = ["a", "b"]
            .into_iter()
            .map(|id| Grade {
                customer_id: id.to_owned(),
                tier: Tier::Gold,
                rfm: RfmScore { r: 3, f: 3, m: 3 },
                facts: StageFacts::default(),
                clv: None,
            })
            .collect();
        let mut writer = store
            .begin_run("t", start(0), |_| Vec::new())
            .await
            .expect("a run begun");
        writer.page(&grades).await.expect("the first page queued");
        // The failure shows at the latest when the run finishes.
        let outcome = match writer.page(&grades).await {
            Ok(_) => writer.finish(1, |_| Vec::new()).await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(matches!(outcome, Err(StoreError::Db(_))), "{outcome:?}");
        let ids = ["a".to_owned(), "b".to_owned()];
        assert!(store.grades("t", &ids).await.expect("grades").is_empty());
        assert!(
            store.tenants().await.expect("tenants").is_empty(),
            "no run row"
        );
    }
}
