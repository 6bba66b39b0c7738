//! The read path never fails for Redis: with a real redis-server stopped in the middle of a
//! read loop, every GetHealth and BatchGetHealth is still answered (from the database), and
//! once Redis is back the reads refill it and hit it again. And Redis keeps the newest of
//! writes that reach it out of order.

use rapport_proto::scoring::v1 as scoring;
use rapport_tests::scenario::{SETTLE, order, wait_all_scored};
use rapport_tests::{Clients, Distributed, Postgres, Redis, channel, req};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Redis's count of keyspace hits.
async fn keyspace_hits(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("keyspace_hits:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_a_redis_outage_and_use_redis_again_after_it() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let logs = tempfile::tempdir().unwrap();
    let redis_url = redis.url();
    let platform = Distributed::on_postgres_and_redis(&pg, &redis, logs.path());
    let c = Clients::new(&platform.addrs);
    let customers: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    let events = customers
        .iter()
        .enumerate()
        .map(|(i, id)| order(&format!("e{i}"), id, 1 + i as i64, 10.0))
        .collect();
    c.ingestion
        .clone()
        .ingest(req(rapport_proto::ingestion::v1::IngestRequest {
            events,
            ..Default::default()
        }))
        .await
        .unwrap();
    wait_all_scored(&c, 20, 20, SETTLE).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (c, ids) = (c.clone(), customers.clone());
        let (stop, calls, failures) = (stop.clone(), calls.clone(), failures.clone());
        tokio::spawn(async move {
            let mut scoring = c.scoring.clone();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let one = scoring
                    .get_health(req(scoring::GetHealthRequest {
                        customer_id: ids[i % ids.len()].clone(),
                    }))
                    .await;
                let batch = scoring
                    .batch_get_health(req(scoring::BatchGetHealthRequest {
                        customer_ids: ids.clone(),
                    }))
                    .await;
                let ok = one.is_ok() && batch.is_ok_and(|b| b.into_inner().scores.len() == 20);
                calls.fetch_add(2, Ordering::SeqCst);
                if !ok {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                i += 1;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let served_before = calls.load(Ordering::SeqCst);
    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let served_during = calls.load(Ordering::SeqCst) - served_before;
    let status = HealthClient::new(channel(&platform.addrs.scoring))
        .check(HealthCheckRequest {
            service: "rapport.scoring.v1.ScoringService".into(),
        })
        .await
        .expect("health check answers")
        .into_inner()
        .status;
    assert_eq!(
        status,
        ServingStatus::Serving as i32,
        "SERVING without Redis"
    );
    redis.restart();
    let hits_at_restart = keyspace_hits(&redis_url).await;
    // The reads refill the empty Redis (read-through) and then hit it.
    let mut hits = hits_at_restart;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        hits = keyspace_hits(&redis_url).await;
        if hits > hits_at_restart + 20 {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    reader.await.unwrap();

    assert_eq!(failures.load(Ordering::SeqCst), 0, "no read failed");
    assert!(
        served_during >= 4,
        "reads went on while Redis was down: {served_during}"
    );
    assert!(
        hits > hits_at_restart + 20,
        "cache hits resume after the restart: {hits_at_restart} -> {hits}"
    );
}

/// Replicas' writes of one score reach Redis in any order: the newest stays, and a refill
/// from the database never replaces a written score.
#[tokio::test]
async fn redis_keeps_the_newest_of_writes_arriving_out_of_order() {
    let redis = Redis::start();
    let cache = rapport_cache::RedisCache::connect(
        &redis.url(),
        Duration::from_secs(60),
        Duration::from_secs(1),
        None,
    )
    .unwrap();
    assert!(cache.wait_connected(Duration::from_secs(10)).await);
    rapport_cache::conformance::newest_wins(&cache).await;
}
