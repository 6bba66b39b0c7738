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

/// What is known of customers' alerts.
pub(super) async fn load_customers(
    txn: &DatabaseTransaction,
    tenant: &str,
    ids: BTreeSet<String>,
) -> Result<BTreeMap<String, CustomerAlerts>, StoreError> {
    Ok(load_known(txn, tenant, ids).await?.0)
}

/// When a customer is next to be looked at again: the time stored if it is still to come and
/// no later than `due` (looking early only evaluates once more), else `due`. Keeping the
/// stored time keeps the row's update off the index of times (an update in place), where
/// moving it with every observation rewrote every index of the table.
pub(super) fn next_look(stored: Option<i64>, due: Option<i64>, now: i64) -> Option<i64> {
    match stored {
        Some(s) if s > now && due.is_none_or(|d| s <= d) => Some(s),
        _ => due,
    }
}

/// What is known of customers' alerts, and when each is stored to be looked at again.
pub(super) async fn load_known(
    txn: &DatabaseTransaction,
    tenant: &str,
    ids: BTreeSet<String>,
) -> Result<
    (
        BTreeMap<String, CustomerAlerts>,
        BTreeMap<String, Option<i64>>,
    ),
    StoreError,
> {
    let mut out = BTreeMap::new();
    let mut looks = BTreeMap::new();
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
            looks.insert(row.customer_id.clone(), row.next_check_at);
            out.insert(row.customer_id, ca);
        }
    }
    Ok((out, looks))
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
    /// Revisions and audit rows written so far, inserted together by [`Log::finish`].
    revisions: Vec<revision::ActiveModel>,
    transitions: Vec<transition::ActiveModel>,
}

