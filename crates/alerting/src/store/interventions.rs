//! Interventions recorded against alerts, and the outcomes the effect report compares.

use super::*;

impl Store {
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

    /// The newest `limit` interventions made on a customer's alerts, newest first.
    pub async fn customer_interventions(
        &self,
        tenant: &str,
        customer_id: &str,
        limit: u64,
    ) -> Result<Vec<Intervention>, StoreError> {
        let alerts: Vec<i64> = alert::Entity::find()
            .select_only()
            .column(alert::Column::Id)
            .filter(alert::Column::TenantId.eq(tenant))
            .filter(alert::Column::CustomerId.eq(customer_id))
            .into_tuple::<i64>()
            .all(&self.db)
            .await?;
        let mut out = Vec::new();
        for chunk in alerts.chunks(500) {
            out.extend(
                intervention::Entity::find()
                    .filter(intervention::Column::TenantId.eq(tenant))
                    .filter(intervention::Column::AlertId.is_in(chunk.to_vec()))
                    .order_by_desc(intervention::Column::At)
                    .order_by_desc(intervention::Column::Id)
                    .limit(limit)
                    .all(&self.db)
                    .await?,
            );
        }
        out.sort_by_key(|i| std::cmp::Reverse((i.at, i.id)));
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
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
