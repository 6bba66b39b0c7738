//! The flow against `rapport up`: one process, four services on loopback, SQLite, no Redis.

use rapport_tests::{Clients, Embedded, scenario};

#[tokio::test(flavor = "multi_thread")]
async fn embedded_platform_scores_grades_and_alerts() {
    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    scenario::run(&clients).await;
    for service in ["ingestion", "scoring", "segmentation", "alerting"] {
        assert!(
            platform
                .dir
                .path()
                .join(format!(".rapport/{service}.db"))
                .exists(),
            "{service} has its own SQLite file"
        );
    }
}
