//! A segmentation run, in two passes over the tenant's customers so that it streams.
//!
//! 1. Features are paged from scoring (in customer-id order). A blocking thread keeps only the
//!    values customers are ranked on ([`Population`], about 50 bytes a customer) and parks
//!    each page in a spill file; it then ranks the population: RFM quintiles and tier
//!    cut-offs need everyone.
//! 2. The spill is read back a page at a time: each page is graded from the ranking, set
//!    beside the page's stored grades (hysteresis, stages, changes, outbox), and its custom
//!    segments evaluated. The writes go to a task that owns the run's one transaction, which
//!    commits at the end, so the next page is prepared while the database writes this one.
//!
//! Memory holds a few pages of features and the ranked values, never every customer's
//! features, grades or stored grades. The spill also fixes the population: customers scoring
//! adds while the run writes are graded by the next one.

use crate::PAGE_DEADLINE;
use crate::grading::{Population, Ranking};
use crate::grpc::SegmentationApi;
use crate::spill::{SpillError, SpillReader, SpillWriter};
use crate::store::{Announced, Grade, RunStart, RunSummary, Standing};
use prost::Message;
use rapport_domain::rank::IdRanks;
use rapport_domain::segment::{Segment, SegmentInput};
use rapport_domain::tier::Tier;
use rapport_proto::convert;
use rapport_proto::scoring::v1::{
    ApplyTiersRequest, CustomerFeatures, ListCustomerFeaturesRequest, TierUpdate,
};
use rapport_proto::segmentation::v1 as pb;
use rapport_server::args::time;
use rapport_server::peer_request;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::Status;

/// Customers per page pulled from scoring.
const PAGE: u32 = 5_000;
/// Pages in flight between a pass's reader and its consumer.
const PAGES_AHEAD: usize = 2;

/// How far a run has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Customers read from scoring (the first pass).
    pub read: u64,
    /// Customers graded (the second pass; their writes commit with the run).
    pub graded: u64,
}

/// Told of a run's progress after each page.
pub type OnProgress<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Spill(#[from] SpillError),
    #[error("scoring listed customer {0:?} out of customer-id order")]
    OutOfOrder(String),
    #[error("the spill holds {spilled} customers, the ranking {ranked}")]
    Mismatch { spilled: usize, ranked: usize },
}

impl From<RunError> for Status {
    fn from(e: RunError) -> Self {
        tracing::error!(error = %e, "segmentation run failed");
        Status::internal(format!("segmentation run: {e}"))
    }
}

/// A thread's failure to finish (a panic in it).
fn joined(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("segmentation run: {e}"))
}

/// What a custom segment's expression sees of a customer: scoring's features, its RFM grade
/// and the tier and stage the run left it in.
fn segment_input(f: &CustomerFeatures, grade: &Grade, (tier, stage): Standing) -> SegmentInput {
    SegmentInput {
        recency_days: f.recency_days,
        frequency: f.frequency,
        monetary: f.monetary,
        purchase_days: f.purchase_days,
        spend: f.spend,
        tenure_days: f.first_purchase_days,
        clv: f.clv_12m,
        p_alive: f.p_alive,
        score: f.score,
        tier,
        stage,
        rfm: grade.rfm,
        nps_category: f.nps_category.clone(),
        cancelled: f.cancelled,
    }
}

/// Named counts, largest first (then by name).
pub(crate) fn largest_first<'a>(
    counts: impl Iterator<Item = (&'a str, u64)>,
) -> Vec<pb::SegmentCount> {
    let mut out: Vec<pb::SegmentCount> = counts
        .map(|(name, customers)| pb::SegmentCount {
            segment: name.to_owned(),
            customers,
        })
        .collect();
    out.sort_by(|a, b| {
        b.customers
            .cmp(&a.customers)
            .then(a.segment.cmp(&b.segment))
    });
    out
}

/// Customers per tier, best tier first (`count` tells a tier's).
pub(crate) fn tier_counts(count: impl Fn(Tier) -> u64) -> Vec<pb::TierCount> {
    Tier::DESCENDING
        .iter()
        .map(|t| pb::TierCount {
            tier: convert::tier(Some(*t)).into(),
            customers: count(*t),
        })
        .collect()
}

/// The outbox message announcing tier and stage changes to scoring, graded by the run
/// that began grading at `graded_at` (ms).
fn announcement(changes: &[Announced], graded_at: i64) -> Vec<u8> {
    let graded_at = Some(convert::timestamp(graded_at));
    ApplyTiersRequest {
        tiers: changes
            .iter()
            .map(|(id, t, stage)| TierUpdate {
                customer_id: id.clone(),
                tier: convert::tier(Some(*t)).into(),
                stage: stage.map(|s| s.name().to_owned()).unwrap_or_default(),
                graded_at,
            })
            .collect(),
    }
    .encode_to_vec()
}

