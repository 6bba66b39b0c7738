//! Tests of `metrics`.

use super::*;
use crate::event::{ComplaintSeverity, Priority};
use chrono::TimeZone;

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).unwrap()
}

fn event(day: u32, payload: Payload) -> Event {
    Event {
        event_id: format!("e{day}"),
        customer_id: "c".into(),
        occurred_at: at(day),
        payload,
    }
}

fn order(day: u32, amount: f64) -> Event {
    event(
        day,
        Payload::Order {
            order_id: "o".into(),
            amount,
            currency: "USD".into(),
            items: 1,
        },
    )
}

fn survey(day: u32, kind: SurveyKind, score: i32) -> Event {
    event(
        day,
        Payload::Survey {
            kind,
            score,
            comment: String::new(),
        },
    )
}

fn ticket(day: u32, id: &str, status: TicketStatus) -> Event {
    let mut e = event(
        day,
        Payload::SupportTicket {
            ticket_id: id.into(),
            status,
            channel: "email".into(),
            priority: Some(Priority::Normal),
        },
    );
    e.occurred_at += Duration::hours(i64::from(day));
    e
}

fn engagement(day: u32, kind: EngagementKind, count: u32) -> Event {
    event(
        day,
        Payload::Engagement {
            kind,
            channel: "app".into(),
            count,
            subject: String::new(),
        },
    )
}

fn plan(day: u32, change: SubscriptionChange, mrr: f64) -> Event {
    event(
        day,
        Payload::Subscription {
            plan: "pro".into(),
            change,
            seats: 1,
            mrr,
            currency: None,
        },
    )
}

fn payment(day: u32, id: &str, due: u32, paid: Option<u32>) -> Event {
    event(
        day,
        Payload::Payment {
            invoice_id: id.into(),
            due_at: at(due),
            paid_at: paid.map(at),
            amount: 10.0,
            currency: "USD".into(),
        },
    )
}

fn complaint(day: u32) -> Event {
    event(
        day,
        Payload::Complaint {
            complaint_id: "k".into(),
            category: "x".into(),
            severity: ComplaintSeverity::High,
            channel: "web".into(),
        },
    )
}

fn value(m: &CustomerMetrics, i: Indicator, window: u32, now: DateTime<Utc>) -> Option<f64> {
    m.value(i, window, now, &External::default())
}

fn all_kinds() -> Vec<Event> {
    vec![
        order(5, 10.0),
        survey(9, SurveyKind::Nps, 3),
        order(2, 5.0),
        survey(7, SurveyKind::Nps, 9),
        order(8, 1.0),
        survey(3, SurveyKind::Csat, 5),
        survey(4, SurveyKind::Csat, 2),
        survey(6, SurveyKind::Ces, 6),
        ticket(3, "t1", TicketStatus::Opened),
        ticket(4, "t1", TicketStatus::FirstResponse),
        ticket(6, "t1", TicketStatus::Resolved),
        ticket(7, "t2", TicketStatus::FirstResponse),
        ticket(5, "t2", TicketStatus::Opened),
        engagement(2, EngagementKind::Login, 3),
        engagement(9, EngagementKind::EmailOpen, 4),
        engagement(9, EngagementKind::CampaignResponse, 1),
        plan(1, SubscriptionChange::Start, 50.0),
        plan(6, SubscriptionChange::Upgrade, 80.0),
        payment(3, "i1", 4, None),
        payment(8, "i1", 4, Some(7)),
        payment(8, "i2", 6, None),
        complaint(4),
    ]
}

#[test]
fn order_of_arrival_does_not_matter() {
    let events = all_kinds();
    let mut forward = CustomerMetrics::default();
    events.iter().for_each(|e| forward.apply(e));
    let mut backward = CustomerMetrics::default();
    events.iter().rev().for_each(|e| backward.apply(e));
    assert_eq!(forward, backward);
    assert_eq!(forward.latest_nps, Some((3, at(9))));
    assert_eq!(
        (forward.first_order_at, forward.last_order_at),
        (Some(at(2)), Some(at(8)))
    );
}

#[test]
fn every_indicator_from_its_events() {
    let mut m = CustomerMetrics::default();
    all_kinds().iter().for_each(|e| m.apply(e));
    let now = at(10);
    let v = |i| value(&m, i, 30, now);
    use Indicator::*;
    assert_eq!(v(RecencyDays), Some(2.0));
    assert_eq!(v(TenureDays), Some(9.0));
    assert_eq!(
        (v(Orders), v(Spend), v(Monetary)),
        (Some(3.0), Some(16.0), Some(16.0))
    );
    assert_eq!(v(Repurchase), Some(1.0));
    assert_eq!(v(Nps), Some(3.0));
    assert_eq!(m.nps_category(), Some(NpsCategory::Detractor));
    assert_eq!(v(Csat), Some(50.0));
    assert_eq!(v(Ces), Some(6.0));
    assert_eq!(
        (v(Complaints), v(ComplaintRate)),
        (Some(1.0), Some(1.0 / 3.0))
    );
    assert_eq!((v(Tickets), v(OpenTickets)), (Some(2.0), Some(1.0)));
    // t1: opened day 3 03:00, answered day 4 04:00 (25 h), resolved day 6 06:00 (75 h);
    // t2: opened day 5 05:00, answered day 7 07:00 (50 h).
    assert_eq!(v(FirstResponseHours), Some(37.5));
    assert_eq!(v(ResolutionHours), Some(75.0));
    assert_eq!(v(Engagement), Some(8.0));
    assert_eq!(v(CampaignResponseRate), Some(25.0));
    assert_eq!(
        (v(Upgrades), v(Downgrades), v(Mrr)),
        (Some(1.0), Some(0.0), Some(80.0))
    );
    // i1 was paid 3 days late; i2 is unpaid, 4 days past due.
    assert_eq!((v(DaysPastDue), v(LatePayments)), (Some(4.0), Some(2.0)));
    assert_eq!(past_due_bucket(4.0), "1-30");
    assert_eq!(m.churned_at(), None);
}

