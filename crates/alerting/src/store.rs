//! Alerting's storage: applies rule decisions to alerts, with an audit row per transition.

use crate::entity::{alert, transition};
use rapport_domain::alert::{Decision, HealthBelow, dedup_key};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

/// Errors of alerting's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// An alert as stored.
pub type Alert = alert::Model;

/// A new score to evaluate.
#[derive(Debug, Clone)]
pub struct ScoreEvent {
    pub customer_id: String,
    pub score: f64,
    pub tier: Option<String>,
}

/// Filter of [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub state: Option<&'static str>,
    pub customer_id: Option<String>,
}

/// Alerting's tables.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// The actor name of transitions made by rule evaluation.
const RULE_ACTOR: &str = "rule";

impl Store {
    /// The store on an already migrated database.
    pub fn new(db: DatabaseConnection) -> Self {
        Store { db }
    }

    /// Evaluates the health rule on new scores and opens, updates or resolves alerts.
    /// Returns how many alerts were opened.
    pub async fn evaluate(
        &self,
        tenant: &str,
        rule: &HealthBelow,
        scores: &[ScoreEvent],
        now: i64,
    ) -> Result<usize, StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        let mut opened = 0;
        for s in scores {
            let key = dedup_key(tenant, HealthBelow::NAME, &s.customer_id);
            let open = alert::Entity::find()
                .filter(alert::Column::TenantId.eq(tenant))
                .filter(alert::Column::OpenKey.eq(key.as_str()))
                .one(&txn)
                .await?;
            match (rule.decide(open.is_some(), s.score), open) {
                (Decision::Open, _) => {
                    let created = alert::ActiveModel {
                        id: NotSet,
                        tenant_id: Set(tenant.to_owned()),
                        rule: Set(HealthBelow::NAME.to_owned()),
                        customer_id: Set(s.customer_id.clone()),
                        dedup_key: Set(key.clone()),
                        open_key: Set(Some(key)),
                        state: Set("open".to_owned()),
                        score: Set(s.score),
                        tier: Set(s.tier.clone()),
                        trigger_count: Set(1),
                        opened_at: Set(now),
                        updated_at: Set(now),
                        resolved_at: Set(None),
                    }
                    .insert(&txn)
                    .await?;
                    let reason = format!("health {:.1} fell below {}", s.score, rule.enter_below);
                    audit(&txn, tenant, created.id, None, "open", &reason, now).await?;
                    opened += 1;
                }
                (Decision::Retrigger, Some(a)) => {
                    let count = a.trigger_count.saturating_add(1);
                    let mut a: alert::ActiveModel = a.into();
                    a.trigger_count = Set(count);
                    a.score = Set(s.score);
                    a.tier = Set(s.tier.clone());
                    a.updated_at = Set(now);
                    a.update(&txn).await?;
                }
                (Decision::Resolve, Some(a)) => {
                    let id = a.id;
                    let mut a: alert::ActiveModel = a.into();
                    a.state = Set("resolved".to_owned());
                    a.open_key = Set(None);
                    a.score = Set(s.score);
                    a.updated_at = Set(now);
                    a.resolved_at = Set(Some(now));
                    a.update(&txn).await?;
                    let reason = format!("health {:.1} reached {}", s.score, rule.exit_at_or_above);
                    audit(&txn, tenant, id, Some("open"), "resolved", &reason, now).await?;
                }
                _ => {}
            }
        }
        txn.commit().await?;
        Ok(opened)
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
        Ok(query
            .order_by_desc(alert::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}

async fn audit<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    alert_id: i64,
    from: Option<&str>,
    to: &str,
    reason: &str,
    at: i64,
) -> Result<(), DbErr> {
    transition::Entity::insert(transition::ActiveModel {
        id: NotSet,
        tenant_id: Set(tenant.to_owned()),
        alert_id: Set(alert_id),
        from_state: Set(from.map(str::to_owned)),
        to_state: Set(to.to_owned()),
        actor: Set(RULE_ACTOR.to_owned()),
        reason: Set(reason.to_owned()),
        at: Set(at),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
