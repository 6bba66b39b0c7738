//! Webhook endpoints with their signing secrets, and the deliveries of alert changes to
//! them: pending deliveries are the outbox, dead ones the dead-letter list.

use super::{Alert, Change, Store, StoreError};
use crate::entity::{delivery, webhook};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rapport_domain::alert::notify::Route;
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A webhook endpoint as stored.
pub type Endpoint = webhook::Model;
/// A delivery as stored.
pub type Delivery = delivery::Model;

/// Delivery states, as stored.
pub mod state {
    pub const PENDING: &str = "pending";
    pub const DEAD: &str = "dead";
}

/// Prefix of secrets as shown to people (the Standard Webhooks convention).
pub const SECRET_PREFIX: &str = "whsec_";

/// One signing secret of an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    /// The key bytes, base64.
    pub key: String,
    /// When a rotated-out secret stops signing (milliseconds); `None` for the current one.
    pub expires_at: Option<i64>,
}

/// A fresh random secret: 24 bytes, base64.
fn new_key() -> String {
    let bytes: [u8; 24] = rand::random();
    STANDARD.encode(bytes)
}

/// The keys an endpoint signs with at `now`: the current one and rotated ones not expired.
pub fn signing_keys(w: &Endpoint, now: i64) -> Vec<Vec<u8>> {
    let secrets: Vec<Secret> = serde_json::from_str(&w.secrets).unwrap_or_default();
    secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|e| e > now))
        .filter_map(|s| STANDARD.decode(&s.key).ok())
        .collect()
}

/// Checks an endpoint URL: absolute http(s) with a host.
fn check_url(url: &str) -> Result<(), StoreError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| StoreError::invalid("url", format!("not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(StoreError::invalid(
            "url",
            "must be an absolute https:// or http:// URL with a host",
        )),
    }
}

/// How an endpoint reads an alert after a change: its id, state, customer, evidence and
/// recommended interventions, with the change's name.
pub fn item(a: &Alert, change: Change, revision: i64) -> serde_json::Value {
    serde_json::json!({
        "change": change.name(),
        "id": a.id.to_string(),
        "revision": revision,
        "rule": a.rule,
        "customer_id": a.customer_id,
        "discriminator": a.discriminator,
        "dedup_key": a.dedup_key,
        "state": a.state,
        "severity": a.severity,
        "score": a.score,
        "tier": a.tier,
        "evidence": a.evidence,
        "trigger_count": a.trigger_count,
        "opened_at": rfc3339(a.opened_at),
        "updated_at": rfc3339(a.updated_at),
        "resolved_at": a.resolved_at.and_then(rfc3339),
        "snoozed_until": a.snoozed_until.and_then(rfc3339),
        "holdout": a.holdout.unwrap_or(false),
        "recommendations": a.actions(),
        "config_version": a.config_version,
    })
}

/// Milliseconds since the epoch as RFC 3339 text.
pub(crate) fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The route an endpoint was created with (the default one when it named none).
pub fn route_of(w: &Endpoint) -> Route {
    w.route
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

/// The tenant's enabled endpoints.
pub(crate) async fn enabled<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
) -> Result<Vec<Endpoint>, DbErr> {
    webhook::Entity::find()
        .filter(webhook::Column::TenantId.eq(tenant))
        .filter(webhook::Column::Enabled.eq(true))
        .all(conn)
        .await
}

/// One signed message to send to an endpoint.
pub(crate) struct Message {
    pub webhook_id: i64,
    /// The `webhook-id` header: unique per message, kept across retries and replays.
    pub id: String,
    pub event_type: String,
    pub body: String,
}

