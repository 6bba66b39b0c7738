//! The health commands: `health`, `top-risk`, `scorecard` and `rescore`.

use crate::{Target, band_name, tier_name, when};
use rapport_domain::scorecard::Band;
use rapport_proto::common::v1::HealthBand;
use rapport_proto::convert;
use rapport_proto::scoring::v1 as scoring;
use scoring::scoring_service_client::ScoringServiceClient;
use serde_json::json;
use std::path::Path;
use tonic::transport::Channel;

type Client = ScoringServiceClient<Channel>;

/// How many measures the table shows per customer without `--explain`.
const TOP_MEASURES: usize = 3;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
}

fn signed(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:+.1}"))
}

fn as_json(h: &scoring::HealthScore) -> serde_json::Value {
    json!({
        "customer_id": h.customer_id, "score": h.score, "band": band_name(h.band),
        "tier": tier_name(h.tier), "stage": h.stage, "trend_7d": h.trend_7d, "trend_30d": h.trend_30d,
        "computed_score": h.computed_score, "frozen": h.frozen,
        "p_alive": h.p_alive, "expected_purchases_90d": h.expected_purchases_90d, "clv_12m": h.clv_12m,
        "scorecard_version": h.scorecard_version, "computed_at": when(h.computed_at.as_ref()),
        "groups": h.groups.iter().map(|g| json!({"group": g.group, "score": g.score, "weight": g.weight, "contribution": g.contribution})).collect::<Vec<_>>(),
        "measures": h.measures.iter().map(|m| json!({
            "measure": m.measure, "group": m.group, "value": m.value, "score": m.score,
            "weight": m.weight, "contribution": m.contribution, "shortfall": m.shortfall,
            "band": band_name(m.band),
        })).collect::<Vec<_>>(),
        "overrides": h.overrides.iter().map(|o| json!({
            "target": if o.target == scoring::OverrideTarget::Score as i32 { "score" } else { "sentiment" },
            "value": o.value, "author": o.author, "reason": o.reason, "expires_at": when(o.expires_at.as_ref()),
        })).collect::<Vec<_>>(),
    })
}

/// Prints scores as JSON, or as a table with `detail` under each row.
fn print(
    scores: &[scoring::HealthScore],
    json: bool,
    detail: impl Fn(&scoring::HealthScore),
) -> anyhow::Result<()> {
    if json {
        let out: Vec<_> = scores.iter().map(as_json).collect();
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    header();
    for h in scores {
        row(h);
        detail(h);
    }
    Ok(())
}

fn header() {
    outln!(
        "{:<24} {:>6}  {:<7} {:>6} {:>6}  {:<8} {:>7} {:>9}  COMPUTED",
        "CUSTOMER",
        "SCORE",
        "BAND",
        "Δ7D",
        "Δ30D",
        "TIER",
        "P_ALIVE",
        "CLV_12M"
    );
}

fn row(h: &scoring::HealthScore) {
    let mark = if h.frozen {
        "  (frozen: churned)"
    } else if !h.overrides.is_empty() {
        "  (overridden)"
    } else {
        ""
    };
    outln!(
        "{:<24} {:>6.1}  {:<7} {:>6} {:>6}  {:<8} {:>7} {:>9}  {}{mark}",
        h.customer_id,
        h.score,
        band_name(h.band),
        signed(h.trend_7d),
        signed(h.trend_30d),
        tier_name(h.tier),
        opt(h.p_alive, 2),
        opt(h.clv_12m, 2),
        when(h.computed_at.as_ref())
    );
}

/// The measures with data, biggest losses first.
fn ranked(h: &scoring::HealthScore) -> Vec<&scoring::MeasureScore> {
    let mut m: Vec<&scoring::MeasureScore> =
        h.measures.iter().filter(|m| m.score.is_some()).collect();
    m.sort_by(|a, b| b.shortfall.total_cmp(&a.shortfall));
    m
}

fn measures(h: &scoring::HealthScore, all: bool) {
    let ranked = ranked(h);
    let shown = if all { ranked.len() } else { TOP_MEASURES };
    for m in ranked.iter().take(shown) {
        outln!(
            "    {:<28} {:<13} value {:>10}  score {:>5.1}  +{:>4.1}  -{:>4.1}",
            m.measure,
            m.group,
            opt(m.value, 2),
            m.score.unwrap_or(0.0),
            m.contribution,
            m.shortfall
        );
    }
    if all {
        for o in &h.overrides {
            outln!(
                "    override by {}: {:.1} until {} ({})",
                o.author,
                o.value,
                when(o.expires_at.as_ref()),
                o.reason
            );
        }
        let missing: Vec<&str> = h
            .measures
            .iter()
            .filter(|m| m.score.is_none())
            .map(|m| m.measure.as_str())
            .collect();
        if !missing.is_empty() {
            outln!("    no data: {}", missing.join(", "));
        }
    }
}

/// `rapport health`: scores, bands, trends, tiers and the measures that cost the most.
pub async fn show(
    target: &Target,
    mut client: Client,
    customers: &[String],
    explain: bool,
    json: bool,
) -> anyhow::Result<()> {
    let scores = client
        .batch_get_health(target.request(scoring::BatchGetHealthRequest {
            customer_ids: customers.to_vec(),
        })?)
        .await?
        .into_inner()
        .scores;
    print(&scores, json, |h| measures(h, explain))?;
    if json {
        return Ok(());
    }
    for missing in customers
        .iter()
        .filter(|c| !scores.iter().any(|h| &h.customer_id == *c))
    {
        outln!("{missing:<24} no score yet");
    }
    Ok(())
}

/// Which of the lowest scores `rapport top-risk` lists.
pub struct RiskFilter<'a> {
    pub limit: u32,
    pub tier: Option<&'a str>,
    pub band: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub p_alive_below: Option<f64>,
}

