//! CDNOW through Rapport's own event path: `rapport import --format cdnow` (run from the
//! platform's directory, no flags) → stored events → scoring's purchase summaries, which match
//! the published summaries row for row; a second import changes nothing.

use rapport_proto::scoring::v1::{CustomerFeatures, ListCustomerFeaturesRequest};
use rapport_tests::{Clients, Embedded, bin, eventually, repo_root, req};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

fn cdnow(name: &str) -> std::path::PathBuf {
    std::env::var("RAPPORT_CDNOW_DIR")
        .map_or_else(|_| repo_root().join("../shared/data/cdnow"), Into::into)
        .join(name)
}

fn import(platform: &Embedded, file: &std::path::Path) -> String {
    let out = Command::new(bin("rapport"))
        .args(["import", "--format", "cdnow"])
        .arg(file)
        .current_dir(platform.dir.path())
        .env_remove("RAPPORT_API_KEY")
        .env_remove("RAPPORT_INGESTION_ADDR")
        .output()
        .expect("run rapport import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn all_features(clients: &Clients, end: prost_types::Timestamp) -> Vec<CustomerFeatures> {
    let (mut all, mut after) = (Vec::new(), String::new());
    loop {
        let page = clients
            .scoring
            .clone()
            .list_customer_features(req(ListCustomerFeaturesRequest {
                after_customer_id: after,
                page_size: 1_000,
                observation_end: Some(end),
            }))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.customers);
        if page.next_after_customer_id.is_empty() {
            return all;
        }
        after = page.next_after_customer_id;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cdnow_sample_imported_as_events_rebuilds_the_published_summaries() {
    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    let first = import(&platform, &cdnow("CDNOW_sample.txt"));
    assert!(
        first.starts_with("accepted 6919  duplicate 0  rejected 0"),
        "{first}"
    );

    let end = prost_types::Timestamp {
        seconds: 875_577_600,
        nanos: 0,
    }; // 1997-09-30T00:00:00Z
    let features = eventually(
        "all 2,357 customers scored",
        Duration::from_secs(120),
        || async {
            let f = all_features(&clients, end).await;
            (f.len() == 2_357).then_some(f)
        },
    )
    .await;
    let by_id: HashMap<&str, &CustomerFeatures> = features
        .iter()
        .map(|f| (f.customer_id.as_str(), f))
        .collect();

    let csv =
        std::fs::read_to_string(cdnow("cdnow_customers_summary_with_transactions.csv")).unwrap();
    let mut compared = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let ours = by_id[f[0]]
            .purchases
            .as_ref()
            .expect("every customer bought");
        let (x, t_x, t, zbar): (u32, f64, f64, f64) = (
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
        );
        assert_eq!(ours.repeat_purchases, x, "customer {}", f[0]);
        for (got, want) in [
            (ours.first_to_last_days / 7.0, t_x),
            (ours.first_to_end_days / 7.0, t),
            (ours.mean_repeat_value, zbar),
        ] {
            assert!(
                (got - want).abs() <= 0.005 + 1e-9,
                "customer {}: {got} vs {want}",
                f[0]
            );
        }
        compared += 1;
    }
    assert_eq!(compared, 2_357);

    let second = import(&platform, &cdnow("CDNOW_sample.txt"));
    assert!(
        second.starts_with("accepted 0  duplicate 6919  rejected 0"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_full_cdnow_log_arrives_whole_and_only_once() {
    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    let first = import(&platform, &cdnow("CDNOW_master.txt"));
    assert!(
        first.starts_with("accepted 69659  duplicate 0  rejected 0"),
        "{first}"
    );

    let now = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp(),
        nanos: 0,
    };
    let features = eventually(
        "all 23,570 customers scored",
        Duration::from_secs(300),
        || async {
            let f = all_features(&clients, now).await;
            let orders: u64 = f.iter().map(|c| c.frequency).sum();
            (f.len() == 23_570 && orders == 69_659).then_some(f)
        },
    )
    .await;
    let dollars: f64 = features.iter().map(|c| c.monetary).sum();
    assert!((dollars - 2_500_315.63).abs() < 0.01, "total {dollars:.2}");

    let second = import(&platform, &cdnow("CDNOW_master.txt"));
    assert!(
        second.starts_with("accepted 0  duplicate 69659  rejected 0"),
        "{second}"
    );
}
