//! Database plumbing shared by the services: connecting, migrating, and the transactional outbox.
//!
//! Each service owns its tables and its migrations; this crate only knows how to reach a
//! database (PostgreSQL in production, SQLite embedded) and how an outbox works.

pub mod coordination;
pub mod outbox;
pub mod schema;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use std::path::Path;
use std::time::Duration;

pub use sea_orm;
pub use sea_orm_migration;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported database URL {0:?}: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
}

/// The SQLite URL of a service's own database file under `data_dir` (the embedded default).
pub fn sqlite_url(data_dir: &Path, service: &str) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join(format!("{service}.db")).display()
    )
}

/// Connects to PostgreSQL or SQLite by URL, creating the SQLite file and its directory if needed.
pub async fn connect(url: &str) -> Result<DatabaseConnection, StorageError> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        // One writer at a time is SQLite's rule: WAL lets readers run beside it, and the busy
        // timeout makes writers queue instead of failing. FULL sync keeps every commit on disk.
        options.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30))
        });
    } else if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return Err(StorageError::UnsupportedUrl(url.to_owned()));
    } else {
        // Statements are prepared and cached per connection; a generic plan made while a table
        // was small would keep scanning it whole once it is large (a batch's idempotency
        // lookup became a sequential scan), so PostgreSQL plans each execution for its values.
        options
            .max_connections(16)
            .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
    }
    Ok(Database::connect(options).await?)
}

/// How long a service starting waits for its database to take connections (one started
/// beside it, or restarting) before it gives up.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// Connects to `url` and applies the migrations of `M` that are not applied yet. Replicas
/// starting at once take turns (one lock per database), so each migration runs once.
pub async fn open<M: sea_orm_migration::MigratorTrait>(
    url: &str,
) -> Result<DatabaseConnection, StorageError> {
    let db = connect_patiently(url, CONNECT_PATIENCE).await?;
    coordination::exclusively(&db, "migrations", async || M::up(&db, None).await).await?;
    Ok(db)
}

/// Connects to `url`, trying again with growing pauses while the database refuses for up to
/// `patience`: containers and pods start in any order, and a service should not crash-loop
/// because its database came up a few seconds after it.
pub async fn connect_patiently(
    url: &str,
    patience: Duration,
) -> Result<DatabaseConnection, StorageError> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match connect(url).await {
            Err(StorageError::Db(error)) if start.elapsed() + pause < patience => {
                tracing::warn!(%error, retry_in = ?pause, "database not reachable yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Current time in milliseconds since the Unix epoch, as the outbox stores times.
// Infrastructure time (outbox attempts, leases, schedule claims), not a service's business
// time: those read an injected clock.
#[allow(clippy::disallowed_methods)]
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Begins a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails at once
/// with "database is locked" if another writer committed in between, instead of waiting.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{DbBackend, SqliteTransactionMode, TransactionOptions};
    let immediate = db.get_database_backend() == DbBackend::Sqlite;
    let options = TransactionOptions {
        sqlite_transaction_mode: immediate.then_some(SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    begin_whole(db, options).await
}

/// Begins a transaction with `options` in a task of its own, so that the caller giving up
/// (a deadline, a dropped request) cannot stop it half-way. The driver counts a transaction
/// as begun only once the server has answered `BEGIN`: abandoned between the two, the
/// connection would go back to the pool inside a transaction nobody owns, and the next
/// caller's statements would run — uncommitted — in it. Run to the end, an unwanted
/// transaction is simply dropped, which rolls it back.
async fn begin_whole(
    db: &DatabaseConnection,
    options: sea_orm::TransactionOptions,
) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::TransactionTrait;
    let db = db.clone();
    tokio::spawn(async move { db.begin_with_options(options).await })
        .await
        .map_err(|e| DbErr::Custom(format!("beginning a transaction: {e}")))?
}

/// Begins a transaction whose commit does not wait for the disk on PostgreSQL
/// (`synchronous_commit = off`, for this transaction alone): for bookkeeping that a crash may
/// lose without harm, such as an outbox claim. It is still atomic, and durable a moment later.
pub async fn begin_unsynced(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend};
    let txn = begin_write(db).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL synchronous_commit = off")
            .await?;
    }
    Ok(txn)
}

/// Begins a transaction whose reads all see the database as of one moment: on PostgreSQL a
/// read-only repeatable-read one; on SQLite a deferred one, which reads one snapshot of its
/// write-ahead log until it ends.
pub async fn begin_read(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{AccessMode, DbBackend, IsolationLevel, TransactionOptions};
    let options = match db.get_database_backend() {
        DbBackend::Postgres => TransactionOptions {
            isolation_level: Some(IsolationLevel::RepeatableRead),
            access_mode: Some(AccessMode::ReadOnly),
            ..Default::default()
        },
        _ => TransactionOptions::default(),
    };
    begin_whole(db, options).await
}

/// Begins a transaction that writes many rows through multi-row statements of thousands of
/// parameters. On PostgreSQL those statements run on generic plans for the transaction: a
/// custom plan is made anew at every execution, walking every parameter, and in a
/// whole-tenant re-score that planning was a fifth of the server's time.
pub async fn begin_bulk_write(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend};
    let txn = begin_write(db).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        // LOCAL: the setting ends with the transaction, so pooled connections keep the
        // default for everything else.
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
            .await?;
    }
    Ok(txn)
}
