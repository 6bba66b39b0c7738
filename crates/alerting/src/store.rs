//! Alerting's storage: applies the rules' steps to alerts, the lifecycle actions of people,
//! and records every change as an audit row, a watch revision and webhook deliveries, all in
//! the transaction that made it.

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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub mod webhooks;

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
}

/// How long a tenant's loaded configuration is reused before it is read again (another
/// replica may have changed it).
const CONFIG_TTL: std::time::Duration = rapport_storage::coordination::CONFIG_REFRESH;

/// Alerting's tables.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    builtin: Arc<LoadedConfig>,
    configs: Arc<Mutex<ConfigCache>>,
}

/// Loaded configurations per tenant, with when they were loaded.
type ConfigCache = HashMap<String, (Instant, Arc<LoadedConfig>)>;

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
            configs: Arc::default(),
        }
    }

    /// The configuration in force for a tenant (cached for a few seconds).
    pub async fn current_config(&self, tenant: &str) -> Result<Arc<LoadedConfig>, StoreError> {
        if let Ok(cache) = self.configs.lock()
            && let Some((at, cfg)) = cache.get(tenant)
            && at.elapsed() < CONFIG_TTL
        {
            return Ok(cfg.clone());
        }
        let cfg = match self.config(tenant).await? {
            Some(c) => Arc::new(c),
            None => self.builtin.clone(),
        };
        if let Ok(mut cache) = self.configs.lock() {
            cache.insert(tenant.to_owned(), (Instant::now(), cfg.clone()));
        }
        Ok(cfg)
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
        if let Ok(mut cache) = self.configs.lock() {
            cache.insert(tenant.to_owned(), (Instant::now(), Arc::new(cfg.clone())));
        }
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
        log.finish(&txn).await?;
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
            log.finish(&txn).await?;
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
                    &txn,
                    &a,
                    Change::Reopened,
                    Some(state::SNOOZED),
                    RULE_ACTOR,
                    reason,
                    now,
                    true,
                )
                .await?;
                applied.updated += 1;
            }
            log.finish(&txn).await?;
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
        log.write(&txn, &a, change, Some(&from), actor, &reason, now, true)
            .await?;
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
        log.finish(&txn).await?;
        txn.commit().await?;
        Ok(a)
    }

    /// A tenant's alerts, newest first.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &AlertFilter,
        limit: u64,
    ) -> Result<Vec<Alert>, StoreError> {
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
        Ok(query
            .order_by_desc(alert::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
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
        let current = crate::entity::tenant::Entity::find_by_id(tenant.to_owned())
            .one(&self.db)
            .await?
            .map_or(0, |t| t.revision);
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

    /// Records an intervention on an alert of the tenant.
    pub async fn record_intervention(
        &self,
        tenant: &str,
        row: Intervention,
    ) -> Result<Intervention, StoreError> {
        if row.action.trim().is_empty() || row.action.len() > 100 {
            return Err(StoreError::invalid(
                "action",
                "must be a non-empty id of at most 100 characters",
            ));
        }
        if !(row.cost.is_finite() && row.cost >= 0.0) {
            return Err(StoreError::invalid("cost", "must be a finite number ≥ 0"));
        }
        if find_alert(&self.db, tenant, row.alert_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("alert {}", row.alert_id)));
        }
        Ok(intervention::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            alert_id: Set(row.alert_id),
            action: Set(row.action),
            actor: Set(row.actor),
            at: Set(row.at),
            cost: Set(row.cost),
            note: Set(row.note),
        }
        .insert(&self.db)
        .await?)
    }

    /// The outcomes of alerts opened since `since` whose effect window has passed by `now`,
    /// as the effect report compares them.
    pub async fn outcomes(
        &self,
        tenant: &str,
        since: i64,
        window_days: u32,
        now: i64,
    ) -> Result<Vec<rapport_domain::effect::Outcome>, StoreError> {
        let window_ms = i64::from(window_days) * 86_400_000;
        let alerts = alert::Entity::find()
            .filter(alert::Column::TenantId.eq(tenant))
            .filter(alert::Column::OpenedAt.gte(since))
            .filter(alert::Column::OpenedAt.lte(now - window_ms))
            .all(&self.db)
            .await?;
        let ids: Vec<i64> = alerts.iter().map(|a| a.id).collect();
        let mut costs: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let rows = intervention::Entity::find()
                .filter(intervention::Column::TenantId.eq(tenant))
                .filter(intervention::Column::AlertId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?;
            for i in rows {
                *costs
                    .entry(i.alert_id)
                    .or_default()
                    .entry(i.action)
                    .or_default() += i.cost;
            }
        }
        let mut out = Vec::new();
        for a in alerts {
            let base_score = a.baseline_score.unwrap_or(a.score);
            let base_spend = a.baseline_spend.unwrap_or(0.0);
            let outcome = |action: Option<String>, control: bool, cost: f64| {
                rapport_domain::effect::Outcome {
                    action,
                    tier: a.tier.clone().unwrap_or_else(|| "regular".to_owned()),
                    control,
                    health_change: a.outcome_score.unwrap_or(base_score) - base_score,
                    retained: a.outcome_retained.unwrap_or(true),
                    spend_change: a.outcome_spend.unwrap_or(base_spend) - base_spend,
                    cost,
                }
            };
            if a.holdout == Some(true) {
                out.push(outcome(None, true, 0.0));
            } else if let Some(actions) = costs.get(&a.id) {
                for (action, cost) in actions {
                    out.push(outcome(Some(action.clone()), false, *cost));
                }
            }
        }
        Ok(out)
    }
}

