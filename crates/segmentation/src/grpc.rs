//! The gRPC adapter of segmentation: its API over the store and the run (`crate::run`).

use crate::TierMeasure;
use crate::run::{Progress, largest_first, tier_counts};
use crate::store::{GradeColumn, Store, StoreError};
use prost::Message;
use rapport_domain::lifecycle::StageRules;
use rapport_domain::rfm::RfmSegment;
use rapport_domain::segment::{Segment, SegmentError};
use rapport_domain::tier::{Tier, TierCutoffs};
use rapport_proto::convert;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::segmentation::v1 as pb;
use rapport_server::Failure;
use rapport_server::{PeerChannel, Principal, Role};
use rapport_server::{ProgressStream, progress_stream};
use rapport_storage::outbox::RelayWaker;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => rapport_server::failure::database(&db, "segment store"),
            StoreError::Writer(reason) => {
                Failure::Internal(format!("segmentation run's writer failed: {reason}"))
            }
        }
        .into()
    }
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
    /// Cancelled when the replica drains: progress streams end then.
    pub draining: tokio_util::sync::CancellationToken,
    /// The time runs and KPI reports work at.
    pub clock: rapport_server::Clock,
}

/// Most members in one `ListSegmentMembers` page.
const MEMBERS_PAGE: u32 = 10_000;

#[tonic::async_trait]
impl pb::segmentation_service_server::SegmentationService for SegmentationApi {
    type RunSegmentationStream = ProgressStream<pb::RunSegmentationProgress>;

    async fn run_segmentation(
        &self,
        req: Request<pb::RunSegmentationRequest>,
    ) -> Result<Response<Self::RunSegmentationStream>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let as_of = req.into_inner().as_of;
        let api = self.clone();
        Ok(Response::new(progress_stream(
            &self.draining,
            |report| async move {
                let progress = |p: Progress| {
                    report.send(pb::RunSegmentationProgress {
                        customers_read: p.read,
                        customers_graded: p.graded,
                        summary: None,
                    })
                };
                let summary = api.run_for(&tenant, as_of, &progress).await?;
                Ok(pb::RunSegmentationProgress {
                    customers_read: summary.customers,
                    customers_graded: summary.customers,
                    summary: Some(summary),
                })
            },
        )))
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
        let (total, customer_ids) = match (r.name.is_empty(), r.rfm_segment.is_empty()) {
            (false, true) => self
                .store
                .members(&tenant, &r.name, &r.after_customer_id, u64::from(limit))
                .await?
                .ok_or_else(|| {
                    Status::not_found(format!("name: no custom segment {:?}", r.name))
                })?,
            (true, false) => {
                let segment = RfmSegment::ALL
                    .into_iter()
                    .find(|s| s.name().eq_ignore_ascii_case(r.rfm_segment.trim()))
                    .ok_or_else(|| {
                        Status::invalid_argument(format!(
                            "rfm_segment: {:?} is none of {}",
                            r.rfm_segment,
                            RfmSegment::ALL.map(|s| s.name()).join(", ")
                        ))
                    })?;
                self.store
                    .rfm_members(
                        &tenant,
                        segment.name(),
                        &r.after_customer_id,
                        u64::from(limit),
                    )
                    .await?
            }
            _ => {
                return Err(Status::invalid_argument(
                    "name: set exactly one of name (a custom segment) and rfm_segment",
                ));
            }
        };
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
        // The latest run's spread is the tenant's: a run grades everyone, and only runs do.
        if let Some(bytes) = self.store.latest_distribution(&tenant).await? {
            match pb::Distribution::decode(bytes.as_slice()) {
                Ok(d) => return Ok(Response::new(d)),
                Err(e) => {
                    tracing::warn!(%tenant, %e, "a run's stored spread does not read; counted anew")
                }
            }
        }
        let counts = |rows: Vec<(String, u64)>| {
            largest_first(rows.iter().map(|(name, n)| (name.as_str(), *n)))
        };
        let by_tier: HashMap<String, u64> = self
            .store
            .count_by(&tenant, GradeColumn::Tier)
            .await?
            .into_iter()
            .collect();
        let tiers = tier_counts(|t| by_tier.get(t.name()).copied().unwrap_or(0));
        Ok(Response::new(pb::Distribution {
            customers: by_tier.values().sum(),
            tiers,
            stages: counts(self.store.count_by(&tenant, GradeColumn::Stage).await?),
            rfm_segments: counts(
                self.store
                    .count_by(&tenant, GradeColumn::RfmSegment)
                    .await?,
            ),
            rfm_grid: self
                .store
                .rfm_grid(&tenant)
                .await?
                .into_iter()
                .map(|(recency_score, frequency_score, customers)| pb::RfmCell {
                    recency_score,
                    frequency_score,
                    customers,
                })
                .collect(),
        }))
    }
}
