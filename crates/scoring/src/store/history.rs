//! Score snapshots (the history): as of a time, the latest of many customers, a
//! customer's history, and the lowest scores.

use super::*;

impl Store {
    pub(super) async fn tier_of(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> Result<Option<Tier>, StoreError> {
        Ok(customer::Entity::find()
            .select_only()
            .column(customer::Column::Tier)
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.eq(customer_id))
            .into_tuple::<Option<String>>()
            .one(&self.db)
            .await?
            .flatten()
            .as_deref()
            .and_then(Tier::from_name))
    }

    /// The latest snapshot of a customer at or before `at` (milliseconds; `None`: the
    /// latest of all), with the customer's current tier.
    pub async fn snapshot_at(
        &self,
        tenant: &str,
        customer_id: &str,
        at: Option<i64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let mut query = snapshot::Entity::find()
            .filter(snapshot::Column::TenantId.eq(tenant))
            .filter(snapshot::Column::CustomerId.eq(customer_id));
        // The latest of all is the last stored; at a time, the last computed by then.
        if let Some(at) = at {
            query = query
                .filter(snapshot::Column::ComputedAt.lte(at))
                .order_by_desc(snapshot::Column::ComputedAt);
        }
        let Some(row) = query
            .order_by_desc(snapshot::Column::Id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let tier = self.tier_of(tenant, customer_id).await?;
        snapshot_of(row, tier).map(Some)
    }

    /// The latest snapshot of a customer, with the customer's current tier.
    pub async fn latest(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.snapshot_at(tenant, customer_id, None).await
    }

    /// The latest snapshots of many customers, in two queries (snapshots, tiers); customers
    /// without one are left out.
    pub async fn latest_many(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Snapshot>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let latest = sea_orm::sea_query::Query::select()
                .column(snapshot::Column::CustomerId)
                .expr(sea_orm::sea_query::Func::max(Expr::col(
                    snapshot::Column::Id,
                )))
                .from(snapshot::Entity)
                .and_where(snapshot::Column::TenantId.eq(tenant))
                .and_where(snapshot::Column::CustomerId.is_in(chunk.iter().cloned()))
                .group_by_col(snapshot::Column::CustomerId)
                .to_owned();
            // Matched by (customer, id): `id` has no index of its own on PostgreSQL (see the
            // migration `snapshot_ids_unindexed`), which finds each latest row through the
            // customers' index; SQLite by its row id.
            let rows = snapshot::Entity::find()
                .filter(snapshot::Column::TenantId.eq(tenant))
                .filter(sea_orm::sea_query::ExprTrait::in_subquery(
                    Expr::tuple([
                        Expr::col(snapshot::Column::CustomerId),
                        Expr::col(snapshot::Column::Id),
                    ]),
                    latest,
                ))
                .all(&self.db)
                .await?;
            let tiers: HashMap<String, Option<String>> = customer::Entity::find()
                .select_only()
                .columns([customer::Column::CustomerId, customer::Column::Tier])
                .filter(customer::Column::TenantId.eq(tenant))
                .filter(customer::Column::CustomerId.is_in(chunk.iter().cloned()))
                .into_tuple::<(String, Option<String>)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect();
            for row in rows {
                let tier = tiers
                    .get(&row.customer_id)
                    .and_then(|t| t.as_deref())
                    .and_then(Tier::from_name);
                let snapshot = snapshot_of(row, tier)?;
                out.insert(snapshot.customer_id.clone(), snapshot);
            }
        }
        Ok(out)
    }

