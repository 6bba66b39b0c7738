//! Scheduled segmentation: once a tenant has been graded, the service grades it again on its
//! own every interval, so a customer who arrives later is graded without anyone asking.

use rapport_proto::segmentation::v1 as segmentation;
use rapport_tests::scenario::{SETTLE, ingest, order, segment, wait_all_scored};
use rapport_tests::{
    Addrs, Backing, Clients, Postgres, Redis, Service, eventually, req, start_service,
    start_service_with,
};

async fn graded(c: &Clients) -> Option<u64> {
    c.segmentation
        .clone()
        .get_distribution(req(segmentation::GetDistributionRequest {}))
        .await
        .ok()
        .map(|d| d.into_inner().customers)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graded_tenant_is_graded_again_on_schedule() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    let logs = tempfile::tempdir().unwrap();
    let (database_url, redis_url) = (pg.url(), redis.url());
    let backing = Backing {
        database_url: &database_url,
        redis_url: Some(&redis_url),
        otlp: None,
    };
    let addrs = Addrs::free();
    let _services: Vec<_> = [Service::Alerting, Service::Scoring, Service::Ingestion]
        .into_iter()
        .map(|s| start_service(s, &addrs, &backing, logs.path()))
        .chain([start_service_with(
            Service::Segmentation,
            &addrs,
            &backing,
            logs.path(),
            &[("RAPPORT_SEGMENTATION_INTERVAL_SECS", "1")],
        )])
        .collect();
    let c = Clients::new(&addrs);

    let first = vec![
        order("s1", "ann", 10, 40.0),
        order("s2", "bob", 9, 20.0),
        order("s3", "cy", 8, 10.0),
    ];
    assert_eq!(ingest(&c, first).await.accepted, 3);
    wait_all_scored(&c, 3, 3, SETTLE).await;
    // A tenant's first run is on demand; it is what puts the tenant on the schedule.
    assert_eq!(segment(&c, None).await.customers, 3);
    assert_eq!(graded(&c).await, Some(3));

    assert_eq!(
        ingest(&c, vec![order("s4", "dee", 1, 99.0)]).await.accepted,
        1
    );
    wait_all_scored(&c, 4, 4, SETTLE).await;
    eventually("dee graded by a scheduled run", SETTLE, || async {
        (graded(&c).await == Some(4)).then_some(())
    })
    .await;
}
