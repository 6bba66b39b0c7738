//! The alerts one step of the rules reads and changes, held in memory under the tenant's
//! lock: read in one statement, changed in place, and written back in one statement, rather
//! than a read and a write per alert changed (a batch of a thousand scores changes hundreds).

use super::*;
use sea_orm::IdenStatic;
use std::collections::HashMap;

/// Customers per statement when reading alerts.
const READ_CHUNK: usize = 500;

/// Columns of `alerting_alerts` a step may change, with their SQL types (for reading them back
/// from JSON in PostgreSQL's one-statement write).
const CHANGEABLE: [(alert::Column, &str); 16] = [
    (alert::Column::OpenKey, "text"),
    (alert::Column::State, "text"),
    (alert::Column::Score, "float8"),
    (alert::Column::Tier, "text"),
    (alert::Column::TriggerCount, "integer"),
    (alert::Column::UpdatedAt, "bigint"),
    (alert::Column::ResolvedAt, "bigint"),
    (alert::Column::Severity, "text"),
    (alert::Column::Evidence, "text"),
    (alert::Column::SnoozedUntil, "bigint"),
    (alert::Column::ConfigVersion, "text"),
    (alert::Column::OutcomeScore, "float8"),
    (alert::Column::OutcomeSpend, "float8"),
    (alert::Column::OutcomeRetained, "boolean"),
    (alert::Column::OutcomeAt, "bigint"),
    (alert::Column::Priority, "float8"),
];

/// The alerts of a step's customers that it can change: their standing alerts, and those
/// opened within the effect window of an observation being applied.
#[derive(Default)]
pub(super) struct Alerts {
    by_id: BTreeMap<i64, Alert>,
    /// Each customer's alerts held.
    by_customer: HashMap<String, Vec<i64>>,
    /// The standing alert of each open key.
    standing: HashMap<String, i64>,
    /// Alerts changed since the last write.
    dirty: BTreeSet<i64>,
    /// Open keys that changed alerts gave up (resolved) since the last write: the database
    /// still holds them until it is written.
    released: BTreeSet<String>,
}

impl Alerts {
    /// Reads the standing alerts of `customers`, and the alerts of `windowed` customers opened
    /// at or after `since` (those an observation's effect outcome may touch).
    pub(super) async fn read(
        txn: &DatabaseTransaction,
        tenant: &str,
        customers: &BTreeSet<String>,
        windowed: &BTreeSet<String>,
        since: i64,
    ) -> Result<Alerts, DbErr> {
        let mut alerts = Alerts::default();
        let customers: Vec<&String> = customers.iter().collect();
        for chunk in customers.chunks(READ_CHUNK) {
            let in_window: Vec<&String> = chunk
                .iter()
                .copied()
                .filter(|c| windowed.contains(*c))
                .collect();
            let mut wanted = sea_orm::Condition::any().add(alert::Column::OpenKey.is_not_null());
            if !in_window.is_empty() {
                wanted = wanted.add(
                    sea_orm::Condition::all()
                        .add(alert::Column::CustomerId.is_in(in_window))
                        .add(alert::Column::OpenedAt.gte(since)),
                );
            }
            let rows = alert::Entity::find()
                .filter(alert::Column::TenantId.eq(tenant))
                .filter(alert::Column::CustomerId.is_in(chunk.iter().copied()))
                .filter(wanted)
                .all(txn)
                .await?;
            for a in rows {
                alerts.keep(a);
            }
        }
        Ok(alerts)
    }

    fn keep(&mut self, a: Alert) {
        if let Some(key) = &a.open_key {
            self.standing.insert(key.clone(), a.id);
        }
        let held = self.by_customer.entry(a.customer_id.clone()).or_default();
        if !held.contains(&a.id) {
            held.push(a.id);
        }
        self.by_id.insert(a.id, a);
    }

    /// The standing alert of an open key.
    pub(super) fn standing(&self, key: &str) -> Option<&Alert> {
        self.standing.get(key).and_then(|id| self.by_id.get(id))
    }

    /// Whether opening an alert under `key` must wait for the changes held: an alert that
    /// gave the key up is still stored holding it.
    pub(super) fn holds_released(&self, key: &str) -> bool {
        self.released.contains(key)
    }

    /// Takes in an alert just inserted.
    pub(super) fn opened(&mut self, a: Alert) {
        self.keep(a);
    }

    /// Takes in a changed alert, to be written by [`Alerts::write`].
    pub(super) fn changed(&mut self, a: Alert) {
        if let Some(old) = self.by_id.get(&a.id)
            && let Some(key) = &old.open_key
            && a.open_key.as_ref() != Some(key)
        {
            self.standing.remove(key);
            self.released.insert(key.clone());
        }
        self.dirty.insert(a.id);
        self.keep(a);
    }

    /// Records the customer's health as the outcome of its alerts opened within the effect
    /// window before `at` (`window_ms`), as of the observation at `at`.
    pub(super) fn record_outcome(
        &mut self,
        customer_id: &str,
        ca: &CustomerAlerts,
        at: i64,
        window_ms: i64,
    ) {
        // Most customers have no alert in its effect window: nothing to write for them.
        if ca.outcome_until.is_none_or(|until| at > until) {
            return;
        }
        let s = &ca.facts.signals;
        let retained = !matches!(s.stage, Some(Stage::Churned | Stage::Dormant));
        let held = self.by_customer.get(customer_id).into_iter().flatten();
        for id in held {
            let Some(a) = self.by_id.get_mut(id) else {
                continue;
            };
            if (at - window_ms..=at).contains(&a.opened_at) {
                a.outcome_score = s.score;
                a.outcome_spend = Some(s.spend_total);
                a.outcome_retained = Some(retained);
                a.outcome_at = Some(at);
                self.dirty.insert(a.id);
            }
        }
    }

    /// Writes the changed alerts: on PostgreSQL in one statement, on SQLite (in-process,
    /// where a statement costs no round trip) one each.
    pub(super) async fn write(&mut self, txn: &DatabaseTransaction) -> Result<(), StoreError> {
        let changed: Vec<&Alert> = self
            .dirty
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
            let rows = serde_json::to_string(&changed).map_err(|e| StoreError::Corrupt {
                what: "changed alerts".to_owned(),
                reason: e.to_string(),
            })?;
            let set: Vec<String> = CHANGEABLE
                .iter()
                .map(|(c, _)| format!("{0} = v.{0}", c.as_str()))
                .collect();
            let types: Vec<String> = CHANGEABLE
                .iter()
                .map(|(c, t)| format!("{} {t}", c.as_str()))
                .collect();
            let sql = format!(
                "UPDATE alerting_alerts AS a SET {} \
                 FROM json_to_recordset($1::json) AS v(id bigint, {}) WHERE a.id = v.id",
                set.join(", "),
                types.join(", ")
            );
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                sql,
                [rows.into()],
            ))
            .await?;
        } else {
            for a in changed {
                let mut m: alert::ActiveModel = a.clone().into();
                for (c, _) in CHANGEABLE {
                    m.reset(c);
                }
                m.update(txn).await?;
            }
        }
        self.dirty.clear();
        self.released.clear();
        Ok(())
    }
}
