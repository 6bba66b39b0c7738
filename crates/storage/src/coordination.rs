//! Coordination between replicas of a service sharing one database: transaction-scoped locks
//! that serialise writers of one key, schedules that run once per period across replicas, and
//! the lock that lets one replica at a time migrate.
//!
//! Everything here goes through the database the replicas already share, so a replica needs
//! no other peer to coordinate. On SQLite (one process, one writer at a time) the locks are
//! no-ops: `begin_write` already holds the database's write lock.

use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, OnConflict, Query, Table};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use sea_orm_migration::SchemaManager;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest a replica goes on using a tenant's configuration (scorecards, alert rules)
/// after another replica changed it: each replica reads it again at most this old.
pub const CONFIG_REFRESH: Duration = Duration::from_secs(2);

/// Holds PostgreSQL's advisory lock on (`scope`, `key`) until the transaction `txn` ends;
/// waits for a transaction holding it. Writers that take it before their first write to
/// something keyed by `key` commit one after another in the order they took it.
pub async fn lock_until_commit<C: ConnectionTrait>(
    txn: &C,
    scope: &str,
    key: &str,
) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [format!("{scope}\u{1f}{key}").into()],
    ))
    .await?;
    Ok(())
}

/// An advisory lock held across replicas until released or dropped (see [`Exclusive::take`]).
pub struct Exclusive {
    /// The transaction that pins the lock's connection; `None` on SQLite.
    holder: Option<sea_orm::DatabaseTransaction>,
}

impl Exclusive {
    /// Waits for, then holds, the lock named `name` on PostgreSQL, so that of several
    /// replicas doing the same whole-tenant work (a migration, a re-score, a grading run) one
    /// does it at a time. On SQLite there is one process, whose own locks suffice.
    pub async fn take(db: &DatabaseConnection, name: &str) -> Result<Exclusive, DbErr> {
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(Exclusive { holder: None });
        }
        // A transaction pins one pooled connection for the lock's lifetime; the lock is a
        // transaction's, so it ends with it, even if the holder is dropped mid-way.
        let holder = crate::begin_write(db).await?;
        lock_until_commit(&holder, "exclusive", name).await?;
        Ok(Exclusive {
            holder: Some(holder),
        })
    }

    /// Lets the next waiter in.
    pub async fn release(self) -> Result<(), DbErr> {
        match self.holder {
            Some(holder) => holder.commit().await,
            None => Ok(()),
        }
    }
}

/// Runs `work` holding the [`Exclusive`] lock `name`.
pub async fn exclusively<T, E, F>(db: &DatabaseConnection, name: &str, work: F) -> Result<T, E>
where
    F: AsyncFnOnce() -> Result<T, E>,
    E: From<DbErr>,
{
    let held = Exclusive::take(db, name).await?;
    let result = work().await;
    held.release().await?;
    result
}

/// Creates a service's table of schedule runs named `table` (call from its migration): one
/// row per (schedule, tenant) with the start of the last period claimed.
pub async fn create_schedule_table(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let col = |name: &str| ColumnDef::new(Alias::new(name));
    manager
        .create_table(
            Table::create()
                .table(Alias::new(table))
                .if_not_exists()
                .col(col("schedule").string().not_null())
                .col(col("tenant_id").string().not_null())
                .col(col("claimed_at").big_integer().not_null())
                .col(col("claimed_by").string().not_null())
                .primary_key(
                    sea_orm::sea_query::Index::create()
                        .col(Alias::new("schedule"))
                        .col(Alias::new("tenant_id")),
                )
                .to_owned(),
        )
        .await
}

/// A service's schedules: each (schedule, tenant) runs once per period across all replicas.
#[derive(Debug, Clone)]
pub struct Schedules {
    table: &'static str,
    db: DatabaseConnection,
    /// Who claims, for the record (host and process).
    replica: String,
}

impl Schedules {
    /// The schedules recorded in `table` (made by [`create_schedule_table`]).
    pub fn new(table: &'static str, db: DatabaseConnection) -> Schedules {
        Schedules {
            table,
            db,
            replica: replica_name(),
        }
    }

    /// The INSERT of this replica's claim of (`schedule`, `tenant`) at `now_ms`.
    fn row(
        &self,
        schedule: &str,
        tenant: &str,
        now_ms: i64,
    ) -> sea_orm::sea_query::InsertStatement {
        Query::insert()
            .into_table(Alias::new(self.table))
            .columns(["schedule", "tenant_id", "claimed_at", "claimed_by"].map(Alias::new))
            .values_panic([
                schedule.into(),
                tenant.into(),
                now_ms.into(),
                self.replica.as_str().into(),
            ])
            .to_owned()
    }