/// The track key of a stored alert.
fn track_key_of(a: &Alert) -> Option<String> {
    rapport_domain::alert::RuleKind::from_name(&a.rule)
        .map(|k| track_key(k, a.discriminator.as_deref().unwrap_or("")))
}

async fn find_alert<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: i64,
) -> Result<Option<Alert>, DbErr> {
    alert::Entity::find_by_id(id)
        .filter(alert::Column::TenantId.eq(tenant))
        .one(conn)
        .await
}

async fn load_customers(
    txn: &DatabaseTransaction,
    tenant: &str,
    ids: BTreeSet<String>,
) -> Result<BTreeMap<String, CustomerAlerts>, StoreError> {
    let mut out = BTreeMap::new();
    let ids: Vec<String> = ids.into_iter().collect();
    for chunk in ids.chunks(500) {
        let rows = customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.is_in(chunk.to_vec()))
            .all(txn)
            .await?;
        for row in rows {
            let ca: CustomerAlerts =
                serde_json::from_str(&row.state).map_err(|e| StoreError::Corrupt {
                    what: format!("customer {}", row.customer_id),
                    reason: e.to_string(),
                })?;
            out.insert(row.customer_id, ca);
        }
    }
    Ok(out)
}

async fn save_customers(
    txn: &DatabaseTransaction,
    tenant: &str,
    known: &BTreeMap<String, CustomerAlerts>,
    touched: &BTreeMap<String, Option<i64>>,
) -> Result<(), StoreError> {
    let mut rows = Vec::with_capacity(touched.len());
    for (id, next) in touched {
        let Some(ca) = known.get(id) else { continue };
        let text = serde_json::to_string(ca).map_err(|e| StoreError::Corrupt {
            what: format!("customer {id}"),
            reason: e.to_string(),
        })?;
        rows.push(customer::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            customer_id: Set(id.clone()),
            state: Set(text),
            next_check_at: Set(*next),
        });
    }
    for chunk in rows.chunks(500) {
        customer::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([customer::Column::TenantId, customer::Column::CustomerId])
                    .update_columns([customer::Column::State, customer::Column::NextCheckAt])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Keeps the outcome of the customer's alerts still inside their effect window up to date.
async fn record_outcome(
    txn: &DatabaseTransaction,
    tenant: &str,
    customer_id: &str,
    ca: &CustomerAlerts,
    at: i64,
    window_ms: i64,
) -> Result<(), DbErr> {
    // Most customers have no alert in its effect window: nothing to write for them.
    if ca.outcome_until.is_none_or(|until| at > until) {
        return Ok(());
    }
    let s = &ca.facts.signals;
    let retained = !matches!(s.stage, Some(Stage::Churned | Stage::Dormant));
    alert::Entity::update_many()
        .col_expr(alert::Column::OutcomeScore, Expr::value(s.score))
        .col_expr(alert::Column::OutcomeSpend, Expr::value(s.spend_total))
        .col_expr(alert::Column::OutcomeRetained, Expr::value(retained))
        .col_expr(alert::Column::OutcomeAt, Expr::value(at))
        .filter(alert::Column::TenantId.eq(tenant))
        .filter(alert::Column::CustomerId.eq(customer_id))
        .filter(alert::Column::OpenedAt.gte(at - window_ms))
        .filter(alert::Column::OpenedAt.lte(at))
        .exec(txn)
        .await?;
    Ok(())
}

/// The change log of one tenant within one transaction: holds the tenant's revision row
/// (so writers of a tenant commit in revision order) and writes every change as a revision,
/// an audit row and webhook deliveries.
struct Log<'a> {
    tenant: &'a str,
    cfg: &'a LoadedConfig,
    start: i64,
    revision: i64,
    webhooks: Option<Vec<webhook::Model>>,
}

