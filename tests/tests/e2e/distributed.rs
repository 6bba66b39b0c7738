//! The flow against the four service binaries as separate processes, on a throwaway
//! PostgreSQL and redis-server.

use rapport_proto::scoring::v1 as scoring;
use rapport_tests::{Clients, Distributed, Postgres, Redis, Service, channel, scenario};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test(flavor = "multi_thread")]
async fn distributed_platform_on_postgres_and_redis() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let logs = tempfile::tempdir().unwrap();
    let redis_url = redis.url();
    let platform = Distributed::on_postgres_and_redis(&pg, &redis, logs.path());

    for (addr, service) in [
        (
            &platform.addrs.ingestion,
            "rapport.ingestion.v1.IngestionService",
        ),
        (&platform.addrs.scoring, "rapport.scoring.v1.ScoringService"),
        (
            &platform.addrs.segmentation,
            "rapport.segmentation.v1.SegmentationService",
        ),
        (
            &platform.addrs.alerting,
            "rapport.alerting.v1.AlertingService",
        ),
    ] {
        let status = HealthClient::new(channel(addr))
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("grpc.health.v1 answers without credentials")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service}");
    }

    let clients = Clients::new(&platform.addrs);
    let finals = scenario::run(&clients).await;

    // Every score is written through to Redis under a key that carries the tenant.
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for h in &finals {
        let key = format!("rapport:3:dev:health:{}", h.customer_id);
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let cached = rapport_scoring::body::decode(&bytes.expect("cached score")).unwrap();
        assert_eq!(&cached, h, "the cached copy is what GetHealth answers");
    }

    // A whole-tenant re-score on PostgreSQL ranks everyone's spend among the tenant; a second
    // one finds nothing changed and writes nothing.
    let first = scenario::rescore_all(&clients).await;
    assert!(first.done && first.customers_done == 3, "{first:?}");
    let second = scenario::rescore_all(&clients).await;
    assert_eq!(
        (second.customers_done, second.changed),
        (3, 0),
        "{second:?}"
    );
    // Snapshots' JSON (of rows stored before bodies) is compressed with lz4, not pglz (the
    // scoring migrations' choice).
    assert_eq!(
        pg.query(
            "SELECT string_agg(attname || '=' || attcompression::text, ',' ORDER BY attname) \
             FROM pg_attribute WHERE attrelid = 'scoring_snapshots'::regclass \
             AND attname IN ('measures', 'detail')"
        ),
        "detail=l,measures=l"
    );
    // Ids of the large per-customer tables compare as bytes, whatever the database's locale.
    let tables = [
        "scoring_customers",
        "scoring_scores",
        "scoring_snapshots",
        "segmentation_customers",
        "segmentation_stage_changes",
        "segmentation_tier_changes",
    ];
    let collations = pg.query(&format!(
        "SELECT string_agg(c.relname || '.' || a.attname || '=' || co.collname, ',' \
         ORDER BY c.relname, a.attname) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_collation co ON co.oid = a.attcollation \
         WHERE c.relname IN ('{}') AND a.attname IN ('tenant_id', 'customer_id')",
        tables.join("', '")
    ));
    let expected: Vec<String> = tables
        .iter()
        .flat_map(|t| [format!("{t}.customer_id=C"), format!("{t}.tenant_id=C")])
        .collect();
    assert_eq!(collations, expected.join(","));
    let alice = scenario::health(&clients, "alice").await.expect("alice");
    let spend = alice.measures.iter().find(|m| m.measure == "spend_365d");
    assert!(
        spend.and_then(|m| m.score).is_some_and(|s| s > 50.0),
        "{alice:?}"
    );

    // Reads keep working from the database while Redis is down, and use it again when it is back.
    let mut redis = redis;
    redis.stop();
    let during = scenario::health(&clients, "alice")
        .await
        .expect("served from the database without Redis");
    assert_eq!(during, alice);
    redis.restart();

    // Without credentials, or with a wrong key, nothing is answered.
    let mut anon = clients.scoring.clone();
    let err = anon
        .get_health(scoring::GetHealthRequest {
            customer_id: "alice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // Each service serves Prometheus metrics of what it just did.
    let scraped = |service: Service| rapport_tests::scrape(&platform.addrs.metrics[&service]);
    let ingestion = scraped(Service::Ingestion);
    for expected in [
        r#"rapport_events_total{verdict="accepted"}"#,
        r#"rapport_events_total{verdict="rejected",reason="#,
        r#"rapport_rpc_requests_total{service="rapport.ingestion.v1.IngestionService",method="Ingest",code="0"}"#,
        r#"rapport_outbox_depth{outbox="ingestion_outbox"}"#,
        r#"rapport_outbox_lag_seconds{outbox="ingestion_outbox"}"#,
        r#"rapport_outbox_messages_total{outbox="ingestion_outbox",outcome="delivered"}"#,
    ] {
        assert!(ingestion.contains(expected), "{expected} in:\n{ingestion}");
    }
    let scoring = scraped(Service::Scoring);
    assert!(
        scoring.contains(r#"rapport_cache_reads_total{result="hit"}"#),
        "{scoring}"
    );
    assert!(
        scoring.contains(r#"code="16"}"#),
        "the unauthenticated call is counted: {scoring}"
    );
    let alerting = scraped(Service::Alerting);
    assert!(
        alerting.contains(r#"rapport_alert_changes_total{rule="health_below",change="opened"} 1"#),
        "{alerting}"
    );
}