/// Rows per multi-row INSERT of revisions and audit rows: within both databases' limits on
/// a statement's parameters.
const LOG_CHUNK: usize = 500;

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
            revisions: Vec::new(),
            transitions: Vec::new(),
        })
    }

    pub(super) async fn finish(
        self,
        txn: &DatabaseTransaction,
        now: i64,
    ) -> Result<(), StoreError> {
        use crate::entity::tenant;
        for chunk in self.revisions.chunks(LOG_CHUNK) {
            revision::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await?;
        }
        for chunk in self.transitions.chunks(LOG_CHUNK) {
            transition::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await?;
        }
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
        let (mut known, looks) = load_known(txn, self.tenant, ids.clone()).await?;
        let mut observed: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
        for o in observations {
            observed.entry(o.customer_id.clone()).or_default().push(o);
        }
        // An alert an observation's outcome reaches was opened within the window before it,
        // so its customer's outcome period already reaches the observation.
        let windowed: BTreeSet<String> = observed
            .iter()
            .filter(|(id, list)| {
                let first = list.iter().map(|o| o.at).min().unwrap_or(i64::MAX);
                known
                    .get(*id)
                    .and_then(|ca| ca.outcome_until)
                    .is_some_and(|until| until >= first)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let since = observed
            .values()
            .flatten()
            .map(|o| o.at)
            .min()
            .map_or(i64::MAX, |at| at.saturating_sub(window_ms));
        let mut alerts = Alerts::read(txn, self.tenant, &ids, &windowed, since).await?;
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
                    self.apply(txn, &mut alerts, &id, ca, effects, now, &mut applied)
                        .await?;
                    next = Some(due);
                }
                Some(list) => {
                    for o in list {
                        if !ca.facts.observe(o.signals, o.at) {
                            continue;
                        }
                        self.backfill = o.backfill;
                        let (effects, due) = ca.evaluate(&self.cfg.config, now);
                        self.apply(txn, &mut alerts, &id, ca, effects, now, &mut applied)
                            .await?;
                        alerts.record_outcome(&id, ca, o.at, window_ms);
                        next = Some(due);
                    }
                }
            }
            self.stages.insert(id.clone(), ca.facts.signals.stage);
            if let Some(due) = next {
                let stored = looks.get(&id).copied().flatten();
                touched.insert(id, next_look(stored, due, now));
            }
        }
        alerts.write(txn).await?;
        save_customers(txn, self.tenant, &known, &touched).await?;
        Ok(applied)
    }

    /// Applies one customer's steps to its alerts.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply(
        &mut self,
        txn: &DatabaseTransaction,
        alerts: &mut Alerts,
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
                    if alerts.holds_released(&key) {
                        alerts.write(txn).await?;
                    }
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
                    alerts.opened(a.clone());
                    let reason = evidence.unwrap_or_default();
                    self.write(&a, Change::Opened, None, RULE_ACTOR, &reason, now, true)?;
                    applied.opened += 1;
                    ca.outcome_until = Some(now + self.cfg.config.effect_window_ms());
                }
                Step::Update {
                    severity,
                    counted,
                    escalated,
                } => {
                    let Some(mut a) = alerts.standing(&key).cloned() else {
                        continue;
                    };
                    let from = a.state.clone();
                    a.trigger_count = a.trigger_count.saturating_add(i32::from(counted));
                    a.severity = Some(severity.name().to_owned());
                    a.priority = Some(priority(severity, s.tier, fall(&ca.facts, now)));
                    a.evidence = evidence.clone();
                    a.score = s.score.unwrap_or(0.0);
                    a.tier = s.tier.map(|t| t.name().to_owned());
                    a.updated_at = now;
                    a.config_version = Some(self.cfg.version.clone());
                    alerts.changed(a.clone());
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
                        &a,
                        Change::Updated,
                        Some(&from),
                        RULE_ACTOR,
                        &reason,
                        now,
                        escalated,
                    )?;
                    applied.updated += 1;
                }
                Step::Resolve => {
                    let Some(mut a) = alerts.standing(&key).cloned() else {
                        continue;
                    };
                    let from = a.state.clone();
                    a.state = state::RESOLVED.to_owned();
                    a.open_key = None;
                    a.resolved_at = Some(now);
                    a.snoozed_until = None;
                    a.updated_at = now;
                    a.score = s.score.unwrap_or(0.0);
                    a.config_version = Some(self.cfg.version.clone());
                    alerts.changed(a.clone());
                    let reason = match &e.condition {
                        Some(c) => format!("exit condition held: {}", c.evidence),
                        None => "the rule no longer applies to the customer".to_owned(),
                    };
                    self.write(
                        &a,
                        Change::Resolved,
                        Some(&from),
                        RULE_ACTOR,
                        &reason,
                        now,
                        true,
                    )?;
                    applied.resolved += 1;
                }
                Step::Quiet | Step::Pending { .. } | Step::Resolving { .. } => {}
            }
        }
        Ok(())
    }

    /// Records a change of alert `a`: a revision, an audit row, and (when `notify`) what it
    /// means to the tenant's webhook endpoints; [`Log::finish`] writes them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write(
        &mut self,
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
        self.revisions.push(revision::ActiveModel {
            tenant_id: Set(self.tenant.to_owned()),
            revision: Set(self.revision),
            alert_id: Set(a.id),
            change: Set(change.name().to_owned()),
            actor: Set(actor.to_owned()),
            reason: Set(reason.to_owned()),
            alert: Set(json),
            at: Set(now),
        });
        self.transitions.push(transition::ActiveModel {
            id: NotSet,
            tenant_id: Set(self.tenant.to_owned()),
            alert_id: Set(a.id),
            from_state: Set(from.map(str::to_owned)),
            to_state: Set(a.state.clone()),
            actor: Set(actor.to_owned()),
            reason: Set(reason.to_owned()),
            at: Set(now),
            config_version: Set(Some(self.cfg.version.clone())),
        });
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

#[cfg(test)]
mod tests {
    use super::next_look;

    #[test]
    fn a_stored_look_to_come_stays_unless_a_sooner_one_is_due() {
        let now = 1_000;
        // Still to come and no later than needed: kept (an early look only evaluates again).
        assert_eq!(next_look(Some(1_500), Some(2_000), now), Some(1_500));
        assert_eq!(next_look(Some(1_500), None, now), Some(1_500));
        // Sooner is due: the sooner one.
        assert_eq!(next_look(Some(1_500), Some(1_200), now), Some(1_200));
        // Passed or never stored: what is due now.
        assert_eq!(next_look(Some(900), Some(2_000), now), Some(2_000));
        assert_eq!(next_look(Some(1_000), None, now), None);
        assert_eq!(next_look(None, Some(2_000), now), Some(2_000));
    }
}
