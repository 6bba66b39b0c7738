//! A customer's page: the score and what makes it (with how fresh each measure's data is), its
//! history with what happened along the way, what moved it between two dates, and the
//! customer's alerts, interventions and recent events.

use super::{Page, PageError, band_badge, change, html_page, layout, number, when};
use crate::Console;
use crate::charts::{self, Marker, MarkerKind};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use rapport_domain::scorecard::{Bands, ScorecardSet};
use rapport_proto::alerting::v1 as alerting;
use rapport_proto::convert;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::segmentation::v1 as seg;

/// Scores of the history drawn.
const HISTORY_POINTS: u32 = 1_000;
/// Alerts of the customer listed.
const ALERTS: u32 = 100;
/// Interventions and recent events listed.
const INTERVENTIONS: u32 = 50;
const RECENT_EVENTS: u32 = 25;
/// The comparison's default span, in days back from today.
const DEFAULT_COMPARE_DAYS: i64 = 30;

/// The dates between which "what moved it" compares, from the query string (YYYY-MM-DD).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Span {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

impl Span {
    /// The span's ends, defaulting to the last 30 days up to `now`; the end date counts whole.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), PageError> {
        let date = |field: &str, text: &str| -> Result<Option<DateTime<Utc>>, PageError> {
            if text.is_empty() {
                return Ok(None);
            }
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                PageError::BadInput(format!("{field}: a date as YYYY-MM-DD, not {text:?}"))
            })?;
            Ok(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
        };
        let to = date("to", &self.to)?
            .map(|t| t + chrono::Duration::days(1) - chrono::Duration::seconds(1))
            .unwrap_or(now);
        let from =
            date("from", &self.from)?.unwrap_or(to - chrono::Duration::days(DEFAULT_COMPARE_DAYS));
        if from >= to {
            return Err(PageError::BadInput("from: must be before to".into()));
        }
        Ok((from, to))
    }
}

/// Everything a customer's page shows.
#[derive(Debug)]
pub struct CustomerView {
    pub explanation: scoring::HealthExplanation,
    /// Oldest first.
    pub history: Vec<scoring::HealthPoint>,
    pub alerts: Vec<alerting::Alert>,
    /// Newest first.
    pub interventions: Vec<alerting::Intervention>,
    /// Newest first, or why they cannot be read.
    pub events: Result<Vec<ingestion::StoredEvent>, String>,
    /// The customer's RFM segment, once graded.
    pub rfm_segment: Option<String>,
    /// When the page was drawn (milliseconds), for the data's age.
    pub now: i64,
    pub bands: Bands,
    pub span: (i64, i64),
    /// What moved the score over the span, or why that cannot be told.
    pub comparison: Result<scoring::HealthComparison, String>,
}

impl Default for CustomerView {
    fn default() -> Self {
        CustomerView {
            explanation: Default::default(),
            history: Vec::new(),
            alerts: Vec::new(),
            interventions: Vec::new(),
            events: Ok(Vec::new()),
            rfm_segment: None,
            now: 0,
            bands: Bands::default(),
            span: (0, 0),
            comparison: Err("not compared".into()),
        }
    }
}

