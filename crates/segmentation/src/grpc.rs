//! The gRPC adapter of segmentation, and the run itself: pull features from scoring, grade,
//! store, announce.

use crate::TierMeasure;
use crate::grading::{Grading, grade};
use crate::store::{Announced, Grade, GradeColumn, Run, Store, StoreError};
use prost::Message;
use rapport_domain::lifecycle::{Stage, StageRules};
use rapport_domain::rfm::RfmSegment;
use rapport_domain::segment::{Segment, SegmentError, SegmentInput};
use rapport_domain::tier::{Tier, TierCutoffs};
use rapport_proto::convert;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::scoring::v1::{
    ApplyTiersRequest, CustomerFeatures, ListCustomerFeaturesRequest, TierUpdate,
};
use rapport_proto::segmentation::v1 as pb;
use rapport_server::args::time;
use rapport_server::{PeerChannel, Principal, Role, peer_request};
use rapport_storage::outbox::RelayWaker;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Customers per page pulled from scoring.
const PAGE: u32 = 5_000;
/// Deadline of one page request.
const PAGE_DEADLINE: Duration = Duration::from_secs(30);

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => {
                tracing::error!(error = %db, "segmentation storage failed");
                Status::unavailable("segment store unavailable, retry")
            }
        }
    }
}