impl SegmentationApi {
    /// Grades every customer of `tenant` as of `as_of` (default now): RFM, tiers with
    /// hysteresis, stages, custom segments; stores it all and announces the changes, telling
    /// `progress` after each page.
    pub(crate) async fn run_for(
        &self,
        tenant: &str,
        as_of: Option<prost_types::Timestamp>,
        progress: OnProgress<'_>,
    ) -> Result<pb::SegmentationSummary, Status> {
        let _running = self.running.lock().await;
        // And across replicas: each run reads the grades the last one stored.
        let across_replicas = self
            .store
            .exclusive(&format!("segmentation_run\u{1f}{tenant}"))
            .await?;
        let clock = std::time::Instant::now();
        let started_at = self.clock.now().timestamp_millis();
        let as_of_ms = time(as_of.as_ref(), "as_of")?.map_or(started_at, |t| t.timestamp_millis());
        let (ranking, spill) = self.first_pass(tenant, as_of, progress).await?;
        let segments = Arc::new(self.custom_segments(tenant).await?);
        let ranked_in = clock.elapsed();

        let start = RunStart {
            started_at,
            graded_at: self
                .store
                .next_graded_at(tenant, self.clock.now().timestamp_millis())
                .await?,
            as_of: as_of_ms,
            reason: ranking.reason.clone(),
            stage_rules: self.stage_rules,
            traceparent: rapport_telemetry::current_traceparent(),
        };
        let graded_at = start.graded_at;
        let mut writer = self
            .store
            .begin_run(tenant, start, move |changes| {
                announcement(changes, graded_at)
            })
            .await?;
        let names: Vec<String> = segments.iter().map(|s| s.name.clone()).collect();
        writer.clear_members(&names).await?;
        let mut members = vec![0u64; segments.len()];
        let mut position = 0;
        let (mut pages, reader) = read_back(spill);
        while let Some(page) = pages.recv().await {
            let page = page.map_err(RunError::from)?;
            let grades = page
                .iter()
                .enumerate()
                .map(|(k, f)| ranking.grade(position + k, f))
                .collect::<Option<Vec<Grade>>>()
                .ok_or(RunError::Mismatch {
                    spilled: position + page.len(),
                    ranked: ranking.len(),
                })?;
            position += page.len();
            let standings = writer.page(&grades).await?;
            progress(Progress {
                read: ranking.len() as u64,
                graded: position as u64,
            });
            if !segments.is_empty() {
                let segments = segments.clone();
                let page_members = tokio::task::spawn_blocking(move || {
                    select(&segments, &page, &grades, &standings)
                })
                .await
                .map_err(joined)?;
                for (n, (_, ids)) in members.iter_mut().zip(&page_members) {
                    *n += ids.len() as u64;
                }
                writer.add_members(page_members).await?;
            }
        }
        reader.await.map_err(joined)?;
        if position != ranking.len() {
            return Err(RunError::Mismatch {
                spilled: position,
                ranked: ranking.len(),
            }
            .into());
        }
        let summary = writer
            .finish(self.clock.now().timestamp_millis(), |s| {
                distribution(s).encode_to_vec()
            })
            .await?;
        across_replicas
            .release()
            .await
            .map_err(crate::store::StoreError::from)?;
        self.waker.wake();
        // The reports pages show, ready before anyone asks (they read the whole event log).
        let (api, for_tenant) = (self.clone(), tenant.to_owned());
        tokio::spawn(async move { api.keep_kpis(&for_tenant).await });

        tracing::info!(
            tenant,
            customers = summary.customers,
            tier_changes = summary.tier_changes,
            stage_changes = summary.stage_changes,
            read_and_ranked_ms = ranked_in.as_millis() as u64,
            graded_and_stored_ms = (clock.elapsed() - ranked_in).as_millis() as u64,
            "segmentation run"
        );
        Ok(pb::SegmentationSummary {
            customers: summary.customers,
            tier_changes: summary.tier_changes,
            tiers: tier_counts(|t| summary.tiers.get(&t).copied().unwrap_or(0)),
            rfm_segments: rfm_counts(&summary),
            stage_changes: summary.stage_changes,
            stages: largest_first(summary.stages.iter().map(|(s, n)| (s.name(), *n))),
            custom_segments: names
                .into_iter()
                .zip(members)
                .map(|(segment, customers)| pb::SegmentCount { segment, customers })
                .collect(),
        })
    }

    /// Pages every customer's features from scoring into a ranked population and a spill
    /// of the pages, in the same order.
    async fn first_pass(
        &self,
        tenant: &str,
        as_of: Option<prost_types::Timestamp>,
        progress: OnProgress<'_>,
    ) -> Result<(Ranking, SpillReader), Status> {
        let (send, mut pages) = mpsc::channel::<Vec<CustomerFeatures>>(PAGES_AHEAD);
        let (measure, cutoffs) = (self.measure, self.cutoffs.clone());
        let keeper = tokio::task::spawn_blocking(move || {
            let mut population = Population::new(measure);
            let mut spill = SpillWriter::new()?;
            let mut last = String::new();
            while let Some(page) = pages.blocking_recv() {
                // Ranking by position stands for ranking by id only in id order.
                let mut previous = last.as_str();
                for f in &page {
                    if !previous.is_empty() && previous >= f.customer_id.as_str() {
                        return Err(RunError::OutOfOrder(f.customer_id.clone()));
                    }
                    previous = &f.customer_id;
                    population.push(f);
                }
                if let Some(f) = page.last() {
                    last.clone_from(&f.customer_id);
                }
                spill.push(page)?;
            }
            Ok::<_, RunError>((population, spill.into_reader()?))
        });
        let fetched = self.fetch(tenant, as_of, send, progress).await;
        let kept = keeper.await.map_err(joined)?;
        // Ranked only once every page arrived: a failed fetch ends the run at once.
        fetched?;
        let (population, spill) = kept?;
        let ranking = tokio::task::spawn_blocking(move || {
            let ids = IdRanks::sequential(population.len());
            population.rank(&ids, &cutoffs)
        })
        .await
        .map_err(joined)?;
        Ok((ranking, spill))
    }

