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
    /// The steepest falls over 7 and 30 days, each with the measure that moved most.
    pub fallers: Vec<(u32, Vec<Fell>)>,
    /// When the last whole-tenant re-score found them.
    pub fallers_at: Option<prost_types::Timestamp>,
    /// The band counts of the last weeks, oldest first.
    pub weeks: Vec<scoring::BandShare>,
}

/// A customer whose score fell, and what pulled it down most over the window.
#[derive(Debug, Clone, Default)]
pub struct Fell {
    pub health: scoring::HealthScore,
    pub change: f64,
    /// The measure whose contribution fell most, and by how many points.
    pub moved_most: Option<(String, f64)>,
}

/// Falls listed per window.
const FALLERS: u32 = 10;
/// Weeks of band shares drawn.
const WEEKS: u32 = 12;

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
    let mut shares = console.backends.scoring();
    // One listing of the lowest scores serves both the at-risk list (its head, as `rapport
    // top-risk` lists it) and the value at risk (its red rows: red is the bottom band). Asking
    // for the red band instead walks every score when fewer than the limit are red.
    let (lowest, open, weeks, fallers) = tokio::join!(
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
        shares.list_band_shares(caller.request(scoring::ListBandSharesRequest { weeks: WEEKS })),
        fallers(console, caller),
    );
    let (fallers, fallers_at) = fallers?;
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
        fallers,
        fallers_at,
        weeks: weeks?.into_inner().weeks,
        open_by_severity: by_severity
            .into_iter()
            .rev()
            .filter_map(|(s, n)| Some((alerting::Severity::try_from(s).ok()?, n)))
            .collect(),
    })
}

/// The steepest falls over 7 and 30 days (both windows at once), and when the last
/// re-score of everyone found them.
async fn fallers(
    console: &Console,
    caller: &Caller,
) -> Result<(Vec<(u32, Vec<Fell>)>, Option<prost_types::Timestamp>), tonic::Status> {
    let ((week, at), (month, _)) = tokio::try_join!(
        window_fallers(console, caller, 7),
        window_fallers(console, caller, 30)
    )?;
    Ok((vec![(7, week), (30, month)], at))
}

/// The steepest falls over `days`, each faller's biggest mover found by comparing its score
/// now with the window's start (a customer without a score then gets none).
async fn window_fallers(
    console: &Console,
    caller: &Caller,
    days: u32,
) -> Result<(Vec<Fell>, Option<prost_types::Timestamp>), tonic::Status> {
    let listed = console
        .backends
        .scoring()
        .list_fallers(caller.request(scoring::ListFallersRequest {
            days,
            limit: FALLERS,
        }))
        .await?
        .into_inner();
    let from = console.clock.now() - chrono::Duration::days(i64::from(days));
    let mut compares = tokio::task::JoinSet::new();
    for (i, f) in listed.fallers.iter().enumerate() {
        let id = f
            .health
            .as_ref()
            .map(|h| h.customer_id.clone())
            .unwrap_or_default();
        let mut client = console.backends.scoring();
        let req = caller.request(scoring::CompareHealthRequest {
            customer_id: id,
            from: Some(rapport_proto::convert::timestamp(from.timestamp_millis())),
            to: None,
        });
        compares.spawn(async move { (i, client.compare_health(req).await) });
    }
    let mut moved = vec![None; listed.fallers.len()];
    while let Some(Ok((i, answer))) = compares.join_next().await {
        moved[i] = answer.ok().and_then(|c| moved_most(&c.into_inner()));
    }
    let fell = listed
        .fallers
        .into_iter()
        .zip(moved)
        .map(|(f, moved_most)| Fell {
            health: f.health.unwrap_or_default(),
            change: f.change,
            moved_most,
        })
        .collect();
    Ok((fell, listed.counted_at))
}

