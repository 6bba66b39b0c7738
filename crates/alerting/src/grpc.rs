//! The gRPC adapter of alerting: authorises, converts, and maps errors to status once.

use crate::store::webhooks::{Delivery, Endpoint};
use crate::store::{Act, Alert, Change, Observation, Revision, Store, StoreError, state};
use crate::{Wakers, WatchSettings, wire};
use futures_util::{Stream, StreamExt};
use rapport_domain::alert::Severity;
use rapport_domain::effect;
use rapport_domain::tier::Tier;
use rapport_proto::alerting::v1 as pb;
use rapport_proto::common::v1::Ack;
use rapport_proto::convert;
use rapport_server::Failure;
use rapport_server::{Principal, Role};
use std::pin::Pin;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Most alerts in one `ListAlerts` answer.
const LIST_LIMIT: u64 = 1_000;
/// Revisions read per page while a watcher catches up.
const WATCH_PAGE: u64 = 500;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        failure(&e).into()
    }
}

/// The failure a caller is answered with for an error of alerting's store.
fn failure(e: &StoreError) -> Failure {
    match e {
        StoreError::Db(db) => rapport_server::failure::database(db, "alert store"),
        StoreError::NotFound(what) => Failure::NotFound(format!("{what} not found")),
        StoreError::Invalid { field, reason } => Failure::Invalid {
            field: field.clone(),
            reason: reason.clone(),
        },
        StoreError::Precondition(why) => Failure::Precondition(why.clone()),
        StoreError::Config(e) => Failure::Invalid {
            field: "toml".to_owned(),
            reason: e.to_string(),
        },
        e @ StoreError::Compacted { .. } => Failure::OutOfRange(e.to_string()),
        e @ StoreError::Corrupt { .. } => Failure::Corrupt(e.to_string()),
        StoreError::Loading(inner) => failure(inner),
    }
}

/// The alerting gRPC service.
pub struct AlertingApi {
    pub store: Store,
    pub wakers: Wakers,
    pub watch: WatchSettings,
    /// Cancelled when the replica drains: watch streams end then, with UNAVAILABLE, and
    /// their clients resume from their last revision on another replica.
    pub draining: tokio_util::sync::CancellationToken,
}

/// Most customers one `CountStandingAlerts` counts for.
const CUSTOMERS_COUNTED: usize = 1_000;

/// Most interventions one `ListInterventions` answers.
const INTERVENTIONS_LISTED: u32 = 100;

/// A stored intervention as the API shows it.
fn intervention(i: crate::store::Intervention) -> pb::Intervention {
    pb::Intervention {
        id: i.id.to_string(),
        alert_id: i.alert_id.to_string(),
        action: i.action,
        actor: i.actor,
        at: Some(convert::timestamp(i.at)),
        cost: i.cost,
        note: i.note,
    }
}

fn parse_id(id: &str, field: &str) -> Result<i64, Status> {
    id.parse()
        .map_err(|_| Status::invalid_argument(format!("{field}: not an id: {id:?}")))
}

fn alert_state(s: &str) -> pb::AlertState {
    match s {
        state::OPEN => pb::AlertState::Open,
        state::ACKNOWLEDGED => pb::AlertState::Acknowledged,
        state::SNOOZED => pb::AlertState::Snoozed,
        state::RESOLVED => pb::AlertState::Resolved,
        _ => pb::AlertState::Unspecified,
    }
}

fn severity(s: Option<&str>) -> pb::Severity {
    match s.and_then(Severity::from_name) {
        Some(Severity::Info) => pb::Severity::Info,
        Some(Severity::Warning) => pb::Severity::Warning,
        Some(Severity::Error) => pb::Severity::Error,
        Some(Severity::Critical) => pb::Severity::Critical,
        None => pb::Severity::Unspecified,
    }
}

