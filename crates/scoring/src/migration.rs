//! Scoring's schema, versioned in its own migration table.

use rapport_storage::schema::{
    add_columns, col, customer_col, customer_key, drop_index, id_col, index, on_postgres,
    tenant_col,
};
use sea_orm_migration::prelude::*;

/// The outbox of new scores for alerting.
pub const OUTBOX: rapport_storage::outbox::Outbox =
    rapport_storage::outbox::Outbox::new("scoring_outbox");

rapport_storage::migrator!(
    "scoring_migrations",
    [
        m20261123_000001_scores::Migration,
        m20261123_000002_model_fits::Migration,
        m20261124_000001_health::Migration,
        m20261124_000002_one_snapshot_index::Migration,
        m20261124_000003_alert_signals::Migration,
        m20261125_000001_snapshot_compression::Migration,
        m20261126_000001_ids_compare_as_bytes::Migration,
        m20261126_000002_snapshot_body::Migration,
        m20261127_000001_score_steps::Migration,
        m20261128_000001_snapshot_ids_unindexed::Migration,
        m20261129_000001_scores_apart::Migration,
        m20261204_000001_replicas::Migration,
        m20261207_000001_walk_summaries::Migration,
        m20261208_000001_p_alive::Migration,
        m20261208_000002_listing_indexes::Migration,
        m20261209_000001_room_for_updates::Migration
    ]
);

mod m20261123_000001_scores {
    use super::*;

    rapport_storage::migration_name!("m20261123_000001_scores");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_customers"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("metrics").text().not_null())
                        .col(col("last_event_seq").big_integer().not_null())
                        .col(col("tier").string().null())
                        .col(col("score").double().null())
                        .col(col("updated_at").big_integer().not_null())
                        .primary_key(&mut customer_key())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_snapshots"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("score").double().not_null())
                        .col(col("band").string().not_null())
                        .col(col("tier").string().null())
                        .col(col("scorecard_version").string().not_null())
                        .col(col("measures").text().not_null())
                        .col(col("computed_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "scoring_snapshots",
                    "scoring_snapshots_customer",
                    &["tenant_id", "customer_id", "id"],
                ))
                .await?;
            rapport_storage::outbox::create_table(manager, "scoring_outbox").await
        }
    }
}

mod m20261123_000002_model_fits {
    use super::*;

    rapport_storage::migration_name!("m20261123_000002_model_fits");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_model_fits"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("model").string().not_null())
                        .col(col("params").text().not_null())
                        .col(col("log_likelihood").double().null())
                        .col(col("iterations").integer().not_null())
                        .col(col("converged").boolean().not_null())
                        .col(col("customers").big_integer().not_null())
                        .col(col("error").text().null())
                        .col(col("observation_end").big_integer().not_null())
                        .col(col("fitted_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "scoring_model_fits",
                    "scoring_model_fits_latest",
                    &["tenant_id", "model", "id"],
                ))
                .await?;
            // One column per statement: SQLite adds a single column per ALTER TABLE.
            for column in ["p_alive", "expected_purchases_90d", "clv_12m"] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new("scoring_snapshots"))
                            .add_column(col(column).double().null())
                            .to_owned(),
                    )
                    .await?;
            }
            Ok(())
        }
    }
}

mod m20261124_000001_health {
    use super::*;