/// `GET /customers/{id}`.
pub async fn show(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(span): Query<Span>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let (from, to) = span.resolve(console.clock.now())?;
    let backends = &console.backends;
    let (mut s1, mut s2, mut s3, mut s4) = (
        backends.scoring(),
        backends.scoring(),
        backends.scoring(),
        backends.scoring(),
    );
    let (mut a1, mut a2) = (backends.alerting(), backends.alerting());
    let (mut i, mut g) = (backends.ingestion(), backends.segmentation());
    let (explanation, history, alerts, card, comparison, interventions, events, grade) = tokio::join!(
        s1.explain_health(caller.request(scoring::ExplainHealthRequest {
            customer_id: id.clone(),
            at: None,
        })),
        s2.list_health_history(caller.request(scoring::ListHealthHistoryRequest {
            customer_id: id.clone(),
            limit: HISTORY_POINTS,
            ..Default::default()
        })),
        a1.list_alerts(caller.request(alerting::ListAlertsRequest {
            customer_id: id.clone(),
            limit: ALERTS,
            ..Default::default()
        })),
        s3.get_scorecard(caller.request(scoring::GetScorecardRequest {})),
        s4.compare_health(caller.request(scoring::CompareHealthRequest {
            customer_id: id.clone(),
            from: Some(convert::timestamp(from.timestamp_millis())),
            to: Some(convert::timestamp(to.timestamp_millis())),
        })),
        a2.list_interventions(caller.request(alerting::ListInterventionsRequest {
            customer_id: id.clone(),
            limit: INTERVENTIONS,
        })),
        i.list_customer_events(caller.request(ingestion::ListCustomerEventsRequest {
            customers: vec![ingestion::CustomerCursor {
                customer_id: id.clone(),
                after_seq: 0,
            }],
            limit_per_customer: RECENT_EVENTS,
            newest_first: true,
        })),
        g.get_segments(caller.request(seg::GetSegmentsRequest {
            customer_ids: vec![id.clone()],
        })),
    );
    let explanation = explanation?.into_inner();
    let mut history = history?.into_inner().points;
    history.sort_by_key(|p| convert::millis(p.computed_at.as_ref()));
    let health = explanation.health.clone().unwrap_or_default();
    let bands = card
        .ok()
        .and_then(|c| ScorecardSet::from_toml(&c.into_inner().toml).ok())
        .map(|set| {
            let tier = convert::domain_tier(health.tier);
            let stage = rapport_domain::lifecycle::Stage::from_name(&health.stage);
            set.card_for(tier, stage).bands
        })
        .unwrap_or_default();
    let view = CustomerView {
        explanation,
        history,
        alerts: alerts?.into_inner().alerts,
        interventions: interventions?.into_inner().interventions,
        // The events are the one part read from ingestion: the page stands without them.
        events: events
            .map(|e| e.into_inner().events)
            .map_err(|s| s.message().to_owned()),
        rfm_segment: grade
            .ok()
            .and_then(|g| g.into_inner().segments.into_iter().next())
            .map(|g| g.rfm_segment)
            .filter(|s| !s.is_empty()),
        now: console.clock.now().timestamp_millis(),
        bands,
        span: (from.timestamp_millis(), to.timestamp_millis()),
        comparison: comparison
            .map(|c| c.into_inner())
            .map_err(|s| s.message().to_owned()),
    };
    Ok(html_page(layout(
        &format!("Customer {id}"),
        Some(&caller),
        "/customers",
        render(&id, &view),
    )))
}

/// What happened to the customer, as markers on its history.
pub fn markers(view: &CustomerView) -> Vec<Marker> {
    let mut out: Vec<Marker> = view
        .alerts
        .iter()
        .filter_map(|a| {
            Some(Marker {
                at: convert::millis(a.opened_at.as_ref())?,
                kind: MarkerKind::AlertOpened,
                label: a.rule.clone(),
            })
        })
        .collect();
    for i in &view.interventions {
        if let Some(at) = convert::millis(i.at.as_ref()) {
            out.push(Marker {
                at,
                kind: MarkerKind::Intervention,
                label: format!("{} by {}", i.action, i.actor),
            });
        }
    }
    let health = view.explanation.health.as_ref();
    for o in health.map(|h| h.overrides.as_slice()).unwrap_or_default() {
        if let Some(at) = convert::millis(o.set_at.as_ref()) {
            out.push(Marker {
                at,
                kind: MarkerKind::Override,
                label: format!("{} by {}", o.value, o.author),
            });
        }
    }
    for pair in view.history.windows(2) {
        if pair[0].scorecard_version != pair[1].scorecard_version
            && let Some(at) = convert::millis(pair[1].computed_at.as_ref())
        {
            out.push(Marker {
                at,
                kind: MarkerKind::ScorecardChanged,
                label: format!(
                    "{} → {}",
                    pair[0].scorecard_version, pair[1].scorecard_version
                ),
            });
        }
    }
    out.sort_by_key(|m| m.at);
    out
}

