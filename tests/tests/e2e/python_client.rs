//! A non-Rust client: Python grpcio, with stubs generated from `proto/` at test time, ingests
//! an event and reads the health score back (and checks health and reflection).

use rapport_tests::{API_KEY, Embedded, repo_root};
use std::process::Command;

#[test]
fn python_grpcio_client_ingests_and_reads_a_score() {
    let python = rapport_tests::python();
    assert!(
        python.exists(),
        "{} is missing: `make test` creates the venv with grpcio",
        python.display()
    );
    let platform = Embedded::start();
    let out_dir = tempfile::tempdir().unwrap();
    let output = Command::new(python)
        .arg(repo_root().join("tests/python/client.py"))
        .arg(repo_root().join("proto"))
        .arg(out_dir.path())
        .arg(&platform.addrs.ingestion)
        .arg(&platform.addrs.scoring)
        .arg(API_KEY)
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("python client: python-customer scored"),
        "{stdout}"
    );
}