    /// Claims the period of `schedule` for `tenant` starting `now_ms` if the last claim is at
    /// least `period` old (or there is none): `true` for the one replica that gets it. The
    /// claim is one conditional write, so replicas asking at once cannot both get it; a
    /// replica that dies after claiming leaves the period done, and the next period goes to
    /// whichever replica asks first.
    pub async fn claim(
        &self,
        schedule: &str,
        tenant: &str,
        period: Duration,
        now_ms: i64,
    ) -> Result<bool, DbErr> {
        let due_before = now_ms - period.as_millis() as i64;
        // Margin for replicas' clocks and ticks that drift: a claim up to a twentieth of the
        // period early is still the same period's.
        let due_before = due_before + (period.as_millis() as i64) / 20;
        let table = Alias::new(self.table);
        let mut insert = self.row(schedule, tenant, now_ms);
        insert.on_conflict(
            OnConflict::columns([Alias::new("schedule"), Alias::new("tenant_id")])
                .update_columns([Alias::new("claimed_at"), Alias::new("claimed_by")])
                .action_and_where(Expr::col((table, Alias::new("claimed_at"))).lte(due_before))
                .to_owned(),
        );
        Ok(self.db.execute(&insert).await?.rows_affected() == 1)
    }

    /// Records `now_ms` as the start of the current period of `schedule` for `tenant` unless
    /// a period was ever claimed: the first period ends one period after the first replica
    /// started, not at once.
    pub async fn begin(&self, schedule: &str, tenant: &str, now_ms: i64) -> Result<(), DbErr> {
        let mut insert = self.row(schedule, tenant, now_ms);
        insert.on_conflict(
            OnConflict::columns([Alias::new("schedule"), Alias::new("tenant_id")])
                .do_nothing()
                .to_owned(),
        );
        self.db.execute(&insert).await?;
        Ok(())
    }

    /// Runs `round` once per `period` across every replica sharing this table, until `stop`:
    /// each replica looks a few times a period whether the period is over, and the one that
    /// claims the next runs it. A replica that dies leaves the schedule to the others. The
    /// first round comes one period after the schedule was first begun.
    pub async fn periodically<F, Fut>(
        self,
        schedule: &'static str,
        period: Duration,
        stop: CancellationToken,
        mut round: F,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        const EVERYONE: &str = "";
        let tick = (period / 8).clamp(Duration::from_millis(50), Duration::from_secs(30));
        if let Err(error) = self.begin(schedule, EVERYONE, crate::now_millis()).await {
            tracing::warn!(%error, schedule, "schedule: cannot record its start");
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.cancelled() => return,
            }
            match self
                .claim(schedule, EVERYONE, period, crate::now_millis())
                .await
            {
                Ok(true) => {
                    // Debug: the sweeps claim a round a second.
                    tracing::debug!(schedule, "scheduled round");
                    round().await
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, schedule, "schedule: cannot claim a period"),
            }
        }
    }
}

/// This replica's name in claims: the host (a pod's name on Kubernetes) and the process id.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}/{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite() -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::connect(&crate::sqlite_url(dir.path(), "coordination"))
            .await
            .unwrap();
        create_schedule_table(&SchemaManager::new(&db), "test_schedules")
            .await
            .unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn a_period_is_claimed_once_and_the_next_after_it() {
        let (_dir, db) = sqlite().await;
        let (a, b) = (
            Schedules::new("test_schedules", db.clone()),
            Schedules::new("test_schedules", db),
        );
        let hour = Duration::from_secs(3600);
        let t0 = 1_000_000_000;
        assert!(a.claim("rescore", "t", hour, t0).await.unwrap());
        assert!(!b.claim("rescore", "t", hour, t0 + 1).await.unwrap());
        assert!(
            b.claim("rescore", "u", hour, t0 + 1).await.unwrap(),
            "tenants are claimed apart"
        );
        assert!(
            b.claim("fit", "t", hour, t0 + 1).await.unwrap(),
            "schedules are claimed apart"
        );
        assert!(!a.claim("rescore", "t", hour, t0 + 1_800_000).await.unwrap());
        assert!(b.claim("rescore", "t", hour, t0 + 3_600_000).await.unwrap());
        // That claim started the next period: the one after it is an hour later.
        assert!(!a.claim("rescore", "t", hour, t0 + 5_400_000).await.unwrap());
        assert!(a.claim("rescore", "t", hour, t0 + 7_200_000).await.unwrap());
    }
}
