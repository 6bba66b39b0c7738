//! Backtest: does the score foresee what customers did next? The tenant scored as of a past
//! day against an outcome in a horizon after it (scoring's `Backtest`), with its ROC curve
//! and reliability plot, and the outcome's rate by band, decile, tier and stage.

use super::{Page, PageError, html_page, layout};
use crate::Console;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use maud::{Markup, PreEscaped, html};
use rapport_proto::convert;
use rapport_proto::scoring::v1 as scoring;
use std::time::Duration;

/// A backtest reads the tenant's whole history: longer than a page's ordinary call.
const BACKTEST_DEADLINE: Duration = Duration::from_secs(120);

/// The form's choices: `as_of` (YYYY-MM-DD), `horizon_days`, `outcome`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub as_of: String,
    #[serde(default)]
    pub horizon_days: String,
    #[serde(default)]
    pub outcome: String,
}

/// The horizon when the form names none: 90 days.
const DEFAULT_HORIZON_DAYS: i64 = 90;

impl Choice {
    /// The request the choices make, or `None` before a day is chosen.
    fn request(&self) -> Result<Option<scoring::BacktestRequest>, PageError> {
        if self.as_of.is_empty() {
            return Ok(None);
        }
        let day = chrono::NaiveDate::parse_from_str(&self.as_of, "%Y-%m-%d").map_err(|e| {
            PageError::BadInput(format!(
                "as_of: a day as YYYY-MM-DD, not {:?} ({e})",
                self.as_of
            ))
        })?;
        let days = match self.horizon_days.as_str() {
            "" => DEFAULT_HORIZON_DAYS,
            text => text
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=3_660).contains(d))
                .ok_or_else(|| {
                    PageError::BadInput(format!(
                        "horizon_days: a whole number of days from 1 to 3660, not {text:?}"
                    ))
                })?,
        };
        Ok(Some(scoring::BacktestRequest {
            as_of: Some(rapport_proto::convert::timestamp(
                day.and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis(),
            )),
            horizon: Some(prost_types::Duration {
                seconds: days * 86_400,
                nanos: 0,
            }),
            outcome: self.outcome.clone(),
            ..Default::default()
        }))
    }
}

/// `GET /backtest`.
pub async fn show(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(choice): Query<Choice>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let report = match choice.request()? {
        Some(message) => {
            let mut req = caller.request(message);
            req.set_timeout(BACKTEST_DEADLINE);
            Some(console.backends.scoring().backtest(req).await?.into_inner())
        }
        None => None,
    };
    Ok(html_page(layout(
        "Backtest",
        Some(&caller),
        "/backtest",
        render(&choice, report.as_ref()),
    )))
}

fn rates(id: &str, title: &str, rows: &[scoring::OutcomeRate]) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th { (title) } th.num { "Customers" } th.num { "With the outcome" } th.num { "Rate" } th.num { "Lift" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { (r.label) }
                        td.num { (r.customers) }
                        td.num { (r.outcomes) }
                        td.num { (format!("{:.1} %", 100.0 * r.rate)) }
                        td.num { (format!("{:.2}", r.lift)) }
                    }
                }
            }
        }
    }
}

fn rankings(report: &scoring::BacktestReport) -> Markup {
    let groups = [
        ("score", report.score.as_slice()),
        ("measure", report.measures.as_slice()),
        ("baseline", report.baselines.as_slice()),
    ];
    html! {
        table id="rankings" {
            thead { tr { th { "Ranked by" } th { "Kind" } th.num { "AUC" } th.num { "95 % interval" } th.num { "Customers" } } }
            tbody {
                @for (kind, list) in groups {
                    @for r in list {
                        tr data-ranking=(r.name) {
                            td { (r.name) }
                            td { (kind) }
                            td.num.auc { (format!("{:.3}", r.auc)) }
                            td.num { (format!("{:.3}–{:.3}", r.auc_low, r.auc_high)) }
                            td.num { (r.customers) }
                        }
                    }
                }
            }
        }
    }
}

