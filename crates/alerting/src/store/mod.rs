//! Alerting's storage: applies the rules' steps to alerts, the lifecycle actions of people,
//! and records every change as an audit row, a watch revision and webhook deliveries, all in
//! the transaction that made it (`log`); what each change means to each webhook endpoint and
//! the grouped deliveries it becomes (`notices`); silences (`silences`); interventions and
//! their outcomes in `interventions`; webhook endpoints and deliveries in `webhooks`.

use crate::entity::{alert, config, customer, intervention, revision, transition, webhook};
use rapport_domain::alert::playbook::Action;
use rapport_domain::alert::{
    AlertConfig, ConfigError, CustomerAlerts, Effect, MAX_SNOOZE_SECS, Signals, Step, dedup_key,
    track_key,
};
use rapport_domain::lifecycle::Stage;
use sea_orm::PaginatorTrait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod interventions;
mod log;
mod notices;
pub mod silences;
pub mod webhooks;
mod working;

use log::*;
use working::Alerts;

/// Errors of alerting's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("revision {after} was compacted; the oldest kept is {oldest}")]
    Compacted { after: i64, oldest: i64 },
    #[error("stored state of {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    /// Loading a tenant's configuration failed (for every caller waiting for that load).
    #[error(transparent)]
    Loading(Arc<StoreError>),
}

impl StoreError {
    fn invalid(field: &str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// An alert as stored.
pub type Alert = alert::Model;
/// A transition as stored.
pub type Transition = transition::Model;
/// A watch revision as stored.
pub type Revision = revision::Model;
/// An intervention as stored.
pub type Intervention = intervention::Model;

/// Alert states, as stored.
pub mod state {
    pub const OPEN: &str = "open";
    pub const ACKNOWLEDGED: &str = "acknowledged";
    pub const SNOOZED: &str = "snoozed";
    pub const RESOLVED: &str = "resolved";
}

/// How an alert changed, as stored in revisions and named in webhook event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Opened,
    Updated,
    Acknowledged,
    Snoozed,
    Reopened,
    Resolved,
}

impl Change {
    /// Every change kind.
    pub const ALL: [Change; 6] = [
        Change::Opened,
        Change::Updated,
        Change::Acknowledged,
        Change::Snoozed,
        Change::Reopened,
        Change::Resolved,
    ];

    /// Stable name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Change::Opened => "opened",
            Change::Updated => "updated",
            Change::Acknowledged => "acknowledged",
            Change::Snoozed => "snoozed",
            Change::Reopened => "reopened",
            Change::Resolved => "resolved",
        }
    }

    /// The change of a stored name.
    pub fn from_name(name: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The actor of changes made by rule evaluation and by the clock.
pub const RULE_ACTOR: &str = "rule";

/// A tenant's configuration as loaded.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub version: String,
    pub toml: String,
    pub config: AlertConfig,
}

impl LoadedConfig {
    /// The built-in configuration (or the deployment's replacement of it), versioned by a
    /// digest of its text.
    pub fn builtin(toml: &str) -> Result<LoadedConfig, ConfigError> {
        Ok(LoadedConfig {
            version: rapport_domain::version::builtin_version(toml),
            toml: toml.to_owned(),
            config: AlertConfig::from_toml(toml)?,
        })
    }
}

/// Filter of [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub state: Option<&'static str>,
    pub customer_id: Option<String>,
    pub rule: Option<String>,
    /// Highest priority first instead of newest first.
    pub by_priority: bool,
}

/// How many alerts share a rule, tier and severity.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCount {
    pub rule: String,
    pub tier: Option<String>,
    pub severity: Option<String>,
    pub count: u64,
}

/// What a person does to a standing alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    Acknowledge,
    /// Until then (milliseconds).
    Snooze(i64),
    Resolve,
}

/// Counts of what an evaluation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub opened: usize,
    pub updated: usize,
    pub resolved: usize,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, other: Applied) {
        self.opened += other.opened;
        self.updated += other.updated;
        self.resolved += other.resolved;
    }
}

/// One new observation of a customer.
#[derive(Debug, Clone)]
pub struct Observation {
    pub customer_id: String,
    pub signals: Signals,
    /// When scoring computed it (milliseconds).
    pub at: i64,
    /// The backfill (an import of history) whose events it reflects, if any.
    pub backfill: Option<String>,
}

/// How long a tenant's loaded configuration is reused before it is read again (another
/// replica may have changed it).
const CONFIG_TTL: std::time::Duration = rapport_storage::coordination::CONFIG_REFRESH;

/// Alerting's tables.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    builtin: Arc<LoadedConfig>,
    /// Loaded configurations per tenant, each reused for [`CONFIG_TTL`].
    configs: moka::future::Cache<String, Arc<LoadedConfig>>,
}

