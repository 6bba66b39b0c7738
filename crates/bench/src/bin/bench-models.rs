//! `make bench-models`: BG/NBD and Pareto/NBD fit times on the 2,357 CDNOW customers next to
//! Python `lifetimes` fitting the same data in the same run; then fit and predict at the
//! scale of 2.36 M customers.

// Benchmarks time themselves and date their synthetic events by the system clock.
#![allow(clippy::disallowed_methods)]

use rapport_bench::{cdnow_dir, cdnow_sample_summaries, median_time, ms, report};
use rapport_domain::models::Customer;
use rapport_domain::models::bgnbd::BgNbd;
use rapport_domain::models::pareto_nbd::ParetoNbd;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 9;

fn lifetimes_times(python: &str) -> anyhow::Result<(Duration, Duration)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/lifetimes_fit.py");
    let csv = cdnow_dir().join("cdnow_customers_summary_with_transactions.csv");
    let out = Command::new(python)
        .arg(script)
        .arg(&csv)
        .arg(RUNS.to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "lifetimes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut secs = text.split_whitespace().map(str::parse::<f64>);
    let mut next = || -> anyhow::Result<Duration> {
        Ok(Duration::from_secs_f64(secs.next().ok_or_else(
            || anyhow::anyhow!("short output: {text}"),
        )??))
    };
    Ok((next()?, next()?))
}

fn main() -> anyhow::Result<()> {
    // The services' allocator, set up as they set it, so the figures are the deployed ones.
    rapport_allocator::configure();
    let python = std::env::var("RAPPORT_PYTHON").unwrap_or_else(|_| ".venv/bin/python".to_owned());
    let summaries = cdnow_sample_summaries()?;
    let customers: Vec<Customer> = summaries.iter().map(|s| s.customer).collect();

    let (bg_time, bg) = median_time(RUNS, || BgNbd::fit(&customers));
    let bg = bg?;
    let (pareto_time, pareto) = median_time(RUNS, || ParetoNbd::fit(&customers));
    let pareto = pareto?;
    let (lifetimes_bg, lifetimes_pareto) = lifetimes_times(&python)?;
    println!(
        "fit on {} customers: BG/NBD {:?} LL {:.3} ({} iterations); Pareto/NBD {:?} LL {:.3} ({} iterations)",
        customers.len(),
        bg.params,
        bg.log_likelihood,
        bg.iterations,
        pareto.params,
        pareto.log_likelihood,
        pareto.iterations
    );
    println!(
        "{}",
        report("bgnbd-fit", bg_time, "lifetimes", lifetimes_bg)
    );
    println!(
        "{}",
        report("paretonbd-fit", pareto_time, "lifetimes", lifetimes_pareto)
    );

    // CDNOW × 1,000: 2.36 M customers. Identical histories are merged before fitting, so the
    // fit sees the same distinct rows; prediction is per customer.
    let big: Vec<Customer> = (0..1_000).flat_map(|_| customers.iter().copied()).collect();
    let start = Instant::now();
    let fit = BgNbd::fit(&big)?;
    let fit_time = start.elapsed();
    let start = Instant::now();
    let mut total = 0.0;
    for c in &big {
        total += fit.params.p_alive(c) + fit.params.expected_purchases(c, 13.0)?;
    }
    let predict_time = start.elapsed();
    println!(
        "bench bgnbd-2.36M: fit {:.1} ms, P(alive) + expected purchases for {} customers {:.1} ms ({:.0} ns each; checksum {total:.1})",
        ms(fit_time),
        big.len(),
        ms(predict_time),
        predict_time.as_secs_f64() * 1e9 / big.len() as f64
    );
    Ok(())
}
