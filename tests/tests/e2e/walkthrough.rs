//! The README's first walk-through, run exactly as written against `rapport up`: each
//! command's claim (its comment in the README) checked on what it printed, and each command
//! run again with its output closed at once, as `| head` closes it.
//!
//! The part after "A real purchase log" (CDNOW) is left to `cdnow_import.rs`, which imports
//! the whole log the same way; running it twice would double the suite's longest test.

use rapport_tests::{Embedded, bin, repo_root};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A step of the walk-through: the command as the README writes it, whether it only reads
/// (so it may be repeated while the platform catches up, as a reader's typing would wait),
/// and what its README comment claims, as a check of its output.
struct Step {
    command: &'static str,
    reads: bool,
    claim: fn(&str) -> bool,
}

const STEPS: &[Step] = &[
    Step {
        command: "rapport import examples/events.jsonl --shift-to-today",
        reads: false,
        claim: |out| {
            out.contains("accepted 11")
                && out.contains("rejected 3")
                && ["customer_id", "order.amount", "survey.score"]
                    .iter()
                    .all(|field| out.contains(field))
        },
    },
    Step {
        command: "rapport health alice bob carol",
        reads: true,
        claim: |out| {
            line_of(out, "bob").is_some_and(|l| l.contains("red"))
                && line_of(out, "alice").is_some_and(|l| l.contains("green"))
                && out.contains("nps")
        },
    },
    Step {
        command: "rapport health bob --explain",
        reads: true,
        claim: |out| out.contains("complaints_90d") && out.contains("no data:"),
    },
    Step {
        command: "rapport top-risk --band red",
        reads: true,
        claim: |out| out.contains("bob") && !out.contains("alice") && !out.contains("carol"),
    },
    Step {
        command: "rapport alerts",
        reads: true,
        claim: |out| {
            out.lines()
                .any(|l| l.contains("health_below") && l.contains("bob"))
                && out
                    .lines()
                    .any(|l| l.contains("detractor") && l.contains("bob"))
        },
    },
    Step {
        command: "rapport alerts show 1",
        reads: true,
        claim: |out| {
            // One alert in ten falls, at random, in the control group that gets no
            // recommendation (how the effect report measures interventions).
            out.contains("evidence:")
                && (out.contains("recommended:")
                    || out.contains("control group: no recommendation"))
                && out.contains("→ open")
        },
    },
    Step {
        command: "rapport alerts ack 1 --reason \"calling\"",
        reads: false,
        claim: |out| out.contains("acknowledged"),
    },
    Step {
        command: "rapport silences add --customer carol --for 2h --reason \"migration\"",
        reads: false,
        claim: |out| out.contains("active") && out.contains("customer=carol"),
    },
    Step {
        command: "rapport segment",
        reads: false,
        claim: |out| out.contains("graded 3 customers") && out.contains("RFM segments"),
    },
    Step {
        command: "rapport tiers",
        reads: true,
        claim: |out| out.contains("3 customers") && out.contains("stages"),
    },
    Step {
        command: "rapport kpis --by tier",
        reads: true,
        claim: |out| out.contains("NPS") && out.contains("vip") && out.contains("regular"),
    },
    Step {
        command: "rapport health alice bob carol",
        reads: true,
        claim: |out| {
            ["alice", "bob", "carol"].iter().all(|c| {
                line_of(out, c).is_some_and(|l| {
                    ["vip", "gold", "silver", "bronze", "regular"]
                        .iter()
                        .any(|t| l.contains(t))
                })
            })
        },
    },
    Step {
        command: "rapport models",
        reads: false,
        claim: |out| out.contains("too few customers") && out.contains("re-scored 3 customers"),
    },
];

/// The line of `out` that starts with `customer`'s row.
fn line_of<'a>(out: &'a str, customer: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(customer))
}

/// The walk-through's commands and claims, from the README's first `sh` block after its
/// heading, up to the CDNOW part.
fn readme_steps() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let (_, section) = readme
        .split_once("## A first walk-through")
        .expect("the walk-through heading");
    let (_, block) = section.split_once("```sh\n").expect("its sh block");
    let (block, _) = block.split_once("```").expect("the block's end");
    block
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("# A real purchase log"))
        .filter(|l| l.starts_with("rapport "))
        .map(|l| match l.split_once("  #") {
            Some((command, claim)) => (command.trim().to_owned(), claim.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

/// A command line's words, with double quotes grouping as the shell groups them.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut started) = (String::new(), false, false);
    for c in command.chars() {
        match c {
            '"' => (quoted, started) = (!quoted, true),
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Commands that print and are not in the walk-through, checked with a closed output too.
const OTHER_READS: [&str; 8] = [
    "rapport alerts --sort newest --state open",
    "rapport silences",
    "rapport webhooks list",
    "rapport effect",
    "rapport scorecard",
    "rapport segments",
    "rapport kpis",
    "rapport top-risk --limit 5",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walk_through_shows_what_it_says() {
    let steps = readme_steps();
    let written: Vec<&str> = steps.iter().map(|(c, _)| c.as_str()).collect();
    let checked: Vec<&str> = STEPS.iter().map(|s| s.command).collect();
    assert_eq!(
        written, checked,
        "the README's walk-through changed: update STEPS with what each command now claims"
    );

    let platform = Embedded::start();
    copy_dir(
        &repo_root().join("examples"),
        &platform.dir.path().join("examples"),
    );
    for (step, (_, claim)) in STEPS.iter().zip(&steps) {
        let args = words(step.command);
        let deadline = Instant::now() + Duration::from_secs(if step.reads { 30 } else { 0 });
        loop {
            let out = platform.cli(&args[1..].iter().map(String::as_str).collect::<Vec<_>>());
            if (step.claim)(&out) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` does not show what the README says ({claim}):\n{out}",
                step.command
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Piped into a reader that is gone: a quiet exit, not a panic. Only the reads are run
    // again (a second import or acknowledgement would change what it prints, not how), and
    // the reads the walk-through does not show.
    let reads = STEPS
        .iter()
        .filter(|s| s.reads)
        .map(|s| s.command)
        .chain(OTHER_READS);
    for command in reads {
        let args = words(command);
        let mut child = Command::new(bin("rapport"))
            .args(&args[1..])
            .current_dir(platform.dir.path())
            .env_remove("RAPPORT_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rapport");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("rapport ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "`{} | head` ended with {}: {stderr}",
            command,
            out.status
        );
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}