impl Store {
    /// Alerting's schedules, recorded with its tables.
    pub fn schedules(&self) -> rapport_storage::coordination::Schedules {
        rapport_storage::coordination::Schedules::new("alerting_schedules", self.db.clone())
    }

    /// The store on an already migrated database, with the configuration of tenants that
    /// never set their own.
    pub fn new(db: DatabaseConnection, builtin: LoadedConfig) -> Self {
        Store {
            db,
            builtin: Arc::new(builtin),
            configs: moka::future::Cache::builder()
                .time_to_live(CONFIG_TTL)
                .build(),
        }
    }

    /// The configuration in force for a tenant (cached for a few seconds).
    pub async fn current_config(&self, tenant: &str) -> Result<Arc<LoadedConfig>, StoreError> {
        // Callers missing at once wait for one load.
        let load = async {
            Ok::<_, StoreError>(match self.config(tenant).await? {
                Some(c) => Arc::new(c),
                None => self.builtin.clone(),
            })
        };
        self.configs
            .try_get_with(tenant.to_owned(), load)
            .await
            .map_err(StoreError::Loading)
    }

    /// The tenant's latest configuration, or `None` when it never set one.
    pub async fn config(&self, tenant: &str) -> Result<Option<LoadedConfig>, StoreError> {
        let Some(row) = config::Entity::find()
            .filter(config::Column::TenantId.eq(tenant))
            .order_by_desc(config::Column::Id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let parsed = AlertConfig::from_toml(&row.toml).map_err(|e| StoreError::Corrupt {
            what: format!("configuration {}", row.version),
            reason: e.to_string(),
        })?;
        Ok(Some(LoadedConfig {
            version: row.version,
            toml: row.toml,
            config: parsed,
        }))
    }

    /// Validates and stores a new configuration version (`v1`, `v2`, …).
    pub async fn set_config(&self, tenant: &str, toml: &str) -> Result<LoadedConfig, StoreError> {
        let parsed = AlertConfig::from_toml(toml)?;
        let txn = rapport_storage::begin_write(&self.db).await?;
        // Replicas setting a tenant's configuration at once take turns: each counts the
        // versions after the one before it committed.
        rapport_storage::coordination::lock_until_commit(&txn, "alerting_configs", tenant).await?;
        let count = config::Entity::find()
            .filter(config::Column::TenantId.eq(tenant))
            .count(&txn)
            .await?;
        let version = format!("v{}", count + 1);
        config::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            version: Set(version.clone()),
            toml: Set(toml.to_owned()),
            created_at: Set(rapport_storage::now_millis()),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        let cfg = LoadedConfig {
            version,
            toml: toml.to_owned(),
            config: parsed,
        };
        self.configs
            .insert(tenant.to_owned(), Arc::new(cfg.clone()))
            .await;
        Ok(cfg)
    }

    /// Applies new observations of a tenant's customers: updates what is known of them,
    /// steps every rule, and opens, updates or resolves alerts. Stale or repeated
    /// observations change nothing.
    pub async fn observe(
        &self,
        tenant: &str,
        mut batch: Vec<Observation>,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let cfg = self.current_config(tenant).await?;
        batch.sort_by_key(|o| o.at);
        let ids: BTreeSet<String> = batch.iter().map(|o| o.customer_id.clone()).collect();
        let txn = rapport_storage::begin_write(&self.db).await?;
        let mut log = Log::lock(&txn, tenant, &cfg).await?;
        let applied = log.step(&txn, ids, batch, now, |_, _| {}).await?;
        log.finish(&txn, now).await?;
        txn.commit().await?;
        Ok(applied)
    }

    /// Re-evaluates customers whose conditions time alone may have changed (pending or
    /// resolve periods ending, windows moving), and re-opens alerts whose snooze ended.
    pub async fn sweep(&self, now: i64) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        let due: Vec<(String, String)> = customer::Entity::find()
            .select_only()
            .columns([customer::Column::TenantId, customer::Column::CustomerId])
            .filter(customer::Column::NextCheckAt.lte(now))
            .limit(1_000)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut by_tenant: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (tenant, customer) in due {
            by_tenant.entry(tenant).or_default().insert(customer);
        }
        for (tenant, ids) in by_tenant {
            let cfg = self.current_config(&tenant).await?;
            let txn = rapport_storage::begin_write(&self.db).await?;
            let mut log = Log::lock(&txn, &tenant, &cfg).await?;
            applied += log.step(&txn, ids, Vec::new(), now, |_, _| {}).await?;
            log.finish(&txn, now).await?;
            txn.commit().await?;
        }
        let woken: Vec<String> = alert::Entity::find()
            .select_only()
            .column(alert::Column::TenantId)
            .distinct()
            .filter(alert::Column::State.eq(state::SNOOZED))
            .filter(alert::Column::SnoozedUntil.lte(now))
            .into_tuple()
            .all(&self.db)
            .await?;
        for tenant in woken {
            let cfg = self.current_config(&tenant).await?;
            let txn = rapport_storage::begin_write(&self.db).await?;
            let mut log = Log::lock(&txn, &tenant, &cfg).await?;
            // Read again under the tenant's lock: a person may have acted meanwhile.
            let ended = alert::Entity::find()
                .filter(alert::Column::TenantId.eq(tenant.as_str()))
                .filter(alert::Column::State.eq(state::SNOOZED))
                .filter(alert::Column::SnoozedUntil.lte(now))
                .limit(1_000)
                .all(&txn)
                .await?;
            for a in ended {
                let mut m: alert::ActiveModel = a.into();
                m.state = Set(state::OPEN.to_owned());
                m.snoozed_until = Set(None);
                m.updated_at = Set(now);
                let a = m.update(&txn).await?;
                let reason = "the snooze ended and the alert still stands";
                log.write(
                    &a,
                    Change::Reopened,
                    Some(state::SNOOZED),
                    RULE_ACTOR,
                    reason,
                    now,
                    true,
                )?;
                applied.updated += 1;
            }
            log.finish(&txn, now).await?;
            txn.commit().await?;
        }
        Ok(applied)
    }

