//! The gRPC adapter of scoring: authorises, converts, and maps errors to status once.

use crate::engine::{Engine, ScoringError};
use crate::store::{FitRecord, StoreError};
use rapport_domain::models::summary::summarise_days;
use rapport_proto::common::v1::Ack;
use rapport_proto::convert;
use rapport_proto::scoring::v1 as pb;
use rapport_server::{Principal, Role};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Most customers in one `BatchGetHealth` call.
pub const MAX_BATCH_GET: usize = 1_000;
/// Largest page of `ListCustomerFeatures`.
const MAX_PAGE: u32 = 10_000;

impl From<ScoringError> for Status {
    fn from(e: ScoringError) -> Self {
        match e {
            ScoringError::Store(StoreError::Db(db)) => {
                tracing::error!(error = %db, "scoring storage failed");
                Status::unavailable("score store unavailable, retry")
            }
            ScoringError::Store(corrupt @ StoreError::Corrupt { .. }) => {
                Status::data_loss(corrupt.to_string())
            }
            ScoringError::Upstream(status) => {
                Status::unavailable(format!("ingestion: {}", status.message()))
            }
        }
    }
}

fn model_fit(r: &FitRecord) -> pb::ModelFit {
    pb::ModelFit {
        model: r.model.to_owned(),
        params: r.params.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        log_likelihood: r.log_likelihood.unwrap_or(0.0),
        iterations: r.iterations,
        converged: r.converged,
        customers: r.customers,
        error: r.error.clone().unwrap_or_default(),
        fitted_at: Some(convert::timestamp(r.fitted_at)),
    }
}

/// The scoring gRPC service.
pub struct ScoringApi(pub Arc<Engine>);

#[tonic::async_trait]
impl pb::scoring_service_server::ScoringService for ScoringApi {
    async fn get_health(
        &self,
        req: Request<pb::GetHealthRequest>,
    ) -> Result<Response<pb::HealthScore>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let id = req.into_inner().customer_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("customer_id: is required"));
        }
        self.0
            .health(&tenant, std::slice::from_ref(&id))
            .await?
            .pop()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("customer {id:?} has no health score yet")))
    }

    async fn batch_get_health(
        &self,
        req: Request<pb::BatchGetHealthRequest>,
    ) -> Result<Response<pb::BatchGetHealthResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let ids = req.into_inner().customer_ids;
        if ids.len() > MAX_BATCH_GET {
            return Err(Status::invalid_argument(format!(
                "customer_ids: at most {MAX_BATCH_GET} per call, got {}",
                ids.len()
            )));
        }
        let scores = self.0.health(&tenant, &ids).await?;
        Ok(Response::new(pb::BatchGetHealthResponse { scores }))
    }

    async fn notify_customers_changed(
        &self,
        req: Request<pb::CustomersChanged>,
    ) -> Result<Response<Ack>, Status> {
        let tenant = Principal::of(&req)?.require_service()?.to_owned();
        self.0
            .customers_changed(&tenant, req.into_inner().customer_ids)
            .await?;
        Ok(Response::new(Ack {}))
    }

    async fn list_customer_features(
        &self,
        req: Request<pb::ListCustomerFeaturesRequest>,
    ) -> Result<Response<pb::ListCustomerFeaturesResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        let limit = req.page_size.clamp(1, MAX_PAGE);
        let rows = self
            .0
            .store
            .features_page(&tenant, &req.after_customer_id, u64::from(limit))
            .await
            .map_err(ScoringError::from)?;
        let now = chrono::Utc::now();
        let end = match &req.observation_end {
            Some(t) => convert::time(t, "observation_end")
                .map_err(|r| Status::invalid_argument(r.to_string()))?,
            None => now,
        };
        let models = self.0.fitted(&tenant).await?;
        let next = if rows.len() == limit as usize {
            rows.last()
                .map(|r| r.customer_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let customers = rows
            .into_iter()
            .map(|r| {
                let ind = r.state.metrics.indicators(now);
                let outlook = models
                    .and_then(|m| m.outlook(&r.state.metrics.purchase_days, now.date_naive()));
                pb::CustomerFeatures {
                    customer_id: r.customer_id,
                    recency_days: ind.recency_days,
                    frequency: ind.frequency,
                    monetary: ind.monetary,
                    clv_12m: outlook.map(|o| o.clv),
                    purchases: summarise_days(
                        &r.state.metrics.purchase_days,
                        end.date_naive(),
                        1.0,
                    )
                    .map(|s| pb::PurchaseSummary {
                        repeat_purchases: s.customer.x,
                        first_to_last_days: s.customer.t_x,
                        first_to_end_days: s.customer.t,
                        mean_repeat_value: s.zbar,
                    }),
                }
            })
            .collect();
        Ok(Response::new(pb::ListCustomerFeaturesResponse {
            customers,
            next_after_customer_id: next,
        }))
    }

    async fn fit_models(
        &self,
        req: Request<pb::FitModelsRequest>,
    ) -> Result<Response<pb::FitModelsResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let end = match req.into_inner().observation_end {
            Some(t) => convert::time(&t, "observation_end")
                .map_err(|r| Status::invalid_argument(r.to_string()))?,
            None => chrono::Utc::now(),
        };
        let outcome = self.0.fit_models(&tenant, end).await?;
        Ok(Response::new(pb::FitModelsResponse {
            bgnbd: Some(model_fit(&outcome.bgnbd)),
            gamma_gamma: Some(model_fit(&outcome.gamma_gamma)),
            customers_rescored: outcome.rescored,
        }))
    }

    async fn apply_tiers(
        &self,
        req: Request<pb::ApplyTiersRequest>,
    ) -> Result<Response<Ack>, Status> {
        let tenant = Principal::of(&req)?.require_service()?.to_owned();
        let tiers = req
            .into_inner()
            .tiers
            .into_iter()
            .map(|t| match convert::domain_tier(t.tier) {
                Some(tier) => Ok((t.customer_id, tier)),
                None => Err(Status::invalid_argument(format!(
                    "tiers[].tier: unknown tier {}",
                    t.tier
                ))),
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.0.apply_tiers(&tenant, tiers).await?;
        Ok(Response::new(Ack {}))
    }
}