    rapport_storage::migration_name!("m20261124_000001_health");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "scoring_customers",
                vec![
                    col("band").string().null().to_owned(),
                    col("stage").string().null().to_owned(),
                    col("stage_since").big_integer().null().to_owned(),
                    col("fingerprint").big_integer().null().to_owned(),
                    col("recent").text().null().to_owned(),
                    col("overrides").text().null().to_owned(),
                ],
            )
            .await?;
            // Explanations beyond the measures: groups, trend, overrides, freeze.
            add_columns(
                manager,
                "scoring_snapshots",
                vec![col("detail").text().null().to_owned()],
            )
            .await?;
            manager
                .create_index(index(
                    "scoring_snapshots",
                    "scoring_snapshots_history",
                    &["tenant_id", "customer_id", "computed_at"],
                ))
                .await?;
            manager
                .create_index(index(
                    "scoring_customers",
                    "scoring_customers_by_score",
                    &["tenant_id", "score"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_scorecards"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("revision").big_integer().not_null())
                        .col(col("toml").text().not_null())
                        .col(col("created_at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    index(
                        "scoring_scorecards",
                        "scoring_scorecards_revision",
                        &["tenant_id", "revision"],
                    )
                    .unique()
                    .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_overrides"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("target").string().not_null())
                        .col(col("value").double().not_null())
                        .col(col("author").string().not_null())
                        .col(col("reason").text().not_null())
                        .col(col("set_at").big_integer().not_null())
                        .col(col("expires_at").big_integer().not_null())
                        .col(col("cleared_at").big_integer().null())
                        .col(col("cleared_by").string().null())
                        .col(col("clear_reason").text().null())
                        // Set once the expiry was applied to the customer's score.
                        .col(col("expiry_applied").boolean().not_null().default(false))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "scoring_overrides",
                    "scoring_overrides_expiry",
                    &["expiry_applied", "expires_at"],
                ))
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_populations"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(col("measure").string().not_null())
                        .col(col("quantiles").text().not_null())
                        .col(col("customers").big_integer().not_null())
                        .col(col("computed_at").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("measure")),
                        )
                        .to_owned(),
                )
                .await
        }
    }
}

mod m20261124_000002_one_snapshot_index {
    use super::*;

    rapport_storage::migration_name!("m20261124_000002_one_snapshot_index");

    /// Snapshots are found by (tenant, customer, time) alone: a second index on (tenant,
    /// customer, id) only cost every insert.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_index(drop_index(
                    "scoring_snapshots",
                    "scoring_snapshots_customer",
                ))
                .await
        }
    }
}

mod m20261124_000003_alert_signals {
    use super::*;

    rapport_storage::migration_name!("m20261124_000003_alert_signals");

    /// A digest of the alert signals last sent, so a change alerting must hear of (a
    /// complaint, an unanswered ticket) is sent even when the score did not move.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "scoring_customers",
                vec![col("signals").big_integer().null().to_owned()],
            )
            .await
        }
    }
}

mod m20261125_000001_snapshot_compression {
    use super::*;

    rapport_storage::migration_name!("m20261125_000001_snapshot_compression");

    /// PostgreSQL compresses a snapshot's measures and detail (about 2 KB of JSON, at its
    /// TOAST threshold) with lz4 instead of pglz: a whole-tenant re-score writes one per
    /// customer, and a page of 5,000 took about 220 ms to insert with pglz, 150 ms with lz4.
    /// A server built without lz4 keeps pglz.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            on_postgres(
                manager,
                "DO $$ BEGIN \
                 ALTER TABLE scoring_snapshots ALTER COLUMN measures SET COMPRESSION lz4, \
                 ALTER COLUMN detail SET COMPRESSION lz4; \
                 EXCEPTION WHEN feature_not_supported THEN NULL; END $$",
            )
            .await
        }
    }
}

mod m20261126_000001_ids_compare_as_bytes {
    use super::*;

    rapport_storage::migration_name!("m20261126_000001_ids_compare_as_bytes");

    /// Ids of the customers and snapshots compare as bytes on PostgreSQL: a whole-tenant
    /// re-score compares ids in three indexes per customer.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            rapport_storage::schema::ids_compare_as_bytes(
                manager,
                &["scoring_customers", "scoring_snapshots"],
            )
            .await
        }
    }
}

mod m20261126_000002_snapshot_body {
    use super::*;

    rapport_storage::migration_name!("m20261126_000002_snapshot_body");

    /// A snapshot is stored as the API's `HealthScore` protobuf, the bytes the cache holds,
    /// instead of two JSON texts: encoded once for both, and about half the size (1.0 KB
    /// against 1.9 KB for the benchmark's customers, 1.4 KB once PostgreSQL compressed it),
    /// under PostgreSQL's compression threshold, so an insert compresses nothing. Older rows
    /// keep their JSON and read as before.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "scoring_snapshots",
                vec![col("body").binary().null().to_owned()],
            )
            .await
        }
    }
}

/// `crate::store::score_step` of the column `score` in SQL, with which the migration that
/// made `score_step` filled it from stored scores: truncated, as the service computes it
/// (PostgreSQL's cast alone would round).
pub fn score_step_sql(backend: sea_orm::DbBackend) -> &'static str {
    match backend {
        sea_orm::DbBackend::Postgres => "CAST(trunc(score / 5) AS integer)",
        _ => "CAST(score / 5 AS INTEGER)",
    }
}

