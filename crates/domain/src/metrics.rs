//! Per-customer metrics, folded incrementally from events in any order.

use crate::event::{Event, Payload, SurveyKind};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long complaint times are kept for windowed counts.
const COMPLAINT_MEMORY_DAYS: i64 = 365;

/// Everything scoring knows about one customer, updated one event at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerMetrics {
    pub first_order_at: Option<DateTime<Utc>>,
    pub last_order_at: Option<DateTime<Utc>>,
    pub orders: u64,
    pub monetary_total: f64,
    /// The NPS answer with the latest event time, and that time.
    pub latest_nps: Option<(i32, DateTime<Utc>)>,
    /// Times of the complaints of the last year (older ones are forgotten).
    pub complaint_times: Vec<DateTime<Utc>>,
    /// Order value per purchase day (UTC), for the customer-base models.
    #[serde(default)]
    pub purchase_days: BTreeMap<NaiveDate, f64>,
}

impl CustomerMetrics {
    /// Folds one event in; events may arrive late and out of order.
    pub fn apply(&mut self, event: &Event) {
        let at = event.occurred_at;
        match &event.payload {
            Payload::Order { amount, .. } => {
                self.orders += 1;
                self.monetary_total += amount;
                self.first_order_at = Some(self.first_order_at.map_or(at, |t| t.min(at)));
                self.last_order_at = Some(self.last_order_at.map_or(at, |t| t.max(at)));
                *self.purchase_days.entry(at.date_naive()).or_default() += amount;
            }
            Payload::Survey {
                kind: SurveyKind::Nps,
                score,
                ..
            } => {
                if self.latest_nps.is_none_or(|(_, t)| at >= t) {
                    self.latest_nps = Some((*score, at));
                }
            }
            Payload::Complaint { .. } => {
                self.complaint_times.push(at);
                let newest = self.complaint_times.iter().max().copied().unwrap_or(at);
                let horizon = newest - Duration::days(COMPLAINT_MEMORY_DAYS);
                self.complaint_times.retain(|t| *t > horizon);
            }
            Payload::Refund { amount, .. } => {
                self.monetary_total = (self.monetary_total - amount).max(0.0);
            }
            // Stored and validated now; their indicators (CSAT, CES, tickets, engagement,
            // subscriptions, payments, profile) come with the full indicator set.
            Payload::Survey { .. }
            | Payload::SupportTicket { .. }
            | Payload::Engagement { .. }
            | Payload::Subscription { .. }
            | Payload::Payment { .. }
            | Payload::Profile(_) => {}
        }
    }

    /// The indicators at time `now`.
    pub fn indicators(&self, now: DateTime<Utc>) -> Indicators {
        let window = now - Duration::days(90);
        Indicators {
            recency_days: self
                .last_order_at
                .map(|t| ((now - t).num_seconds() as f64 / 86_400.0).max(0.0)),
            frequency: self.orders,
            monetary: self.monetary_total,
            latest_nps: self.latest_nps.map(|(s, _)| s),
            p_alive: None,
            clv: None,
            complaints_90d: self
                .complaint_times
                .iter()
                .filter(|t| **t > window && **t <= now)
                .count() as u64,
        }
    }
}

/// The indicators a scorecard reads, computed at one point in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Indicators {
    /// Days since the last order; `None` when the customer never ordered.
    pub recency_days: Option<f64>,
    /// Number of orders.
    pub frequency: u64,
    /// Total order value.
    pub monetary: f64,
    pub latest_nps: Option<i32>,
    pub complaints_90d: u64,
    /// Probability the customer is still active, from the tenant's fitted model (if any).
    pub p_alive: Option<f64>,
    /// Predicted customer lifetime value, from the tenant's fitted models (if any).
    pub clv: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ComplaintSeverity;
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

    fn nps(day: u32, score: i32) -> Event {
        event(
            day,
            Payload::Survey {
                kind: SurveyKind::Nps,
                score,
                comment: String::new(),
            },
        )
    }

    #[test]
    fn order_of_arrival_does_not_matter() {
        let events = [
            order(5, 10.0),
            nps(9, 3),
            order(2, 5.0),
            nps(7, 9),
            order(8, 1.0),
        ];
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
        let ind = forward.indicators(at(10));
        assert_eq!(
            (ind.frequency, ind.monetary, ind.recency_days),
            (3, 16.0, Some(2.0))
        );
    }

    #[test]
    fn complaints_count_in_their_window() {
        let mut m = CustomerMetrics::default();
        for day in [1, 2, 3] {
            m.apply(&event(
                day,
                Payload::Complaint {
                    complaint_id: "k".into(),
                    category: "x".into(),
                    severity: ComplaintSeverity::High,
                    channel: "web".into(),
                },
            ));
        }
        assert_eq!(m.indicators(at(4)).complaints_90d, 3);
        assert_eq!(m.indicators(at(2) + Duration::days(90)).complaints_90d, 1);
    }
}
