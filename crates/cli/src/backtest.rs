//! `rapport backtest`: does the score predict an outcome? The report as a table or JSON, the
//! ROC curve and the reliability plot as SVG files, every customer's values as CSV.

use crate::Target;
use crate::alerts::parse_duration;
use rapport_proto::convert;
use rapport_proto::scoring::v1 as pb;
use serde_json::json;
use std::path::PathBuf;
use tonic::transport::Channel;

type Client = pb::scoring_service_client::ScoringServiceClient<Channel>;

/// Options of `rapport backtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct BacktestArgs {
    /// Score as of this day (YYYY-MM-DD), from the events that occurred before it.
    #[arg(long)]
    pub as_of: chrono::NaiveDate,
    /// How long after it the outcome is looked for, e.g. 39w, 90d.
    #[arg(long, value_parser = parse_duration)]
    pub horizon: chrono::Duration,
    /// The outcome: no-purchase (no order in the horizon), cancelled or downgraded (a
    /// subscription cancelled or downgraded in it).
    #[arg(long, default_value = "no-purchase", value_parser = ["no-purchase", "cancelled", "downgraded"])]
    pub outcome: String,
    /// Write every customer's score, measures, baselines and outcome to this CSV file.
    #[arg(long)]
    pub customers: Option<PathBuf>,
    /// Write the score's ROC curve to this SVG file.
    #[arg(long)]
    pub roc: Option<PathBuf>,
    /// Write the calibrated score's reliability plot to this SVG file.
    #[arg(long)]
    pub reliability: Option<PathBuf>,
    /// Fit a card to the outcome (on half the customers, judged on the other half) and
    /// write it to this TOML file, for `rapport scorecard --set`.
    #[arg(long)]
    pub fit: Option<PathBuf>,
    /// Grade stages as of then with this P(alive) floor (below it a customer is churned;
    /// 0 for none) instead of the built-in rules'.
    #[arg(long)]
    pub stage_p_alive_floor: Option<f64>,
}

fn fit_json(f: &pb::CardFit) -> serde_json::Value {
    json!({
        "train_customers": f.train_customers,
        "test_customers": f.test_customers,
        "fitted_auc": f.fitted_auc,
        "card_auc": f.card_auc,
        "best_measure": f.best_measure,
        "best_measure_auc": f.best_measure_auc,
        "measures": f.measures.iter().map(|m| json!({"key": m.key, "group": m.group, "weight": m.weight, "auc": m.auc, "normalise": m.normalise})).collect::<Vec<_>>(),
        "dropped": f.dropped.iter().map(|d| json!({"key": d.key, "reason": d.reason})).collect::<Vec<_>>(),
        "red": f.red,
        "yellow": f.yellow,
        "bands": f.bands.iter().map(rate_json).collect::<Vec<_>>(),
    })
}

fn print_fit(f: &pb::CardFit) {
    outln!();
    outln!(
        "fitted card: held-out AUC {:.3} (the card {:.3}; best single measure {} {:.3}); fitted on {}, judged on {} customers",
        f.fitted_auc,
        f.card_auc,
        f.best_measure,
        f.best_measure_auc,
        f.train_customers,
        f.test_customers
    );
    outln!(
        "{:<28} {:<12} {:>7} {:>6}  NORMALISED",
        "MEASURE",
        "GROUP",
        "WEIGHT",
        "AUC"
    );
    for m in &f.measures {
        outln!(
            "{:<28} {:<12} {:>7.2} {:>6.3}  {}",
            m.key,
            m.group,
            m.weight,
            m.auc,
            m.normalise
        );
    }
    for d in &f.dropped {
        outln!("dropped {}: {}", d.key, d.reason);
    }
    outln!(
        "proposed bands: red up to {}, yellow up to {}",
        f.red,
        f.yellow
    );
    print_rates("BAND", &f.bands);
}

fn ranking_json(r: &pb::Ranking) -> serde_json::Value {
    json!({"name": r.name, "auc": r.auc, "auc_low": r.auc_low, "auc_high": r.auc_high, "customers": r.customers})
}

