//! Interventions: did they work? Treated against control per action and tier, each estimate
//! with its confidence interval drawn against zero, cost and ROI, small groups flagged.

use super::{Page, html_page, layout, number};
use crate::Console;
use crate::charts::{self, Interval};
use axum::extract::State;
use axum::http::HeaderMap;
use maud::{Markup, html};
use rapport_proto::alerting::v1 as alerting;

/// Fewer alerts than this in either group, and the row's estimates are flagged as unreliable.
pub const SMALL_GROUP: u32 = 30;

/// `GET /interventions`.
pub async fn show(State(console): State<Console>, headers: HeaderMap) -> Page {
    let caller = console.caller(&headers).await?;
    let report = console
        .backends
        .alerting()
        .effect_report(caller.request(alerting::EffectReportRequest { since: None }))
        .await?
        .into_inner();
    Ok(html_page(layout(
        "Interventions",
        Some(&caller),
        "/interventions",
        render(&report),
    )))
}

/// Picks one of a row's estimates.
type Pick = fn(&alerting::EffectRow) -> Option<&alerting::Estimate>;

fn label(row: &alerting::EffectRow) -> String {
    format!("{} · {}", row.action, row.tier)
}

fn intervals(rows: &[alerting::EffectRow], pick: Pick) -> Vec<Interval> {
    rows.iter()
        .filter_map(|r| {
            let e = pick(r)?;
            Some(Interval {
                label: label(r),
                estimate: e.difference,
                low: e.low,
                high: e.high,
            })
        })
        .collect()
}

/// The page's body.
pub fn render(report: &alerting::EffectReportResponse) -> Markup {
    let measures: [(&str, &str, Pick); 3] = [
        ("health", "Effect on health (points)", |r| r.health.as_ref()),
        ("retention", "Effect on retention (share kept)", |r| {
            r.retention.as_ref()
        }),
        ("spend", "Effect on spend", |r| r.spend.as_ref()),
    ];
    html! {
        h1 { "Interventions" }
        p { "Alerts whose " (report.window_days) "-day window has passed, treated (an intervention was recorded) against the control group (no recommendation was made). An estimate whose interval crosses zero may be no effect at all." }
        @if report.rows.is_empty() {
            (super::nothing("No alert has finished its window yet."))
        } @else {
            @for (key, title, pick) in measures {
                @let items = intervals(&report.rows, pick);
                section id=(format!("effect-{key}")) {
                    h2 { (title) }
                    @if items.is_empty() { (super::nothing("Too few alerts in every group to estimate.")) }
                    @else { (charts::intervals(title, &items)) }
                }
            }
            section {
                h2 { "Every group" }
                table id="effects" {
                    thead { tr {
                        th { "Action" } th { "Tier" } th.num { "Treated" } th.num { "Control" }
                        th.num { "Health" } th.num { "95 % interval" } th.num { "Retention" } th.num { "Spend" }
                        th.num { "Cost" } th.num { "ROI" } th { "" }
                    } }
                    tbody { @for r in &report.rows { tr {
                        td { (r.action) } td { (r.tier) } td.num { (r.treated) } td.num { (r.control) }
                        td.num { (number(r.health.as_ref().map(|e| e.difference), 2)) }
                        td.num { @if let Some(e) = &r.health { (format!("{:.2} to {:.2}", e.low, e.high)) } }
                        td.num { (number(r.retention.as_ref().map(|e| e.difference), 3)) }
                        td.num { (number(r.spend.as_ref().map(|e| e.difference), 2)) }
                        td.num { (format!("{:.2}", r.cost)) }
                        td.num { (number(r.roi, 2)) }
                        td { @if r.treated < SMALL_GROUP || r.control < SMALL_GROUP {
                            span.flag title=(format!("fewer than {SMALL_GROUP} alerts in a group")) { "small group" }
                        } }
                    } } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_estimate_is_drawn_and_small_groups_are_flagged() {
        let estimate = |d: f64| alerting::Estimate {
            difference: d,
            low: d - 1.0,
            high: d + 1.0,
            ..Default::default()
        };
        let report = alerting::EffectReportResponse {
            window_days: 30,
            rows: vec![
                alerting::EffectRow {
                    action: "care_message".into(),
                    tier: "gold".into(),
                    treated: 40,
                    control: 35,
                    health: Some(estimate(3.0)),
                    ..Default::default()
                },
                alerting::EffectRow {
                    action: "coupon".into(),
                    tier: "vip".into(),
                    treated: 4,
                    control: 2,
                    health: Some(estimate(-0.5)),
                    roi: Some(1.5),
                    ..Default::default()
                },
            ],
        };
        let page = render(&report).into_string();
        assert!(
            page.contains("care_message · gold") && page.contains("coupon · vip"),
            "{page}"
        );
        assert_eq!(page.matches("small group</span>").count(), 1, "{page}");
        assert!(page.contains("2.00 to 4.00"));
        assert!(
            page.contains("Too few alerts in every group"),
            "no retention estimates: {page}"
        );
    }

    #[test]
    fn an_empty_report_says_why() {
        let page = render(&alerting::EffectReportResponse::default()).into_string();
        assert!(page.contains("No alert has finished its window yet."));
    }
}
