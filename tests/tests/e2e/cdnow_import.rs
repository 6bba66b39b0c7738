//! CDNOW through Rapport's own event path: `rapport import --format cdnow` (run from the
//! platform's directory, no flags) → stored events → scoring's purchase summaries, which match
//! the published summaries row for row; a second import changes nothing; and segmentation's
//! RFM of all 23,570 customers equals an independent pandas computation.

use rapport_proto::scoring::v1::{CustomerFeatures, ListCustomerFeaturesRequest};
use rapport_proto::segmentation::v1 as segmentation;
use rapport_tests::{Clients, Embedded, eventually, repo_root, req};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

fn cdnow(name: &str) -> std::path::PathBuf {
    std::env::var("RAPPORT_CDNOW_DIR")
        .map_or_else(|_| repo_root().join("../shared/data/cdnow"), Into::into)
        .join(name)
}

fn import(platform: &Embedded, file: &std::path::Path) -> String {
    platform.cli(&["import", "--format", "cdnow", &file.to_string_lossy()])
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
    let hooks = tempfile::tempdir().unwrap();
    let (_receiver, base, log) = rapport_tests::webhook_receiver(hooks.path(), "{}");
    let created = platform.cli(&[
        "webhooks",
        "create",
        &format!("{base}/team"),
        "--group-wait",
        "1s",
        "--backfill-wait",
        "20s",
    ]);
    assert!(
        created.contains("signing secret (shown once): whsec_"),
        "{created}"
    );
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

    // The import's alerts make one summary for the endpoint, not one message each; they
    // stand in the queue, counted first on a queue this long.
    let summary = eventually("the import's summary", Duration::from_secs(120), || async {
        crate::alerting::logged(&log, "/team").into_iter().next()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = crate::alerting::logged(&log, "/team");
    assert_eq!(
        requests.len(),
        1,
        "one message for the import: {requests:?}"
    );
    let body: serde_json::Value = serde_json::from_str(summary["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "alert.backfill", "{body}");
    let alerts = body["data"]["alerts"].as_u64().unwrap();
    assert!(alerts > 20_000, "{body}");
    let text = body["data"]["text"].as_str().unwrap();
    assert!(
        text.ends_with("customers below 50 after the import of CDNOW_master.txt"),
        "{text}"
    );
    let queue = platform.cli(&["alerts", "--state", "open"]);
    assert!(
        queue.starts_with(&format!("{alerts} alerts; by rule, tier and severity:")),
        "{queue}"
    );

    let second = import(&platform, &cdnow("CDNOW_master.txt"));
    assert!(
        second.starts_with("accepted 0  duplicate 69659  rejected 0"),
        "{second}"
    );
    rfm_matches_pandas(&clients).await;
    backtest_agrees_with_an_independent_computation(&platform);
    // The console over a real book: 23,570 customers, tens of thousands of alerts, the models
    // fitted (P(alive) to filter by).
    platform.cli(&["models"]);
    // The re-score's changes reach alerting before the pages are compared with the CLI.
    crate::console::told(&platform).await;
    let shots = rapport_tests::repo_root().join("target/console-screenshots/cdnow");
    crate::console::browse(&platform, &shots, "look");
}

/// `rapport backtest` of CDNOW as of 1997-10-01 with a 39-week horizon (and `extra`), as JSON.
fn backtest(platform: &Embedded, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "backtest",
        "--as-of",
        "1997-10-01",
        "--horizon",
        "39w",
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&platform.cli(&args)).expect("a JSON report")
}

/// Why the built-in lifecycle rules set no P(alive) floor: on CDNOW, customers a floor of 0.05
/// would call churned buy again more often than the dormant ones, whom it does not.
fn stage_floor_is_no_sign_of_churn(platform: &Embedded) {
    let report = backtest(platform, &["--stage-p-alive-floor", "0.05"]);
    let rate = |stage: &str| -> (u64, f64) {
        let g = report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["label"] == stage)
            .unwrap_or_else(|| panic!("no stage {stage}: {}", report["stages"]));
        (
            g["customers"].as_u64().unwrap(),
            g["rate"].as_f64().unwrap(),
        )
    };
    let (churned, dormant) = (rate("churned"), rate("dormant"));
    eprintln!("with a P(alive) floor of 0.05: churned {churned:?}, dormant {dormant:?}");
    assert!(
        churned.0 > 0 && churned.1 < dormant.1,
        "{}",
        report["stages"]
    );
}

/// The score as of 1997-10-01 against "no purchase in the next 39 weeks": every AUC the
/// report gives equals scipy's on the per-customer values it exported, to 1e-9; the
/// calibration table counts every customer once; the pictures are written.
fn backtest_agrees_with_an_independent_computation(platform: &Embedded) {
    let out = tempfile::tempdir().unwrap();
    let (csv, roc, reliability, fitted) = (
        out.path().join("customers.csv"),
        out.path().join("roc.svg"),
        out.path().join("reliability.svg"),
        out.path().join("fitted.toml"),
    );
    let report = backtest(
        platform,
        &[
            "--customers",
            &csv.display().to_string(),
            "--roc",
            &roc.display().to_string(),
            "--reliability",
            &reliability.display().to_string(),
            "--fit",
            &fitted.display().to_string(),
        ],
    );
    eprintln!("backtest: {report}");
    let customers = report["customers"].as_u64().unwrap();
    // Everyone who bought before the cut (CDNOW's cohort joined in 1997's first quarter).
    assert_eq!(customers, 23_570, "{report}");
    let binned: u64 = report["reliability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(binned, customers);
    let banded: u64 = report["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(banded, customers);
    // As of then everyone has a tier and a stage; tiers hold the default shares of CLV.
    let count = |key: &str| -> Vec<(String, u64)> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let label = g["label"].as_str().unwrap().to_owned();
                (label, g["customers"].as_u64().unwrap())
            })
            .collect()
    };
    let tiers = count("tiers");
    assert_eq!(
        tiers.iter().map(|t| t.1).sum::<u64>(),
        customers,
        "{tiers:?}"
    );
    assert_eq!(tiers[0], ("vip".to_owned(), 236), "the top 1 %: {tiers:?}");
    let stages = count("stages");
    assert_eq!(
        stages.iter().map(|s| s.1).sum::<u64>(),
        customers,
        "{stages:?}"
    );
    // The built-in P(alive) rule flags high-value customers who then buy less often than the
    // ones it leaves alone: it holds on real data.
    let check = &report["rule_checks"][0];
    assert_eq!(check["rule"], "p_alive_drop", "{report}");
    assert!(
        check["flagged"]["rate"].as_f64().unwrap() > check["others"]["rate"].as_f64().unwrap()
            && check["ranking"]["auc"].as_f64().unwrap() > 0.5,
        "{check}"
    );
    stage_floor_is_no_sign_of_churn(platform);

    let check = std::process::Command::new(rapport_tests::python())
        .arg(rapport_tests::repo_root().join("tests/python/backtest_check.py"))
        .arg(&csv)
        .output()
        .expect("run backtest_check.py");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let independent: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(independent["customers"].as_u64(), Some(customers));
    assert_eq!(independent["outcomes"], report["outcomes"]);
    let reported = |name: &str| -> f64 {
        if name == "score" {
            return report["score"]["auc"].as_f64().unwrap();
        }
        report["baselines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("no baseline {name}: {report}"))["auc"]
            .as_f64()
            .unwrap()
    };
    for (ours, theirs) in [
        ("score", "score"),
        ("expected_purchases", "expected_purchases"),
        ("p_alive", "p_alive"),
        ("recency", "recency_days"),
        ("rfm", "rfm"),
    ] {
        let (a, b) = (reported(ours), independent[theirs].as_f64().unwrap());
        assert!((a - b).abs() < 1e-9, "{ours}: {a} against {b}");
    }
    // The card fitted on half the customers ranks the other half at least as well as the
    // best single measure, and its bands' outcome rates stand apart.
    let fit = &report["fit"];
    let (fitted_auc, best) = (
        fit["fitted_auc"].as_f64().unwrap(),
        fit["best_measure_auc"].as_f64().unwrap(),
    );
    assert!(
        fitted_auc >= best,
        "fitted {fitted_auc} against the best measure's {best}: {fit}"
    );
    let rates: Vec<f64> = fit["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["rate"].as_f64().unwrap())
        .collect();
    assert!(rates[0] > rates[1] && rates[1] > rates[2], "{fit}");
    let toml = std::fs::read_to_string(&fitted).unwrap();
    assert!(
        toml.contains("[bands]") && toml.contains("[[groups.measures]]"),
        "{toml}"
    );
    for picture in [&roc, &reliability] {
        let svg = std::fs::read_to_string(picture).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<title>"), "{svg}");
    }
}

/// Segmentation as of 1998-07-01 against `tests/python/rfm_reference.py`: every customer's
/// recency, frequency (distinct purchase days), monetary value and R, F, M scores.
async fn rfm_matches_pandas(clients: &Clients) {
    let as_of = prost_types::Timestamp {
        seconds: 899_251_200, // 1998-07-01T00:00:00Z
        nanos: 0,
    };
    let run = rapport_tests::scenario::segment(clients, Some(as_of)).await;
    assert_eq!(run.customers, 23_570);
    let named: u64 = run.rfm_segments.iter().map(|s| s.customers).sum();
    assert_eq!(named, 23_570, "every customer has a named segment");

    let features = all_features(clients, as_of).await;
    let by_id: HashMap<&str, &CustomerFeatures> = features
        .iter()
        .map(|f| (f.customer_id.as_str(), f))
        .collect();
    let ids: Vec<String> = features.iter().map(|f| f.customer_id.clone()).collect();
    let mut segments = HashMap::new();
    for chunk in ids.chunks(1_000) {
        let page = clients
            .segmentation
            .clone()
            .get_segments(req(segmentation::GetSegmentsRequest {
                customer_ids: chunk.to_vec(),
            }))
            .await
            .expect("segments")
            .into_inner()
            .segments;
        segments.extend(page.into_iter().map(|s| (s.customer_id.clone(), s)));
    }

    let out = tempfile::NamedTempFile::new().unwrap();
    let python = rapport_tests::python();
    let status = Command::new(&python)
        .arg(repo_root().join("tests/python/rfm_reference.py"))
        .arg(cdnow("CDNOW_master.txt"))
        .arg("1998-07-01")
        .arg(out.path())
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (make test creates the venv)", python.display()));
    assert!(status.success(), "rfm_reference.py failed");

    let text = std::fs::read_to_string(out.path()).unwrap();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let id = f[0];
        let (ours, grade) = (by_id[id], &segments[id]);
        let number = |i: usize| f[i].parse::<f64>().unwrap();
        let same = ours.recency_days == Some(number(1))
            && ours.purchase_days as f64 == number(2)
            && (ours.spend - number(3)).abs() < 1e-6
            && [
                grade.recency_score,
                grade.frequency_score,
                grade.monetary_score,
            ]
            .map(f64::from)
                == [number(4), number(5), number(6)];
        if !same {
            mismatches.push(format!("{line} vs {ours:?} {grade:?}"));
        }
        compared += 1;
    }
    assert_eq!(compared, 23_570);
    assert!(
        mismatches.is_empty(),
        "{} mismatches, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(3)]
    );
}
