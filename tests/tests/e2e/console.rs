//! The console in a real headless Chromium (Debian's `chromium`, driven by Playwright from
//! PyPI) against `rapport up` with the example events (and, from `cdnow_import.rs`, with the
//! whole CDNOW log, only looking): sign-in, every page, the at-risk list against `rapport
//! top-risk`, contributions against ExplainHealth, acknowledging from the page, a read-only
//! key offered no actions, and a new alert arriving on an open page. Screenshots stay in
//! `target/console-screenshots`.

use rapport_tests::{Embedded, bin, repo_root};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_and_acts_on_what_the_services_hold() {
    let up = Embedded::start();
    let events = repo_root().join("examples/events.jsonl");
    up.cli(&["import", &events.display().to_string(), "--shift-to-today"]);
    // The example's detractor opens alerts once its scores reach alerting.
    let start = Instant::now();
    loop {
        let open: serde_json::Value =
            serde_json::from_str(&up.cli(&["alerts", "--state", "open", "--json"])).unwrap();
        if open.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no open alert");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Tiers, stages and segments graded, for the segments page to draw.
    up.cli(&["segments", "define", "low-health", "score < 50.0"]);
    up.cli(&["segment"]);
    // A re-score of everyone: the book's band counts of the week.
    up.cli(&["rescore"]);
    told(&up).await;

    let shots = repo_root().join("target/console-screenshots");
    browse(&up, &shots, "full");
    for page in [
        "signin",
        "book",
        "customers",
        "customer",
        "segments",
        "interventions",
        "alerts",
        "alerts-live",
        "alerts-read-only",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "screenshot of {page}"
        );
    }
}

/// Waits until no service of `up` has anything left to tell another: every change so far has
/// reached the service it is for (so pages and the command line read the same state).
pub async fn told(up: &Embedded) {
    let data = up.dir.path().join(".rapport");
    let mut dbs = Vec::new();
    // Upstream first: a message leaves an outbox only once its receiver has written what it
    // tells further, so reading in this order sees every message still on its way.
    for (service, outbox) in [
        ("ingestion", rapport_ingestion::migration::OUTBOX),
        ("segmentation", rapport_segmentation::migration::OUTBOX),
        ("scoring", rapport_scoring::migration::OUTBOX),
    ] {
        let url = format!(
            "sqlite://{}?mode=ro",
            data.join(format!("{service}.db")).display()
        );
        let db = rapport_storage::connect(&url)
            .await
            .expect("open the service's database");
        dbs.push((db, outbox));
    }
    rapport_tests::eventually(
        "every outbox delivered",
        Duration::from_secs(300),
        || async {
            for (db, outbox) in &dbs {
                if outbox.depth(db).await.expect("outbox depth").0 > 0 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// Runs the browser checks (`tests/python/console_browser.py`) against `up`'s console, in
/// `mode` ("full": acts too; "look": only looks), with the screenshots in `shots`.
pub fn browse(up: &Embedded, shots: &std::path::Path, mode: &str) {
    let out = std::process::Command::new(rapport_tests::python())
        .arg(repo_root().join("tests/python/console_browser.py"))
        .arg(format!("http://{}", up.console))
        .arg(&up.addrs.scoring)
        .arg(&up.addrs.ingestion)
        .arg(rapport_server::auth::DEV_API_KEY)
        .arg(bin("rapport"))
        .arg(up.dir.path())
        .arg(repo_root().join("proto"))
        .arg(shots)
        .arg(mode)
        .output()
        .expect("run console_browser.py");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