/// Queues messages for the delivery worker (the endpoints' outbox), in the caller's
/// transaction.
pub(crate) async fn queue<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    messages: Vec<Message>,
    now: i64,
) -> Result<(), DbErr> {
    let rows: Vec<delivery::ActiveModel> = messages
        .into_iter()
        .map(|m| delivery::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            webhook_id: Set(m.webhook_id),
            message_id: Set(m.id),
            event_type: Set(m.event_type),
            payload: Set(m.body),
            state: Set(state::PENDING.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(200) {
        delivery::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Registers an endpoint; returns it with its secret (shown this once).
    pub async fn create_webhook(
        &self,
        tenant: &str,
        url: &str,
        route: &Route,
    ) -> Result<(Endpoint, String), StoreError> {
        check_url(url)?;
        route
            .check()
            .map_err(|e| StoreError::invalid(&format!("route.{}", e.path), e.reason))?;
        let key = new_key();
        let secrets = vec![Secret {
            key: key.clone(),
            expires_at: None,
        }];
        let w = webhook::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            url: Set(url.to_owned()),
            secrets: Set(serde_json::to_string(&secrets).unwrap_or_default()),
            enabled: Set(true),
            disabled_reason: Set(None),
            created_at: Set(rapport_storage::now_millis()),
            route: Set(serde_json::to_string(route).ok()),
        }
        .insert(&self.db)
        .await?;
        Ok((w, format!("{SECRET_PREFIX}{key}")))
    }

    /// The tenant's endpoints.
    pub async fn webhooks(&self, tenant: &str) -> Result<Vec<Endpoint>, StoreError> {
        Ok(webhook::Entity::find()
            .filter(webhook::Column::TenantId.eq(tenant))
            .order_by_asc(webhook::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// A new current secret; the previous ones keep signing for `keep_ms` more.
    pub async fn rotate_secret(
        &self,
        tenant: &str,
        id: i64,
        keep_ms: i64,
        now: i64,
    ) -> Result<(Endpoint, String), StoreError> {
        let w = webhook::Entity::find_by_id(id)
            .filter(webhook::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))?;
        let old: Vec<Secret> = serde_json::from_str(&w.secrets).unwrap_or_default();
        let key = new_key();
        let mut secrets = vec![Secret {
            key: key.clone(),
            expires_at: None,
        }];
        secrets.extend(
            old.into_iter()
                .map(|s| Secret {
                    expires_at: Some(s.expires_at.unwrap_or(now + keep_ms).min(now + keep_ms)),
                    ..s
                })
                .filter(|s| s.expires_at.is_some_and(|e| e > now)),
        );
        let mut m: webhook::ActiveModel = w.into();
        m.secrets = Set(serde_json::to_string(&secrets).unwrap_or_default());
        let w = m.update(&self.db).await?;
        Ok((w, format!("{SECRET_PREFIX}{key}")))
    }

    /// Claims up to `limit` deliveries due at `now` (for `lease_ms`, so another worker does
    /// not send them meanwhile), with their endpoints, in one statement.
    pub async fn claim_due(
        &self,
        now: i64,
        limit: u64,
        lease_ms: i64,
    ) -> Result<Vec<(Delivery, Endpoint)>, StoreError> {
        let due = Query::select()
            .column(delivery::Column::Id)
            .from(delivery::Entity)
            .and_where(delivery::Column::State.eq(state::PENDING))
            .and_where(delivery::Column::NextAttemptAt.lte(now))
            .order_by(delivery::Column::Id, Order::Asc)
            .limit(limit)
            .to_owned();
        // The due conditions stand in the outer filter too: a concurrent claimer that took
        // the same rows first leaves them failing it.
        let claimed = delivery::Entity::update_many()
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(now + lease_ms))
            .filter(delivery::Column::Id.in_subquery(due))
            .filter(delivery::Column::State.eq(state::PENDING))
            .filter(delivery::Column::NextAttemptAt.lte(now))
            .exec_with_returning(&self.db)
            .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let endpoint_ids: BTreeSet<i64> = claimed.iter().map(|d| d.webhook_id).collect();
        let endpoints: BTreeMap<i64, Endpoint> = webhook::Entity::find()
            .filter(webhook::Column::Id.is_in(endpoint_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|w| (w.id, w))
            .collect();
        Ok(claimed
            .into_iter()
            .filter_map(|d| endpoints.get(&d.webhook_id).cloned().map(|w| (d, w)))
            .collect())
    }

    /// Records the outcome of one attempt: delivered, to retry at `retry_at`, or dead.
    pub async fn attempted(
        &self,
        id: i64,
        attempts: i32,
        outcome: Attempt,
        now: i64,
    ) -> Result<(), StoreError> {
        let (state, next, error) = match outcome {
            // Delivered rows are done with, as in every outbox.
            Attempt::Delivered => {
                delivery::Entity::delete_by_id(id).exec(&self.db).await?;
                return Ok(());
            }
            Attempt::Retry { at, error } => (state::PENDING, at, Some(error)),
            Attempt::Dead { error } => (state::DEAD, now, Some(error)),
        };
        delivery::Entity::update_many()
            .col_expr(delivery::Column::State, Expr::value(state))
            .col_expr(delivery::Column::Attempts, Expr::value(attempts))
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(delivery::Column::LastError, Expr::value(error))
            .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
            .filter(delivery::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Disables an endpoint (it answered 410 Gone, say); its pending deliveries go to the
    /// dead-letter list.
    pub async fn disable_webhook(&self, id: i64, reason: &str, now: i64) -> Result<(), StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        webhook::Entity::update_many()
            .col_expr(webhook::Column::Enabled, Expr::value(false))
            .col_expr(webhook::Column::DisabledReason, Expr::value(reason))
            .filter(webhook::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        delivery::Entity::update_many()
            .col_expr(delivery::Column::State, Expr::value(state::DEAD))
            .col_expr(
                delivery::Column::LastError,
                Expr::value(format!("endpoint disabled: {reason}")),
            )
            .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
            .filter(delivery::Column::WebhookId.eq(id))
            .filter(delivery::Column::State.eq(state::PENDING))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The tenant's dead letters, newest first.
    pub async fn dead_letters(&self, tenant: &str) -> Result<Vec<Delivery>, StoreError> {
        Ok(delivery::Entity::find()
            .filter(delivery::Column::TenantId.eq(tenant))
            .filter(delivery::Column::State.eq(state::DEAD))
            .order_by_desc(delivery::Column::Id)
            .limit(1_000)
            .all(&self.db)
            .await?)
    }

    /// Sends a dead letter again (same message id), re-enabling nothing: its endpoint must
    /// be enabled.
    pub async fn replay(&self, tenant: &str, id: i64, now: i64) -> Result<(), StoreError> {
        let d = delivery::Entity::find_by_id(id)
            .filter(delivery::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .filter(|d| d.state == state::DEAD)
            .ok_or_else(|| StoreError::NotFound(format!("dead letter {id}")))?;
        let enabled = webhook::Entity::find_by_id(d.webhook_id)
            .one(&self.db)
            .await?
            .is_some_and(|w| w.enabled);
        if !enabled {
            return Err(StoreError::Precondition(format!(
                "webhook {} is disabled",
                d.webhook_id
            )));
        }
        let mut m: delivery::ActiveModel = d.into();
        m.state = Set(state::PENDING.to_owned());
        m.attempts = Set(0);
        m.next_attempt_at = Set(now);
        m.updated_at = Set(now);
        m.update(&self.db).await?;
        Ok(())
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    Retry { at: i64, error: String },
    Dead { error: String },
}
