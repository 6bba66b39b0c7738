//! What happened with a customer lately, as its page lists it: the recent events and the
//! interventions made on its alerts.

use super::when;
use maud::{Markup, html};
use rapport_proto::alerting::v1 as alerting;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::ingestion::v1::event::Payload;
use std::collections::HashMap;

/// An enum value's name without its type's prefix, in lower case (`SURVEY_KIND_NPS` → `nps`).
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
        .replace('_', " ")
}

fn day(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map_or_else(|| "?".to_owned(), |t| t.format("%Y-%m-%d").to_string())
}

fn money(amount: f64, currency: &str) -> String {
    format!("{amount:.2} {currency}").trim_end().to_owned()
}

/// An event's kind and what it says, in a few words.
pub fn summary(event: &ingestion::Event) -> (&'static str, String) {
    match &event.payload {
        Some(Payload::Order(o)) => (
            "order",
            format!(
                "{} ({} item{})",
                money(o.amount, &o.currency),
                o.items,
                if o.items == 1 { "" } else { "s" }
            ),
        ),
        Some(Payload::Survey(s)) => {
            let kind = short(s.kind().as_str_name(), "SURVEY_KIND_");
            ("survey", format!("{kind} {}", s.score))
        }
        Some(Payload::Complaint(c)) => (
            "complaint",
            format!(
                "{} ({})",
                c.category,
                short(c.severity().as_str_name(), "SEVERITY_")
            ),
        ),
        Some(Payload::Refund(r)) => ("refund", money(r.amount, &r.currency)),
        Some(Payload::SupportTicket(t)) => (
            "ticket",
            format!(
                "{} {}",
                t.ticket_id,
                short(t.status().as_str_name(), "TICKET_STATUS_")
            ),
        ),
        Some(Payload::Engagement(e)) => (
            "engagement",
            format!(
                "{} × {}",
                short(e.kind().as_str_name(), "ENGAGEMENT_KIND_"),
                e.count
            ),
        ),
        Some(Payload::Subscription(s)) => (
            "subscription",
            format!(
                "{} {} ({})",
                short(s.change().as_str_name(), "SUBSCRIPTION_CHANGE_"),
                s.plan,
                money(s.mrr, &s.currency)
            ),
        ),
        Some(Payload::Payment(p)) => (
            "payment",
            format!(
                "{} {} due {}{}",
                p.invoice_id,
                money(p.amount, &p.currency),
                day(p.due_at.as_ref()),
                if p.paid_at.is_some() {
                    format!(", paid {}", day(p.paid_at.as_ref()))
                } else {
                    ", unpaid".to_owned()
                }
            ),
        ),
        Some(Payload::Profile(p)) => {
            let set: Vec<&str> = [
                ("region", &p.region),
                ("industry", &p.industry),
                ("channel", &p.acquisition_channel),
                ("owner", &p.owner),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, _)| name)
            .collect();
            ("profile", set.join(", "))
        }
        None => ("unknown", String::new()),
    }
}

/// The recent events, newest first.
pub fn events(stored: &[ingestion::StoredEvent]) -> Markup {
    html! {
        table id="events" {
            thead { tr { th { "When" } th { "Kind" } th { "What" } th { "Event id" } } }
            tbody {
                @for s in stored {
                    @if let Some(e) = &s.event {
                        @let (kind, text) = summary(e);
                        tr data-kind=(kind) data-event=(e.event_id) {
                            td { (when(e.occurred_at.as_ref())) } td { (kind) } td { (text) }
                            td.id { (e.event_id) }
                        }
                    }
                }
            }
        }
    }
}

/// The interventions made on the customer's alerts, newest first, each with its alert's rule.
pub fn interventions(list: &[alerting::Intervention], alerts: &[alerting::Alert]) -> Markup {
    let rules: HashMap<&str, &str> = alerts
        .iter()
        .map(|a| (a.id.as_str(), a.rule.as_str()))
        .collect();
    html! {
        table id="interventions" {
            thead { tr { th { "When" } th { "Action" } th { "By" } th { "Alert" } th.num { "Cost" } th { "Note" } } }
            tbody {
                @for i in list {
                    tr data-alert=(i.alert_id) data-action=(i.action) {
                        td { (when(i.at.as_ref())) } td { (i.action) } td { (i.actor) }
                        td { (rules.get(i.alert_id.as_str()).copied().unwrap_or("")) " #" (i.alert_id) }
                        td.num { (format!("{:.2}", i.cost)) } td { (i.note) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_proto::ingestion::v1 as pb;

    #[test]
    fn every_kind_of_event_is_told_in_a_few_words() {
        let event = |payload| pb::Event {
            payload: Some(payload),
            ..Default::default()
        };
        let cases = [
            (
                Payload::Order(pb::Order {
                    amount: 12.5,
                    currency: "USD".into(),
                    items: 2,
                    ..Default::default()
                }),
                ("order", "12.50 USD (2 items)"),
            ),
            (
                Payload::Survey(pb::Survey {
                    kind: pb::SurveyKind::Nps.into(),
                    score: 3,
                    ..Default::default()
                }),
                ("survey", "nps 3"),
            ),
            (
                Payload::SupportTicket(pb::SupportTicket {
                    ticket_id: "T-1".into(),
                    status: pb::TicketStatus::FirstResponse.into(),
                    ..Default::default()
                }),
                ("ticket", "T-1 first response"),
            ),
            (
                Payload::Subscription(pb::Subscription {
                    plan: "pro".into(),
                    change: pb::SubscriptionChange::Downgrade.into(),
                    mrr: 80.0,
                    currency: "EUR".into(),
                    ..Default::default()
                }),
                ("subscription", "downgrade pro (80.00 EUR)"),
            ),
            (
                Payload::Profile(pb::Profile {
                    region: "emea".into(),
                    owner: "dana".into(),
                    ..Default::default()
                }),
                ("profile", "region, owner"),
            ),
        ];
        for (payload, (kind, text)) in cases {
            assert_eq!(summary(&event(payload)), (kind, text.to_owned()));
        }
    }

    #[test]
    fn an_intervention_names_its_alert_s_rule() {
        let list = [alerting::Intervention {
            id: "1".into(),
            alert_id: "7".into(),
            action: "exec_call".into(),
            actor: "Dana Ross".into(),
            cost: 120.0,
            ..Default::default()
        }];
        let alerts = [alerting::Alert {
            id: "7".into(),
            rule: "nps_detractor".into(),
            ..Default::default()
        }];
        let table = interventions(&list, &alerts).into_string();
        assert!(table.contains("nps_detractor #7"), "{table}");
        assert!(table.contains("Dana Ross") && table.contains("120.00"));
    }
}