fn date(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

/// The customer page's body.
pub fn render(id: &str, view: &CustomerView) -> Markup {
    let h = view.explanation.health.clone().unwrap_or_default();
    let points: Vec<(i64, f64)> = view
        .history
        .iter()
        .filter_map(|p| Some((convert::millis(p.computed_at.as_ref())?, p.score)))
        .collect();
    let markers = markers(view);
    html! {
        h1 { "Customer " (id) }
        section.kpis {
            div.kpi { span.label { "Score" } span.value id="score" { (format!("{:.1}", h.score)) } (band_badge(h.band)) }
            div.kpi { span.label { "Tier" } span.value { (super::tier_name(h.tier)) } }
            div.kpi { span.label { "Stage" } span.value { (h.stage) } }
            div.kpi { span.label { "RFM segment" } span.value { (view.rfm_segment.as_deref().unwrap_or("–")) } }
            div.kpi { span.label { "7 days" } span.value { (change(h.trend_7d)) } }
            div.kpi { span.label { "30 days" } span.value { (change(h.trend_30d)) } }
            div.kpi { span.label { "P(alive)" } span.value { (number(h.p_alive, 2)) } }
            div.kpi { span.label { "12-month value" } span.value { (number(h.clv_12m, 0)) } }
        }
        p.meta { "Scorecard " (h.scorecard_version) ", computed " (when(h.computed_at.as_ref())) }
        @for o in &h.overrides {
            p.override {
                "Override: " (o.value) " set by " strong { (o.author) } " — " (o.reason)
                ", until " (when(o.expires_at.as_ref()))
            }
        }
        section {
            h2 { "What makes the score" }
            table id="contributions" {
                thead { tr { th { "Measure" } th { "Group" } th.num { "Value" } th.num { "Score" }
                    th.num { "Weight" } th.num { "Contribution" } th.num { "Costs" } th { "Data as of" } } }
                tbody {
                    @for m in &view.explanation.measures {
                        tr data-measure=(m.measure) data-contribution=(m.contribution)
                            data-fresh=[convert::millis(m.data_at.as_ref())] {
                            td { (m.measure) } td { (m.group) }
                            td.num { (number(m.value, 2)) } td.num { (number(m.score, 1)) }
                            td.num { (format!("{:.2}", m.weight)) }
                            td.num { (format!("{:.2}", m.contribution)) }
                            td.num { (format!("{:.1}", m.shortfall)) }
                            td { (freshness(m.data_at.as_ref(), view.now)) }
                        }
                    }
                }
            }
            @if !view.explanation.missing.is_empty() {
                p.none { "No data yet: " (view.explanation.missing.join(", ")) }
            }
        }
        section {
            h2 { "History" }
            @if points.is_empty() {
                (super::nothing("No scores recorded yet."))
            } @else {
                (charts::history(&format!("Health of {id} over time"), &points, view.bands, &markers))
                p.legend {
                    @for kind in [MarkerKind::AlertOpened, MarkerKind::Intervention, MarkerKind::Override, MarkerKind::ScorecardChanged] {
                        span class=(format!("key {}", kind.class())) { (kind.name()) }
                    }
                }
                details { summary { "Data" }
                    table { thead { tr { th { "Computed" } th.num { "Score" } th { "Band" } th { "Scorecard" } } }
                        tbody { @for p in view.history.iter().rev() {
                            tr { td { (when(p.computed_at.as_ref())) } td.num { (format!("{:.1}", p.score)) }
                                td { (super::band_name(p.band)) } td { (p.scorecard_version) } }
                        } }
                    }
                }
            }
        }
        section {
            h2 { "What moved it" }
            form.filters method="get" {
                label { "From " input type="date" name="from" value=(date(view.span.0)); }
                label { "To " input type="date" name="to" value=(date(view.span.1)); }
                button type="submit" { "Compare" }
            }
            @match &view.comparison {
                Ok(c) => {
                    @let bars: Vec<(String, f64)> = c.deltas.iter().filter(|d| d.delta.abs() >= 0.05).map(|d| (d.measure.clone(), d.delta)).collect();
                    p { "Score " (format!("{:+.1}", c.score_change)) " points from " (date(view.span.0)) " to " (date(view.span.1)) "." }
                    @if bars.is_empty() {
                        (super::nothing("No measure moved."))
                    } @else {
                        (charts::diverging(&format!("What moved the health of {id}"), &bars))
                        details { summary { "Data" }
                            table { thead { tr { th { "Measure" } th.num { "From" } th.num { "To" } th.num { "Points" } } }
                                tbody { @for d in &c.deltas { tr {
                                    td { (d.measure) } td.num { (number(d.from_value, 2)) } td.num { (number(d.to_value, 2)) }
                                    td.num { (format!("{:+.2}", d.delta)) }
                                } } }
                            }
                        }
                    }
                }
                Err(why) => { p.none { "Cannot compare: " (why) } }
            }
        }
        section id="alerts" {
            h2 { "Alerts" }
            @if view.alerts.is_empty() {
                (super::nothing("No alerts."))
            } @else {
                (super::alerts::table(&view.alerts, false))
            }
        }
        section {
            h2 { "Interventions" }
            @if view.interventions.is_empty() {
                (super::nothing("None recorded."))
            } @else {
                (super::activity::interventions(&view.interventions, &view.alerts))
            }
        }
        section {
            h2 { "Recent events" }
            @match &view.events {
                Ok(events) if events.is_empty() => { (super::nothing("No events.")) }
                Ok(events) => { (super::activity::events(events)) }
                Err(why) => { p.none { "Cannot read the events: " (why) } }
            }
        }
    }
}

/// A measure's data time and its age in whole days ("–" for measures that read no event).
fn freshness(at: Option<&prost_types::Timestamp>, now: i64) -> Markup {
    match convert::millis(at) {
        Some(ms) => {
            let days = (now - ms).max(0) / 86_400_000;
            html! { (date(ms)) span.age { " (" (days) " d)" } }
        }
        None => html! { span.none { "–" } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_span_defaults_to_the_last_30_days_and_names_a_bad_field() {
        let now = at("2026-03-31T12:00:00Z");
        let (from, to) = Span::default().resolve(now).unwrap();
        assert_eq!((from, to), (at("2026-03-01T12:00:00Z"), now));
        let span = Span {
            from: "2026-01-01".into(),
            to: "2026-01-31".into(),
        };
        let (from, to) = span.resolve(now).unwrap();
        assert_eq!(
            (from, to),
            (at("2026-01-01T00:00:00Z"), at("2026-01-31T23:59:59Z"))
        );
        let bad = Span {
            from: "01/02/2026".into(),
            ..Default::default()
        };
        assert!(
            bad.resolve(now)
                .unwrap_err()
                .to_string()
                .starts_with("from:")
        );
        let reversed = Span {
            from: "2026-02-01".into(),
            to: "2026-01-01".into(),
        };
        assert!(reversed.resolve(now).is_err());
    }

    #[test]
    fn alerts_overrides_and_card_changes_become_markers_in_time_order() {
        let t = |ms: i64| Some(convert::timestamp(ms));
        let view = CustomerView {
            explanation: scoring::HealthExplanation {
                health: Some(scoring::HealthScore {
                    overrides: vec![scoring::Override {
                        set_at: t(3_000),
                        value: 40.0,
                        author: "dana".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            history: vec![
                scoring::HealthPoint {
                    scorecard_version: "v1".into(),
                    computed_at: t(1_000),
                    ..Default::default()
                },
                scoring::HealthPoint {
                    scorecard_version: "v2".into(),
                    computed_at: t(2_000),
                    ..Default::default()
                },
            ],
            alerts: vec![alerting::Alert {
                rule: "health_below".into(),
                opened_at: t(500),
                ..Default::default()
            }],
            interventions: vec![alerting::Intervention {
                action: "exec_call".into(),
                actor: "dana".into(),
                at: t(2_500),
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = markers(&view);
        let kinds: Vec<_> = m.iter().map(|m| (m.at, m.kind)).collect();
        assert_eq!(
            kinds,
            [
                (500, MarkerKind::AlertOpened),
                (2_000, MarkerKind::ScorecardChanged),
                (2_500, MarkerKind::Intervention),
                (3_000, MarkerKind::Override)
            ]
        );
        assert_eq!(m[1].label, "v1 → v2");
        assert_eq!(m[2].label, "exec_call by dana");
    }

    #[test]
    fn every_measure_shows_its_exact_contribution_and_missing_ones_are_named() {
        let view = CustomerView {
            explanation: scoring::HealthExplanation {
                measures: vec![
                    scoring::MeasureScore {
                        measure: "nps".into(),
                        contribution: 12.345678,
                        data_at: Some(convert::timestamp(1_000)),
                        ..Default::default()
                    },
                    scoring::MeasureScore {
                        measure: "p_alive".into(),
                        ..Default::default()
                    },
                ],
                missing: vec!["tickets".into()],
                ..Default::default()
            },
            comparison: Err("no score at the start".into()),
            events: Err("ingestion is down".into()),
            now: 1_000 + 3 * 86_400_000 + 5,
            ..Default::default()
        };
        let page = render("c-1", &view).into_string();
        assert!(
            page.contains("data-measure=\"nps\" data-contribution=\"12.345678\""),
            "{page}"
        );
        assert!(page.contains("No data yet: tickets"));
        assert!(page.contains("Cannot compare: no score at the start"));
        assert!(
            page.contains("1970-01-01<span class=\"age\"> (3 d)</span>"),
            "{page}"
        );
        assert!(page.contains("Cannot read the events: ingestion is down"));
    }
}
