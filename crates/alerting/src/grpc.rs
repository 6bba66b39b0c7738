//! The gRPC adapter of alerting: authorises, converts, and maps errors to status once.

use crate::store::{AlertFilter, ScoreEvent, Store, StoreError};
use rapport_domain::alert::HealthBelow;
use rapport_domain::tier::Tier;
use rapport_proto::alerting::v1 as pb;
use rapport_proto::common::v1::Ack;
use rapport_proto::convert;
use rapport_server::{Principal, Role};
use tonic::{Request, Response, Status};

/// Most alerts in one `ListAlerts` answer.
const LIST_LIMIT: u64 = 1_000;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => {
                tracing::error!(error = %db, "alerting storage failed");
                Status::unavailable("alert store unavailable, retry")
            }
        }
    }
}

/// The alerting gRPC service.
pub struct AlertingApi {
    pub store: Store,
    pub rule: HealthBelow,
}

#[tonic::async_trait]
impl pb::alerting_service_server::AlertingService for AlertingApi {
    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        let state = match pb::AlertState::try_from(req.state) {
            Ok(pb::AlertState::Unspecified) => None,
            Ok(pb::AlertState::Open) => Some("open"),
            Ok(pb::AlertState::Resolved) => Some("resolved"),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "state: unknown alert state {}",
                    req.state
                )));
            }
        };
        let filter = AlertFilter {
            state,
            customer_id: Some(req.customer_id).filter(|c| !c.is_empty()),
        };
        let alerts = self
            .store
            .list(&tenant, &filter, LIST_LIMIT)
            .await?
            .into_iter()
            .map(|a| pb::Alert {
                id: a.id.to_string(),
                rule: a.rule,
                customer_id: a.customer_id,
                dedup_key: a.dedup_key,
                state: if a.state == "open" {
                    pb::AlertState::Open
                } else {
                    pb::AlertState::Resolved
                }
                .into(),
                score: a.score,
                trigger_count: a.trigger_count.max(0) as u32,
                opened_at: Some(convert::timestamp(a.opened_at)),
                updated_at: Some(convert::timestamp(a.updated_at)),
                resolved_at: a.resolved_at.map(convert::timestamp),
                tier: convert::tier(a.tier.as_deref().and_then(Tier::from_name)).into(),
            })
            .collect();
        Ok(Response::new(pb::ListAlertsResponse { alerts }))
    }

    async fn notify_scores(
        &self,
        req: Request<pb::NotifyScoresRequest>,
    ) -> Result<Response<Ack>, Status> {
        let tenant = Principal::of(&req)?.require_service()?.to_owned();
        let scores: Vec<ScoreEvent> = req
            .into_inner()
            .scores
            .into_iter()
            .filter(|s| s.score.is_finite())
            .map(|s| ScoreEvent {
                tier: convert::domain_tier(s.tier).map(|t| t.name().to_owned()),
                customer_id: s.customer_id,
                score: s.score,
            })
            .collect();
        let opened = self
            .store
            .evaluate(
                &tenant,
                &self.rule,
                &scores,
                chrono::Utc::now().timestamp_millis(),
            )
            .await?;
        tracing::info!(tenant, scores = scores.len(), opened, "rules evaluated");
        Ok(Response::new(Ack {}))
    }
}
