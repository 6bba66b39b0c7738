//! The gRPC adapter of segmentation, and the run itself: pull features from scoring, grade,
//! store, announce.

use crate::store::{Announced, Grade, GradeColumn, Run, Store, StoreError};
use prost::Message;
use rapport_domain::lifecycle::{StageFacts, StageRules};
use rapport_domain::rfm::{RfmInput, RfmSegment, score as rfm_score};
use rapport_domain::tier::{Tier, TierShares, assign_tiers};
use rapport_proto::convert;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::scoring::v1::{
    ApplyTiersRequest, CustomerFeatures, ListCustomerFeaturesRequest, TierUpdate,
};
use rapport_proto::segmentation::v1 as pb;
use rapport_server::{PeerChannel, Principal, Role, peer_request};
use rapport_storage::outbox::RelayWaker;
use std::collections::HashMap;
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
pub struct SegmentationApi {
    pub store: Store,
    pub scoring: ScoringServiceClient<PeerChannel>,
    pub service_key: String,
    pub shares: TierShares,
    pub stage_rules: StageRules,
    pub waker: RelayWaker,
}

impl SegmentationApi {
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
        let started_at = chrono::Utc::now().timestamp_millis();
        let as_of = req.into_inner().as_of;
        let as_of_ms = match &as_of {
            Some(t) => convert::time(t, "as_of")
                .map_err(|r| Status::invalid_argument(r.to_string()))?
                .timestamp_millis(),
            None => started_at,
        };
        let features = self.features(&tenant, as_of).await?;

        // F is distinct purchase days and M their value, both up to the run's date.
        let rfm_input: Vec<RfmInput<'_>> = features
            .iter()
            .map(|f| RfmInput {
                customer_id: &f.customer_id,
                recency_days: f.recency_days,
                frequency: f.purchase_days,
                // Money is ranked to the cent, so summation noise never splits equal spenders.
                monetary: (f.spend * 100.0).round() / 100.0,
            })
            .collect();
        let rfm = rfm_score(&rfm_input);
        // Predicted CLV is the tier measure once every customer has one (the tenant's models are
        // fitted); mixing it with spend would rank unlike quantities, so until then spend it is.
        let by_clv = !features.is_empty() && features.iter().all(|f| f.clv_12m.is_some());
        let values: Vec<(&str, f64)> = features
            .iter()
            .map(|f| {
                (
                    f.customer_id.as_str(),
                    f.clv_12m.filter(|_| by_clv).unwrap_or(f.monetary),
                )
            })
            .collect();
        let tiers: HashMap<&str, Tier> = assign_tiers(&values, &self.shares).into_iter().collect();
        let grades: Vec<Grade> = features
            .iter()
            .zip(rfm)
            .map(|(f, rfm)| Grade {
                customer_id: f.customer_id.clone(),
                tier: tiers
                    .get(f.customer_id.as_str())
                    .copied()
                    .unwrap_or(Tier::Regular),
                rfm,
                facts: StageFacts {
                    first_purchase_days: f.first_purchase_days,
                    last_purchase_days: f.recency_days,
                    cancelled: f.cancelled,
                    p_alive: f.p_alive,
                },
            })
            .collect();

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
                &tenant,
                &Run {
                    grades: &grades,
                    reason: if by_clv {
                        "share of predicted 12-month CLV"
                    } else {
                        "share of trailing spend"
                    },
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
        Ok(Response::new(pb::RunSegmentationResponse {
            customers: summary.customers,
            tier_changes: summary.tier_changes,
            tiers,
            rfm_segments,
            stage_changes: summary.stage_changes,
            stages,
        }))
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