fn rate_json(r: &pb::OutcomeRate) -> serde_json::Value {
    json!({"label": r.label, "customers": r.customers, "outcomes": r.outcomes, "rate": r.rate, "lift": r.lift})
}

fn rule_check_json(c: &pb::RuleCheck) -> serde_json::Value {
    json!({
        "rule": c.rule,
        "watches": c.watches,
        "flagged": c.flagged.as_ref().map(rate_json),
        "others": c.others.as_ref().map(rate_json),
        "ranking": c.ranking.as_ref().map(ranking_json),
    })
}

fn report_json(r: &pb::BacktestReport) -> serde_json::Value {
    json!({
        "as_of": crate::when(r.as_of.as_ref()),
        "horizon_days": r.horizon.as_ref().map_or(0, |h| h.seconds / 86_400),
        "outcome": r.outcome,
        "customers": r.customers,
        "outcomes": r.outcomes,
        "outcome_rate": r.outcome_rate,
        "score": r.score.as_ref().map(ranking_json),
        "measures": r.measures.iter().map(ranking_json).collect::<Vec<_>>(),
        "baselines": r.baselines.iter().map(ranking_json).collect::<Vec<_>>(),
        "bands": r.bands.iter().map(rate_json).collect::<Vec<_>>(),
        "deciles": r.deciles.iter().map(rate_json).collect::<Vec<_>>(),
        "tiers": r.tiers.iter().map(rate_json).collect::<Vec<_>>(),
        "stages": r.stages.iter().map(rate_json).collect::<Vec<_>>(),
        "rule_checks": r.rule_checks.iter().map(rule_check_json).collect::<Vec<_>>(),
        "calibration": {"intercept": r.calibration_intercept, "slope": r.calibration_slope, "brier": r.brier},
        "reliability": r.reliability.iter().map(|b| json!({
            "from": b.from, "to": b.to, "customers": b.customers,
            "mean_predicted": b.mean_predicted, "observed": b.observed,
        })).collect::<Vec<_>>(),
        "notes": r.notes,
        "fit": r.fit.as_ref().map(fit_json),
    })
}

fn print_rankings(title: &str, rankings: &[pb::Ranking]) {
    for r in rankings {
        outln!(
            "{:<12} {:<28} {:.3}  {:.3}–{:.3}  {:>9}",
            title,
            r.name,
            r.auc,
            r.auc_low,
            r.auc_high,
            r.customers
        );
    }
}

fn print_rates(title: &str, rates: &[pb::OutcomeRate]) {
    outln!(
        "{:<8} {:>9} {:>9} {:>7} {:>6}",
        title,
        "CUSTOMERS",
        "OUTCOMES",
        "RATE",
        "LIFT"
    );
    for r in rates {
        outln!(
            "{:<8} {:>9} {:>9} {:>6.1}% {:>6.2}",
            r.label,
            r.customers,
            r.outcomes,
            100.0 * r.rate,
            r.lift
        );
    }
}

fn print_rule_check(c: &pb::RuleCheck) {
    outln!("rule {} (watching {}):", c.rule, c.watches);
    let rates: Vec<pb::OutcomeRate> = c.flagged.iter().chain(&c.others).cloned().collect();
    print_rates("", &rates);
    if let Some(r) = &c.ranking {
        outln!(
            "{} ranks them with an AUC of {:.3} ({:.3}–{:.3})",
            r.name,
            r.auc,
            r.auc_low,
            r.auc_high
        );
    }
}

