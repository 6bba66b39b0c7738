//! The alerts work queue: filtered, highest priority first, acted on from the page, and kept
//! up to date without a reload by server-sent events fed from `WatchAlerts`.

use super::{Page, PageError, customer_link, html_page, layout, when};
use crate::Console;
use crate::pages::book::severity_name;
use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use rapport_proto::alerting::v1 as alerting;
use rapport_proto::convert;
use std::time::Duration;
use tokio_stream::StreamExt;

/// Alerts the queue lists.
const QUEUE: u32 = 200;
/// The longest snooze the service allows, in hours.
const MAX_SNOOZE_HOURS: u32 = 7 * 24;

/// The queue's filters, from the query string.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub tier: String,
}

const STATES: [(&str, alerting::AlertState); 4] = [
    ("open", alerting::AlertState::Open),
    ("acknowledged", alerting::AlertState::Acknowledged),
    ("snoozed", alerting::AlertState::Snoozed),
    ("resolved", alerting::AlertState::Resolved),
];

fn state_name(value: i32) -> &'static str {
    STATES
        .iter()
        .find(|(_, s)| *s as i32 == value)
        .map_or("unknown", |(n, _)| n)
}

impl Filters {
    fn state(&self) -> Result<alerting::AlertState, PageError> {
        match self.state.as_str() {
            "" | "all" => Ok(alerting::AlertState::Unspecified),
            name => STATES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .ok_or_else(|| PageError::BadInput(format!("state: no state is called {name:?}"))),
        }
    }

    /// Whether an alert passes the filters the service does not apply (severity, tier).
    pub fn keeps(&self, a: &alerting::Alert) -> bool {
        let severity = alerting::Severity::try_from(a.severity).map_or("", severity_name);
        (self.severity.is_empty() || self.severity == severity)
            && (self.tier.is_empty() || self.tier == super::tier_name(a.tier))
    }
}

/// `GET /alerts`.
pub async fn show(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(filters): Query<Filters>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let listed = console
        .backends
        .alerting()
        .list_alerts(caller.request(alerting::ListAlertsRequest {
            state: filters.state()?.into(),
            rule: filters.rule.clone(),
            order: alerting::AlertOrder::Priority.into(),
            limit: QUEUE,
            ..Default::default()
        }))
        .await?
        .into_inner();
    let alerts: Vec<_> = listed
        .alerts
        .into_iter()
        .filter(|a| filters.keeps(a))
        .collect();
    Ok(html_page(layout(
        "Alerts",
        Some(&caller),
        "/alerts",
        render(&filters, &alerts, listed.revision, caller.can_write),
    )))
}

/// The queue page's body; `revision` is where its live updates start.
pub fn render(
    filters: &Filters,
    alerts: &[alerting::Alert],
    revision: u64,
    can_write: bool,
) -> Markup {
    html! {
        h1 { "Alerts" }
        form.filters method="get" action="/alerts" {
            label { "State " select name="state" {
                option value="all" { "any" }
                @for (name, _) in STATES { option value=(name) selected[filters.state == name] { (name) } }
            } }
            label { "Rule " input name="rule" value=(filters.rule); }
            label { "Severity " select name="severity" {
                option value="" { "any" }
                @for s in ["critical", "error", "warning", "info"] { option value=(s) selected[filters.severity == s] { (s) } }
            } }
            label { "Tier " select name="tier" {
                option value="" { "any" }
                @for t in ["vip", "gold", "silver", "bronze", "regular"] { option value=(t) selected[filters.tier == t] { (t) } }
            } }
            button type="submit" { "Show" }
        }
        p.live { span id="live-status" data-revision=(revision) { "Live: new alerts appear here as they open." } }
        (table(alerts, can_write))
    }
}

/// Alerts as a table, with the actions on each standing one when `actions`.
pub fn table(alerts: &[alerting::Alert], actions: bool) -> Markup {
    html! {
        table id="alerts" data-actions=(actions) {
            thead { tr {
                th { "Alert" } th { "Customer" } th { "Rule" } th { "Severity" } th { "Tier" }
                th { "State" } th.num { "Score" } th { "Opened" } th { "Recommended" }
                @if actions { th { "Act" } }
            } }
            tbody {
                @for a in alerts { (row(a, actions)) }
            }
        }
    }
}

