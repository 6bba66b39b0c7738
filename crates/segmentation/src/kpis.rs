//! The KPI report: ingestion's event log folded into a ledger, read with the stored tier
//! history and CLV (the arithmetic is `rapport_domain::kpi`). A report reads the whole log, so
//! the reports of the default periods (the ones pages show) are computed once after each run
//! and kept until the next run or period.

use crate::PAGE_DEADLINE;
use crate::grpc::SegmentationApi;
use chrono::{DateTime, NaiveDate, Utc};
use prost::Message;
use rapport_domain::kpi::{
    Granularity, KpiQuery, KpiRow, Ledger, Period, TierHistory, kpis, period_count, periods,
};
use rapport_proto::convert;
use rapport_proto::segmentation::v1 as pb;
use rapport_server::args::{invalid, time};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::Status;

/// Most periods in one report (ten years of months).
const MAX_PERIODS: i64 = 120;

/// The report's periods, checked: `from` not after `to`, at most [`MAX_PERIODS`].
fn report_periods(
    granularity: Granularity,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<Vec<Period>, Status> {
    let to = to.date_naive();
    let from: NaiveDate = match from {
        Some(t) => t.date_naive(),
        // A year: twelve months or four quarters.
        None => {
            let back = 12 / granularity.months() - 1;
            (0..back)
                .fold(Period::containing(granularity, to), |p, _| p.previous())
                .start
        }
    };
    if from > to {
        return Err(invalid("from", "must not be after `to`"));
    }
    let count = period_count(granularity, from, to);
    if count > MAX_PERIODS {
        return Err(invalid(
            "from",
            format!("at most {MAX_PERIODS} periods per report, this asks for {count}"),
        ));
    }
    Ok(periods(granularity, from, to))
}

fn granularity(value: i32) -> Result<Granularity, Status> {
    match pb::Granularity::try_from(value) {
        Ok(pb::Granularity::Unspecified | pb::Granularity::Month) => Ok(Granularity::Month),
        Ok(pb::Granularity::Quarter) => Ok(Granularity::Quarter),
        Err(_) => Err(invalid("granularity", format!("unknown value {value}"))),
    }
}

/// A time as a proto timestamp.
fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    convert::timestamp(t.timestamp_millis())
}

fn row(r: KpiRow) -> pb::KpiRow {
    pb::KpiRow {
        start: Some(timestamp(r.period.start_time())),
        end: Some(timestamp(r.period.end_time())),
        period: r.period.label,
        tier: convert::tier(r.tier).into(),
        customers: r.customers,
        buyers: r.buyers,
        nps: r.nps,
        nps_answers: r.nps_answers,
        csat_pct: r.csat_pct,
        csat_answers: r.csat_answers,
        retention_pct: r.retention_pct,
        churn_pct: r.churn_pct,
        repurchase_pct: r.repurchase_pct,
        upgrade_pct: r.upgrade_pct,
        downgrade_pct: r.downgrade_pct,
        clv_total: r.clv_total,
        clv_avg: r.clv_avg,
        complaints: r.complaints,
        complaint_rate: r.complaint_rate,
        median_first_response_secs: r.median_first_response_secs,
    }
}

/// The shapes of the reports pages show: by month and by quarter, overall and by tier.
const SHAPES: [(Granularity, bool); 4] = [
    (Granularity::Month, false),
    (Granularity::Month, true),
    (Granularity::Quarter, false),
    (Granularity::Quarter, true),
];

/// What a report reads.
struct Sources {
    ledger: Ledger,
    histories: HashMap<String, TierHistory>,
    clv: HashMap<String, f64>,
}

/// The report of `periods` from `sources`, computed off the async threads.
async fn report(
    sources: Arc<Sources>,
    periods: Vec<Period>,
    by_tier: bool,
    now: DateTime<Utc>,
) -> Result<pb::GetKpisResponse, Status> {
    let rows = tokio::task::spawn_blocking(move || {
        kpis(
            &sources.ledger,
            &sources.histories,
            &sources.clv,
            &KpiQuery {
                periods: &periods,
                by_tier,
                now,
            },
        )
    })
    .await
    .map_err(|e| Status::internal(format!("KPI computation: {e}")))?;
    Ok(pb::GetKpisResponse {
        rows: rows.into_iter().map(row).collect(),
        computed_at: Some(timestamp(now)),
    })
}

/// The name a report of the default periods is kept under.
fn shape(granularity: Granularity, by_tier: bool) -> String {
    let name = match granularity {
        Granularity::Month => "month",
        Granularity::Quarter => "quarter",
    };
    if by_tier {
        format!("{name}-by-tier")
    } else {
        name.to_owned()
    }
}

impl SegmentationApi {
    /// The KPI report `req` asks for, of `tenant`: of the default periods, the one kept since
    /// the latest run while its last period is still the current one; else computed now (and
    /// kept, for the default periods).
    pub async fn kpis(
        &self,
        tenant: &str,
        req: pb::GetKpisRequest,
    ) -> Result<pb::GetKpisResponse, Status> {
        if req.from.is_some() || req.to.is_some() {
            return self.compute_kpis(tenant, req).await;
        }
        let granularity = granularity(req.granularity)?;
        let shape = shape(granularity, req.by_tier);
        let run = self.store.latest_run(tenant).await?;
        let current = Period::containing(granularity, self.clock.now().date_naive()).label;
        if let Some(kept) = self.store.kpi_report(tenant, &shape).await?
            && Some(kept.run_id) == run
        {
            match pb::GetKpisResponse::decode(kept.report.as_slice()) {
                Ok(report) if report.rows.last().is_some_and(|r| r.period == current) => {
                    return Ok(report);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(tenant, %e, "a kept KPI report does not read; computed anew")
                }
            }
        }
        let report = self.compute_kpis(tenant, req).await?;
        if let Some(run_id) = run {
            self.keep(tenant, shape, run_id, &report).await?;
        }
        Ok(report)
    }

