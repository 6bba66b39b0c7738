//! Walks over a tenant's customers page by page, all of them or a sample.

use super::*;

/// A tenant's customers, a page at a time in id order.
pub struct Pages<'a> {
    store: &'a Store,
    tenant: &'a str,
    size: u64,
    one_in: u64,
    after: Option<String>,
}

impl Pages<'_> {
    /// The next page; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<FeatureRow>>, StoreError> {
        let Some(after) = self.after.take() else {
            return Ok(None);
        };
        let page = self
            .store
            .sampled_page(self.tenant, &after, self.size, self.one_in)
            .await?;
        if page.len() as u64 == self.size {
            self.after = page.last().map(|r| r.customer_id.clone());
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

impl Store {
    /// Walks all of a tenant's customers, `size` at a time.
    pub fn pages<'a>(&'a self, tenant: &'a str, size: u64) -> Pages<'a> {
        self.sample(tenant, size, 1)
    }

    /// Walks about one in `one_in` of a tenant's customers (all of them when 1), `size` at a
    /// time. The choice is fixed by each customer's id (PostgreSQL) or row (SQLite), not by
    /// chance, so walks of unchanged customers sample the same ones.
    pub fn sample<'a>(&'a self, tenant: &'a str, size: u64, one_in: u64) -> Pages<'a> {
        Pages {
            store: self,
            tenant,
            size,
            one_in: one_in.max(1),
            after: Some(String::new()),
        }
    }

    /// A page of customers in id order, after `after`.
    pub async fn features_page(
        &self,
        tenant: &str,
        after: &str,
        limit: u64,
    ) -> Result<Vec<FeatureRow>, StoreError> {
        self.sampled_page(tenant, after, limit, 1).await
    }

    /// A page of about one in `one_in` customers in id order, after `after`.
    pub(super) async fn sampled_page(
        &self,
        tenant: &str,
        after: &str,
        limit: u64,
        one_in: u64,
    ) -> Result<Vec<FeatureRow>, StoreError> {
        let mut query = customer::Entity::find()
            .filter(customer::Column::TenantId.eq(tenant))
            .filter(customer::Column::CustomerId.gt(after));
        if one_in > 1 {
            // The filter stands before the limit, so a short page still means the last one.
            let one_in = i64::try_from(one_in).unwrap_or(i64::MAX);
            let (chosen, bound) = match self.db.get_database_backend() {
                // The ids whose hash falls in the lowest `1 / one_in` of its range. A bound,
                // not a remainder: PostgreSQL guesses that `expr = value` keeps one row in
                // 200, expects a page to need every row, and sorts the whole table in
                // parallel for each page; for `expr < value` it guesses a third, and reads
                // the key in order until the page is full.
                DbBackend::Postgres => (
                    "(hashtext(customer_id) & 2147483647) < $1",
                    (1i64 << 31) / one_in,
                ),
                _ => ("rowid % ? = 0", one_in),
            };
            query = query.filter(Expr::cust_with_values(chosen, [bound]));
        }
        // The customers' rows and their scores' as of one moment.
        let txn = rapport_storage::begin_read(&self.db).await?;
        let rows = query
            .order_by_asc(customer::Column::CustomerId)
            .limit(limit)
            .all(&txn)
            .await?;
        let Some(last) = rows.last().map(|m| m.customer_id.clone()) else {
            return Ok(Vec::new());
        };
        // A whole page's scores are a range of the key; a sample's, a list of its ids.
        let scores = if one_in == 1 {
            let range = sea_orm::sea_query::ExprTrait::and(
                score::Column::CustomerId.gt(after),
                score::Column::CustomerId.lte(last),
            );
            scores(&txn, tenant, range).await?
        } else {
            let ids = rows.iter().map(|m| m.customer_id.clone());
            scores(&txn, tenant, score::Column::CustomerId.is_in(ids)).await?
        };
        txn.commit().await?;
        with_scores(rows, &scores).collect()
    }
}