/// The API view of a stored alert.
pub fn alert(a: Alert) -> pb::Alert {
    let recommendations = a
        .actions()
        .into_iter()
        .map(|r| pb::Recommendation {
            action: r.id,
            description: r.description,
        })
        .collect();
    pb::Alert {
        id: a.id.to_string(),
        state: alert_state(&a.state).into(),
        severity: severity(a.severity.as_deref()).into(),
        score: a.score,
        trigger_count: a.trigger_count.max(0) as u32,
        opened_at: Some(convert::timestamp(a.opened_at)),
        updated_at: Some(convert::timestamp(a.updated_at)),
        resolved_at: a.resolved_at.map(convert::timestamp),
        snoozed_until: a.snoozed_until.map(convert::timestamp),
        tier: convert::tier(a.tier.as_deref().and_then(Tier::from_name)).into(),
        holdout: a.holdout.unwrap_or(false),
        recommendations,
        rule: a.rule,
        customer_id: a.customer_id,
        dedup_key: a.dedup_key,
        discriminator: a.discriminator.unwrap_or_default(),
        evidence: a.evidence.unwrap_or_default(),
        config_version: a.config_version.unwrap_or_default(),
        priority: a.priority.unwrap_or(0.0),
    }
}

fn change_kind(name: &str) -> pb::ChangeKind {
    match Change::from_name(name) {
        Some(Change::Opened) => pb::ChangeKind::Opened,
        Some(Change::Updated) => pb::ChangeKind::Updated,
        Some(Change::Acknowledged) => pb::ChangeKind::Acknowledged,
        Some(Change::Snoozed) => pb::ChangeKind::Snoozed,
        Some(Change::Reopened) => pb::ChangeKind::Reopened,
        Some(Change::Resolved) => pb::ChangeKind::Resolved,
        None => pb::ChangeKind::Unspecified,
    }
}

fn watch_message(r: Revision) -> Result<pb::WatchAlertsResponse, Status> {
    let a: Alert = serde_json::from_str(&r.alert)
        .map_err(|e| Status::internal(format!("revision {} is unreadable: {e}", r.revision)))?;
    Ok(pb::WatchAlertsResponse {
        revision: r.revision.max(0) as u64,
        change: change_kind(&r.change).into(),
        alert: Some(alert(a)),
        actor: r.actor,
        reason: r.reason,
        bookmark: false,
    })
}

fn webhook(w: Endpoint, secret: String) -> pb::Webhook {
    let route = crate::store::webhooks::route_of(&w);
    pb::Webhook {
        route: Some(wire::route_pb(route)),
        id: w.id.to_string(),
        url: w.url,
        enabled: w.enabled,
        disabled_reason: w.disabled_reason.unwrap_or_default(),
        secret,
    }
}

fn dead_letter(d: Delivery) -> pb::DeadLetter {
    pb::DeadLetter {
        id: d.id.to_string(),
        webhook_id: d.webhook_id.to_string(),
        message_id: d.message_id,
        event_type: d.event_type,
        attempts: d.attempts.max(0) as u32,
        last_error: d.last_error.unwrap_or_default(),
        failed_at: Some(convert::timestamp(d.updated_at)),
    }
}

fn estimate(e: Option<effect::Estimate>) -> Option<pb::Estimate> {
    e.map(|e| pb::Estimate {
        treated: e.treated,
        control: e.control,
        difference: e.difference,
        low: e.low,
        high: e.high,
        significant: e.significant(),
    })
}