/// What a custom segment's expression sees of a customer: scoring's features, its RFM grade
/// and the tier and stage the run left it in.
fn segment_input(
    f: &CustomerFeatures,
    grade: &Grade,
    (tier, stage): (Option<Tier>, Option<Stage>),
) -> SegmentInput {
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
fn largest_first<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> Vec<pb::SegmentCount> {
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

/// The segmentation gRPC service.
#[derive(Clone)]
pub struct SegmentationApi {
    pub store: Store,
    pub scoring: ScoringServiceClient<PeerChannel>,
    pub ingestion: IngestionServiceClient<PeerChannel>,
    pub service_key: String,
    pub cutoffs: TierCutoffs,
    pub measure: TierMeasure,
    pub stage_rules: StageRules,
    pub waker: RelayWaker,
    /// Held by the run in progress: runs read the stored grades before they write theirs, so
    /// two at once (a schedule and a caller, or a caller retrying a run that outlived its
    /// deadline) would record the same changes twice.
    pub running: Arc<tokio::sync::Mutex<()>>,
}

/// Most members in one `ListSegmentMembers` page.
const MEMBERS_PAGE: u32 = 10_000;

impl SegmentationApi {
    /// Grades every customer of `tenant` as of `as_of` (default now): RFM, tiers with
    /// hysteresis, stages, custom segments; stores it all and announces the changes.
    pub async fn run_for(
        &self,
        tenant: &str,
        as_of: Option<prost_types::Timestamp>,
    ) -> Result<pb::RunSegmentationResponse, Status> {
        let _running = self.running.lock().await;
        let started_at = chrono::Utc::now().timestamp_millis();
        let as_of_ms = time(as_of.as_ref(), "as_of")?.map_or(started_at, |t| t.timestamp_millis());
        let features = self.features(tenant, as_of).await?;

        let Grading { grades, reason } = grade(&features, self.measure, &self.cutoffs);

        let encode = |changes: &[Announced]| {
            ApplyTiersRequest {
                tiers: changes
                    .iter()
                    .map(|(id, t, stage)| TierUpdate {
                        customer_id: id.clone(),
                        tier: convert::tier(Some(*t)).into(),
                        stage: stage.map(|s| s.name().to_owned()).unwrap_or_default(),
                    })
                    .collect(),
            }
            .encode_to_vec()
        };
        let summary = self
            .store
            .save_run(
                tenant,
                &Run {
                    grades: &grades,
                    reason: &reason,
                    started_at,
                    finished_at: chrono::Utc::now().timestamp_millis(),
                    as_of: as_of_ms,
                    stage_rules: self.stage_rules,
                    traceparent: rapport_telemetry::current_traceparent(),
                },
                encode,
            )
            .await?;
        self.waker.wake();
        let custom_segments = self
            .evaluate_segments(tenant, &features, &grades, &summary.standings)
            .await?;

        let counts = &summary.tiers;
        let mut segments: HashMap<RfmSegment, u64> = HashMap::new();
        for g in &grades {
            *segments.entry(RfmSegment::of(g.rfm)).or_default() += 1;
        }
        let rfm_segments = largest_first(segments.into_iter().map(|(s, n)| (s.name(), n)));
        let stages = largest_first(summary.stages.iter().map(|(s, n)| (s.name(), *n)));
        let tiers = Tier::DESCENDING
            .iter()
            .map(|t| pb::TierCount {
                tier: convert::tier(Some(*t)).into(),
                customers: counts.get(t).copied().unwrap_or(0),
            })
            .collect();
        tracing::info!(
            tenant,
            customers = summary.customers,
            tier_changes = summary.tier_changes,
            stage_changes = summary.stage_changes,
            "segmentation run"
        );
        Ok(pb::RunSegmentationResponse {
            customers: summary.customers,
            tier_changes: summary.tier_changes,
            tiers,
            rfm_segments,
            stage_changes: summary.stage_changes,
            stages,
            custom_segments,
        })
    }

    /// Evaluates the tenant's custom segments on every customer of a run (with the tiers and
    /// stages the run just stored), stores their members, and counts them.
    async fn evaluate_segments(
        &self,
        tenant: &str,
        features: &[CustomerFeatures],
        grades: &[Grade],
        standings: &[(Option<Tier>, Option<Stage>)],
    ) -> Result<Vec<pb::SegmentCount>, Status> {
        let defined = self.store.definitions(tenant).await?;
        if defined.is_empty() {
            return Ok(Vec::new());
        }
        // Stored definitions were checked when defined; one that no longer compiles (a
        // variable since renamed) is skipped rather than failing the run.
        let segments: Vec<Segment> = defined
            .iter()
            .filter_map(|d| match Segment::compile(&d.name, &d.expression) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(tenant, segment = d.name, error = %e, "segment skipped");
                    None
                }
            })
            .collect();
        let inputs: Vec<(String, SegmentInput)> = features
            .iter()
            .zip(grades)
            .zip(standings)
            .map(|((f, g), standing)| (f.customer_id.clone(), segment_input(f, g, *standing)))
            .collect();
        let members = tokio::task::spawn_blocking(move || {
            let mut members: Vec<(String, Vec<String>)> = segments
                .iter()
                .map(|s| (s.name.clone(), Vec::new()))
                .collect();
            for (customer_id, input) in &inputs {
                let bindings = input.bindings();
                for (s, (_, ids)) in segments.iter().zip(members.iter_mut()) {
                    if s.selects(&bindings) {
                        ids.push(customer_id.clone());
                    }
                }
            }
            members
        })
        .await
        .map_err(|e| Status::internal(format!("segment evaluation: {e}")))?;
        self.store.replace_members(tenant, &members).await?;
        Ok(members
            .iter()
            .map(|(name, ids)| pb::SegmentCount {
                segment: name.clone(),
                customers: ids.len() as u64,
            })
            .collect())
    }

    async fn features(
        &self,
        tenant: &str,
        as_of: Option<prost_types::Timestamp>,
    ) -> Result<Vec<CustomerFeatures>, Status> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let req = peer_request(
                ListCustomerFeaturesRequest {
                    after_customer_id: after,
                    page_size: PAGE,
                    observation_end: as_of,
                },
                tenant,
                &self.service_key,
                PAGE_DEADLINE,
            );
            let page = self
                .scoring
                .clone()
                .list_customer_features(req)
                .await
                .map_err(|s| Status::unavailable(format!("scoring: {}", s.message())))?
                .into_inner();
            all.extend(page.customers);
            if page.next_after_customer_id.is_empty() {
                return Ok(all);
            }
            after = page.next_after_customer_id;
        }
    }
}

