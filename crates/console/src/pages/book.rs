//! "My book", the home page: what is at risk, what needs attention first.

use super::{Page, band_badge, biggest_drag, change, customer_link, html_page, layout, number};
use crate::Console;
use crate::backends::Caller;
use crate::charts;
use axum::extract::State;
use axum::http::HeaderMap;
use maud::{Markup, html};
use rapport_proto::alerting::v1 as alerting;
use rapport_proto::common::v1 as common;
use rapport_proto::scoring::v1 as scoring;

/// How many of the lowest scores the home page lists, as `rapport top-risk` does by default.
pub const AT_RISK: u32 = 20;

/// How many of the lowest scores the value at risk looks through (the most a listing returns).
const RED_SCANNED: u32 = 1_000;

/// What the home page shows.
#[derive(Debug, Default)]
pub struct Book {
    pub at_risk: Vec<scoring::HealthScore>,
    /// The red customers' 12-month value, how many were added, and whether there are more.
    pub red_value: f64,
    /// How many of them have a 12-month value (the models need purchases to give one).
    pub red_valued: usize,
    pub red_customers: usize,
    pub red_more: bool,
    /// Open alerts per severity, most severe first.
    pub open_by_severity: Vec<(alerting::Severity, u64)>,
}

/// `GET /`.
pub async fn show(State(console): State<Console>, headers: HeaderMap) -> Page {
    let caller = console.caller(&headers).await?;
    let book = fetch(&console, &caller).await?;
    Ok(html_page(layout(
        "My book",
        Some(&caller),
        "/",
        render(&book),
    )))
}

async fn fetch(console: &Console, caller: &Caller) -> Result<Book, tonic::Status> {
    let mut scoring = console.backends.scoring();
    let mut alerting = console.backends.alerting();
    // One listing of the lowest scores serves both the at-risk list (its head, as `rapport
    // top-risk` lists it) and the value at risk (its red rows: red is the bottom band). Asking
    // for the red band instead walks every score when fewer than the limit are red.
    let (lowest, open) = tokio::join!(
        scoring.list_health(caller.request(scoring::ListHealthRequest {
            limit: RED_SCANNED,
            ..Default::default()
        })),
        alerting.list_alerts(caller.request(alerting::ListAlertsRequest {
            state: alerting::AlertState::Open.into(),
            limit: 1,
            with_counts: true,
            ..Default::default()
        })),
    );
    let lowest = lowest?.into_inner().scores;
    let red: Vec<&scoring::HealthScore> = lowest
        .iter()
        .filter(|h| h.band == common::HealthBand::Red as i32)
        .collect();
    let mut by_severity = std::collections::BTreeMap::<i32, u64>::new();
    for c in open?.into_inner().counts {
        *by_severity.entry(c.severity).or_default() += c.count;
    }
    Ok(Book {
        // Plus zero: an empty float sum is -0, which would print as "-0".
        red_value: red.iter().filter_map(|h| h.clv_12m).sum::<f64>() + 0.0,
        red_valued: red.iter().filter(|h| h.clv_12m.is_some()).count(),
        red_customers: red.len(),
        red_more: red.len() as u32 >= RED_SCANNED,
        at_risk: lowest.into_iter().take(AT_RISK as usize).collect(),
        open_by_severity: by_severity
            .into_iter()
            .rev()
            .filter_map(|(s, n)| Some((alerting::Severity::try_from(s).ok()?, n)))
            .collect(),
    })
}

/// The name of a severity, as people read it.
pub fn severity_name(s: alerting::Severity) -> &'static str {
    match s {
        alerting::Severity::Critical => "critical",
        alerting::Severity::Error => "error",
        alerting::Severity::Warning => "warning",
        alerting::Severity::Info => "info",
        alerting::Severity::Unspecified => "unspecified",
    }
}

