//! Silences: a matcher with an author, a reason and an end, under which alerts notify nobody
//! (they still open and can be worked); listed and ended early like Alertmanager's.

use super::*;
use crate::entity::{group, silence};
use rapport_domain::alert::notify::Matcher;

/// A silence as stored.
pub type StoredSilence = silence::Model;

/// The longest a silence may last.
const MAX_SILENCE_MS: i64 = 90 * 86_400_000;

impl silence::Model {
    /// The matcher it mutes.
    pub fn matcher(&self) -> Matcher {
        serde_json::from_str(&self.matcher).unwrap_or_default()
    }
}

/// A silence to create.
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matcher: Matcher,
    pub author: String,
    pub reason: String,
    /// Milliseconds; a start in the past means now.
    pub starts_at: i64,
    pub ends_at: i64,
}

impl Store {
    /// Creates a silence, refusing one that would mute everything, has no reason, or does
    /// not end in the future within 90 days.
    pub async fn create_silence(
        &self,
        tenant: &str,
        new: NewSilence,
        now: i64,
    ) -> Result<StoredSilence, StoreError> {
        let NewSilence {
            matcher,
            author,
            reason,
            starts_at,
            ends_at,
        } = new;
        matcher
            .check("matcher")
            .map_err(|e| StoreError::invalid(&e.path, e.reason))?;
        if matcher.is_empty() {
            return Err(StoreError::invalid(
                "matcher",
                "a silence needs at least one list (rules, severities, tiers, stages or \
                 customers); it would mute every alert",
            ));
        }
        if reason.trim().is_empty() {
            return Err(StoreError::invalid("reason", "say why alerts are silenced"));
        }
        if ends_at <= now.max(starts_at) {
            return Err(StoreError::invalid(
                "ends_at",
                "must be after the start and in the future",
            ));
        }
        if ends_at - starts_at.max(now) > MAX_SILENCE_MS {
            return Err(StoreError::invalid(
                "ends_at",
                "a silence lasts 90 days at most",
            ));
        }
        let row = silence::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            matcher: Set(serde_json::to_string(&matcher).unwrap_or_default()),
            author: Set(author),
            reason: Set(reason),
            starts_at: Set(starts_at),
            ends_at: Set(ends_at),
            created_at: Set(now),
            expired_by: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(row)
    }

    /// The tenant's silences, those still in force or to come first, then the ended ones of
    /// the last 30 days.
    pub async fn silences(&self, tenant: &str, now: i64) -> Result<Vec<StoredSilence>, StoreError> {
        let mut rows = silence::Entity::find()
            .filter(silence::Column::TenantId.eq(tenant))
            .filter(silence::Column::EndsAt.gt(now - 30 * 86_400_000))
            .order_by_desc(silence::Column::Id)
            .limit(1_000)
            .all(&self.db)
            .await?;
        rows.sort_by_key(|s| (s.ends_at <= now, std::cmp::Reverse(s.id)));
        Ok(rows)
    }

    /// Ends a silence now; what it held back is looked at again at once.
    pub async fn expire_silence(
        &self,
        tenant: &str,
        id: i64,
        by: &str,
        now: i64,
    ) -> Result<StoredSilence, StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        // Under the tenant's lock, as every flush: a flush running now cannot overwrite
        // the wake-up below.
        lock_tenant(&txn, tenant).await?;
        let s = silence::Entity::find_by_id(id)
            .filter(silence::Column::TenantId.eq(tenant))
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("silence {id}")))?;
        if s.ends_at <= now {
            txn.commit().await?;
            return Ok(s);
        }
        let mut m: silence::ActiveModel = s.into();
        m.ends_at = Set(now);
        m.expired_by = Set(Some(by.to_owned()));
        let s = m.update(&txn).await?;
        group::Entity::update_many()
            .col_expr(group::Column::DueAt, Expr::value(now))
            .filter(group::Column::TenantId.eq(tenant))
            .filter(group::Column::Held.gt(0))
            .filter(group::Column::Backfill.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(s)
    }
}
