//! Properties of metrics and scorecards over generated input: folding is independent of
//! arrival order, scores stay in range and add up, and scorecard parsing never panics.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rapport_domain::event::{
    ComplaintSeverity, EngagementKind, Event, Payload, Priority, SubscriptionChange, SurveyKind,
    TicketStatus,
};
use rapport_domain::metrics::{CustomerMetrics, External, Indicator};
use rapport_domain::scorecard::{DEFAULT_TOML, Population, ScorecardSet};

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// Amounts in quarters, so that sums are exact in any order and the properties speak of the
/// folding logic, not of floating-point rounding.
fn amount(max: u32) -> impl Strategy<Value = f64> {
    (0..max * 4).prop_map(|q| f64::from(q) * 0.25)
}

/// One generated event of any type, at a day (and hour) within a year: within the memory
/// horizon, where folding is exactly order-independent (older memories are pruned).
fn event() -> impl Strategy<Value = Event> {
    let payload = prop_oneof![
        amount(1_000).prop_map(|amount| Payload::Order {
            order_id: "o".into(),
            amount,
            currency: "EUR".into(),
            items: 1,
        }),
        amount(100).prop_map(|amount| Payload::Refund {
            order_id: "o".into(),
            amount,
            currency: "EUR".into(),
        }),
        (0usize..3, 0i32..11).prop_map(|(k, score)| {
            let kind = [SurveyKind::Nps, SurveyKind::Csat, SurveyKind::Ces][k];
            let (lo, hi) = kind.range();
            Payload::Survey {
                kind,
                score: score.clamp(lo, hi),
                comment: String::new(),
            }
        }),
        Just(Payload::Complaint {
            complaint_id: "k".into(),
            category: "c".into(),
            severity: ComplaintSeverity::Low,
            channel: "web".into(),
        }),
        (0usize..4, 0u8..5).prop_map(|(s, t)| Payload::SupportTicket {
            ticket_id: format!("t{t}"),
            status: [
                TicketStatus::Opened,
                TicketStatus::FirstResponse,
                TicketStatus::Resolved,
                TicketStatus::Reopened,
            ][s],
            channel: "email".into(),
            priority: Some(Priority::Normal),
        }),
        (0usize..6, 1u32..20).prop_map(|(k, count)| Payload::Engagement {
            kind: EngagementKind::ALL[k],
            channel: "app".into(),
            count,
            subject: String::new(),
        }),
        (0usize..5, amount(500)).prop_map(|(c, mrr)| Payload::Subscription {
            plan: "pro".into(),
            change: [
                SubscriptionChange::Start,
                SubscriptionChange::Upgrade,
                SubscriptionChange::Downgrade,
                SubscriptionChange::Renew,
                SubscriptionChange::Cancel,
            ][c],
            seats: 1,
            mrr,
            currency: None,
        }),
        (0u8..4, 0i64..60, proptest::option::of(0i64..90)).prop_map(|(i, due, paid)| {
            Payload::Payment {
                invoice_id: format!("i{i}"),
                due_at: base() + Duration::days(due),
                paid_at: paid.map(|p| base() + Duration::days(p)),
                amount: 10.0,
                currency: "EUR".into(),
            }
        }),
    ];
    (0i64..365, 0i64..24, payload).prop_map(|(day, hour, payload)| Event {
        event_id: format!("e{day}-{hour}"),
        customer_id: "c".into(),
        occurred_at: base() + Duration::days(day) + Duration::hours(hour),
        payload,
    })
}

fn fold(events: &[Event]) -> CustomerMetrics {
    let mut m = CustomerMetrics::default();
    events.iter().for_each(|e| m.apply(e));
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn folding_does_not_depend_on_arrival_order(
        (events, order) in prop::collection::vec(event(), 0..40)
            .prop_flat_map(|e| { let n = e.len(); (Just(e), Just((0..n).collect::<Vec<_>>()).prop_shuffle()) })
    ) {
        let shuffled: Vec<Event> = order.iter().map(|i| events[*i].clone()).collect();
        prop_assert_eq!(fold(&events), fold(&shuffled));
    }

    #[test]
    fn scores_stay_in_range_and_contributions_add_up(
        events in prop::collection::vec(event(), 0..40),
        days_later in 0i64..900,
    ) {
        let m = fold(&events);
        let now = base() + Duration::days(days_later);
        let set = ScorecardSet::builtin();
        let s = set.default.score(
            |measure| m.value(measure.indicator, measure.window_days, now, &External::default()),
            &Population::new(),
        );
        prop_assert!((0.0..=100.0).contains(&s.score));
        let sum: f64 = s.measures.iter().map(|m| m.contribution).sum();
        prop_assert!((sum - s.score).abs() < 1e-9);
        for i in Indicator::ALL {
            if let Some(v) = m.value(*i, 90, now, &External::default()) {
                prop_assert!(v.is_finite(), "{} = {}", i.name(), v);
            }
        }
    }

    #[test]
    fn scorecard_parsing_never_panics(text in ".{0,400}") {
        let _ = ScorecardSet::from_toml(&text);
    }

    #[test]
    fn a_mutated_scorecard_is_parsed_or_refused_with_a_reason(
        at in 0usize..DEFAULT_TOML.len(),
        len in 0usize..40,
        insert in "[ -~\n]{0,20}",
    ) {
        let mut text = DEFAULT_TOML.as_bytes().to_vec();
        let end = (at + len).min(text.len());
        text.splice(at..end, insert.bytes());
        if let Ok(text) = String::from_utf8(text) {
            match ScorecardSet::from_toml(&text) {
                Ok(set) => prop_assert!(!set.default.groups.is_empty()),
                Err(e) => prop_assert!(!e.reason.is_empty()),
            }
        }
    }
}