    /// Sends every page of the tenant's features to `pages`, until the receiver stops.
    async fn fetch(
        &self,
        tenant: &str,
        as_of: Option<prost_types::Timestamp>,
        pages: mpsc::Sender<Vec<CustomerFeatures>>,
        progress: OnProgress<'_>,
    ) -> Result<(), Status> {
        let mut after = String::new();
        let mut read = 0;
        loop {
            static RETRIES: std::sync::LazyLock<rapport_server::RetryBudget> =
                std::sync::LazyLock::new(Default::default);
            let page = rapport_server::with_retries(&RETRIES, || {
                let req = peer_request(
                    ListCustomerFeaturesRequest {
                        after_customer_id: after.clone(),
                        page_size: PAGE,
                        observation_end: as_of,
                    },
                    tenant,
                    &self.service_key,
                    PAGE_DEADLINE,
                );
                let mut scoring = self.scoring.clone();
                async move { scoring.list_customer_features(req).await }
            })
            .await
            .map_err(|s| rapport_server::peer_unavailable("scoring", &s))?
            .into_inner();
            read += page.customers.len() as u64;
            progress(Progress { read, graded: 0 });
            // A closed receiver failed; its error is the run's.
            if pages.send(page.customers).await.is_err() || page.next_after_customer_id.is_empty() {
                return Ok(());
            }
            after = page.next_after_customer_id;
        }
    }

    /// The tenant's custom segments. Stored definitions were checked when defined; one that
    /// no longer compiles (a variable since renamed) is skipped rather than failing the run.
    async fn custom_segments(&self, tenant: &str) -> Result<Vec<Segment>, Status> {
        let defined = self.store.definitions(tenant).await?;
        Ok(defined
            .iter()
            .filter_map(|d| match Segment::compile(&d.name, &d.expression) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(tenant, segment = d.name, error = %e, "segment skipped");
                    None
                }
            })
            .collect())
    }
}

/// The spill's pages, read on a blocking thread a few pages ahead of the consumer; the
/// thread's handle ends when the pages do or the receiver is dropped.
fn read_back(
    spill: SpillReader,
) -> (
    mpsc::Receiver<Result<Vec<CustomerFeatures>, SpillError>>,
    tokio::task::JoinHandle<()>,
) {
    let (send, pages) = mpsc::channel(PAGES_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        for page in spill {
            if send.blocking_send(page).is_err() {
                return;
            }
        }
    });
    (pages, reader)
}

/// Each segment's members among a page's customers, in the order of `segments`.
fn select(
    segments: &[Segment],
    page: &[CustomerFeatures],
    grades: &[Grade],
    standings: &[Standing],
) -> Vec<(String, Vec<String>)> {
    let mut members: Vec<(String, Vec<String>)> = segments
        .iter()
        .map(|s| (s.name.clone(), Vec::new()))
        .collect();
    for ((f, g), standing) in page.iter().zip(grades).zip(standings) {
        let bindings = segment_input(f, g, *standing).bindings();
        for (s, (_, ids)) in segments.iter().zip(members.iter_mut()) {
            if s.selects(&bindings) {
                ids.push(f.customer_id.clone());
            }
        }
    }
    members
}

fn rfm_counts(summary: &RunSummary) -> Vec<pb::SegmentCount> {
    largest_first(summary.rfm_segments.iter().map(|(s, n)| (s.name(), *n)))
}

/// How a run left the customers spread over tiers, stages and RFM grades (a run grades
/// everyone, so this is the tenant's spread until the next run).
pub fn distribution(summary: &RunSummary) -> pb::Distribution {
    let mut rfm_grid: Vec<pb::RfmCell> = summary
        .rfm_grid
        .iter()
        .map(|(&(r, f), &customers)| pb::RfmCell {
            recency_score: u32::from(r),
            frequency_score: u32::from(f),
            customers,
        })
        .collect();
    rfm_grid.sort_by_key(|c| (c.recency_score, c.frequency_score));
    pb::Distribution {
        customers: summary.tiers.values().sum(),
        tiers: tier_counts(|t| summary.tiers.get(&t).copied().unwrap_or(0)),
        stages: largest_first(summary.stages.iter().map(|(s, n)| (s.name(), *n))),
        rfm_segments: rfm_counts(summary),
        rfm_grid,
    }
}
