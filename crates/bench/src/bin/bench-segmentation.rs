//! `make bench-segmentation`: a full segmentation run (RFM, tiers, lifecycle stages) over the
//! CDNOW log replicated `RAPPORT_BENCH_COPIES` times (default 100: 2.36 M customers, 6.97 M
//! purchases) with distinct customer ids, next to DuckDB computing the same RFM scores from
//! the same rows in the same run.
//!
//! Three figures against DuckDB's RFM query (its CSV load not counted):
//! - the grading in memory: purchases aggregated per customer, RFM quintiles, tiers, stages
//!   (what DuckDB's query does, plus tiers and stages);
//! - the service's run on SQLite and on PostgreSQL: `RunSegmentation` called on the
//!   `rapport-segmentation` binary, which pages customer features over gRPC from a scoring
//!   stand-in (so the figure is segmentation's alone), grades them, and stores every grade,
//!   tier change, stage change and outbox message in one transaction; first run (every
//!   customer new) and a re-run (nothing changes), each by a fresh process, whose peak
//!   resident memory is reported beside the size of the population's encoded features.
//!
//! The RFM scores are checked equal to DuckDB's (the count of customers per R, F, M triple).

// Benchmarks time themselves and date their synthetic events by the system clock.
#![allow(clippy::disallowed_methods)]

use chrono::NaiveDate;
use prost::Message;
use rapport_domain::lifecycle::{Stage, StageRules};
use rapport_domain::tier::TierCutoffs;
use rapport_proto::scoring::v1::CustomerFeatures;
use rapport_proto::segmentation::v1 as pb;
use rapport_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use rapport_segmentation::TierMeasure;
use rapport_segmentation::grading::grade;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

const AS_OF: &str = "1998-07-01";

/// One purchase of the replicated log.
struct Purchase {
    customer: String,
    day: NaiveDate,
    amount: f64,
}

/// The CDNOW log, `copies` times, each copy's customers with ids of their own.
fn purchases(copies: usize) -> anyhow::Result<Vec<Purchase>> {
    let path = rapport_bench::cdnow_dir().join("CDNOW_master.txt");
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // The header line.
        if f.first()
            .is_some_and(|c| !c.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        anyhow::ensure!(f.len() == 4, "unexpected line {line:?}");
        let customer: u32 = f[0].parse()?;
        rows.push((
            customer,
            NaiveDate::parse_from_str(f[1], "%Y%m%d")?,
            f[3].parse::<f64>()?,
        ));
    }
    let mut out = Vec::with_capacity(rows.len() * copies);
    for copy in 0..copies {
        for (customer, day, amount) in &rows {
            out.push(Purchase {
                customer: format!("{copy:03}-{customer:05}"),
                day: *day,
                amount: *amount,
            });
        }
    }
    Ok(out)
}

/// Each customer's features as of `as_of`, as scoring reports them.
fn features(purchases: &[Purchase], as_of: NaiveDate) -> Vec<CustomerFeatures> {
    let mut by: HashMap<&str, Vec<(NaiveDate, f64)>> = HashMap::new();
    for p in purchases.iter().filter(|p| p.day <= as_of) {
        by.entry(&p.customer).or_default().push((p.day, p.amount));
    }
    let year_ago = as_of - chrono::Duration::days(365);
    by.into_iter()
        .map(|(id, mut days)| {
            days.sort_by_key(|(d, _)| *d);
            let first = days.first().map(|(d, _)| *d).unwrap_or(as_of);
            let last = days.last().map(|(d, _)| *d).unwrap_or(as_of);
            let mut distinct = days.iter().map(|(d, _)| *d).collect::<Vec<_>>();
            distinct.dedup();
            let spend: f64 = days.iter().map(|(_, a)| a).sum();
            CustomerFeatures {
                customer_id: id.to_owned(),
                recency_days: Some((as_of - last).num_days() as f64),
                frequency: days.len() as u64,
                monetary: spend,
                purchase_days: distinct.len() as u64,
                spend,
                first_purchase_days: Some((as_of - first).num_days() as f64),
                spend_12m: days
                    .iter()
                    .filter(|(d, _)| *d > year_ago)
                    .map(|(_, a)| a)
                    .sum(),
                ..Default::default()
            }
        })
        .collect()
}

/// DuckDB's figures: RFM time and the customers per (r, f, m).
struct DuckDb {
    load: Duration,
    rfm: Duration,
    histogram: BTreeMap<(u8, u8, u8), u64>,
}

