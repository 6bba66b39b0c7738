//! Bulk writes on PostgreSQL run on generic plans for their own transaction, and only there:
//! the pool's connections keep planning each execution for its values.

use rapport_tests::Postgres;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

async fn plan_cache_mode(conn: &impl ConnectionTrait) -> String {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SHOW plan_cache_mode",
        ))
        .await
        .unwrap()
        .expect("SHOW returns a row");
    row.try_get_by_index::<String>(0).unwrap()
}

#[tokio::test]
async fn a_bulk_write_plans_generically_and_the_pool_stays_custom() {
    let pg = Postgres::start();
    let db = rapport_storage::connect(&pg.url()).await.unwrap();
    assert_eq!(plan_cache_mode(&db).await, "force_custom_plan");

    let txn = rapport_storage::begin_bulk_write(&db).await.unwrap();
    assert_eq!(plan_cache_mode(&txn).await, "force_generic_plan");
    txn.commit().await.unwrap();

    let txn = rapport_storage::begin_bulk_write(&db).await.unwrap();
    txn.rollback().await.unwrap();

    // The connections that ran both transactions are back in the pool with the default.
    for _ in 0..10 {
        assert_eq!(plan_cache_mode(&db).await, "force_custom_plan");
    }
    let ordinary = db.begin().await.unwrap();
    assert_eq!(plan_cache_mode(&ordinary).await, "force_custom_plan");
    ordinary.commit().await.unwrap();
}
