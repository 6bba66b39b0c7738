//! The KPI report: ingestion's event log folded into a ledger, read with the stored tier
//! history and CLV (the arithmetic is `rapport_domain::kpi`).

use crate::PAGE_DEADLINE;
use crate::grpc::SegmentationApi;
use chrono::{DateTime, NaiveDate, Utc};
use rapport_domain::kpi::{
    Granularity, KpiQuery, KpiRow, Ledger, Period, kpis, period_count, periods,
};
use rapport_proto::convert;
use rapport_proto::segmentation::v1 as pb;
use rapport_server::args::{invalid, time};
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

impl SegmentationApi {
    /// The KPI report `req` asks for, of `tenant`.
    pub async fn kpis(
        &self,
        tenant: &str,
        req: pb::GetKpisRequest,
    ) -> Result<pb::GetKpisResponse, Status> {
        let granularity = match pb::Granularity::try_from(req.granularity) {
            Ok(pb::Granularity::Unspecified | pb::Granularity::Month) => Granularity::Month,
            Ok(pb::Granularity::Quarter) => Granularity::Quarter,
            Err(_) => {
                return Err(invalid(
                    "granularity",
                    format!("unknown value {}", req.granularity),
                ));
            }
        };
        let now = self.clock.now();
        let to = time(req.to.as_ref(), "to")?.unwrap_or(now);
        let periods = report_periods(granularity, time(req.from.as_ref(), "from")?, to)?;
        let Some(last) = periods.last() else {
            return Ok(pb::GetKpisResponse::default());
        };
        let ledger = self.ledger(tenant, last.end_time()).await?;
        let histories = self.store.tier_histories(tenant).await?;
        let clv = self.store.clv(tenant).await?;
        let by_tier = req.by_tier;
        let rows = tokio::task::spawn_blocking(move || {
            kpis(
                &ledger,
                &histories,
                &clv,
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