#[test]
fn each_measure_is_as_fresh_as_the_newest_event_it_reads() {
    let mut m = CustomerMetrics::default();
    all_kinds().iter().for_each(|e| m.apply(e));
    use Indicator::*;
    let hours = |day: u32, h: i64| at(day) + Duration::hours(h);
    let expected = [
        (RecencyDays, Some(at(8))),
        (Spend, Some(at(8))),
        (TenureDays, Some(at(1))),
        (Nps, Some(at(9))),
        (Csat, Some(at(4))),
        (Ces, Some(at(6))),
        (ComplaintRate, Some(at(4))),
        (ResolutionHours, Some(hours(7, 7))),
        (Engagement, Some(at(9))),
        (LatePayments, Some(at(7))),
        (Mrr, Some(at(6))),
        (AcquisitionCost, None),
        (PAlive, None),
        (Sentiment, None),
    ];
    for (indicator, at) in expected {
        assert_eq!(m.data_at(indicator), at, "{}", indicator.name());
    }
    assert_eq!(CustomerMetrics::default().data_at(Nps), None);
}

#[test]
fn a_measure_key_names_its_indicator() {
    assert_eq!(Indicator::of_measure("nps"), Some(Indicator::Nps));
    assert_eq!(
        Indicator::of_measure("complaints_90d"),
        Some(Indicator::Complaints)
    );
    assert_eq!(
        Indicator::of_measure("first_response_hours_30d"),
        Some(Indicator::FirstResponseHours)
    );
    // A window on an indicator without one, or no number of days, names nothing.
    assert_eq!(Indicator::of_measure("nps_30d"), None);
    assert_eq!(Indicator::of_measure("orders_d"), None);
    assert_eq!(Indicator::of_measure("unknown_30d"), None);
}

#[test]
fn purchases_until_a_day() {
    let mut m = CustomerMetrics::default();
    for e in [order(2, 5.0), order(5, 10.0), order(5, 1.0), order(8, 3.0)] {
        m.apply(&e);
    }
    let facts = m.purchases_until(at(6).date_naive());
    assert_eq!(
        facts,
        PurchaseFacts {
            days_since_first: Some(4.0),
            days_since_last: Some(1.0),
            purchase_days: 2,
            spend: 16.0,
        }
    );
    assert_eq!(
        m.purchases_until(at(1).date_naive()),
        PurchaseFacts::default()
    );
}

#[test]
fn missing_data_is_none_not_zero() {
    let m = CustomerMetrics::default();
    let now = at(10);
    for i in [
        Indicator::RecencyDays,
        Indicator::Nps,
        Indicator::Csat,
        Indicator::Ces,
        Indicator::FirstResponseHours,
        Indicator::Engagement,
        Indicator::DaysPastDue,
        Indicator::Mrr,
        Indicator::PAlive,
        Indicator::AverageOrderValue,
    ] {
        assert_eq!(value(&m, i, 90, now), None, "{}", i.name());
    }
    assert_eq!(value(&m, Indicator::Complaints, 90, now), Some(0.0));
}

#[test]
fn engagement_trend_compares_with_the_window_before() {
    let mut m = CustomerMetrics::default();
    m.apply(&engagement(1, EngagementKind::Login, 10));
    m.apply(&engagement(8, EngagementKind::FeatureUse, 5));
    let now = at(10);
    // Last 5 days (6..=10): 5; the 5 before (1..=5): 10.
    assert_eq!(value(&m, Indicator::EngagementTrend, 5, now), Some(-50.0));
    assert_eq!(value(&m, Indicator::Engagement, 5, now), Some(5.0));
}

#[test]
fn windows_and_memory() {
    let mut m = CustomerMetrics::default();
    for day in [1, 2, 3] {
        m.apply(&complaint(day));
    }
    assert_eq!(value(&m, Indicator::Complaints, 90, at(4)), Some(3.0));
    let later = at(2) + Duration::days(90);
    assert_eq!(value(&m, Indicator::Complaints, 90, later), Some(1.0));
    // A complaint far later makes the old ones fall out of memory.
    let mut late = complaint(1);
    late.occurred_at = at(1) + Duration::days(MEMORY_DAYS + 5);
    m.apply(&late);
    assert_eq!(m.complaint_times.len(), 1);
}

#[test]
fn a_cancellation_churns_until_the_next_order() {
    let mut m = CustomerMetrics::default();
    m.apply(&order(2, 10.0));
    m.apply(&plan(1, SubscriptionChange::Start, 50.0));
    m.apply(&plan(5, SubscriptionChange::Cancel, 50.0));
    assert_eq!(m.churned_at(), Some(at(5)));
    assert_eq!(value(&m, Indicator::Mrr, 30, at(6)), Some(0.0));
    m.apply(&order(7, 10.0));
    assert_eq!(m.churned_at(), None);
}

#[test]
fn old_metrics_json_still_reads() {
    let json = r#"{"first_order_at":null,"last_order_at":null,"orders":0,
        "monetary_total":0.0,"latest_nps":null,"complaint_times":[]}"#;
    let m: CustomerMetrics = serde_json::from_str(json).unwrap();
    assert_eq!(m, CustomerMetrics::default());
}

#[test]
fn indicator_names_round_trip() {
    for i in Indicator::ALL {
        assert_eq!(Indicator::from_name(i.name()), Some(*i));
    }
}