fn actor_of(actor: String, principal: &Principal) -> String {
    if actor.trim().is_empty() {
        format!("api-key:{:?}", principal.role).to_lowercase()
    } else {
        actor
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchAlertsResponse, Status>> + Send>>;

impl AlertingApi {
    /// Acknowledges, snoozes or resolves alert `id` for the caller of `req`.
    async fn act<T>(
        &self,
        req: &Request<T>,
        id: &str,
        act: Act,
        actor: String,
        reason: &str,
    ) -> Result<Response<pb::Alert>, Status> {
        let principal = Principal::of(req)?;
        let tenant = principal.require(&[Role::Admin])?;
        let id = parse_id(id, "id")?;
        let actor = actor_of(actor, principal);
        let now = rapport_storage::now_millis();
        let a = self.store.act(tenant, id, act, &actor, reason, now).await?;
        self.wakers.changed();
        Ok(Response::new(alert(a)))
    }
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
            Ok(pb::AlertState::Open) => Some(state::OPEN),
            Ok(pb::AlertState::Acknowledged) => Some(state::ACKNOWLEDGED),
            Ok(pb::AlertState::Snoozed) => Some(state::SNOOZED),
            Ok(pb::AlertState::Resolved) => Some(state::RESOLVED),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "state: unknown alert state {}",
                    req.state
                )));
            }
        };
        let by_priority = match pb::AlertOrder::try_from(req.order) {
            Ok(pb::AlertOrder::Priority) => true,
            Ok(_) => false,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "order: unknown order {}",
                    req.order
                )));
            }
        };
        let filter = crate::store::AlertFilter {
            state,
            customer_id: Some(req.customer_id).filter(|c| !c.is_empty()),
            rule: Some(req.rule).filter(|r| !r.is_empty()),
            by_priority,
        };
        let limit = match req.limit {
            0 => LIST_LIMIT,
            n => u64::from(n).min(LIST_LIMIT),
        };
        // Before the list: a change racing it is then in the watch that follows.
        let revision = self.store.revision(&tenant).await?;
        let alerts = self
            .store
            .list(&tenant, &filter, limit)
            .await?
            .into_iter()
            .map(alert)
            .collect();
        let counts: Vec<pb::AlertCount> = if req.with_counts {
            self.store
                .counts(&tenant, &filter)
                .await?
                .into_iter()
                .map(|c| pb::AlertCount {
                    tier: convert::tier(c.tier.as_deref().and_then(Tier::from_name)).into(),
                    severity: severity(c.severity.as_deref()).into(),
                    rule: c.rule,
                    count: c.count,
                })
                .collect()
        } else {
            Vec::new()
        };
        let total = counts.iter().map(|c| c.count).sum();
        Ok(Response::new(pb::ListAlertsResponse {
            alerts,
            counts,
            revision: revision.max(0) as u64,
            total,
        }))
    }

    async fn get_alert(
        &self,
        req: Request<pb::GetAlertRequest>,
    ) -> Result<Response<pb::GetAlertResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let id = parse_id(&req.get_ref().id, "id")?;
        let (a, transitions) = self.store.get(&tenant, id).await?;
        let transitions = transitions
            .into_iter()
            .map(|t| pb::Transition {
                from_state: t.from_state.unwrap_or_default(),
                to_state: t.to_state,
                actor: t.actor,
                reason: t.reason,
                at: Some(convert::timestamp(t.at)),
                config_version: t.config_version.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::GetAlertResponse {
            alert: Some(alert(a)),
            transitions,
        }))
    }

    async fn acknowledge_alert(
        &self,
        req: Request<pb::AlertActionRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let r = req.get_ref().clone();
        self.act(&req, &r.id, Act::Acknowledge, r.actor, &r.reason)
            .await
    }

    async fn snooze_alert(
        &self,
        req: Request<pb::SnoozeAlertRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let r = req.get_ref().clone();
        let until = convert::millis(r.until.as_ref())
            .ok_or_else(|| Status::invalid_argument("until: a snooze needs an end time"))?;
        self.act(&req, &r.id, Act::Snooze(until), r.actor, &r.reason)
            .await
    }

    async fn resolve_alert(
        &self,
        req: Request<pb::AlertActionRequest>,
    ) -> Result<Response<pb::Alert>, Status> {
        let r = req.get_ref().clone();
        self.act(&req, &r.id, Act::Resolve, r.actor, &r.reason)
            .await
    }

    type WatchAlertsStream = WatchStream;

    async fn watch_alerts(
        &self,
        req: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let after = i64::try_from(req.get_ref().after_revision)
            .map_err(|_| Status::invalid_argument("after_revision: too large"))?;
        // Checked before the stream starts, so a compacted revision is the call's status.
        let (first, _) = self.store.changes_after(&tenant, after, WATCH_PAGE).await?;
        let (tx, rx) = mpsc::channel(self.watch.buffer.max(1));
        let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<Status>();
        let store = self.store.clone();
        let changed = self.wakers.watch.clone();
        let settings = self.watch;
        tokio::spawn(async move {
            let outcome = feed(&store, &tenant, after, first, &tx, &changed, settings).await;
            if let Err(status) = outcome {
                let _ = abort_tx.send(status);
            }
        });
        let aborted =
            futures_util::stream::once(abort_rx).filter_map(|r| async { r.ok().map(Err) });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).chain(aborted);
        Ok(Response::new(Box::pin(rapport_server::until_draining(
            Box::pin(stream),
            &self.draining,
        ))))
    }

    async fn get_alert_config(
        &self,
        req: Request<pb::GetAlertConfigRequest>,
    ) -> Result<Response<pb::AlertConfig>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let cfg = self.store.current_config(&tenant).await?;
        Ok(Response::new(pb::AlertConfig {
            version: cfg.version.clone(),
            toml: cfg.toml.clone(),
        }))
    }

    async fn set_alert_config(
        &self,
        req: Request<pb::SetAlertConfigRequest>,
    ) -> Result<Response<pb::AlertConfig>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let cfg = self.store.set_config(&tenant, &req.get_ref().toml).await?;
        tracing::info!(tenant, version = cfg.version, "alerting configuration set");
        Ok(Response::new(pb::AlertConfig {
            version: cfg.version,
            toml: cfg.toml,
        }))
    }

    async fn create_webhook(
        &self,
        req: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let req = req.into_inner();
        let route = wire::route(req.route)?;
        let (w, secret) = self.store.create_webhook(&tenant, &req.url, &route).await?;
        Ok(Response::new(webhook(w, secret)))
    }

    async fn create_silence(
        &self,
        req: Request<pb::CreateSilenceRequest>,
    ) -> Result<Response<pb::Silence>, Status> {
        let principal = Principal::of(&req)?;
        let tenant = principal.require(&[Role::Admin])?.to_owned();
        let author = actor_of(req.get_ref().author.clone(), principal);
        let r = req.get_ref().clone();
        let now = rapport_storage::now_millis();
        let starts_at = convert::millis(r.starts_at.as_ref()).unwrap_or(now);
        let ends_at = match (
            convert::millis(r.ends_at.as_ref()),
            wire::duration_ms(r.duration.as_ref(), "duration")?,
        ) {
            (Some(end), None) => end,
            (None, Some(0)) => {
                return Err(Status::invalid_argument(
                    "duration: must be longer than zero",
                ));
            }
            (None, Some(ms)) => starts_at.max(now).saturating_add(ms),
            _ => {
                return Err(Status::invalid_argument(
                    "ends_at: give either ends_at or duration",
                ));
            }
        };
        let matcher = wire::matcher(r.matcher);
        let described = matcher.describe();
        let new = crate::store::silences::NewSilence {
            matcher,
            author,
            reason: r.reason,
            starts_at,
            ends_at,
        };
        let s = self.store.create_silence(&tenant, new, now).await?;
        tracing::info!(tenant, silence = s.id, author = s.author, matcher = %described, "silence created");
        Ok(Response::new(wire::silence(s, now)))
    }

    async fn list_silences(
        &self,
        req: Request<pb::ListSilencesRequest>,
    ) -> Result<Response<pb::ListSilencesResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let now = rapport_storage::now_millis();
        let silences = self
            .store
            .silences(&tenant, now)
            .await?
            .into_iter()
            .map(|s| wire::silence(s, now))
            .collect();
        Ok(Response::new(pb::ListSilencesResponse { silences }))
    }

    async fn expire_silence(
        &self,
        req: Request<pb::ExpireSilenceRequest>,
    ) -> Result<Response<pb::Silence>, Status> {
        let principal = Principal::of(&req)?;
        let tenant = principal.require(&[Role::Admin])?.to_owned();
        let by = actor_of(req.get_ref().actor.clone(), principal);
        let id = parse_id(&req.get_ref().id, "id")?;
        let now = rapport_storage::now_millis();
        let s = self.store.expire_silence(&tenant, id, &by, now).await?;
        Ok(Response::new(wire::silence(s, now)))
    }

    async fn list_webhooks(
        &self,
        req: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let webhooks = self
            .store
            .webhooks(&tenant)
            .await?
            .into_iter()
            .map(|w| webhook(w, String::new()))
            .collect();
        Ok(Response::new(pb::ListWebhooksResponse { webhooks }))
    }

    async fn rotate_webhook_secret(
        &self,
        req: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let req = req.into_inner();
        let id = parse_id(&req.id, "id")?;
        let keep_secs = if req.keep_previous_secs == 0 {
            86_400
        } else {
            i64::from(req.keep_previous_secs)
        };
        let now = rapport_storage::now_millis();
        let (w, secret) = self
            .store
            .rotate_secret(&tenant, id, keep_secs * 1_000, now)
            .await?;
        Ok(Response::new(webhook(w, secret)))
    }

    async fn list_dead_letters(
        &self,
        req: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let dead_letters = self
            .store
            .dead_letters(&tenant)
            .await?
            .into_iter()
            .map(dead_letter)
            .collect();
        Ok(Response::new(pb::ListDeadLettersResponse { dead_letters }))
    }

    async fn replay_dead_letter(
        &self,
        req: Request<pb::ReplayDeadLetterRequest>,
    ) -> Result<Response<Ack>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Admin])?.to_owned();
        let id = parse_id(&req.get_ref().id, "id")?;
        self.store
            .replay(&tenant, id, rapport_storage::now_millis())
            .await?;
        self.wakers.deliver.notify_one();
        Ok(Response::new(Ack {}))
    }

    async fn record_intervention(
        &self,
        req: Request<pb::RecordInterventionRequest>,
    ) -> Result<Response<pb::Intervention>, Status> {
        let principal = Principal::of(&req)?.clone();
        let tenant = principal.require(&[Role::Admin])?.to_owned();
        let r = req.into_inner();
        let alert_id = parse_id(&r.alert_id, "alert_id")?;
        let at = match r.at.as_ref() {
            None => rapport_storage::now_millis(),
            Some(t) => convert::millis(Some(t))
                .ok_or_else(|| Status::invalid_argument("at: not a valid timestamp"))?,
        };
        let row = crate::store::Intervention {
            id: 0,
            tenant_id: tenant.clone(),
            alert_id,
            action: r.action,
            actor: actor_of(r.actor, &principal),
            at,
            cost: r.cost,
            note: r.note,
        };
        let i = self.store.record_intervention(&tenant, row).await?;
        Ok(Response::new(intervention(i)))
    }

    async fn count_standing_alerts(
        &self,
        req: Request<pb::CountStandingAlertsRequest>,
    ) -> Result<Response<pb::CountStandingAlertsResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let ids = req.into_inner().customer_ids;
        if ids.len() > CUSTOMERS_COUNTED {
            return Err(Status::invalid_argument(format!(
                "customer_ids: at most {CUSTOMERS_COUNTED}, not {}",
                ids.len()
            )));
        }
        let standing = self
            .store
            .standing_counts(&tenant, &ids)
            .await?
            .into_iter()
            .map(|(c, n)| (c, u32::try_from(n).unwrap_or(u32::MAX)))
            .collect();
        Ok(Response::new(pb::CountStandingAlertsResponse { standing }))
    }

    async fn list_interventions(
        &self,
        req: Request<pb::ListInterventionsRequest>,
    ) -> Result<Response<pb::ListInterventionsResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let r = req.into_inner();
        if r.customer_id.trim().is_empty() {
            return Err(Status::invalid_argument("customer_id: is required"));
        }
        let limit = match r.limit {
            0 => INTERVENTIONS_LISTED,
            n => n.min(INTERVENTIONS_LISTED),
        };
        let interventions = self
            .store
            .customer_interventions(&tenant, &r.customer_id, u64::from(limit))
            .await?
            .into_iter()
            .map(intervention)
            .collect();
        Ok(Response::new(pb::ListInterventionsResponse {
            interventions,
        }))
    }

    async fn effect_report(
        &self,
        req: Request<pb::EffectReportRequest>,
    ) -> Result<Response<pb::EffectReportResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let since = match req.get_ref().since.as_ref() {
            None => 0,
            Some(t) => convert::millis(Some(t))
                .ok_or_else(|| Status::invalid_argument("since: not a valid timestamp"))?,
        };
        let cfg = self.store.current_config(&tenant).await?;
        let window = cfg.config.effect_window_days;
        let outcomes = self
            .store
            .outcomes(&tenant, since, window, rapport_storage::now_millis())
            .await?;
        let rows = effect::report(&outcomes)
            .into_iter()
            .map(|r| pb::EffectRow {
                treated: r.treated as u32,
                control: r.control as u32,
                health: estimate(r.health),
                retention: estimate(r.retention),
                spend: estimate(r.spend),
                cost: r.cost,
                roi: r.roi,
                action: r.action,
                tier: r.tier,
            })
            .collect();
        Ok(Response::new(pb::EffectReportResponse {
            window_days: window,
            rows,
        }))
    }

    async fn notify_scores(
        &self,
        req: Request<pb::NotifyScoresRequest>,
    ) -> Result<Response<Ack>, Status> {
        let tenant = Principal::of(&req)?.require_service()?.to_owned();
        let batch: Vec<Observation> = req
            .into_inner()
            .scores
            .iter()
            .filter_map(|c| {
                convert::signals(c).map(|(signals, at)| Observation {
                    customer_id: c.customer_id.clone(),
                    signals,
                    at,
                    backfill: Some(c.backfill.clone()).filter(|b| !b.is_empty()),
                })
            })
            .collect();
        let n = batch.len();
        let applied = self
            .store
            .observe(&tenant, batch, rapport_storage::now_millis())
            .await?;
        if applied != Default::default() {
            self.wakers.changed();
        }
        tracing::info!(
            tenant,
            scores = n,
            opened = applied.opened,
            updated = applied.updated,
            resolved = applied.resolved,
            "rules evaluated"
        );
        Ok(Response::new(Ack {}))
    }
}

