//! What is kept per tenant: model fits, scorecard versions and percentile tables.

use super::*;

impl Store {
    /// Records a model fit.
    pub async fn save_fit(&self, tenant: &str, fit: &FitRecord) -> Result<(), StoreError> {
        model_fit::Entity::insert(model_fit::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            model: Set(fit.model.to_owned()),
            params: Set(serde_json::to_string(&fit.params).unwrap_or_else(|_| "{}".to_owned())),
            log_likelihood: Set(fit.log_likelihood),
            iterations: Set(i32::try_from(fit.iterations).unwrap_or(i32::MAX)),
            converged: Set(fit.converged),
            customers: Set(i64::try_from(fit.customers).unwrap_or(i64::MAX)),
            error: Set(fit.error.clone()),
            observation_end: Set(fit.observation_end),
            fitted_at: Set(fit.fitted_at),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The parameters of the latest converged fit of `model`, if any.
    pub async fn latest_params(
        &self,
        tenant: &str,
        model: &str,
    ) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        let row = model_fit::Entity::find()
            .filter(model_fit::Column::TenantId.eq(tenant))
            .filter(model_fit::Column::Model.eq(model))
            .filter(model_fit::Column::Error.is_null())
            .filter(model_fit::Column::Converged.eq(true))
            .order_by_desc(model_fit::Column::Id)
            .one(&self.db)
            .await?;
        row.map(|r| json(&format!("model fit {}", r.id), &r.params))
            .transpose()
    }

    /// The tenant's latest scorecard, if it set one.
    pub async fn scorecard(&self, tenant: &str) -> Result<Option<StoredScorecard>, StoreError> {
        Ok(scorecard::Entity::find()
            .filter(scorecard::Column::TenantId.eq(tenant))
            .order_by_desc(scorecard::Column::Revision)
            .one(&self.db)
            .await?
            .map(|r| StoredScorecard {
                revision: r.revision,
                toml: r.toml,
                created_at: r.created_at,
            }))
    }

    /// Stores a (validated) scorecard as the tenant's next revision.
    pub async fn save_scorecard(
        &self,
        tenant: &str,
        toml: &str,
        now: i64,
    ) -> Result<StoredScorecard, StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        // Replicas setting a tenant's scorecard at once take turns: each reads the last
        // revision after the one before it committed.
        rapport_storage::coordination::lock_until_commit(&txn, "scoring_scorecards", tenant)
            .await?;
        let revision = scorecard::Entity::find()
            .filter(scorecard::Column::TenantId.eq(tenant))
            .order_by_desc(scorecard::Column::Revision)
            .one(&txn)
            .await?
            .map_or(1, |r| r.revision + 1);
        scorecard::Entity::insert(scorecard::ActiveModel {
            id: NotSet,
            tenant_id: Set(tenant.to_owned()),
            revision: Set(revision),
            toml: Set(toml.to_owned()),
            created_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(StoredScorecard {
            revision,
            toml: toml.to_owned(),
            created_at: now,
        })
    }

    /// The tenant's percentile tables, and how many customers they were computed over.
    pub async fn population(&self, tenant: &str) -> Result<(Population, u64), StoreError> {
        let rows = population::Entity::find()
            .filter(population::Column::TenantId.eq(tenant))
            .all(&self.db)
            .await?;
        let walked = rows
            .iter()
            .map(|r| r.customers.max(0) as u64)
            .max()
            .unwrap_or(0);
        let tables = rows
            .into_iter()
            .map(|r| {
                let table: PercentileTable =
                    json(&format!("population {}", r.measure), &r.quantiles)?;
                Ok((r.measure, table))
            })
            .collect::<Result<Population, StoreError>>()?;
        Ok((tables, walked))
    }

    /// Replaces the tenant's percentile tables, each with the customers walked to make it.
    pub async fn save_population(
        &self,
        tenant: &str,
        tables: &[(String, PercentileTable, u64)],
        now: i64,
    ) -> Result<(), StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        population::Entity::delete_many()
            .filter(population::Column::TenantId.eq(tenant))
            .exec(&txn)
            .await?;
        for (measure, table, customers) in tables {
            population::Entity::insert(population::ActiveModel {
                tenant_id: Set(tenant.to_owned()),
                measure: Set(measure.clone()),
                quantiles: Set(to_json(measure, table)?),
                customers: Set(i64::try_from(*customers).unwrap_or(i64::MAX)),
                computed_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
