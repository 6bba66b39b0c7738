//! The gRPC adapter of scoring: authorises, converts, and maps errors to status once.

use crate::engine::{Engine, ScoringError};
use crate::evaluate::OverrideTarget;
use crate::store::{FitRecord, ListFilter, OverrideChange, Snapshot, StoreError, TierChange};
use crate::view;
use chrono::{DateTime, Utc};
use rapport_domain::lifecycle::Stage;
use rapport_domain::scorecard::Band;
use rapport_proto::common::v1::Ack;
use rapport_proto::convert;
use rapport_proto::scoring::v1 as pb;
use rapport_server::Failure;
use rapport_server::args::{invalid, time};
use rapport_server::{Principal, Role};
use rapport_server::{ProgressStream, progress_stream};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Most customers in one `BatchGetHealth` call.
pub const MAX_BATCH_GET: usize = 1_000;
/// Largest page of `ListCustomerFeatures`.
const MAX_PAGE: u32 = 10_000;
/// Most customers `ListHealth` returns.
const MAX_LIST: u32 = 1_000;
/// Most points `ListHealthHistory` returns.
const MAX_HISTORY: u32 = 5_000;
/// Longest an override may last.
const MAX_OVERRIDE_DAYS: i64 = 366;
/// Longest accepted scorecard text.
const MAX_SCORECARD_BYTES: usize = 256 * 1024;

fn required_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        Err(invalid("customer_id", "is required"))
    } else if id.len() > 100 {
        Err(invalid("customer_id", "at most 100 characters"))
    } else {
        Ok(())
    }
}

fn target(value: i32) -> Result<OverrideTarget, Status> {
    match pb::OverrideTarget::try_from(value) {
        Ok(pb::OverrideTarget::Score) => Ok(OverrideTarget::Score),
        Ok(pb::OverrideTarget::Sentiment) => Ok(OverrideTarget::Sentiment),
        _ => Err(invalid("target", "must be SCORE or SENTIMENT")),
    }
}

fn band_filter(value: i32) -> Result<Option<Band>, Status> {
    match value {
        0 => Ok(None),
        v => convert::domain_band(v)
            .map(Some)
            .ok_or_else(|| invalid("band", format!("unknown band {v}"))),
    }
}

fn not_scored(id: &str) -> Status {
    Status::not_found(format!("customer {id:?} has no health score yet"))
}

impl From<ScoringError> for Status {
    fn from(e: ScoringError) -> Self {
        status_of(&e)
    }
}