/// The home page's body.
pub fn render(book: &Book) -> Markup {
    let open: u64 = book.open_by_severity.iter().map(|(_, n)| n).sum();
    let bars: Vec<(String, &str, u64)> = book
        .open_by_severity
        .iter()
        .map(|(s, n)| {
            let name = severity_name(*s);
            (name.to_owned(), severity_class(*s), *n)
        })
        .collect();
    html! {
        h1 { "My book" }
        section.kpis {
            div.kpi {
                span.label { "12-month value of red customers" }
                span.value id="red-value" { (format!("{:.0}", book.red_value)) }
                span.sub {
                    (book.red_customers) " red customers, " (book.red_valued) " with a value"
                    @if book.red_more { " (the lowest-scored " (book.red_customers) "; there are more)" }
                }
            }
            div.kpi {
                span.label { "Open alerts" }
                span.value { a href="/alerts?state=open" { (open) } }
            }
        }
        section {
            h2 { "Open alerts by severity" }
            @if bars.is_empty() {
                p.none { "No open alerts." }
            } @else {
                (charts::bars("Open alerts by severity", &bars))
                details { summary { "Data" }
                    table { thead { tr { th { "Severity" } th.num { "Open alerts" } } }
                        tbody { @for (name, _, n) in &bars { tr { td { (name) } td.num { (n) } } } }
                    }
                }
            }
        }
        section {
            h2 { "Most at risk" }
            (at_risk_table(&book.at_risk))
        }
    }
}

fn severity_class(s: alerting::Severity) -> &'static str {
    match s {
        alerting::Severity::Critical => "sev-critical",
        alerting::Severity::Error => "sev-error",
        alerting::Severity::Warning => "sev-warning",
        _ => "sev-info",
    }
}

/// The lowest scores, lowest first, each with what costs it most.
pub fn at_risk_table(scores: &[scoring::HealthScore]) -> Markup {
    if scores.is_empty() {
        return super::nothing("No scored customers yet.");
    }
    html! {
        table id="at-risk" {
            thead { tr {
                th { "Customer" } th.num { "Score" } th { "Band" } th { "Tier" } th { "Stage" }
                th.num { "30 days" } th { "Costs most" } th.num { "12-month value" }
            } }
            tbody {
                @for h in scores {
                    tr data-customer=(h.customer_id) {
                        td { (customer_link(&h.customer_id)) }
                        td.num.score { (format!("{:.1}", h.score)) }
                        td { (band_badge(h.band)) }
                        td { (super::tier_name(h.tier)) }
                        td { (h.stage) }
                        td.num { (change(h.trend_30d)) }
                        td { @if let Some((m, pts)) = biggest_drag(h) { (m) " (−" (format!("{pts:.1}")) ")" } }
                        td.num { (number(h.clv_12m, 0)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(id: &str, s: f64) -> scoring::HealthScore {
        scoring::HealthScore {
            customer_id: id.into(),
            score: s,
            band: common::HealthBand::Red.into(),
            clv_12m: Some(120.0),
            measures: vec![scoring::MeasureScore {
                measure: "nps".into(),
                shortfall: 12.5,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_book_lists_the_lowest_scores_with_what_costs_them_most() {
        let book = Book {
            at_risk: vec![score("c-2", 10.0), score("c-9", 31.24)],
            red_value: 240.0,
            red_valued: 2,
            red_customers: 2,
            red_more: false,
            open_by_severity: vec![
                (alerting::Severity::Critical, 3),
                (alerting::Severity::Warning, 1),
            ],
        };
        let page = render(&book).into_string();
        let c2 = page.find("data-customer=\"c-2\"").unwrap();
        let c9 = page.find("data-customer=\"c-9\"").unwrap();
        assert!(c2 < c9, "lowest first");
        assert!(
            page.contains("31.2") && page.contains("nps (−12.5)"),
            "{page}"
        );
        assert!(page.contains("id=\"red-value\">240<"), "{page}");
        assert!(page.contains(">4</a>"), "open alerts add up: {page}");
        assert!(page.contains("<title>Open alerts by severity</title>"));
    }

    #[test]
    fn an_empty_book_says_so() {
        let page = render(&Book::default()).into_string();
        assert!(page.contains("No open alerts.") && page.contains("No scored customers yet."));
    }
}