    /// A person acknowledges, snoozes or resolves a standing alert.
    pub async fn act(
        &self,
        tenant: &str,
        id: i64,
        action: Act,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<Alert, StoreError> {
        if let Act::Snooze(until) = action
            && !(now < until && until - now <= MAX_SNOOZE_SECS * 1_000)
        {
            return Err(StoreError::invalid(
                "until",
                "a snooze must end in the future and within 7 days",
            ));
        }
        if action == Act::Resolve && reason.trim().is_empty() {
            return Err(StoreError::invalid(
                "reason",
                "resolving by hand needs a reason",
            ));
        }
        let cfg = self.current_config(tenant).await?;
        let txn = rapport_storage::begin_write(&self.db).await?;
        let mut log = Log::lock(&txn, tenant, &cfg).await?;
        let a = find_alert(&txn, tenant, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
        if a.state == state::RESOLVED {
            return Err(StoreError::Precondition(format!(
                "alert {id} is resolved; a new trigger opens a new one"
            )));
        }
        let from = a.state.clone();
        let (to, change, snoozed_until) = match action {
            Act::Acknowledge => (state::ACKNOWLEDGED, Change::Acknowledged, None),
            Act::Snooze(until) => (state::SNOOZED, Change::Snoozed, Some(until)),
            Act::Resolve => (state::RESOLVED, Change::Resolved, None),
        };
        if from == to && action == Act::Acknowledge {
            txn.commit().await?;
            return Ok(a);
        }
        let customer_id = a.customer_id.clone();
        let track = track_key_of(&a);
        let mut m: alert::ActiveModel = a.into();
        m.state = Set(to.to_owned());
        m.snoozed_until = Set(snoozed_until);
        m.updated_at = Set(now);
        if action == Act::Resolve {
            m.open_key = Set(None);
            m.resolved_at = Set(Some(now));
        }
        let a = m.update(&txn).await?;
        let reason = if reason.is_empty() {
            format!("{} by {actor}", change.name())
        } else {
            reason.to_owned()
        };
        log.write(&a, change, Some(&from), actor, &reason, now, true)?;
        if action == Act::Resolve {
            // The rules step on: the resolved track waits for a new trigger, and the
            // customer's other tracks keep their pending and resolve periods.
            let ids = BTreeSet::from([customer_id]);
            log.step(&txn, ids, Vec::new(), now, |_, ca| {
                if let Some(t) = track.as_ref().and_then(|k| ca.tracks.get_mut(k)) {
                    t.resolved_by_hand();
                }
            })
            .await?;
        }
        log.finish(&txn, now).await?;
        txn.commit().await?;
        Ok(a)
    }

    /// A tenant's alerts, newest first (or highest priority first).
    pub async fn list(
        &self,
        tenant: &str,
        filter: &AlertFilter,
        limit: u64,
    ) -> Result<Vec<Alert>, StoreError> {
        let mut query = filtered(tenant, filter);
        if filter.by_priority {
            // Alerts older than priorities come last on either database.
            query = query.order_by_with_nulls(
                alert::Column::Priority,
                sea_orm::Order::Desc,
                sea_orm::sea_query::NullOrdering::Last,
            );
        }
        Ok(query
            .order_by_desc(alert::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// How many alerts that are not resolved each of these customers has (those without any
    /// are left out).
    pub async fn standing_counts(
        &self,
        tenant: &str,
        customer_ids: &[String],
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for chunk in customer_ids.chunks(500) {
            let rows: Vec<(String, i64)> = alert::Entity::find()
                .select_only()
                .column(alert::Column::CustomerId)
                .column_as(alert::Column::Id.count(), "n")
                .filter(alert::Column::TenantId.eq(tenant))
                .filter(alert::Column::CustomerId.is_in(chunk.iter().cloned()))
                .filter(alert::Column::State.ne(state::RESOLVED))
                .group_by(alert::Column::CustomerId)
                .into_tuple()
                .all(&self.db)
                .await?;
            out.extend(rows.into_iter().map(|(c, n)| (c, n.max(0) as u64)));
        }
        Ok(out)
    }

    /// How many of a tenant's alerts pass the filter, per rule, tier and severity (most
    /// first).
    pub async fn counts(
        &self,
        tenant: &str,
        filter: &AlertFilter,
    ) -> Result<Vec<AlertCount>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>, i64)> = filtered(tenant, filter)
            .select_only()
            .columns([
                alert::Column::Rule,
                alert::Column::Tier,
                alert::Column::Severity,
            ])
            .column_as(alert::Column::Id.count(), "n")
            .group_by(alert::Column::Rule)
            .group_by(alert::Column::Tier)
            .group_by(alert::Column::Severity)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut counts: Vec<AlertCount> = rows
            .into_iter()
            .map(|(rule, tier, severity, n)| AlertCount {
                rule,
                tier,
                severity,
                count: n.max(0) as u64,
            })
            .collect();
        counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));
        Ok(counts)
    }

    /// One alert and its transitions, oldest first.
    pub async fn get(&self, tenant: &str, id: i64) -> Result<(Alert, Vec<Transition>), StoreError> {
        let a = find_alert(&self.db, tenant, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))?;
        let transitions = transition::Entity::find()
            .filter(transition::Column::TenantId.eq(tenant))
            .filter(transition::Column::AlertId.eq(id))
            .order_by_asc(transition::Column::Id)
            .all(&self.db)
            .await?;
        Ok((a, transitions))
    }

