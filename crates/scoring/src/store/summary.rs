//! What a whole-tenant walk saw of everyone, kept small: band counts per day and the
//! customers who fell most.

use super::*;
use crate::entity::{band_count, faller};

/// How many customers a walk found in each band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BandCounts {
    pub red: u64,
    pub yellow: u64,
    pub green: u64,
    /// Customers without a score.
    pub unscored: u64,
}

impl BandCounts {
    /// Counts one customer in its band (`None`: not scored).
    pub fn add(&mut self, band: Option<Band>) {
        match band {
            Some(Band::Red) => self.red += 1,
            Some(Band::Yellow) => self.yellow += 1,
            Some(Band::Green) => self.green += 1,
            None => self.unscored += 1,
        }
    }
}

/// A day's band counts, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCounts {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub counts: BandCounts,
    /// When they were counted (epoch milliseconds).
    pub counted_at: i64,
}

/// A customer whose score fell, and by how many points over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Fall {
    pub customer_id: String,
    pub change: f64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn stored(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Records a walk's band counts as `day`'s (a later walk that day replaces them) and its
    /// steepest falls over each window (replacing the last walk's), in one transaction.
    pub async fn save_walk_summary(
        &self,
        tenant: &str,
        day: i64,
        counts: BandCounts,
        falls: &[(i32, Vec<Fall>)],
        at: i64,
    ) -> Result<(), StoreError> {
        use sea_orm::sea_query::OnConflict;
        let txn = rapport_storage::begin_write(&self.db).await?;
        band_count::Entity::insert(band_count::ActiveModel {
            tenant_id: Set(tenant.to_owned()),
            day: Set(day),
            red: Set(stored(counts.red)),
            yellow: Set(stored(counts.yellow)),
            green: Set(stored(counts.green)),
            unscored: Set(stored(counts.unscored)),
            counted_at: Set(at),
        })
        .on_conflict(
            OnConflict::columns([band_count::Column::TenantId, band_count::Column::Day])
                .update_columns([
                    band_count::Column::Red,
                    band_count::Column::Yellow,
                    band_count::Column::Green,
                    band_count::Column::Unscored,
                    band_count::Column::CountedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        faller::Entity::delete_many()
            .filter(faller::Column::TenantId.eq(tenant))
            .exec(&txn)
            .await?;
        let rows: Vec<faller::ActiveModel> = falls
            .iter()
            .flat_map(|(days, falls)| {
                falls.iter().map(move |f| faller::ActiveModel {
                    tenant_id: Set(tenant.to_owned()),
                    days: Set(*days),
                    customer_id: Set(f.customer_id.clone()),
                    change: Set(f.change),
                    counted_at: Set(at),
                })
            })
            .collect();
        if !rows.is_empty() {
            faller::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The tenant's band counts of the days from `from_day` on, oldest first.
    pub async fn band_counts(
        &self,
        tenant: &str,
        from_day: i64,
    ) -> Result<Vec<DayCounts>, StoreError> {
        Ok(band_count::Entity::find()
            .filter(band_count::Column::TenantId.eq(tenant))
            .filter(band_count::Column::Day.gte(from_day))
            .order_by_asc(band_count::Column::Day)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| DayCounts {
                day: r.day,
                counts: BandCounts {
                    red: count(r.red),
                    yellow: count(r.yellow),
                    green: count(r.green),
                    unscored: count(r.unscored),
                },
                counted_at: r.counted_at,
            })
            .collect())
    }

    /// The last walk's steepest falls over `days`, steepest first, and when it found them.
    pub async fn fallers(
        &self,
        tenant: &str,
        days: i32,
        limit: u64,
    ) -> Result<(Vec<Fall>, Option<i64>), StoreError> {
        let rows = faller::Entity::find()
            .filter(faller::Column::TenantId.eq(tenant))
            .filter(faller::Column::Days.eq(days))
            .order_by_asc(faller::Column::Change)
            .order_by_asc(faller::Column::CustomerId)
            .limit(limit)
            .all(&self.db)
            .await?;
        let at = rows.first().map(|r| r.counted_at);
        Ok((
            rows.into_iter()
                .map(|r| Fall {
                    customer_id: r.customer_id,
                    change: r.change,
                })
                .collect(),
            at,
        ))
    }
}