/// `rapport top-risk`: the lowest scores, optionally of one tier, band, stage or below a
/// P(alive).
pub async fn top_risk(
    target: &Target,
    mut client: Client,
    filter: &RiskFilter<'_>,
    json: bool,
) -> anyhow::Result<()> {
    // clap admits only known names, so an unknown one cannot reach here.
    let tier = convert::tier(filter.tier.and_then(rapport_domain::tier::Tier::from_name));
    let band = filter
        .band
        .and_then(Band::from_name)
        .map_or(HealthBand::Unspecified, convert::band);
    let scores = client
        .list_health(target.request(scoring::ListHealthRequest {
            limit: filter.limit,
            tier: tier.into(),
            band: band.into(),
            stage: filter.stage.unwrap_or_default().to_owned(),
            p_alive_below: filter.p_alive_below,
        })?)
        .await?
        .into_inner()
        .scores;
    print(&scores, json, |h| {
        if let Some(worst) = ranked(h).first() {
            outln!(
                "    costs most: {} (-{:.1} points)",
                worst.measure,
                worst.shortfall
            );
        }
    })
}

/// `rapport scorecard`: print the scorecard in use, or put a new one in use.
pub async fn scorecard(
    target: &Target,
    mut client: Client,
    set: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let card = match set {
        Some(path) => {
            let toml = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            client
                .set_scorecard(target.request(scoring::SetScorecardRequest { toml })?)
                .await
                .map_err(|s| anyhow::anyhow!("scorecard refused: {}", s.message()))?
                .into_inner()
        }
        None => client
            .get_scorecard(target.request(scoring::GetScorecardRequest {})?)
            .await?
            .into_inner(),
    };
    if json {
        outln!(
            "{}",
            json!({"version": card.version, "builtin": card.builtin, "updated_at": when(card.updated_at.as_ref()), "toml": card.toml})
        );
    } else if set.is_some() {
        outln!(
            "scorecard {} in use; every customer is being re-scored",
            card.version
        );
    } else {
        outln!("# version {}", card.version);
        out!("{}", card.toml);
    }
    Ok(())
}

/// `rapport rescore`: re-score every customer now, showing progress.
pub async fn rescore(target: &Target, mut client: Client, json: bool) -> anyhow::Result<()> {
    let stream = client
        .rescore_all(target.request(scoring::RescoreAllRequest {})?)
        .await?
        .into_inner();
    let last = crate::follow(stream, |p| (p.customers_total, p.customers_done))
        .await?
        .unwrap_or_default();
    if json {
        outln!(
            "{}",
            json!({"customers": last.customers_done, "changed": last.changed})
        );
    } else {
        outln!(
            "re-scored {} customers, {} changed",
            last.customers_done,
            last.changed
        );
    }
    Ok(())
}