impl<'a> Log<'a> {
    async fn lock(
        txn: &DatabaseTransaction,
        tenant: &'a str,
        cfg: &'a LoadedConfig,
    ) -> Result<Log<'a>, StoreError> {
        use crate::entity::tenant;
        // The no-op update takes the row lock on PostgreSQL; SQLite's write transaction
        // already excludes other writers.
        tenant::Entity::insert(tenant::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            revision: Set(0),
        })
        .on_conflict(
            OnConflict::column(tenant::Column::TenantId)
                .value(
                    tenant::Column::Revision,
                    Expr::col((tenant::Entity, tenant::Column::Revision)),
                )
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        let revision = tenant::Entity::find_by_id(tenant.to_owned())
            .one(txn)
            .await?
            .map_or(0, |t| t.revision);
        Ok(Log {
            tenant,
            cfg,
            start: revision,
            revision,
            webhooks: None,
        })
    }

    async fn finish(self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        use crate::entity::tenant;
        if self.revision != self.start {
            tenant::Entity::update_many()
                .col_expr(tenant::Column::Revision, Expr::value(self.revision))
                .filter(tenant::Column::TenantId.eq(self.tenant))
                .exec(txn)
                .await?;
        }
        Ok(())
    }

    /// The one path every change of customers' alerts takes: applies their new observations
    /// (oldest first; stale ones are no-ops) after `prepare`, steps their rules after each
    /// (or once, at `now`, when there are none), applies the steps to alerts, follows effect
    /// outcomes, and saves what is known of them with when to look again.
    async fn step(
        &mut self,
        txn: &DatabaseTransaction,
        ids: BTreeSet<String>,
        observations: Vec<Observation>,
        now: i64,
        mut prepare: impl FnMut(&str, &mut CustomerAlerts),
    ) -> Result<Applied, StoreError> {
        let window_ms = self.cfg.config.effect_window_ms();
        let mut known = load_customers(txn, self.tenant, ids.clone()).await?;
        let mut observed: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
        for o in observations {
            observed.entry(o.customer_id.clone()).or_default().push(o);
        }
        let mut applied = Applied::default();
        let mut touched = BTreeMap::new();
        for id in ids {
            let ca = known.entry(id.clone()).or_default();
            prepare(&id, ca);
            let mut next = None;
            match observed.remove(&id) {
                None => {
                    let (effects, due) = ca.evaluate(&self.cfg.config, now);
                    self.apply(txn, &id, ca, effects, now, &mut applied).await?;
                    next = Some(due);
                }
                Some(list) => {
                    for o in list {
                        if !ca.facts.observe(o.signals, o.at) {
                            continue;
                        }
                        let (effects, due) = ca.evaluate(&self.cfg.config, now);
                        self.apply(txn, &id, ca, effects, now, &mut applied).await?;
                        record_outcome(txn, self.tenant, &id, ca, o.at, window_ms).await?;
                        next = Some(due);
                    }
                }
            }
            if let Some(due) = next {
                touched.insert(id, due);
            }
        }
        save_customers(txn, self.tenant, &known, &touched).await?;
        Ok(applied)
    }

    /// Applies one customer's steps to its alerts.
    async fn apply(
        &mut self,
        txn: &DatabaseTransaction,
        customer_id: &str,
        ca: &mut CustomerAlerts,
        effects: Vec<Effect>,
        now: i64,
        applied: &mut Applied,
    ) -> Result<(), StoreError> {
        for e in effects {
            if matches!(
                e.step,
                Step::Quiet | Step::Pending { .. } | Step::Resolving { .. }
            ) {
                continue;
            }
            let key = dedup_key(self.tenant, e.kind.name(), customer_id, &e.discriminator);
            let evidence = e.condition.as_ref().map(|c| c.evidence.clone());
            let s = &ca.facts.signals;
            match e.step {
                Step::Open { severity } => {
                    let holdout = rand::random::<f64>() < self.cfg.config.holdout_share;
                    let recommendations: Vec<Action> = if holdout {
                        Vec::new()
                    } else {
                        self.cfg.config.playbook.recommend(s.tier, e.kind)
                    };
                    let a = alert::ActiveModel {
                        id: NotSet,
                        tenant_id: Set(self.tenant.to_owned()),
                        rule: Set(e.kind.name().to_owned()),
                        customer_id: Set(customer_id.to_owned()),
                        dedup_key: Set(key.clone()),
                        open_key: Set(Some(key)),
                        state: Set(state::OPEN.to_owned()),
                        score: Set(s.score.unwrap_or(0.0)),
                        tier: Set(s.tier.map(|t| t.name().to_owned())),
                        trigger_count: Set(1),
                        opened_at: Set(now),
                        updated_at: Set(now),
                        resolved_at: Set(None),
                        severity: Set(Some(severity.name().to_owned())),
                        discriminator: Set(Some(e.discriminator.clone())),
                        evidence: Set(evidence.clone()),
                        snoozed_until: Set(None),
                        recommendations: Set(serde_json::to_string(&recommendations).ok()),
                        holdout: Set(Some(holdout)),
                        config_version: Set(Some(self.cfg.version.clone())),
                        baseline_score: Set(s.score),
                        baseline_spend: Set(Some(s.spend_total)),
                        outcome_score: Set(None),
                        outcome_spend: Set(None),
                        outcome_retained: Set(None),
                        outcome_at: Set(None),
                    }
                    .insert(txn)
                    .await?;
                    let reason = evidence.unwrap_or_default();
                    self.write(
                        txn,
                        &a,
                        Change::Opened,
                        None,
                        RULE_ACTOR,
                        &reason,
                        now,
                        true,
                    )
                    .await?;
                    applied.opened += 1;
                    ca.outcome_until = Some(now + self.cfg.config.effect_window_ms());
                }
                Step::Update {
                    severity,
                    counted,
                    escalated,
                } => {
                    let Some(a) = standing(txn, self.tenant, &key).await? else {
                        continue;
                    };
                    let from = a.state.clone();
                    let count = a.trigger_count.saturating_add(i32::from(counted));
                    let mut m: alert::ActiveModel = a.into();
                    m.trigger_count = Set(count);
                    m.severity = Set(Some(severity.name().to_owned()));
                    m.evidence = Set(evidence.clone());
                    m.score = Set(s.score.unwrap_or(0.0));
                    m.tier = Set(s.tier.map(|t| t.name().to_owned()));
                    m.updated_at = Set(now);
                    m.config_version = Set(Some(self.cfg.version.clone()));
                    let a = m.update(txn).await?;
                    let reason = if escalated {
                        format!(
                            "severity raised to {}: {}",
                            severity.name(),
                            a.evidence_text()
                        )
                    } else {
                        format!("triggered again: {}", a.evidence_text())
                    };
                    // A re-trigger is news to watchers; to webhooks only when it escalates.
                    self.write(
                        txn,
                        &a,
                        Change::Updated,
                        Some(&from),
                        RULE_ACTOR,
                        &reason,
                        now,
                        escalated,
                    )
                    .await?;
                    applied.updated += 1;
                }
                Step::Resolve => {
                    let Some(a) = standing(txn, self.tenant, &key).await? else {
                        continue;
                    };
                    let from = a.state.clone();
                    let mut m: alert::ActiveModel = a.into();
                    m.state = Set(state::RESOLVED.to_owned());
                    m.open_key = Set(None);
                    m.resolved_at = Set(Some(now));
                    m.snoozed_until = Set(None);
                    m.updated_at = Set(now);
                    m.score = Set(s.score.unwrap_or(0.0));
                    m.config_version = Set(Some(self.cfg.version.clone()));
                    let a = m.update(txn).await?;
                    let reason = match &e.condition {
                        Some(c) => format!("exit condition held: {}", c.evidence),
                        None => "the rule no longer applies to the customer".to_owned(),
                    };
                    self.write(
                        txn,
                        &a,
                        Change::Resolved,
                        Some(&from),
                        RULE_ACTOR,
                        &reason,
                        now,
                        true,
                    )
                    .await?;
                    applied.resolved += 1;
                }
                Step::Quiet | Step::Pending { .. } | Step::Resolving { .. } => {}
            }
        }
        Ok(())
    }

    /// Records a change of alert `a`: a revision, an audit row, and (when `notify`) a delivery
    /// per enabled webhook.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &mut self,
        txn: &DatabaseTransaction,
        a: &Alert,
        change: Change,
        from: Option<&str>,
        actor: &str,
        reason: &str,
        now: i64,
        notify: bool,
    ) -> Result<(), StoreError> {
        self.revision += 1;
        rapport_telemetry::metrics::metrics()
            .alert_changes
            .get_or_create(&vec![
                ("rule", a.rule.clone()),
                ("change", change.name().to_owned()),
            ])
            .inc();
        let json = serde_json::to_string(a).map_err(|e| StoreError::Corrupt {
            what: format!("alert {}", a.id),
            reason: e.to_string(),
        })?;
        revision::Entity::insert(revision::ActiveModel {
            tenant_id: Set(self.tenant.to_owned()),
            revision: Set(self.revision),
            alert_id: Set(a.id),
            change: Set(change.name().to_owned()),
            actor: Set(actor.to_owned()),
            reason: Set(reason.to_owned()),
            alert: Set(json),
            at: Set(now),
        })
        .exec_without_returning(txn)
        .await?;
        transition::Entity::insert(transition::ActiveModel {
            id: NotSet,
            tenant_id: Set(self.tenant.to_owned()),
            alert_id: Set(a.id),
            from_state: Set(from.map(str::to_owned)),
            to_state: Set(a.state.clone()),
            actor: Set(actor.to_owned()),
            reason: Set(reason.to_owned()),
            at: Set(now),
            config_version: Set(Some(self.cfg.version.clone())),
        })
        .exec_without_returning(txn)
        .await?;
        if notify {
            if self.webhooks.is_none() {
                self.webhooks = Some(webhooks::enabled(txn, self.tenant).await?);
            }
            let endpoints = self.webhooks.as_deref().unwrap_or_default();
            webhooks::enqueue(txn, self.tenant, endpoints, a, change, self.revision, now).await?;
        }
        Ok(())
    }
}

/// The standing alert of a dedup key.
async fn standing(
    txn: &DatabaseTransaction,
    tenant: &str,
    key: &str,
) -> Result<Option<Alert>, DbErr> {
    alert::Entity::find()
        .filter(alert::Column::TenantId.eq(tenant))
        .filter(alert::Column::OpenKey.eq(key))
        .one(txn)
        .await
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