fn duckdb(purchases: &[Purchase]) -> anyhow::Result<DuckDb> {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("purchases.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    writeln!(out, "customer,day,amount")?;
    for p in purchases {
        writeln!(out, "{},{},{}", p.customer, p.day, p.amount)?;
    }
    out.flush()?;
    drop(out);
    let python = std::env::var("RAPPORT_PYTHON").unwrap_or_else(|_| ".venv/bin/python".to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/rfm_duckdb.py");
    let run = std::process::Command::new(&python)
        .args([script, &csv.to_string_lossy(), AS_OF])
        .output()
        .map_err(|e| anyhow::anyhow!("{python}: {e} (run `make test-deps` for the venv)"))?;
    anyhow::ensure!(
        run.status.success(),
        "DuckDB: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    let ms = |key: &str| Duration::from_secs_f64(v[key].as_f64().unwrap_or(f64::NAN) / 1e3);
    let mut histogram = BTreeMap::new();
    for row in v["histogram"].as_array().into_iter().flatten() {
        let n = |i: usize| row[i].as_u64().unwrap_or(0);
        histogram.insert((n(0) as u8, n(1) as u8, n(2) as u8), n(3));
    }
    Ok(DuckDb {
        load: ms("load_ms"),
        rfm: ms("rfm_ms"),
        histogram,
    })
}

/// The service's first run and re-run: time, and the service process's peak resident memory.
struct ServiceRuns {
    first: Duration,
    again: Duration,
    first_peak: u64,
    again_peak: u64,
    customers: u64,
}

/// A process's peak resident memory (`VmHWM`), in bytes.
fn peak_resident(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM for process {pid}"))?;
    Ok(kb * 1024)
}

/// One run by a fresh `rapport-segmentation` process on `database_url`: its time, what it
/// reported, and the process's peak resident memory.
async fn service_run(
    database_url: &str,
    scoring: &str,
) -> anyhow::Result<(Duration, pb::SegmentationSummary, u64)> {
    let logs = tempfile::tempdir()?;
    let mut addrs = rapport_tests::Addrs::free();
    addrs.scoring = scoring.to_owned();
    let backing = rapport_tests::Backing {
        database_url,
        redis_url: None,
        otlp: None,
    };
    let mut service = rapport_tests::start_service_with(
        rapport_tests::Service::Segmentation,
        &addrs,
        &backing,
        logs.path(),
        &[
            ("RAPPORT_SEGMENTATION_INTERVAL_SECS", "0"),
            ("RAPPORT_LOG_JSON", "1"),
        ],
    );
    let pid = service
        .pid()
        .ok_or_else(|| anyhow::anyhow!("segmentation is not running"))?;
    let mut client = SegmentationServiceClient::new(rapport_tests::channel(&addrs.segmentation));
    let as_of = rapport_proto::convert::timestamp(
        NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")?
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis(),
    );
    let mut req = rapport_tests::req(pb::RunSegmentationRequest { as_of: Some(as_of) });
    req.set_timeout(Duration::from_secs(1_800));
    let started = Instant::now();
    let summary = summary(client.run_segmentation(req).await).await;
    let time = started.elapsed();
    let peak = peak_resident(pid);
    service.terminate();
    // Where the run's time went, as the service logged it (in JSON, one event a line).
    let log = service.log_text();
    let run = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|event| event["fields"]["message"] == "segmentation run");
    if let Some(event) = run {
        let fields = &event["fields"];
        println!(
            "  the service: read and ranked in {} ms, graded and stored in {} ms",
            fields["read_and_ranked_ms"], fields["graded_and_stored_ms"]
        );
    }
    let summary =
        summary.map_err(|s| anyhow::anyhow!("run: {}; the service's log:\n{log}", s.message()))?;
    Ok((time, summary, peak?))
}

/// The summary that ends a run's progress.
async fn summary(
    call: Result<tonic::Response<tonic::Streaming<pb::RunSegmentationProgress>>, tonic::Status>,
) -> Result<pb::SegmentationSummary, tonic::Status> {
    let mut progress = call?.into_inner();
    let mut summary = None;
    while let Some(p) = progress.message().await? {
        summary = p.summary.or(summary);
    }
    summary.ok_or_else(|| tonic::Status::internal("the run ended without its summary"))
}

/// The service's first run and re-run on `database_url`, each by a process of its own, with
/// features served by the stand-in at `scoring`.
async fn service_runs(database_url: &str, scoring: &str) -> anyhow::Result<ServiceRuns> {
    let (first, answer, first_peak) = service_run(database_url, scoring).await?;
    let (again, unchanged, again_peak) = service_run(database_url, scoring).await?;
    anyhow::ensure!(
        unchanged.tier_changes == 0,
        "a re-run changed tiers: {unchanged:?}"
    );
    Ok(ServiceRuns {
        first,
        again,
        first_peak,
        again_peak,
        customers: answer.customers,
    })
}

fn line(name: &str, ours: Duration, baseline: Duration) -> String {
    format!(
        "bench {name}: {:.0} ms vs DuckDB RFM {:.0} ms = {:.2}x DuckDB's time (goal ≤ 2x)",
        rapport_bench::ms(ours),
        rapport_bench::ms(baseline),
        ours.as_secs_f64() / baseline.as_secs_f64()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The services' allocator, set up as they set it, so the figures are the deployed ones.
    rapport_allocator::configure();
    let copies: usize = std::env::var("RAPPORT_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let as_of = NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")?;
    let log = purchases(copies)?;
    let base = duckdb(&log)?;

    let started = Instant::now();
    let features = features(&log, as_of);
    let aggregated = started.elapsed();
    let grading = grade(&features, TierMeasure::Clv, &TierCutoffs::default());
    let rules = StageRules::default();
    let stages: Vec<Stage> = grading
        .grades
        .iter()
        .map(|g| rules.grade(&g.facts, None))
        .collect();
    let in_memory = started.elapsed();
    drop(log);

    let mut ours: BTreeMap<(u8, u8, u8), u64> = BTreeMap::new();
    for g in &grading.grades {
        *ours.entry((g.rfm.r, g.rfm.f, g.rfm.m)).or_default() += 1;
    }
    anyhow::ensure!(
        ours == base.histogram,
        "RFM scores differ from DuckDB's: {} triples here, {} there",
        ours.len(),
        base.histogram.len()
    );
    println!(
        "{} customers, {} purchase rows ({copies} copies of CDNOW); RFM scores equal DuckDB's \
         (customers per R, F, M triple); {} stages graded; DuckDB CSV load {:.0} ms (not counted)",
        features.len(),
        features.iter().map(|f| f.frequency).sum::<u64>(),
        stages.len(),
        rapport_bench::ms(base.load)
    );
    println!(
        "{} (aggregating the purchases {:.0} ms, grading {:.0} ms)",
        line("segmentation-in-memory", in_memory, base.rfm),
        rapport_bench::ms(aggregated),
        rapport_bench::ms(in_memory - aggregated)
    );
    drop(grading);

    // A run that held the population would hold at least its features, whose encoding is
    // their smallest form.
    let encoded: u64 = features.iter().map(|f| f.encoded_len() as u64).sum();
    let customers = features.len() as u64;
    let scoring = rapport_bench::standin::start_with_features(features).await?;
    let scoring = scoring.to_string();
    // RAPPORT_BENCH_STORE=sqlite or =postgres runs the service on one store only.
    let only = std::env::var("RAPPORT_BENCH_STORE").ok();
    for store in ["sqlite", "postgres"] {
        if only.as_deref().is_some_and(|s| s != store) {
            continue;
        }
        // Each database lives as long as its runs.
        let runs = if store == "sqlite" {
            let dir = tempfile::tempdir()?;
            let url = rapport_storage::sqlite_url(dir.path(), "segmentation");
            service_runs(&url, &scoring).await?
        } else {
            let pg = rapport_tests::Postgres::start_durable();
            service_runs(&pg.url(), &scoring).await?
        };
        anyhow::ensure!(
            runs.customers == customers,
            "the run graded {}",
            runs.customers
        );
        report_runs(store, &runs, base.rfm, encoded);
    }
    Ok(())
}

/// The lines of the service's runs on `database`: times against DuckDB's, the process's
/// peak memory against the population's encoded features (`encoded` bytes).
fn report_runs(database: &str, runs: &ServiceRuns, duckdb: Duration, encoded: u64) {
    let name = format!("segmentation-run-{database}");
    println!("{}", line(&format!("{name} first"), runs.first, duckdb));
    println!("{}", line(&format!("{name} unchanged"), runs.again, duckdb));
    println!(
        "bench {name} memory: the service process peaked at {:.0} MiB resident in the first \
         run, {:.0} MiB in the unchanged, vs the population's features encoded {:.0} MiB \
         ({:.2}x, {:.2}x)",
        rapport_bench::mib(runs.first_peak),
        rapport_bench::mib(runs.again_peak),
        rapport_bench::mib(encoded),
        runs.first_peak as f64 / encoded as f64,
        runs.again_peak as f64 / encoded as f64,
    );
}
