//! Helpers for the services' migrations: short column and index builders, and [`migrator!`].

use sea_orm::sea_query::{Alias, ColumnDef, Index, IndexCreateStatement, IndexDropStatement};

/// A column definition named `name`.
pub fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

/// Adds `columns` to `table`, one statement each (SQLite adds one column per ALTER).
pub async fn add_columns(
    manager: &sea_orm_migration::SchemaManager<'_>,
    table: &str,
    columns: Vec<ColumnDef>,
) -> Result<(), sea_orm::DbErr> {
    for mut column in columns {
        manager
            .alter_table(
                sea_orm::sea_query::Table::alter()
                    .table(Alias::new(table))
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Runs `sql` on PostgreSQL; nothing on SQLite (for PostgreSQL's storage settings).
pub async fn on_postgres(
    manager: &sea_orm_migration::SchemaManager<'_>,
    sql: &str,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Leaves 30 % of each new page of `tables` free on PostgreSQL (fillfactor 70; nothing on
/// SQLite): rows rewritten by most writes (a customer's state at every event) are then updated
/// on their own page without new index entries (HOT), instead of moved to another page with
/// an entry in every index. Pages written earlier keep their fill until rewritten.
pub async fn room_for_updates(
    manager: &sea_orm_migration::SchemaManager<'_>,
    tables: &[&str],
) -> Result<(), sea_orm::DbErr> {
    for table in tables {
        on_postgres(
            manager,
            &format!("ALTER TABLE {table} SET (fillfactor = 70)"),
        )
        .await?;
    }
    Ok(())
}

/// Makes the `tenant_id` and `customer_id` columns of `tables` compare as bytes on
/// PostgreSQL (the "C" collation; SQLite compares bytes already). Ids are opaque: a
/// linguistic order buys nothing, costs a locale comparison in every index step, and ties
/// the indexes to the C library's collation version. The indexes are rebuilt.
pub async fn ids_compare_as_bytes(
    manager: &sea_orm_migration::SchemaManager<'_>,
    tables: &[&str],
) -> Result<(), sea_orm::DbErr> {
    for table in tables {
        on_postgres(
            manager,
            &format!(
                "ALTER TABLE {table} \
                 ALTER COLUMN tenant_id TYPE varchar COLLATE \"C\", \
                 ALTER COLUMN customer_id TYPE varchar(100) COLLATE \"C\""
            ),
        )
        .await?;
    }
    Ok(())
}

/// `CREATE INDEX IF NOT EXISTS name ON table (columns…)`.
pub fn index(table: &str, name: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.if_not_exists().name(name).table(Alias::new(table));
    for c in columns {
        index.col(Alias::new(*c));
    }
    index.to_owned()
}

/// `DROP INDEX IF EXISTS name` (on `table`, which MySQL-style dialects need).
pub fn drop_index(table: &str, name: &str) -> IndexDropStatement {
    Index::drop()
        .if_exists()
        .name(name)
        .table(Alias::new(table))
        .to_owned()
}

/// Declares a service's `Migrator`, keeping its applied migrations in a table of its own, so
/// services can share one database and still migrate independently.
#[macro_export]
macro_rules! migrator {
    ($table:literal, [$($migration:expr),* $(,)?]) => {
        /// This service's migrations, in order.
        pub struct Migrator;

        #[$crate::sea_orm_migration::async_trait::async_trait]
        impl $crate::sea_orm_migration::MigratorTrait for Migrator {
            fn migrations() -> Vec<Box<dyn $crate::sea_orm_migration::MigrationTrait>> {
                vec![$(Box::new($migration)),*]
            }

            fn migration_table_name() -> $crate::sea_orm::sea_query::DynIden {
                use $crate::sea_orm::sea_query::IntoIden;
                $crate::sea_orm::sea_query::Alias::new($table).into_iden()
            }
        }
    };
}

/// The `id` column: a 64-bit auto-increment primary key.
pub fn id_col() -> ColumnDef {
    col("id")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

/// The `tenant_id` column every table has.
pub fn tenant_col() -> ColumnDef {
    col("tenant_id").string().not_null().to_owned()
}

/// The `customer_id` column of the per-customer tables.
pub fn customer_col() -> ColumnDef {
    col("customer_id").string_len(100).not_null().to_owned()
}

/// The primary key of a per-customer table: (`tenant_id`, `customer_id`).
pub fn customer_key() -> IndexCreateStatement {
    Index::create()
        .col(Alias::new("tenant_id"))
        .col(Alias::new("customer_id"))
        .to_owned()
}

/// Declares a migration module's `Migration` with its name (`mYYYYMMDD_HHMMSS_<what>`).
#[macro_export]
macro_rules! migration_name {
    ($name:literal) => {
        /// This migration.
        pub struct Migration;

        impl $crate::sea_orm_migration::MigrationName for Migration {
            fn name(&self) -> &str {
                $name
            }
        }
    };
}