/// One alert's row (also what live updates insert).
pub fn row(a: &alerting::Alert, actions: bool) -> Markup {
    let severity = alerting::Severity::try_from(a.severity).map_or("unspecified", severity_name);
    let standing = a.state != alerting::AlertState::Resolved as i32;
    html! {
        tr id=(format!("alert-{}", a.id)) data-alert=(a.id) data-state=(state_name(a.state)) {
            td { (a.id) }
            td { (customer_link(&a.customer_id)) }
            td { (a.rule) @if !a.evidence.is_empty() { div.evidence { (a.evidence) } } }
            td { span class=(format!("badge sev-{severity}")) { (severity) } }
            td { (super::tier_name(a.tier)) }
            td.state { (state_name(a.state)) }
            td.num { (format!("{:.1}", a.score)) }
            td { (when(a.opened_at.as_ref())) }
            td {
                @if a.holdout { span.none { "control group: no recommendation" } }
                @for r in &a.recommendations { div { strong { (r.action) } @if !r.description.is_empty() { " — " (r.description) } } }
            }
            @if actions {
                td.actions { @if standing { (forms(a)) } }
            }
        }
    }
}

fn forms(a: &alerting::Alert) -> Markup {
    let base = format!("/alerts/{}", super::path_segment(&a.id));
    html! {
        @if a.state != alerting::AlertState::Acknowledged as i32 {
            form.inline method="post" action=(format!("{base}/acknowledge")) {
                button type="submit" name="do" value="acknowledge" { "Acknowledge" }
            }
        }
        details { summary { "More" }
            form method="post" action=(format!("{base}/resolve")) {
                input name="reason" placeholder="why it is resolved" required;
                button type="submit" { "Resolve" }
            }
            form method="post" action=(format!("{base}/snooze")) {
                select name="hours" {
                    @for (h, name) in [(4, "4 hours"), (24, "1 day"), (72, "3 days"), (168, "7 days")] {
                        option value=(h) { (name) }
                    }
                }
                input name="reason" placeholder="why";
                button type="submit" { "Snooze" }
            }
            form method="post" action=(format!("{base}/intervention")) {
                @if a.recommendations.is_empty() {
                    input name="action" placeholder="action of the playbook" required;
                } @else {
                    select name="action" { @for r in &a.recommendations { option value=(r.action) { (r.action) } } }
                }
                input name="cost" type="number" min="0" step="any" placeholder="cost";
                input name="note" placeholder="note";
                button type="submit" { "Record intervention" }
            }
        }
    }
}

/// An action's form fields.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    hours: Option<String>,
    #[serde(default)]
    action: String,
    #[serde(default)]
    cost: Option<String>,
    #[serde(default)]
    note: String,
}

/// `POST /alerts/{id}/{verb}`: acknowledge, resolve, snooze or record an intervention, as the
/// person signed in, then back to the queue.
pub async fn act(
    State(console): State<Console>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let mut client = console.backends.alerting();
    let actor = caller.person.clone();
    match verb.as_str() {
        "acknowledge" | "resolve" => {
            let req = caller.request(alerting::AlertActionRequest {
                id,
                actor,
                reason: form.reason,
            });
            if verb == "acknowledge" {
                client.acknowledge_alert(req).await?;
            } else {
                client.resolve_alert(req).await?;
            }
        }
        "snooze" => {
            let hours = form
                .hours
                .as_deref()
                .unwrap_or("")
                .parse::<u32>()
                .ok()
                .filter(|h| (1..=MAX_SNOOZE_HOURS).contains(h))
                .ok_or_else(|| {
                    PageError::BadInput(format!("hours: a number from 1 to {MAX_SNOOZE_HOURS}"))
                })?;
            let until = console.clock.now() + chrono::Duration::hours(i64::from(hours));
            client
                .snooze_alert(caller.request(alerting::SnoozeAlertRequest {
                    id,
                    actor,
                    reason: form.reason,
                    until: Some(convert::timestamp(until.timestamp_millis())),
                }))
                .await?;
        }
        "intervention" => {
            let cost = match form.cost.as_deref().map(str::trim).unwrap_or("") {
                "" => 0.0,
                text => text
                    .parse::<f64>()
                    .ok()
                    .filter(|c| c.is_finite() && *c >= 0.0)
                    .ok_or_else(|| {
                        PageError::BadInput(format!("cost: a non-negative amount, not {text:?}"))
                    })?,
            };
            client
                .record_intervention(caller.request(alerting::RecordInterventionRequest {
                    alert_id: id,
                    action: form.action,
                    actor,
                    at: None,
                    cost,
                    note: form.note,
                }))
                .await?;
        }
        other => {
            return Err(PageError::BadInput(format!(
                "action: no action is called {other:?}"
            )));
        }
    }
    Ok(Redirect::to("/alerts").into_response())
}

