//! Customers' rows and their scores: reading states, saving folds and re-scores (refused
//! when the customer changed meanwhile), tiers and overrides.

use super::*;

impl Store {
    /// The stored state of some customers (absent ones are new).
    pub async fn states(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, CustomerState>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            // The customers' rows and their scores' as of one moment.
            let txn = rapport_storage::begin_read(&self.db).await?;
            let rows = customer::Entity::find()
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::CustomerId.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?;
            let scores = scores(
                &txn,
                tenant,
                score::Column::CustomerId.is_in(chunk.iter().cloned()),
            )
            .await?;
            txn.commit().await?;
            for row in with_scores(rows, &scores) {
                let row = row?;
                out.insert(row.customer_id, row.state);
            }
        }
        Ok(out)
    }

    /// Stores customers' new states (`Columns::All`, after folding events) or only their new
    /// scores (`Columns::Score`, a re-score that must not overwrite metrics folded meanwhile),
    /// their new snapshots and the outbox rows to alerting, in one transaction, with
    /// multi-row statements. The metrics and the score are rows of two tables: a re-score
    /// writes only the narrow one.
    ///
    /// Each state is stored only if the customer's row is still at the revision it was read
    /// at (`CustomerState::revision`); the others are answered as stale, to be read and
    /// computed again. So replicas (or two calls of one) writing a customer at once never
    /// lose an update nor put an older state over a newer one. A fold moves the revision;
    /// a re-score records the revision its score was computed from.
    pub async fn save(
        &self,
        tenant: &str,
        rescored: &[Rescored],
        columns: Columns,
        traceparent: Option<String>,
    ) -> Result<Saved, StoreError> {
        let mut saved = Saved::default();
        if rescored.is_empty() {
            return Ok(saved);
        }
        // Rows are written in id order, as every writer of them does (walks read in that
        // order): two transactions locking rows in opposite orders would deadlock.
        let mut ordered: Vec<&Rescored> = rescored.iter().collect();
        ordered.sort_unstable_by(|a, b| a.customer_id.cmp(&b.customer_id));
        let txn = rapport_storage::begin_bulk_write(&self.db).await?;
        let backend = txn.get_database_backend();
        for chunk in ordered.chunks(ROWS_PER_INSERT) {
            let mut current: Vec<&Rescored> = match columns {
                Columns::All => {
                    let won = returned_ids(&txn, upsert_customers(backend, tenant, chunk)?).await?;
                    let (current, stale): (Vec<&Rescored>, Vec<&Rescored>) = chunk
                        .iter()
                        .copied()
                        .partition(|r| won.contains(r.customer_id.as_str()));
                    saved
                        .stale
                        .extend(stale.into_iter().map(|r| r.customer_id.clone()));
                    current
                }
                Columns::Score => chunk.to_vec(),
            };
            let won = returned_ids(&txn, upsert_scores(backend, tenant, &current, columns)).await?;
            current.retain(|r| {
                // A state without a score row has only its snapshot, if anything, to store.
                let stored = !has_score_row(&r.state) || won.contains(r.customer_id.as_str());
                if stored {
                    saved.stored.insert(r.customer_id.clone());
                } else if columns == Columns::Score {
                    saved.stale.push(r.customer_id.clone());
                }
                stored
            });
            if let Some(insert) = insert_snapshots(backend, tenant, &current) {
                txn.execute_raw(insert).await?;
            }
        }
        let scores: Vec<ScoreChange> = rescored
            .iter()
            .filter(|r| saved.stored.contains(&r.customer_id))
            .filter_map(|r| r.notification.clone())
            .collect();
        if !scores.is_empty() {
            OUTBOX
                .push(
                    &txn,
                    tenant,
                    SCORE_CHANGES,
                    score_changes(scores),
                    traceparent,
                )
                .await?;
        }
        txn.commit().await?;
        Ok(saved)
    }

    /// Records new tiers (and stages, when given) of existing customers, each unless a newer
    /// grading run already set the customer's; answers the customers updated. Each update
    /// moves the customer's revision, so a score computed before it is not stored after it.
    pub async fn apply_tiers(
        &self,
        tenant: &str,
        tiers: &[TierChange],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        use sea_orm::sea_query::ExprTrait as _;
        let txn = rapport_storage::begin_write(&self.db).await?;
        let mut updated = Vec::with_capacity(tiers.len());
        // In id order, as every writer of these rows locks them (see `save`).
        let mut ordered: Vec<&TierChange> = tiers.iter().collect();
        ordered.sort_unstable_by(|a, b| a.customer_id.cmp(&b.customer_id));
        for change in ordered {
            let mut update = customer::Entity::update_many()
                .col_expr(customer::Column::Tier, Expr::value(change.tier.name()))
                .col_expr(
                    customer::Column::Revision,
                    Expr::col(customer::Column::Revision).add(1),
                )
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::CustomerId.eq(change.customer_id.as_str()));
            if let Some(graded_at) = change.graded_at {
                update = update
                    .col_expr(customer::Column::GradedAt, Expr::value(graded_at))
                    .filter(
                        customer::Column::GradedAt
                            .is_null()
                            .or(customer::Column::GradedAt.lte(graded_at)),
                    );
            }
            if let Some(stage) = change.stage {
                // The stage's start moves only when the stage changes.
                update = update
                    .col_expr(
                        customer::Column::StageSince,
                        Expr::case(
                            customer::Column::Stage.eq(stage.name()),
                            Expr::col(customer::Column::StageSince),
                        )
                        .finally(now)
                        .into(),
                    )
                    .col_expr(customer::Column::Stage, Expr::value(stage.name()));
            }
            if update.exec(&txn).await?.rows_affected > 0 {
                updated.push(change.customer_id.clone());
            }
        }
        txn.commit().await?;
        Ok(updated)
    }

    /// Sets or clears an override: the audit row and the customer's overrides in force, in
    /// one transaction. `false` when the customer is unknown.
    pub async fn change_override(
        &self,
        tenant: &str,
        change: &OverrideChange,
        now: i64,
    ) -> Result<bool, StoreError> {
        use sea_orm::sea_query::ExprTrait as _;
        let txn = rapport_storage::begin_write(&self.db).await?;
        // Locked until commit: two changes of one customer's overrides at once must not
        // each keep only its own.
        let Some(row) = customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.eq(change.customer_id.as_str()))
            .lock_exclusive()
            .one(&txn)
            .await?
        else {
            return Ok(false);
        };
        let id = change.customer_id.as_str();
        let mut active: Vec<ActiveOverride> = optional_json(id, row.overrides.as_deref())?;
        active.retain(|o| o.target != change.target && o.expires_at > now);
        let target = change.target.name();
        // Whatever was in force for this target ends now, by this author.
        score_override::Entity::update_many()
            .col_expr(score_override::Column::ClearedAt, Expr::value(now))
            .col_expr(
                score_override::Column::ClearedBy,
                Expr::value(change.author.as_str()),
            )
            .col_expr(
                score_override::Column::ClearReason,
                Expr::value(change.reason.as_str()),
            )
            .col_expr(score_override::Column::ExpiryApplied, Expr::value(true))
            .filter(score_override::Column::TenantId.eq(tenant))
            .filter(score_override::Column::CustomerId.eq(id))
            .filter(score_override::Column::Target.eq(target))
            .filter(score_override::Column::ClearedAt.is_null())
            .filter(score_override::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if let Some((value, expires_at)) = change.set {
            score_override::Entity::insert(score_override::ActiveModel {
                id: NotSet,
                tenant_id: Set(tenant.to_owned()),
                customer_id: Set(id.to_owned()),
                target: Set(target.to_owned()),
                value: Set(value),
                author: Set(change.author.clone()),
                reason: Set(change.reason.clone()),
                set_at: Set(now),
                expires_at: Set(expires_at),
                cleared_at: Set(None),
                cleared_by: Set(None),
                clear_reason: Set(None),
                expiry_applied: Set(false),
            })
            .exec_without_returning(&txn)
            .await?;
            active.push(ActiveOverride {
                target: change.target,
                value,
                author: change.author.clone(),
                reason: change.reason.clone(),
                set_at: now,
                expires_at,
            });
        }
        customer::Entity::update_many()
            .col_expr(
                customer::Column::Overrides,
                Expr::value(to_json(id, &active)?),
            )
            .col_expr(
                customer::Column::Revision,
                Expr::col(customer::Column::Revision).add(1),
            )
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Overrides that expired by `now` and whose customers were not re-scored since, as
    /// (row id, tenant, customer).
    pub async fn expired_overrides(
        &self,
        now: i64,
        limit: u64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        Ok(score_override::Entity::find()
            .select_only()
            .columns([
                score_override::Column::Id,
                score_override::Column::TenantId,
                score_override::Column::CustomerId,
            ])
            .filter(score_override::Column::ExpiryApplied.eq(false))
            .filter(score_override::Column::ExpiresAt.lte(now))
            .order_by_asc(score_override::Column::ExpiresAt)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Marks expired overrides as applied to their customers' scores.
    pub async fn expiries_applied(&self, ids: &[i64]) -> Result<(), StoreError> {
        score_override::Entity::update_many()
            .col_expr(score_override::Column::ExpiryApplied, Expr::value(true))
            .filter(score_override::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// The customer ids a statement ending in `RETURNING customer_id` wrote.
pub(super) async fn returned_ids<C: ConnectionTrait>(
    conn: &C,
    statement: Option<Statement>,
) -> Result<HashSet<String>, DbErr> {
    let Some(statement) = statement else {
        return Ok(HashSet::new());
    };
    conn.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "customer_id"))
        .collect()
}