    /// A customer's snapshots in `[from, to]` (milliseconds), the most recent `limit` of
    /// them, oldest first.
    pub async fn history(
        &self,
        tenant: &str,
        customer_id: &str,
        from: i64,
        to: i64,
        limit: u64,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let rows = snapshot::Entity::find()
            .filter(snapshot::Column::TenantId.eq(tenant))
            .filter(snapshot::Column::CustomerId.eq(customer_id))
            .filter(snapshot::Column::ComputedAt.gte(from))
            .filter(snapshot::Column::ComputedAt.lte(to))
            .order_by_desc(snapshot::Column::ComputedAt)
            .order_by_desc(snapshot::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut out = rows
            .into_iter()
            .map(|r| snapshot_of(r, None))
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }

    /// Customer ids by score, lowest first, of those that pass `filter`.
    ///
    /// The scores are walked in order until enough pass, which is quick when many do. A tier
    /// or stage that few hold is listed from its holders instead: walking for them would read
    /// the whole book when they sit at its top (VIPs' scores are high).
    pub async fn lowest(
        &self,
        tenant: &str,
        filter: &ListFilter,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        if let Some(holders) = self.few_holders(tenant, filter).await? {
            return self.lowest_of(tenant, &holders, filter, limit).await;
        }
        let ListFilter {
            tier,
            band,
            stage,
            p_alive_below,
        } = *filter;
        use sea_orm::sea_query::{ExprTrait, Order, Query};
        let (s, c) = (score::Entity, customer::Entity);
        let mut query = Query::select();
        query
            .column((s, score::Column::CustomerId))
            .from(s)
            .and_where(Expr::col((s, score::Column::TenantId)).eq(tenant))
            .and_where(Expr::col((s, score::Column::Score)).is_not_null());
        if tier.is_some() || stage.is_some() {
            query.inner_join(
                c,
                Expr::col((c, customer::Column::TenantId))
                    .equals((s, score::Column::TenantId))
                    .and(
                        Expr::col((c, customer::Column::CustomerId))
                            .equals((s, score::Column::CustomerId)),
                    ),
            );
        }
        if let Some(tier) = tier {
            query.and_where(Expr::col((c, customer::Column::Tier)).eq(tier.name()));
        }
        if let Some(stage) = stage {
            query.and_where(Expr::col((c, customer::Column::Stage)).eq(stage.name()));
        }
        if let Some(band) = band {
            query.and_where(Expr::col((s, score::Column::Band)).eq(band.name()));
        }
        if let Some(below) = p_alive_below {
            query.and_where(Expr::col((s, score::Column::PAlive)).lt(below));
        }
        // The index holds steps; rows of a step are sorted by their scores.
        query
            .order_by((s, score::Column::ScoreStep), Order::Asc)
            .order_by((s, score::Column::Score), Order::Asc)
            .order_by((s, score::Column::CustomerId), Order::Asc)
            .limit(limit);
        let statement = self.db.get_database_backend().build(&query);
        self.db
            .query_all_raw(statement)
            .await?
            .iter()
            .map(|row| Ok(row.try_get::<String>("", "customer_id")?))
            .collect()
    }

    /// The customers holding the filter's tier and stage, when there is one and they are few.
    async fn few_holders(
        &self,
        tenant: &str,
        filter: &ListFilter,
    ) -> Result<Option<Vec<String>>, StoreError> {
        if (filter.tier.is_none() && filter.stage.is_none()) || self.few == 0 {
            return Ok(None);
        }
        let mut query = customer::Entity::find()
            .select_only()
            .column(customer::Column::CustomerId)
            .filter(customer::Column::TenantId.eq(tenant));
        if let Some(tier) = filter.tier {
            query = query.filter(customer::Column::Tier.eq(tier.name()));
        }
        if let Some(stage) = filter.stage {
            query = query.filter(customer::Column::Stage.eq(stage.name()));
        }
        let holders: Vec<String> = query.limit(self.few + 1).into_tuple().all(&self.db).await?;
        Ok((holders.len() as u64 <= self.few).then_some(holders))
    }

    /// Of `ids`, the `limit` lowest scores that pass the filter's band and P(alive), in the
    /// order of the walk: by step, score, then id.
    async fn lowest_of(
        &self,
        tenant: &str,
        ids: &[String],
        filter: &ListFilter,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut found: Vec<(i32, f64, String)> = Vec::new();
        for chunk in ids.chunks(ROWS_PER_INSERT) {
            let mut query = score::Entity::find()
                .select_only()
                .columns([
                    score::Column::ScoreStep,
                    score::Column::Score,
                    score::Column::CustomerId,
                ])
                .filter(score::Column::TenantId.eq(tenant))
                .filter(score::Column::CustomerId.is_in(chunk.iter().cloned()))
                .filter(score::Column::Score.is_not_null());
            if let Some(band) = filter.band {
                query = query.filter(score::Column::Band.eq(band.name()));
            }
            if let Some(below) = filter.p_alive_below {
                query = query.filter(score::Column::PAlive.lt(below));
            }
            let rows: Vec<(Option<i32>, Option<f64>, String)> =
                query.into_tuple().all(&self.db).await?;
            found.extend(
                rows.into_iter()
                    .filter_map(|(step, score, id)| Some((step?, score?, id))),
            );
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found.into_iter().map(|(_, _, id)| id).collect())
    }
}
