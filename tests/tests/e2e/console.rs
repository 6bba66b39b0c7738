//! The console in a real headless Chromium (Debian's `chromium`, driven by Playwright from
//! PyPI) against `rapport up` with the example events (and, from `cdnow_import.rs`, with the
//! whole CDNOW log, only looking): sign-in, every page, the at-risk list against `rapport
//! top-risk`, contributions against ExplainHealth, acknowledging from the page, a read-only
//! key offered no actions, and a new alert arriving on an open page. Screenshots stay in
//! `target/console-screenshots`.

use rapport_tests::{Embedded, bin, repo_root};
use std::time::{Duration, Instant};

#[test]
fn the_console_shows_and_acts_on_what_the_services_hold() {
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