/// The measure whose contribution fell most between two scores.
pub fn moved_most(c: &scoring::HealthComparison) -> Option<(String, f64)> {
    c.deltas
        .iter()
        .filter(|d| d.delta < 0.0)
        .min_by(|a, b| a.delta.total_cmp(&b.delta))
        .map(|d| (d.measure.clone(), d.delta))
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
                    (book.red_customers) " red, " (book.red_valued) " of them with a value"
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
        section.split {
            @for (days, fell) in &book.fallers {
                div {
                    h2 { "Fell most in " (days) " days" }
                    (fallers_table(*days, fell))
                }
            }
        }
        @if let Some(at) = &book.fallers_at {
            p.meta { "As the last re-score of everyone found them, " (super::when(Some(at))) "." }
        }
        section {
            h2 { "Customers per band, week by week" }
            (band_weeks(&book.weeks))
        }
    }
}

fn fallers_table(days: u32, fell: &[Fell]) -> Markup {
    if fell.is_empty() {
        return super::nothing("No falls yet: it takes a re-score with that much history.");
    }
    html! {
        table id=(format!("fell-{days}")) {
            thead { tr { th { "Customer" } th.num { "Score" } th.num { "Change" } th { "Moved most" } } }
            tbody { @for f in fell { tr data-customer=(f.health.customer_id) {
                td { (customer_link(&f.health.customer_id)) }
                td.num { (format!("{:.1}", f.health.score)) " " (band_badge(f.health.band)) }
                td.num { (change(Some(f.change))) }
                td { @if let Some((m, d)) = &f.moved_most { (m) " (" (format!("{d:+.1}")) ")" } }
            } } }
        }
    }
}

fn band_weeks(weeks: &[scoring::BandShare]) -> Markup {
    if weeks.is_empty() {
        return super::nothing("No counts yet: the first re-score of everyone makes one.");
    }
    let label = |w: &scoring::BandShare| {
        w.week
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map_or_else(String::new, |d| d.format("%m-%d").to_string())
    };
    let columns: Vec<charts::Column> = weeks
        .iter()
        .map(|w| charts::Column {
            label: label(w),
            counts: vec![w.red, w.yellow, w.green],
        })
        .collect();
    let parts = [
        ("red", "share-red"),
        ("yellow", "share-yellow"),
        ("green", "share-green"),
    ];
    html! {
        (charts::shares("Share of customers per band, week by week", &parts, &columns))
        details { summary { "Data" }
            table id="band-weeks" {
                thead { tr { th { "Week of" } th.num { "Red" } th.num { "Yellow" } th.num { "Green" } th.num { "No score" } } }
                tbody { @for w in weeks { tr {
                    td { (label(w)) } td.num.red { (w.red) } td.num.yellow { (w.yellow) }
                    td.num.green { (w.green) } td.num { (w.unscored) }
                } } }
            }
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
            ..Default::default()
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
    fn the_book_shows_who_fell_most_and_the_band_shares_by_week() {
        let comparison = scoring::HealthComparison {
            deltas: vec![
                scoring::MeasureDelta {
                    measure: "nps".into(),
                    delta: -4.0,
                    ..Default::default()
                },
                scoring::MeasureDelta {
                    measure: "recency_days".into(),
                    delta: -9.5,
                    ..Default::default()
                },
                scoring::MeasureDelta {
                    measure: "orders_365d".into(),
                    delta: 2.0,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            moved_most(&comparison),
            Some(("recency_days".to_owned(), -9.5))
        );
        let book = Book {
            fallers: vec![
                (
                    7,
                    vec![Fell {
                        health: score("c-3", 20.0),
                        change: -12.0,
                        moved_most: moved_most(&comparison),
                    }],
                ),
                (30, vec![]),
            ],
            weeks: vec![scoring::BandShare {
                week: Some(rapport_proto::convert::timestamp(1_767_571_200_000)),
                red: 1,
                yellow: 0,
                green: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let page = render(&book).into_string();
        assert!(page.contains("id=\"fell-7\""), "{page}");
        assert!(
            page.contains("recency_days (-9.5)") && page.contains("-12.0"),
            "{page}"
        );
        assert!(
            page.contains("No falls yet"),
            "the 30-day list is empty: {page}"
        );
        assert!(page.contains("<title>Share of customers per band, week by week</title>"));
        assert!(
            page.contains("<td>01-05</td><td class=\"num red\">1</td>"),
            "{page}"
        );
    }

    #[test]
    fn an_empty_book_says_so() {
        let page = render(&Book::default()).into_string();
        assert!(page.contains("No open alerts.") && page.contains("No scored customers yet."));
    }
}