/// The page's body: the form, then the report when there is one.
pub fn render(choice: &Choice, report: Option<&scoring::BacktestReport>) -> Markup {
    html! {
        h1 { "Backtest" }
        p { "Every customer known on a past day, scored from the events that had occurred by then (models fitted, tiers and stages graded on that population alone; live scores are not touched), against what they did in the horizon after it." }
        form.filters method="get" action="/backtest" {
            label { "As of " input name="as_of" type="date" required value=(choice.as_of); }
            label { "Horizon (days) " input name="horizon_days" type="number" min="1" max="3660" value=(choice.horizon_days) placeholder=(DEFAULT_HORIZON_DAYS); }
            label { "Outcome "
                select name="outcome" {
                    @for (value, name) in [("no-purchase", "no purchase"), ("cancelled", "cancelled"), ("downgraded", "downgraded")] {
                        option value=(value) selected[choice.outcome == value] { (name) }
                    }
                }
            }
            button type="submit" { "Run" }
        }
        @if let Some(r) = report {
            (body(r))
        }
    }
}

fn body(r: &scoring::BacktestReport) -> Markup {
    html! {
        p.headline {
            (r.customers) " customers, " (r.outcomes) " with the outcome "
            (r.outcome) " (" (format!("{:.1} %", 100.0 * r.outcome_rate)) ")"
            @if let Some(s) = &r.score {
                "; the score ranks them with an AUC of " strong id="auc" { (format!("{:.3}", s.auc)) }
                " (" (format!("{:.3}–{:.3}", s.auc_low, s.auc_high)) ")"
            }
        }
        @for note in &r.notes { p.none { (note) } }
        @if let Some(roc) = convert::backtest_roc_svg(r) {
            section.charts {
                (PreEscaped(roc))
                @if !r.reliability.is_empty() { (PreEscaped(convert::backtest_reliability_svg(r))) }
            }
        }
        section { h2 { "How each value ranks the customers" } (rankings(r)) }
        section { h2 { "By band" } (rates("bands", "Band", &r.bands)) }
        section { h2 { "By decile of risk" } (rates("deciles", "Decile", &r.deciles)) }
        section { h2 { "By tier, as of then" } (rates("tiers", "Tier", &r.tiers)) }
        section { h2 { "By stage, as of then" } (rates("stages", "Stage", &r.stages)) }
        @for c in &r.rule_checks {
            section {
                h2 { "Rule " code { (c.rule) } ", watching " (c.watches) }
                @let groups: Vec<scoring::OutcomeRate> = c.flagged.iter().chain(&c.others).cloned().collect();
                (rates(&format!("rule-{}", c.rule), "Customers", &groups))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_alone_until_a_day_is_chosen() {
        assert!(Choice::default().request().unwrap().is_none());
        let page = render(&Choice::default(), None).into_string();
        assert!(page.contains("name=\"as_of\"") && !page.contains("id=\"rankings\""));
    }

    #[test]
    fn choices_become_the_request_or_say_which_field_is_wrong() {
        let choice = Choice {
            as_of: "1997-10-01".into(),
            horizon_days: "273".into(),
            outcome: "no-purchase".into(),
        };
        let req = choice.request().unwrap().unwrap();
        assert_eq!(req.horizon.unwrap().seconds, 273 * 86_400);
        assert_eq!(req.as_of.unwrap().seconds, 875_664_000);
        for (as_of, horizon, field) in [
            ("1997-13-01", "", "as_of"),
            ("1997-10-01", "0", "horizon_days"),
            ("1997-10-01", "ninety", "horizon_days"),
        ] {
            let bad = Choice {
                as_of: as_of.into(),
                horizon_days: horizon.into(),
                outcome: String::new(),
            };
            match bad.request() {
                Err(PageError::BadInput(m)) => assert!(m.starts_with(field), "{m}"),
                other => panic!("{as_of} {horizon}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_report_shows_its_auc_curve_and_tables() {
        let report = scoring::BacktestReport {
            customers: 10,
            outcomes: 4,
            outcome_rate: 0.4,
            score: Some(scoring::Ranking {
                name: "score".into(),
                auc: 0.8126,
                auc_low: 0.7,
                auc_high: 0.9,
                customers: 10,
            }),
            roc: vec![
                scoring::RocPoint {
                    false_positive_rate: 0.0,
                    true_positive_rate: 0.0,
                },
                scoring::RocPoint {
                    false_positive_rate: 1.0,
                    true_positive_rate: 1.0,
                },
            ],
            tiers: vec![scoring::OutcomeRate {
                label: "vip".into(),
                customers: 1,
                outcomes: 0,
                rate: 0.0,
                lift: 0.0,
            }],
            ..Default::default()
        };
        let page = render(&Choice::default(), Some(&report)).into_string();
        assert!(page.contains(r#"id="auc">0.813<"#), "{page}");
        assert!(page.contains("<svg") && page.contains("ROC of the health score"));
        assert!(page.contains("id=\"tiers\"") && page.contains(">vip<"));
    }
}