mod m20261127_000001_score_steps {
    use super::*;

    rapport_storage::migration_name!("m20261127_000001_score_steps");

    /// The lowest-scores index holds the score's step of five points instead of the score.
    /// PostgreSQL updates a row without touching its indexes only when no indexed column
    /// changed (and its page has room); with the score itself indexed, every re-score that
    /// moved a score added an entry to every index of the row. Now only one that moves it
    /// into another step does.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "scoring_customers",
                vec![col("score_step").integer().null().to_owned()],
            )
            .await?;
            let step = score_step_sql(manager.get_database_backend());
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "UPDATE scoring_customers SET score_step = {step} WHERE score IS NOT NULL"
                ))
                .await?;
            manager
                .drop_index(
                    Index::drop()
                        .name("scoring_customers_by_score")
                        .table(Alias::new("scoring_customers"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "scoring_customers",
                    "scoring_customers_by_score_step",
                    &["tenant_id", "score_step"],
                ))
                .await?;
            // Room on each page for a row's next version, which an update without index
            // changes must find on the row's own page.
            on_postgres(
                manager,
                "ALTER TABLE scoring_customers SET (fillfactor = 80)",
            )
            .await
        }
    }
}

mod m20261128_000001_snapshot_ids_unindexed {
    use super::*;

    rapport_storage::migration_name!("m20261128_000001_snapshot_ids_unindexed");

    /// Snapshots are found by customer (the history index), never by `id` alone: on
    /// PostgreSQL the primary key's index only cost every insert an index entry (a
    /// whole-tenant re-score inserts one snapshot per customer; without it, 12–18 % less CPU
    /// for the machine at 300,000 customers). `id` stays, filled from its sequence, as the
    /// order of a customer's snapshots. SQLite's `id` is the row id, an index of none.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            on_postgres(
                manager,
                "ALTER TABLE scoring_snapshots DROP CONSTRAINT IF EXISTS scoring_snapshots_pkey",
            )
            .await
        }
    }
}

mod m20261129_000001_scores_apart {
    use super::*;

    rapport_storage::migration_name!("m20261129_000001_scores_apart");

    /// Columns that move from the customers' rows to `scoring_scores`.
    const MOVED: [&str; 6] = [
        "score",
        "score_step",
        "band",
        "fingerprint",
        "signals",
        "recent",
    ];

    /// A customer's score and what derives from it move out of the customer's row into a
    /// narrow row of their own. A re-score writes only these: PostgreSQL copies the whole row
    /// on an update, and the customer's row is mostly its metrics (654 bytes in the
    /// benchmark, against 111 here with two days of scores), written again, with its page,
    /// on every re-score. The benchmark's first whole-tenant re-score wrote 1.6 KB of WAL a
    /// customer, against 2.9 KB before. `recent` becomes bytes (`crate::store::recent_bytes`);
    /// rows moved here keep their JSON, which reads as before.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        /// All or nothing on SQLite too (PostgreSQL's migrations always are): a copy committed
        /// without the columns' drop would fail the next start on its own rows.
        fn use_transaction(&self) -> Option<bool> {
            Some(true)
        }

        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_scores"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("score").double().null())
                        .col(col("score_step").integer().null())
                        .col(col("band").string().null())
                        .col(col("fingerprint").big_integer().null())
                        .col(col("signals").big_integer().null())
                        .col(col("recent").binary().null())
                        .col(col("updated_at").big_integer().not_null())
                        .primary_key(&mut customer_key())
                        .to_owned(),
                )
                .await?;
            rapport_storage::schema::ids_compare_as_bytes(manager, &["scoring_scores"]).await?;
            manager
                .create_index(index(
                    "scoring_scores",
                    "scoring_scores_by_step",
                    &["tenant_id", "score_step"],
                ))
                .await?;
            // Room on each page for a row's next version, which an update without index
            // changes must find on the row's own page.
            on_postgres(manager, "ALTER TABLE scoring_scores SET (fillfactor = 80)").await?;
            let recent = match manager.get_database_backend() {
                sea_orm::DbBackend::Postgres => "convert_to(recent, 'UTF8')",
                _ => "CAST(recent AS BLOB)",
            };
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "INSERT INTO scoring_scores (tenant_id, customer_id, score, score_step, \
                     band, fingerprint, signals, recent, updated_at) \
                     SELECT tenant_id, customer_id, score, score_step, band, fingerprint, \
                     signals, {recent}, updated_at FROM scoring_customers \
                     WHERE score IS NOT NULL OR fingerprint IS NOT NULL OR signals IS NOT NULL"
                ))
                .await?;
            manager
                .drop_index(drop_index(
                    "scoring_customers",
                    "scoring_customers_by_score_step",
                ))
                .await?;
            // One column per statement, as SQLite drops them.
            for column in MOVED {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new("scoring_customers"))
                            .drop_column(Alias::new(column))
                            .to_owned(),
                    )
                    .await?;
            }
            Ok(())
        }
    }
}

