//! Shared pieces of the benchmarks: timing, the CDNOW data, and the report line format.

// Benchmarks time themselves and date their synthetic events by the system clock.
#![allow(clippy::disallowed_methods)]

pub mod profile;
pub mod standin;
pub mod synthetic;

use chrono::NaiveDate;
use rapport_domain::models::summary::{Summary, summarise};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Runs `f` `runs` times and returns the median duration and the last result.
pub fn median_time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], last.expect("at least one run"))
}

/// A population as report names write it: `20k`, `1m`.
pub fn population(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}m", n / 1_000_000)
    } else if n >= 1_000 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Messages waiting in the services' outboxes on a database (ingestion's, scoring's and
/// segmentation's): what one service has still to tell another.
pub async fn backlog(db: &rapport_storage::sea_orm::DatabaseConnection) -> anyhow::Result<i64> {
    let mut left = 0;
    for outbox in [
        rapport_ingestion::migration::OUTBOX,
        rapport_scoring::migration::OUTBOX,
        rapport_segmentation::migration::OUTBOX,
    ] {
        left += outbox.depth(db).await?.0;
    }
    Ok(left)
}

/// Milliseconds, for reports.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The report line of a figure against its baseline: `bench NAME: X ms vs BASE Y ms = Z.Zx faster`.
pub fn report(name: &str, ours: Duration, baseline_name: &str, baseline: Duration) -> String {
    let ratio = baseline.as_secs_f64() / ours.as_secs_f64();
    format!(
        "bench {name}: {:.2} ms vs {baseline_name} {:.2} ms = {ratio:.1}x faster",
        ms(ours),
        ms(baseline)
    )
}

/// Bytes as mebibytes, for reports.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The CDNOW data directory (`RAPPORT_CDNOW_DIR`, else `shared/data/cdnow` beside the repository).
pub fn cdnow_dir() -> PathBuf {
    std::env::var("RAPPORT_CDNOW_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cdnow"),
        PathBuf::from,
    )
}

/// The 2,357 sample customers summarised over weeks 1–39, from `CDNOW_sample.txt`.
pub fn cdnow_sample_summaries() -> anyhow::Result<Vec<Summary>> {
    let path = cdnow_dir().join("CDNOW_sample.txt");
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut purchases: BTreeMap<u32, Vec<(NaiveDate, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        anyhow::ensure!(f.len() == 5, "unexpected line {line:?}");
        let day = NaiveDate::parse_from_str(f[2], "%Y%m%d")?;
        purchases
            .entry(f[1].parse()?)
            .or_default()
            .push((day, f[4].parse()?));
    }
    let end = NaiveDate::from_ymd_opt(1997, 9, 30).ok_or_else(|| anyhow::anyhow!("date"))?;
    Ok(purchases
        .values()
        .filter_map(|p| summarise(p, end, 7.0))
        .collect())
}

/// When each probe was sent, by its customer (those still waiting for what they are timed to).
pub type Sent = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// Follows `WatchAlerts` from the first revision and sends, when the detractor alert of a
/// customer in `sent` opens, the time since that customer's probe was sent (once each). Abort
/// the task when done.
pub async fn detractor_alerts(
    c: &rapport_tests::Clients,
    sent: Sent,
) -> anyhow::Result<(
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<Duration>,
)> {
    use rapport_proto::alerting::v1 as alerting;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watch = rapport_tests::req(alerting::WatchAlertsRequest { after_revision: 0 });
    // The stream lasts the whole phase: no deadline.
    watch.metadata_mut().remove("grpc-timeout");
    let mut stream = c.alerting.clone().watch_alerts(watch).await?.into_inner();
    let watcher = tokio::spawn(async move {
        while let Ok(Some(m)) = stream.message().await {
            let Some(a) = m.alert else { continue };
            if m.change != alerting::ChangeKind::Opened as i32 || a.rule != "detractor" {
                continue;
            }
            let start = sent.lock().ok().and_then(|mut s| s.remove(&a.customer_id));
            if let Some(start) = start {
                let _ = tx.send(start.elapsed());
            }
        }
    });
    Ok((watcher, rx))
}