/// Feeds a watcher: the backlog after `after`, then live changes, with heartbeat bookmarks;
/// an error ends the stream with that status.
async fn feed(
    store: &Store,
    tenant: &str,
    after: i64,
    first: Vec<Revision>,
    tx: &mpsc::Sender<Result<pb::WatchAlertsResponse, Status>>,
    changed: &tokio::sync::Notify,
    settings: WatchSettings,
) -> Result<(), Status> {
    let mut last = after;
    let mut page = first;
    let mut last_sent = tokio::time::Instant::now();
    loop {
        // Registered before reading, so a change committed meanwhile still wakes us.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let caught_up = (page.len() as u64) < WATCH_PAGE;
        for r in page {
            last = r.revision;
            send(tx, watch_message(r)?, settings).await?;
            last_sent = tokio::time::Instant::now();
        }
        if caught_up {
            if last_sent.elapsed() >= settings.heartbeat {
                let bookmark = pb::WatchAlertsResponse {
                    revision: last.max(0) as u64,
                    bookmark: true,
                    ..Default::default()
                };
                send(tx, bookmark, settings).await?;
                last_sent = tokio::time::Instant::now();
            }
            let wait = settings
                .poll
                .min(settings.heartbeat.saturating_sub(last_sent.elapsed()));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
                _ = tx.closed() => return Ok(()),
            }
        }
        page = store.changes_after(tenant, last, WATCH_PAGE).await?.0;
    }
}

/// Sends one message, ending the watch when the consumer has not made room for
/// `settings.slow` (it fell too far behind) or is gone.
async fn send(
    tx: &mpsc::Sender<Result<pb::WatchAlertsResponse, Status>>,
    msg: pb::WatchAlertsResponse,
    settings: WatchSettings,
) -> Result<(), Status> {
    match tokio::time::timeout(settings.slow, tx.send(Ok(msg))).await {
        Ok(Ok(())) => Ok(()),
        // The consumer is gone: nothing to tell it.
        Ok(Err(_)) => Err(Status::cancelled("watcher gone")),
        Err(_) => Err(Status::resource_exhausted(format!(
            "the watcher fell more than {} changes behind for {:?}; resume from the last \
             revision received",
            settings.buffer, settings.slow
        ))),
    }
}