    async fn keep(
        &self,
        tenant: &str,
        shape: String,
        run_id: i64,
        report: &pb::GetKpisResponse,
    ) -> Result<(), Status> {
        Ok(self
            .store
            .keep_kpi_report(crate::entity::kpi_report::Model {
                tenant_id: tenant.to_owned(),
                shape,
                run_id,
                computed_at: convert::millis(report.computed_at.as_ref()).unwrap_or_default(),
                report: report.encode_to_vec(),
            })
            .await?)
    }

    /// Computes and keeps the reports pages show, from one read of the event log, after a
    /// run (a failure is logged: the reports are then computed when asked for).
    pub async fn keep_kpis(&self, tenant: &str) {
        if let Err(status) = self.try_keep_kpis(tenant).await {
            tracing::warn!(tenant, %status, "KPI reports not kept after the run");
        }
    }

    async fn try_keep_kpis(&self, tenant: &str) -> Result<(), Status> {
        let Some(run_id) = self.store.latest_run(tenant).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let mut shapes = Vec::new();
        for (granularity, by_tier) in SHAPES {
            shapes.push((
                granularity,
                by_tier,
                report_periods(granularity, None, now)?,
            ));
        }
        let Some(end) = shapes
            .iter()
            .filter_map(|(_, _, periods)| periods.last().map(Period::end_time))
            .max()
        else {
            return Ok(());
        };
        let sources = Arc::new(self.sources(tenant, end).await?);
        for (granularity, by_tier, periods) in shapes {
            let report = report(sources.clone(), periods, by_tier, now).await?;
            self.keep(tenant, shape(granularity, by_tier), run_id, &report)
                .await?;
        }
        Ok(())
    }

    /// The KPI report `req` asks for, computed from the whole event log now.
    async fn compute_kpis(
        &self,
        tenant: &str,
        req: pb::GetKpisRequest,
    ) -> Result<pb::GetKpisResponse, Status> {
        let granularity = granularity(req.granularity)?;
        let now = self.clock.now();
        let to = time(req.to.as_ref(), "to")?.unwrap_or(now);
        let periods = report_periods(granularity, time(req.from.as_ref(), "from")?, to)?;
        let Some(last) = periods.last() else {
            return Ok(pb::GetKpisResponse::default());
        };
        let sources = self.sources(tenant, last.end_time()).await?;
        report(Arc::new(sources), periods, req.by_tier, now).await
    }

    /// What a report reads: the events before `end` folded, the tier histories, the CLVs.
    async fn sources(&self, tenant: &str, end: DateTime<Utc>) -> Result<Sources, Status> {
        Ok(Sources {
            ledger: self.ledger(tenant, end).await?,
            histories: self.store.tier_histories(tenant).await?,
            clv: self.store.clv(tenant).await?,
        })
    }

    /// The tenant's events that occurred before `end`, folded into a ledger.
    async fn ledger(&self, tenant: &str, end: DateTime<Utc>) -> Result<Ledger, Status> {
        let now = self.clock.now();
        let mut ledger = Ledger::default();
        rapport_server::event_log::read(
            &self.ingestion,
            tenant,
            &self.service_key,
            timestamp(end),
            PAGE_DEADLINE,
            |stored| {
                let Some(event) = stored.event else { return };
                match convert::stored(&event, now) {
                    Ok(event) => ledger.apply(&event),
                    Err(rejection) => {
                        tracing::warn!(seq = stored.seq, %rejection, "stored event no longer validates; left out of the KPIs")
                    }
                }
            },
        )
        .await
        .map_err(|s| rapport_server::peer_unavailable("ingestion", &s))?;
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn a_report_covers_a_year_unless_told_otherwise() {
        let months = report_periods(Granularity::Month, None, at(2026, 11, 24)).expect("periods");
        assert_eq!(months.len(), 12);
        assert_eq!(months[0].label, "2025-12");
        assert_eq!(months[11].label, "2026-11");
        let quarters =
            report_periods(Granularity::Quarter, None, at(2026, 11, 24)).expect("periods");
        let labels: Vec<&str> = quarters.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]);
    }

    #[test]
    fn a_report_names_the_field_it_cannot_serve() {
        let reversed = report_periods(Granularity::Month, Some(at(2026, 3, 1)), at(2026, 1, 1))
            .expect_err("from after to");
        assert_eq!(reversed.message(), "from: must not be after `to`");
        let long = report_periods(Granularity::Month, Some(at(1990, 1, 1)), at(2026, 1, 1))
            .expect_err("too many periods");
        assert!(
            long.message().starts_with("from: at most 120 periods"),
            "{}",
            long.message()
        );
        let quarters = report_periods(Granularity::Quarter, Some(at(1997, 1, 1)), at(2026, 12, 1))
            .expect("120 quarters");
        assert_eq!(quarters.len(), 120);
    }
}