/// The answer to a failure of scoring's work.
fn status_of(e: &ScoringError) -> Status {
    match e {
        ScoringError::Store(StoreError::Db(db)) => {
            rapport_server::failure::database(db, "score store").into()
        }
        ScoringError::Store(corrupt @ StoreError::Corrupt { .. }) => {
            Failure::Corrupt(corrupt.to_string()).into()
        }
        ScoringError::Upstream(status) => rapport_server::peer_unavailable("ingestion", status),
        stored @ ScoringError::StoredScorecard(_) => Failure::Corrupt(stored.to_string()).into(),
        ScoringError::Scorecard(e) => Failure::Invalid {
            field: if e.path.is_empty() {
                "toml".to_owned()
            } else {
                format!("toml.{}", e.path)
            },
            reason: e.reason.clone(),
        }
        .into(),
        ScoringError::UnknownCustomer(id) => {
            Failure::NotFound(format!("customer {id:?} is unknown")).into()
        }
        contended @ ScoringError::Contended(_) => Failure::Contended(contended.to_string()).into(),
        ScoringError::Internal(reason) => {
            Failure::Internal(format!("scoring failed: {reason}")).into()
        }
        ScoringError::Loading(inner) => status_of(inner),
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

/// The scoring gRPC service: the engine, and the token cancelled when the replica drains
/// (progress streams end then).
pub struct ScoringApi(pub Arc<Engine>, pub tokio_util::sync::CancellationToken);

impl ScoringApi {
    /// The customer's latest snapshot at or before `at` (now when `None`), or NotFound naming
    /// the request field that asked for it.
    async fn snapshot_by(
        &self,
        tenant: &str,
        id: &str,
        at: Option<DateTime<Utc>>,
        field: &str,
    ) -> Result<Snapshot, Status> {
        self.0.snapshot_at(tenant, id, at).await?.ok_or_else(|| {
            Status::not_found(format!(
                "{field}: customer {id:?} has no score at or before that time"
            ))
        })
    }
}

#[tonic::async_trait]
impl pb::scoring_service_server::ScoringService for ScoringApi {
    async fn get_health(
        &self,
        req: Request<pb::GetHealthRequest>,
    ) -> Result<Response<pb::HealthScore>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let id = req.into_inner().customer_id;
        required_id(&id)?;
        self.0
            .health(&tenant, std::slice::from_ref(&id))
            .await?
            .pop()
            .map(Response::new)
            .ok_or_else(|| not_scored(&id))
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
        let tenant = Principal::of(&req)?
            .require_or_service(&[Role::Read])?
            .to_owned();
        let req = req.into_inner();
        let limit = req.page_size.clamp(1, MAX_PAGE);
        let end = time(req.observation_end.as_ref(), "observation_end")?;
        let (customers, next) = self
            .0
            .features_page(&tenant, &req.after_customer_id, limit, end)
            .await?;
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
        let end = time(req.into_inner().observation_end.as_ref(), "observation_end")?
            .unwrap_or_else(|| self.0.now());
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
            .map(|t| {
                let tier = convert::domain_tier(t.tier)
                    .ok_or_else(|| invalid("tiers[].tier", format!("unknown tier {}", t.tier)))?;
                let stage = match t.stage.as_str() {
                    "" => None,
                    name => Some(Stage::from_name(name).ok_or_else(|| {
                        invalid("tiers[].stage", format!("unknown stage {name:?}"))
                    })?),
                };
                Ok(TierChange {
                    customer_id: t.customer_id,
                    tier,
                    stage,
                    graded_at: convert::millis(t.graded_at.as_ref()),
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        self.0.apply_tiers(&tenant, tiers).await?;
        Ok(Response::new(Ack {}))
    }

    async fn list_health(
        &self,
        req: Request<pb::ListHealthRequest>,
    ) -> Result<Response<pb::ListHealthResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        let tier = match req.tier {
            0 => None,
            t => Some(
                convert::domain_tier(t)
                    .ok_or_else(|| invalid("tier", format!("unknown tier {t}")))?,
            ),
        };
        let band = band_filter(req.band)?;
        let stage = match req.stage.as_str() {
            "" => None,
            name => Some(
                Stage::from_name(name)
                    .ok_or_else(|| invalid("stage", format!("unknown stage {name:?}")))?,
            ),
        };
        let limit = if req.limit == 0 {
            20
        } else {
            req.limit.min(MAX_LIST)
        };
        let p_alive_below = match req.p_alive_below {
            Some(p) if !(0.0..=1.0).contains(&p) => {
                return Err(invalid("p_alive_below", format!("must be 0 to 1, not {p}")));
            }
            p => p,
        };
        let filter = ListFilter {
            tier,
            band,
            stage,
            p_alive_below,
        };
        let scores = self.0.lowest(&tenant, &filter, limit).await?;
        Ok(Response::new(pb::ListHealthResponse { scores }))
    }

    async fn explain_health(
        &self,
        req: Request<pb::ExplainHealthRequest>,
    ) -> Result<Response<pb::HealthExplanation>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        required_id(&req.customer_id)?;
        let at = time(req.at.as_ref(), "at")?;
        let snapshot = self
            .0
            .snapshot_at(&tenant, &req.customer_id, at)
            .await?
            .ok_or_else(|| not_scored(&req.customer_id))?;
        let mut explanation = view::explanation(&snapshot);
        if at.is_none() {
            let fresh = self.0.freshness(&tenant, &req.customer_id).await?;
            for m in &mut explanation.measures {
                m.data_at = rapport_domain::metrics::Indicator::of_measure(&m.measure)
                    .and_then(|i| fresh.get(&i))
                    .map(|t| convert::timestamp(t.timestamp_millis()));
            }
        }
        Ok(Response::new(explanation))
    }

    async fn compare_health(
        &self,
        req: Request<pb::CompareHealthRequest>,
    ) -> Result<Response<pb::HealthComparison>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        required_id(&req.customer_id)?;
        let from =
            time(req.from.as_ref(), "from")?.ok_or_else(|| invalid("from", "is required"))?;
        let to = time(req.to.as_ref(), "to")?;
        if to.is_some_and(|to| to < from) {
            return Err(invalid("to", "must not be before from"));
        }
        let old = self
            .snapshot_by(&tenant, &req.customer_id, Some(from), "from")
            .await?;
        let new = self
            .snapshot_by(&tenant, &req.customer_id, to, "to")
            .await?;
        Ok(Response::new(view::comparison(&old, &new)))
    }

    async fn list_band_shares(
        &self,
        req: Request<pb::ListBandSharesRequest>,
    ) -> Result<Response<pb::ListBandSharesResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let weeks = match req.get_ref().weeks {
            0 => 12,
            n if n <= 104 => n,
            _ => return Err(invalid("weeks", "at most 104")),
        };
        let shares = self.0.band_shares(&tenant, weeks).await?;
        Ok(Response::new(pb::ListBandSharesResponse {
            weeks: shares
                .into_iter()
                .map(|(week, d)| pb::BandShare {
                    week: Some(convert::timestamp(week * 86_400_000)),
                    counted_at: Some(convert::timestamp(d.counted_at)),
                    red: d.counts.red,
                    yellow: d.counts.yellow,
                    green: d.counts.green,
                    unscored: d.counts.unscored,
                })
                .collect(),
        }))
    }

    async fn list_fallers(
        &self,
        req: Request<pb::ListFallersRequest>,
    ) -> Result<Response<pb::ListFallersResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        let days = match req.days {
            7 => 7,
            30 => 30,
            _ => return Err(invalid("days", "7 or 30")),
        };
        let limit = match req.limit {
            0 => 10,
            n => n.min(crate::engine::FALLERS_KEPT as u32),
        };
        let (fallers, at) = self.0.fallers(&tenant, days, limit).await?;
        Ok(Response::new(pb::ListFallersResponse {
            fallers: fallers
                .into_iter()
                .map(|(health, change)| pb::Faller {
                    health: Some(health),
                    change,
                })
                .collect(),
            counted_at: at.map(convert::timestamp),
        }))
    }

    async fn list_health_history(
        &self,
        req: Request<pb::ListHealthHistoryRequest>,
    ) -> Result<Response<pb::ListHealthHistoryResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        required_id(&req.customer_id)?;
        let from = time(req.from.as_ref(), "from")?.map_or(0, |t| t.timestamp_millis());
        let to = time(req.to.as_ref(), "to")?.map_or(i64::MAX, |t| t.timestamp_millis());
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit.min(MAX_HISTORY)
        };
        let points = self
            .0
            .history(&tenant, &req.customer_id, from, to, limit)
            .await?
            .into_iter()
            .map(|s| pb::HealthPoint {
                score: s.score,
                band: convert::band(s.band).into(),
                scorecard_version: s.scorecard_version,
                computed_at: Some(convert::timestamp(s.computed_at)),
            })
            .collect();
        Ok(Response::new(pb::ListHealthHistoryResponse { points }))
    }

    async fn get_scorecard(
        &self,
        req: Request<pb::GetScorecardRequest>,
    ) -> Result<Response<pb::Scorecard>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        Ok(Response::new(scorecard(self.0.scorecard(&tenant).await?)))
    }

    async fn set_scorecard(
        &self,
        req: Request<pb::SetScorecardRequest>,
    ) -> Result<Response<pb::Scorecard>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let text = req.into_inner().toml;
        if text.len() > MAX_SCORECARD_BYTES {
            return Err(invalid(
                "toml",
                format!("at most {MAX_SCORECARD_BYTES} bytes"),
            ));
        }
        let view = self.0.set_scorecard(&tenant, &text).await?;
        // Everyone is re-scored with the new card in the background; progress is in the logs.
        let engine = self.0.clone();
        let t = tenant.clone();
        tokio::spawn(async move {
            if let Err(error) = engine.rescore_all(&t, |_| {}).await {
                tracing::warn!(%error, tenant = t, "re-score after a new scorecard failed");
            }
        });
        Ok(Response::new(scorecard(view)))
    }

    async fn set_override(
        &self,
        req: Request<pb::SetOverrideRequest>,
    ) -> Result<Response<pb::HealthScore>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let req = req.into_inner();
        required_id(&req.customer_id)?;
        let target = target(req.target)?;
        if !(0.0..=100.0).contains(&req.value) {
            return Err(invalid(
                "value",
                format!("must be 0 to 100, got {}", req.value),
            ));
        }
        let (author, reason) = author_and_reason(&req.author, &req.reason)?;
        let expires = time(req.expires_at.as_ref(), "expires_at")?
            .ok_or_else(|| invalid("expires_at", "is required"))?;
        let now = self.0.now();
        if expires <= now {
            return Err(invalid("expires_at", "must be in the future"));
        }
        if expires > now + chrono::Duration::days(MAX_OVERRIDE_DAYS) {
            return Err(invalid(
                "expires_at",
                format!("at most {MAX_OVERRIDE_DAYS} days ahead"),
            ));
        }
        let change = OverrideChange {
            customer_id: req.customer_id.clone(),
            target,
            author,
            reason,
            set: Some((req.value, expires.timestamp_millis())),
        };
        let h = self.0.change_override(&tenant, change).await?;
        h.map(Response::new)
            .ok_or_else(|| not_scored(&req.customer_id))
    }

    async fn clear_override(
        &self,
        req: Request<pb::ClearOverrideRequest>,
    ) -> Result<Response<pb::HealthScore>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let req = req.into_inner();
        required_id(&req.customer_id)?;
        let (author, reason) = author_and_reason(&req.author, &req.reason)?;
        let change = OverrideChange {
            customer_id: req.customer_id.clone(),
            target: target(req.target)?,
            author,
            reason,
            set: None,
        };
        let h = self.0.change_override(&tenant, change).await?;
        h.map(Response::new)
            .ok_or_else(|| not_scored(&req.customer_id))
    }

    async fn backtest(
        &self,
        req: Request<pb::BacktestRequest>,
    ) -> Result<Response<pb::BacktestReport>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        let as_of =
            time(req.as_of.as_ref(), "as_of")?.ok_or_else(|| invalid("as_of", "is required"))?;
        let horizon = req
            .horizon
            .filter(|h| h.seconds > 0 && h.seconds <= 10 * 366 * 86_400)
            .ok_or_else(|| invalid("horizon", "more than 0 and at most ten years"))?;
        let outcome = crate::backtest::Outcome::parse(&req.outcome)
            .ok_or_else(|| invalid("outcome", "one of: no-purchase, cancelled, downgraded"))?;
        let mut stage_rules = rapport_domain::lifecycle::StageRules::default();
        if let Some(floor) = req.stage_p_alive_floor {
            if !(0.0..=1.0).contains(&floor) {
                return Err(invalid("stage_p_alive_floor", "from 0 to 1"));
            }
            stage_rules.p_alive_floor = floor;
        }
        let end = as_of + chrono::Duration::seconds(horizon.seconds);
        let report = self
            .0
            .backtest(
                &tenant,
                as_of,
                end,
                outcome,
                crate::backtest::Extras {
                    customers: req.with_customers,
                    fit: req.fit,
                    stage_rules,
                },
            )
            .await?;
        Ok(Response::new(report))
    }

    type RescoreAllStream = ProgressStream<pb::RescoreProgress>;

    async fn rescore_all(
        &self,
        req: Request<pb::RescoreAllRequest>,
    ) -> Result<Response<Self::RescoreAllStream>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let engine = self.0.clone();
        Ok(Response::new(progress_stream(
            &self.1,
            |report| async move {
                let progress = |p: crate::engine::Progress, done| pb::RescoreProgress {
                    customers_done: p.done,
                    customers_total: p.total,
                    changed: p.changed,
                    done,
                };
                let p = engine
                    .rescore_all(&tenant, |p| report.send(progress(p, false)))
                    .await?;
                Ok(progress(p, true))
            },
        )))
    }
}

fn author_and_reason(author: &str, reason: &str) -> Result<(String, String), Status> {
    let check = |value: &str, field: &str| {
        let v = value.trim();
        if v.is_empty() {
            Err(invalid(field, "is required"))
        } else if v.chars().count() > 500 {
            Err(invalid(field, "at most 500 characters"))
        } else {
            Ok(v.to_owned())
        }
    };
    Ok((check(author, "author")?, check(reason, "reason")?))
}

fn scorecard(v: crate::engine::ScorecardView) -> pb::Scorecard {
    pb::Scorecard {
        version: v.version,
        toml: v.toml,
        builtin: v.builtin,
        updated_at: v.updated_at.map(convert::timestamp),
    }
}