#[tonic::async_trait]
impl pb::segmentation_service_server::SegmentationService for SegmentationApi {
    async fn run_segmentation(
        &self,
        req: Request<pb::RunSegmentationRequest>,
    ) -> Result<Response<pb::RunSegmentationResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let as_of = req.into_inner().as_of;
        // A run over millions of customers may outlast the call's deadline: it runs on its own
        // task, so a caller that gives up does not roll back a run that is nearly done.
        let api = self.clone();
        let run = tokio::spawn(async move { api.run_for(&tenant, as_of).await });
        let answer = run
            .await
            .map_err(|e| Status::internal(format!("segmentation run: {e}")))??;
        Ok(Response::new(answer))
    }

    async fn define_segment(
        &self,
        req: Request<pb::DefineSegmentRequest>,
    ) -> Result<Response<pb::CustomSegment>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let r = req.into_inner();
        let segment = Segment::compile(&r.name, &r.expression).map_err(|e| match e {
            SegmentError::Name(reason) => Status::invalid_argument(format!("name: {reason}")),
            e => Status::invalid_argument(format!("expression: {e}")),
        })?;
        self.store
            .define_segment(&tenant, &segment.name, &segment.expression)
            .await?;
        tracing::info!(tenant, segment = segment.name, "custom segment defined");
        Ok(Response::new(pb::CustomSegment {
            name: segment.name,
            expression: segment.expression,
            members: 0,
        }))
    }

    async fn list_custom_segments(
        &self,
        req: Request<pb::ListCustomSegmentsRequest>,
    ) -> Result<Response<pb::ListCustomSegmentsResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let segments = self
            .store
            .custom_segments(&tenant)
            .await?
            .into_iter()
            .map(|(d, members)| pb::CustomSegment {
                name: d.name,
                expression: d.expression,
                members,
            })
            .collect();
        Ok(Response::new(pb::ListCustomSegmentsResponse { segments }))
    }

    async fn list_segment_members(
        &self,
        req: Request<pb::ListSegmentMembersRequest>,
    ) -> Result<Response<pb::ListSegmentMembersResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let r = req.into_inner();
        let limit = match r.page_size {
            0 => MEMBERS_PAGE,
            n => n.min(MEMBERS_PAGE),
        };
        let (total, customer_ids) = self
            .store
            .members(&tenant, &r.name, &r.after_customer_id, u64::from(limit))
            .await?
            .ok_or_else(|| Status::not_found(format!("name: no custom segment {:?}", r.name)))?;
        let next_after_customer_id = if customer_ids.len() as u32 == limit {
            customer_ids.last().cloned().unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListSegmentMembersResponse {
            total,
            customer_ids,
            next_after_customer_id,
        }))
    }

    async fn get_kpis(
        &self,
        req: Request<pb::GetKpisRequest>,
    ) -> Result<Response<pb::GetKpisResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        Ok(Response::new(self.kpis(&tenant, req.into_inner()).await?))
    }

    async fn get_segments(
        &self,
        req: Request<pb::GetSegmentsRequest>,
    ) -> Result<Response<pb::GetSegmentsResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let ids = req.into_inner().customer_ids;
        let segments = self
            .store
            .grades(&tenant, &ids)
            .await?
            .into_iter()
            .map(|g| pb::CustomerSegment {
                tier: convert::tier(Tier::from_name(&g.tier)).into(),
                customer_id: g.customer_id,
                recency_score: g.recency_score.max(0) as u32,
                frequency_score: g.frequency_score.max(0) as u32,
                monetary_score: g.monetary_score.max(0) as u32,
                rfm_segment: g.rfm_segment.unwrap_or_default(),
                stage: g.stage.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::GetSegmentsResponse { segments }))
    }

    async fn get_distribution(
        &self,
        req: Request<pb::GetDistributionRequest>,
    ) -> Result<Response<pb::Distribution>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let counts = |rows: Vec<(String, u64)>| {
            largest_first(rows.iter().map(|(name, n)| (name.as_str(), *n)))
        };
        let by_tier: HashMap<String, u64> = self
            .store
            .count_by(&tenant, GradeColumn::Tier)
            .await?
            .into_iter()
            .collect();
        let tiers = Tier::DESCENDING
            .iter()
            .map(|t| pb::TierCount {
                tier: convert::tier(Some(*t)).into(),
                customers: by_tier.get(t.name()).copied().unwrap_or(0),
            })
            .collect();
        Ok(Response::new(pb::Distribution {
            customers: by_tier.values().sum(),
            tiers,
            stages: counts(self.store.count_by(&tenant, GradeColumn::Stage).await?),
            rfm_segments: counts(
                self.store
                    .count_by(&tenant, GradeColumn::RfmSegment)
                    .await?,
            ),
        }))
    }
}