/// Where a live feed starts.
#[derive(Debug, Default, serde::Deserialize)]
pub struct After {
    #[serde(default)]
    after: u64,
}

/// `GET /alerts/events`: the tenant's alert changes after a revision (the page's, or the
/// browser's `Last-Event-ID` when it reconnects), each as an `alert` event carrying the
/// alert's new table row.
pub async fn events(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> Page {
    let caller = console.caller(&headers).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(q.after);
    let changes = console
        .backends
        .alerting()
        .watch_alerts(caller.stream_request(alerting::WatchAlertsRequest {
            after_revision: after,
        }))
        .await?
        .into_inner();
    let can_write = caller.can_write;
    let events = changes.filter_map(move |m| match m {
        Ok(m) if !m.bookmark => {
            let alert = m.alert?;
            let html = row(&alert, can_write).into_string();
            Some(Ok::<_, std::convert::Infallible>(
                Event::default()
                    .event("alert")
                    .id(m.revision.to_string())
                    .data(html),
            ))
        }
        // A bookmark moves the browser's resume point without showing anything.
        Ok(m) => Some(Ok(Event::default()
            .id(m.revision.to_string())
            .comment("bookmark"))),
        Err(status) => {
            tracing::debug!(%status, "an alert watch ended");
            None
        }
    });
    let events =
        futures_util::StreamExt::take_until(events, console.stop.clone().cancelled_owned());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, state: alerting::AlertState) -> alerting::Alert {
        alerting::Alert {
            id: id.into(),
            customer_id: "c-7".into(),
            rule: "nps_detractor".into(),
            state: state.into(),
            severity: alerting::Severity::Critical.into(),
            recommendations: vec![alerting::Recommendation {
                action: "exec_call".into(),
                description: "A call from an executive".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_standing_alert_offers_its_actions_and_a_resolved_one_none() {
        let open = row(&alert("12", alerting::AlertState::Open), true).into_string();
        assert!(open.contains("action=\"/alerts/12/acknowledge\""), "{open}");
        assert!(open.contains("<option value=\"exec_call\">"), "{open}");
        assert!(open.contains("data-state=\"open\""));
        let done = row(&alert("13", alerting::AlertState::Resolved), true).into_string();
        assert!(!done.contains("<form"), "{done}");
        let read_only = row(&alert("14", alerting::AlertState::Open), false).into_string();
        assert!(!read_only.contains("<form"), "{read_only}");
    }

    #[test]
    fn an_acknowledged_alert_is_not_offered_acknowledging_again() {
        let ack = row(&alert("12", alerting::AlertState::Acknowledged), true).into_string();
        assert!(!ack.contains("/acknowledge"), "{ack}");
        assert!(ack.contains("/resolve"), "{ack}");
    }

    #[test]
    fn severity_and_tier_filter_what_the_service_returns() {
        let a = alert("1", alerting::AlertState::Open);
        let f = |severity: &str, tier: &str| Filters {
            severity: severity.into(),
            tier: tier.into(),
            ..Default::default()
        };
        assert!(f("", "").keeps(&a));
        assert!(f("critical", "").keeps(&a));
        assert!(!f("warning", "").keeps(&a));
        assert!(!f("", "vip").keeps(&a));
        assert!(
            Filters {
                state: "closed".into(),
                ..Default::default()
            }
            .state()
            .unwrap_err()
            .to_string()
            .starts_with("state:")
        );
    }

    #[test]
    fn the_page_starts_its_live_feed_at_the_listing_revision() {
        let page = render(&Filters::default(), &[], 41, true).into_string();
        assert!(page.contains("data-revision=\"41\""), "{page}");
    }
}
