//! The log of one tenant's alert changes, written under the tenant's lock: the rules'
//! steps and people's actions become alert rows, audit rows, a watch revision and webhook
//! deliveries, in the transaction that made them.

use super::*;
use rapport_domain::alert::priority::{fall, priority};

/// The track key of a stored alert.
pub(super) fn track_key_of(a: &Alert) -> Option<String> {
    rapport_domain::alert::RuleKind::from_name(&a.rule)
        .map(|k| track_key(k, a.discriminator.as_deref().unwrap_or("")))
}

pub(super) async fn find_alert<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: i64,
) -> Result<Option<Alert>, DbErr> {
    alert::Entity::find_by_id(id)
        .filter(alert::Column::TenantId.eq(tenant))
        .one(conn)
        .await
}

pub(super) async fn load_customers(
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

pub(super) async fn save_customers(
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
pub(super) async fn record_outcome(
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
pub(super) struct Log<'a> {
    tenant: &'a str,
    cfg: &'a LoadedConfig,
    start: i64,
    revision: i64,
    /// Notifying changes, for the endpoints' notices at the end.
    noted: Vec<notices::Noted>,
    /// The stages of the customers stepped, as their facts say.
    stages: BTreeMap<String, Option<Stage>>,
    /// The backfill of the observation being applied, if it came from one.
    backfill: Option<String>,
}

/// Takes the tenant's lock until the transaction ends (every writer of the tenant's alerts,
/// notices and groups takes it first) and answers the tenant's revision.
pub(super) async fn lock_tenant(txn: &DatabaseTransaction, tenant: &str) -> Result<i64, DbErr> {
    use crate::entity::tenant;
    // The no-op update takes the row lock on PostgreSQL; SQLite's write transaction already
    // excludes other writers.
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
    Ok(tenant::Entity::find_by_id(tenant.to_owned())
        .one(txn)
        .await?
        .map_or(0, |t| t.revision))
}

impl<'a> Log<'a> {
    pub(super) async fn lock(
        txn: &DatabaseTransaction,
        tenant: &'a str,
        cfg: &'a LoadedConfig,
    ) -> Result<Log<'a>, StoreError> {
        let revision = lock_tenant(txn, tenant).await?;
        Ok(Log {
            tenant,
            cfg,
            start: revision,
            revision,
            noted: Vec::new(),
            stages: BTreeMap::new(),
            backfill: None,
        })
    }

    pub(super) async fn finish(
        self,
        txn: &DatabaseTransaction,
        now: i64,
    ) -> Result<(), StoreError> {
        use crate::entity::tenant;
        notices::record(txn, self.tenant, self.noted, &self.stages, now).await?;
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
    pub(super) async fn step(
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
            self.backfill = None;
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
                        self.backfill = o.backfill;
                        let (effects, due) = ca.evaluate(&self.cfg.config, now);
                        self.apply(txn, &id, ca, effects, now, &mut applied).await?;
                        record_outcome(txn, self.tenant, &id, ca, o.at, window_ms).await?;
                        next = Some(due);
                    }
                }
            }
            self.stages.insert(id.clone(), ca.facts.signals.stage);
            if let Some(due) = next {
                touched.insert(id, due);
            }
        }
        save_customers(txn, self.tenant, &known, &touched).await?;
        Ok(applied)
    }

    /// Applies one customer's steps to its alerts.
    pub(super) async fn apply(
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
                        priority: Set(Some(priority(severity, s.tier, fall(&ca.facts, now)))),
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
                    m.priority = Set(Some(priority(severity, s.tier, fall(&ca.facts, now))));
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

    /// Records a change of alert `a`: a revision, an audit row, and (when `notify`) what it
    /// means to the tenant's webhook endpoints.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write(
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
            self.noted.push(notices::Noted {
                alert: a.clone(),
                change,
                revision: self.revision,
                backfill: self.backfill.clone(),
            });
        }
        Ok(())
    }
}

/// The standing alert of a dedup key.
pub(super) async fn standing(
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