fn print_report(r: &pb::BacktestReport) {
    outln!(
        "backtest as of {}, outcome {} within {} days: {} customers, {} with it ({:.1} %)",
        crate::when(r.as_of.as_ref()),
        r.outcome,
        r.horizon.as_ref().map_or(0, |h| h.seconds / 86_400),
        r.customers,
        r.outcomes,
        100.0 * r.outcome_rate
    );
    outln!();
    outln!(
        "{:<12} {:<28} {:<5}  {:<11}  {:>9}",
        "RANKING",
        "BY",
        "AUC",
        "95 % CI",
        "CUSTOMERS"
    );
    print_rankings("score", r.score.as_slice());
    print_rankings("measure", &r.measures);
    print_rankings("baseline", &r.baselines);
    outln!();
    print_rates("BAND", &r.bands);
    outln!();
    print_rates("DECILE", &r.deciles);
    outln!();
    print_rates("TIER", &r.tiers);
    outln!();
    print_rates("STAGE", &r.stages);
    outln!();
    for c in &r.rule_checks {
        print_rule_check(c);
        outln!();
    }
    outln!(
        "calibrated: P(outcome) = 1 / (1 + exp(-({:.4} + {:.5} × score))), Brier score {:.4}",
        r.calibration_intercept,
        r.calibration_slope,
        r.brier
    );
    outln!(
        "{:<11} {:>9} {:>10} {:>9}",
        "PREDICTED",
        "CUSTOMERS",
        "MEAN PRED",
        "OBSERVED"
    );
    for b in &r.reliability {
        outln!(
            "{:.1}–{:.1}     {:>9} {:>10.3} {:>9.3}",
            b.from,
            b.to,
            b.customers,
            b.mean_predicted,
            b.observed
        );
    }
    for note in &r.notes {
        outln!("note: {note}");
    }
    if let Some(f) = &r.fit {
        print_fit(f);
    }
}

/// Every customer's row, as CSV: the values the report's figures were computed from, each
/// measure's normalised score in a `measure.<key>` column.
fn customers_csv(r: &pb::BacktestReport) -> String {
    let keys: std::collections::BTreeSet<&String> = r
        .customer_rows
        .iter()
        .flat_map(|c| c.measures.keys())
        .collect();
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:?}"));
    let mut out = String::from(
        "customer_id,score,band,outcome,p_alive,expected_purchases,recency_days,rfm,tier,stage",
    );
    // Measures are named apart from the baselines (recency is both).
    for k in &keys {
        out.push_str(",measure.");
        out.push_str(k);
    }
    out.push('\n');
    for c in &r.customer_rows {
        out.push_str(&format!(
            "{},{:?},{},{},{},{},{},{},{},{}",
            c.customer_id,
            c.score,
            c.band,
            u8::from(c.outcome),
            opt(c.p_alive),
            opt(c.expected_purchases),
            opt(c.recency_days),
            c.rfm,
            c.tier,
            c.stage
        ));
        for k in &keys {
            out.push(',');
            out.push_str(&opt(c.measures.get(*k).copied()));
        }
        out.push('\n');
    }
    out
}

/// Runs `rapport backtest`.
pub async fn backtest(
    target: &Target,
    mut client: Client,
    args: BacktestArgs,
    json: bool,
) -> anyhow::Result<()> {
    let as_of = args
        .as_of
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .ok_or_else(|| anyhow::anyhow!("--as-of: not a day"))?;
    let mut req = target.request(pb::BacktestRequest {
        as_of: Some(rapport_proto::convert::timestamp(as_of.timestamp_millis())),
        horizon: Some(prost_types::Duration {
            seconds: args.horizon.num_seconds(),
            nanos: 0,
        }),
        outcome: args.outcome.clone(),
        with_customers: args.customers.is_some(),
        fit: args.fit.is_some(),
        stage_p_alive_floor: args.stage_p_alive_floor,
    })?;
    // A backtest reads the tenant's whole history: longer than an ordinary call.
    req.set_timeout(std::time::Duration::from_secs(600));
    let report = client.backtest(req).await?.into_inner();
    if let Some(path) = &args.customers {
        std::fs::write(path, customers_csv(&report))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if let (Some(path), Some(roc)) = (&args.roc, convert::backtest_roc_svg(&report)) {
        std::fs::write(path, roc).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if let (Some(path), Some(fit)) = (&args.fit, &report.fit) {
        std::fs::write(path, &fit.scorecard_toml)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.reliability {
        std::fs::write(path, convert::backtest_reliability_svg(&report))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        print_report(&report);
    }
    Ok(())
}