mod m20261204_000001_replicas {
    use super::*;

    rapport_storage::migration_name!("m20261204_000001_replicas");

    /// What lets replicas write one customer safely: a revision on the customer's row, moved
    /// by every change of its state (events folded, tier or stage, overrides), and on its
    /// score row, the revision the score was computed from. A write computed from a revision
    /// that is no longer the customer's stores nothing (`crate::store`). Tier updates carry
    /// their grading run's time, so a late one cannot undo a newer run's. The schedules'
    /// claims make each periodic job run on one replica a period.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "scoring_customers",
                vec![
                    col("revision")
                        .big_integer()
                        .not_null()
                        .default(0)
                        .to_owned(),
                    col("graded_at").big_integer().null().to_owned(),
                ],
            )
            .await?;
            add_columns(
                manager,
                "scoring_scores",
                vec![
                    col("revision")
                        .big_integer()
                        .not_null()
                        .default(0)
                        .to_owned(),
                ],
            )
            .await?;
            rapport_storage::coordination::create_schedule_table(manager, "scoring_schedules").await
        }
    }
}

mod m20261207_000001_walk_summaries {
    use super::*;

    rapport_storage::migration_name!("m20261207_000001_walk_summaries");

    /// What each whole-tenant re-score saw of everyone, kept small: how many customers were in
    /// each band (the day's last count), and the customers whose score fell most over 7 and 30
    /// days. The console's book reads them instead of every customer's history.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_band_counts"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(col("day").big_integer().not_null())
                        .col(col("red").big_integer().not_null())
                        .col(col("yellow").big_integer().not_null())
                        .col(col("green").big_integer().not_null())
                        .col(col("unscored").big_integer().not_null())
                        .col(col("counted_at").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("day")),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("scoring_fallers"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(col("days").integer().not_null())
                        .col(customer_col())
                        .col(col("change").double().not_null())
                        .col(col("counted_at").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("days"))
                                .col(Alias::new("customer_id")),
                        )
                        .to_owned(),
                )
                .await
        }
    }
}

mod m20261208_000001_p_alive {
    use super::*;

    rapport_storage::migration_name!("m20261208_000001_p_alive");

    /// The latest snapshot's P(alive) beside its score, to list customers by it. Empty on
    /// existing rows until their next snapshot, which the next re-score makes for every
    /// customer the models cover (`crate::engine`).
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "scoring_scores",
                vec![col("p_alive").double().null().to_owned()],
            )
            .await
        }
    }
}

mod m20261208_000002_listing_indexes {
    use super::*;

    rapport_storage::migration_name!("m20261208_000002_listing_indexes");

    /// A band's lowest scores read in order from an index of their own, and a tier's or a
    /// stage's holders found without reading everyone (`crate::store::Store::lowest`). Tiers
    /// and stages change only when graded and a band only with its score's step, so folds and
    /// most re-scores touch none of these.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for (table, name, columns) in [
                (
                    "scoring_scores",
                    "scoring_scores_by_band",
                    &["tenant_id", "band", "score_step"][..],
                ),
                (
                    "scoring_customers",
                    "scoring_customers_by_tier",
                    &["tenant_id", "tier"],
                ),
                (
                    "scoring_customers",
                    "scoring_customers_by_stage",
                    &["tenant_id", "stage"],
                ),
            ] {
                manager.create_index(index(table, name, columns)).await?;
            }
            Ok(())
        }
    }
}

mod m20261209_000001_room_for_updates {
    use super::*;

    rapport_storage::migration_name!("m20261209_000001_room_for_updates");

    /// A customer's row and score are rewritten by every fold: room on their pages keeps
    /// those updates in place.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            rapport_storage::schema::room_for_updates(
                manager,
                &["scoring_customers", "scoring_scores"],
            )
            .await
        }
    }
}