    /// Up to `limit` changes of the tenant after `after`, in order, and the tenant's current
    /// revision; [`StoreError::Compacted`] when changes after `after` were already deleted.
    pub async fn changes_after(
        &self,
        tenant: &str,
        after: i64,
        limit: u64,
    ) -> Result<(Vec<Revision>, i64), StoreError> {
        let current = self.revision(tenant).await?;
        let rows = revision::Entity::find()
            .filter(revision::Column::TenantId.eq(tenant))
            .filter(revision::Column::Revision.gt(after))
            .order_by_asc(revision::Column::Revision)
            .limit(limit)
            .all(&self.db)
            .await?;
        if after > 0 && after < current {
            let oldest = rows.first().map_or(current + 1, |r| r.revision);
            if oldest > after + 1 {
                return Err(StoreError::Compacted {
                    after,
                    oldest: oldest.min(current),
                });
            }
        }
        Ok((rows, current))
    }

    /// The tenant's current watch revision (0 before its first change).
    pub async fn revision(&self, tenant: &str) -> Result<i64, StoreError> {
        Ok(crate::entity::tenant::Entity::find_by_id(tenant.to_owned())
            .one(&self.db)
            .await?
            .map_or(0, |t| t.revision))
    }

    /// Deletes each tenant's revisions older than its latest `keep`.
    pub async fn compact(&self, keep: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for t in crate::entity::tenant::Entity::find().all(&self.db).await? {
            deleted += revision::Entity::delete_many()
                .filter(revision::Column::TenantId.eq(t.tenant_id))
                .filter(revision::Column::Revision.lte(t.revision - keep))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(deleted)
    }
}

/// The tenant's alerts that pass a filter.
fn filtered(tenant: &str, filter: &AlertFilter) -> sea_orm::Select<alert::Entity> {
    let mut query = alert::Entity::find().filter(alert::Column::TenantId.eq(tenant));
    if let Some(state) = filter.state {
        query = query.filter(alert::Column::State.eq(state));
    }
    if let Some(customer) = &filter.customer_id {
        query = query.filter(alert::Column::CustomerId.eq(customer.as_str()));
    }
    if let Some(rule) = &filter.rule {
        query = query.filter(alert::Column::Rule.eq(rule.as_str()));
    }
    query
}

impl alert::Model {
    /// The evidence text, empty when none.
    pub fn evidence_text(&self) -> &str {
        self.evidence.as_deref().unwrap_or("")
    }

    /// The recommended actions.
    pub fn actions(&self) -> Vec<Action> {
        self.recommendations
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default()
    }
}
