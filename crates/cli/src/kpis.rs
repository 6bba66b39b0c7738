//! `rapport kpis`: relationship KPIs per month or quarter, for all customers or by tier.

use crate::{Target, tier_name};
use chrono::NaiveDate;
use rapport_proto::convert;
use rapport_proto::segmentation::v1 as pb;
use serde_json::json;
use tonic::transport::Channel;

type Client = pb::segmentation_service_client::SegmentationServiceClient<Channel>;

/// The length of a KPI period.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Period {
    Month,
    Quarter,
}

/// What rows are split by.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum By {
    Tier,
}

/// The options of `rapport kpis`.
#[derive(Debug, Clone, clap::Args)]
pub struct KpiArgs {
    /// Month or quarter.
    #[arg(long, value_enum, default_value = "month")]
    pub period: Period,
    /// From the period containing this day (YYYY-MM-DD; default: a year back).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// To the period containing this day (YYYY-MM-DD; default: today).
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// One row per tier and period.
    #[arg(long, value_enum)]
    pub by: Option<By>,
}

fn day(d: NaiveDate) -> prost_types::Timestamp {
    convert::timestamp(
        d.and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis(),
    )
}

/// A figure for the table, `-` when there is none.
fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// Runs `rapport kpis`.
pub async fn run(
    target: &Target,
    mut client: Client,
    args: &KpiArgs,
    json: bool,
) -> anyhow::Result<()> {
    let rows = client
        .get_kpis(
            target.request(pb::GetKpisRequest {
                granularity: match args.period {
                    Period::Month => pb::Granularity::Month,
                    Period::Quarter => pb::Granularity::Quarter,
                }
                .into(),
                from: args.from.map(day),
                to: args.to.map(day),
                by_tier: matches!(args.by, Some(By::Tier)),
            })?,
        )
        .await?
        .into_inner()
        .rows;
    let by_tier = args.by.is_some();
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "period": r.period,
                    "tier": by_tier.then(|| tier_name(r.tier)),
                    "customers": r.customers,
                    "buyers": r.buyers,
                    "nps": r.nps,
                    "nps_answers": r.nps_answers,
                    "csat_pct": r.csat_pct,
                    "csat_answers": r.csat_answers,
                    "retention_pct": r.retention_pct,
                    "churn_pct": r.churn_pct,
                    "repurchase_pct": r.repurchase_pct,
                    "upgrade_pct": r.upgrade_pct,
                    "downgrade_pct": r.downgrade_pct,
                    "clv_total": r.clv_total,
                    "clv_avg": r.clv_avg,
                    "complaints": r.complaints,
                    "complaint_rate": r.complaint_rate,
                    "median_first_response_secs": r.median_first_response_secs,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    outln!(
        "{:<8} {:<8} {:>9} {:>8} {:>6} {:>6} {:>7} {:>6} {:>8} {:>5} {:>5} {:>10} {:>12} {:>10} {:>9}",
        "PERIOD",
        "TIER",
        "CUSTOMERS",
        "BUYERS",
        "NPS",
        "CSAT%",
        "RETAIN%",
        "CHURN%",
        "REPEAT%",
        "UP%",
        "DOWN%",
        "CLV AVG",
        "CLV TOTAL",
        "COMPL/100",
        "1ST RESP"
    );
    for r in &rows {
        outln!(
            "{:<8} {:<8} {:>9} {:>8} {:>6} {:>6} {:>7} {:>6} {:>8} {:>5} {:>5} {:>10} {:>12} {:>10} {:>9}",
            r.period,
            if by_tier { tier_name(r.tier) } else { "all" },
            r.customers,
            r.buyers,
            figure(r.nps),
            figure(r.csat_pct),
            figure(r.retention_pct),
            figure(r.churn_pct),
            figure(r.repurchase_pct),
            figure(r.upgrade_pct),
            figure(r.downgrade_pct),
            figure(r.clv_avg),
            figure(r.clv_total),
            figure(r.complaint_rate),
            r.median_first_response_secs
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}h", s / 3600.0)),
        );
    }
    Ok(())
}
