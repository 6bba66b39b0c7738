//! Segmentation's schema, versioned in its own migration table.

use rapport_storage::schema::{
    add_columns, col, customer_col, customer_key, id_col, index, tenant_col,
};
use sea_orm_migration::prelude::*;

/// The outbox of tier changes for scoring.
pub const OUTBOX: rapport_storage::outbox::Outbox =
    rapport_storage::outbox::Outbox::new("segmentation_outbox");

rapport_storage::migrator!(
    "segmentation_migrations",
    [
        m20261123_000001_tiers::Migration,
        m20261124_000001_rfm_segments_and_pending_tiers::Migration,
        m20261124_000002_stages::Migration,
        m20261124_000003_custom_segments::Migration,
        m20261125_000001_clv::Migration,
        m20261126_000001_ids_compare_as_bytes::Migration,
        m20261204_000001_schedules::Migration,
        m20261208_000001_rfm_members::Migration,
        m20261208_000002_run_distribution::Migration,
        m20261208_000003_kpi_reports::Migration
    ]
);

mod m20261123_000001_tiers {
    use super::*;

    rapport_storage::migration_name!("m20261123_000001_tiers");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_customers"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("tier").string().not_null())
                        .col(col("recency_score").integer().not_null())
                        .col(col("frequency_score").integer().not_null())
                        .col(col("monetary_score").integer().not_null())
                        .col(col("run_id").big_integer().not_null())
                        .primary_key(&mut customer_key())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_tier_changes"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("old_tier").string().null())
                        .col(col("new_tier").string().not_null())
                        .col(col("reason").text().not_null())
                        .col(col("run_id").big_integer().not_null())
                        .col(col("at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_runs"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(col("started_at").big_integer().not_null())
                        .col(col("finished_at").big_integer().not_null())
                        .col(col("customers").big_integer().not_null())
                        .col(col("tier_changes").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            rapport_storage::outbox::create_table(manager, "segmentation_outbox").await
        }
    }
}

mod m20261124_000001_rfm_segments_and_pending_tiers {
    use super::*;

    rapport_storage::migration_name!("m20261124_000001_rfm_segments_and_pending_tiers");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "segmentation_customers",
                vec![
                    col("rfm_segment").string().null().to_owned(),
                    // A downgrade waiting for confirmation: the lower tier and the runs so far.
                    col("pending_tier").string().null().to_owned(),
                    col("pending_runs")
                        .integer()
                        .not_null()
                        .default(0)
                        .to_owned(),
                ],
            )
            .await
        }
    }
}

mod m20261124_000002_stages {
    use super::*;

    rapport_storage::migration_name!("m20261124_000002_stages");

    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "segmentation_customers",
                vec![
                    col("stage").string().null().to_owned(),
                    col("stage_since").big_integer().null().to_owned(),
                ],
            )
            .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_stage_changes"))
                        .if_not_exists()
                        .col(id_col())
                        .col(tenant_col())
                        .col(customer_col())
                        .col(col("old_stage").string().null())
                        .col(col("new_stage").string().not_null())
                        .col(col("run_id").big_integer().not_null())
                        .col(col("at").big_integer().not_null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(index(
                    "segmentation_stage_changes",
                    "segmentation_stage_changes_customer",
                    &["tenant_id", "customer_id", "id"],
                ))
                .await
        }
    }
}

mod m20261124_000003_custom_segments {
    use super::*;

    rapport_storage::migration_name!("m20261124_000003_custom_segments");

    /// Custom segments (CEL) and their members as of the latest run.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_custom_segments"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(col("name").string_len(100).not_null())
                        .col(col("expression").text().not_null())
                        .col(col("created_at").big_integer().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("name")),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_segment_members"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(col("segment").string_len(100).not_null())
                        .col(customer_col())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("segment"))
                                .col(Alias::new("customer_id")),
                        )
                        .to_owned(),
                )
                .await
        }
    }
}

mod m20261125_000001_clv {
    use super::*;

    rapport_storage::migration_name!("m20261125_000001_clv");

    /// Each customer's predicted CLV as of the latest run, for the KPIs.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "segmentation_customers",
                vec![col("clv").double().null().to_owned()],
            )
            .await
        }
    }
}

mod m20261126_000001_ids_compare_as_bytes {
    use super::*;

    rapport_storage::migration_name!("m20261126_000001_ids_compare_as_bytes");

    /// Ids of the grades and their histories compare as bytes on PostgreSQL: a first run
    /// writes a grade, a stage change and a tier change per customer.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            rapport_storage::schema::ids_compare_as_bytes(
                manager,
                &[
                    "segmentation_customers",
                    "segmentation_tier_changes",
                    "segmentation_stage_changes",
                ],
            )
            .await
        }
    }
}

mod m20261204_000001_schedules {
    use super::*;

    rapport_storage::migration_name!("m20261204_000001_schedules");

    /// The periods of the scheduled runs, claimed by one replica each.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            rapport_storage::coordination::create_schedule_table(manager, "segmentation_schedules")
                .await
        }
    }
}

mod m20261208_000001_rfm_members {
    use super::*;

    rapport_storage::migration_name!("m20261208_000001_rfm_members");

    /// An RFM segment's members a page at a time, and their count, without reading the
    /// tenant's other customers.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_index(index(
                    "segmentation_customers",
                    "segmentation_customers_rfm",
                    &["tenant_id", "rfm_segment", "customer_id"],
                ))
                .await
        }
    }
}

mod m20261208_000002_run_distribution {
    use super::*;

    rapport_storage::migration_name!("m20261208_000002_run_distribution");

    /// How a run left the customers spread over tiers, stages and RFM grades: a run grades
    /// everyone, so its spread is the tenant's until the next, read without counting anyone.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            add_columns(
                manager,
                "segmentation_runs",
                vec![col("distribution").binary().null().to_owned()],
            )
            .await
        }
    }
}

mod m20261208_000003_kpi_reports {
    use super::*;

    rapport_storage::migration_name!("m20261208_000003_kpi_reports");

    /// KPI reports of the default periods, computed once after a run: a report reads the whole
    /// event log, far too much for every page that shows one.
    #[async_trait::async_trait]
    impl MigrationTrait for Migration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("segmentation_kpi_reports"))
                        .if_not_exists()
                        .col(tenant_col())
                        .col(col("shape").string().not_null())
                        .col(col("run_id").big_integer().not_null())
                        .col(col("computed_at").big_integer().not_null())
                        .col(col("report").binary().not_null())
                        .primary_key(
                            Index::create()
                                .col(Alias::new("tenant_id"))
                                .col(Alias::new("shape")),
                        )
                        .to_owned(),
                )
                .await
        }
    }
}
