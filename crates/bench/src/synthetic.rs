//! Synthetic customers for the benchmarks: orders over the last year, an NPS answer,
//! sometimes a complaint; the same customer for the same number on every run.

use chrono::{DateTime, Duration as Days, Utc};
use rapport_domain::event::{Event, Payload, SurveyKind};
use rapport_scoring::evaluate::CustomerState;
use rapport_scoring::store::{Columns, Rescored, Store};

/// A synthetic customer: orders over the last year, an NPS answer, sometimes a complaint.
pub fn customer(i: usize, now: DateTime<Utc>) -> Rescored {
    let id = format!("c{i:07}");
    let mut state = CustomerState::default();
    let event = |n: usize, days: i64, payload| Event {
        event_id: format!("{id}-{n}"),
        customer_id: id.clone(),
        occurred_at: now - Days::days(days),
        payload,
    };
    for n in 0..(1 + i % 6) {
        let days = ((i * 7 + n * 53) % 360) as i64;
        state.metrics.apply(&event(
            n,
            days,
            Payload::Order {
                order_id: format!("o{n}"),
                amount: 10.0 + (i % 200) as f64,
                currency: "EUR".into(),
                items: 1,
            },
        ));
    }
    state.metrics.apply(&event(
        10,
        (i % 90) as i64,
        Payload::Survey {
            kind: SurveyKind::Nps,
            score: (i % 11) as i32,
            comment: String::new(),
        },
    ));
    if i.is_multiple_of(7) {
        state.metrics.apply(&event(
            11,
            (i % 60) as i64,
            Payload::Complaint {
                complaint_id: "k".into(),
                category: "delivery".into(),
                severity: rapport_domain::event::ComplaintSeverity::Medium,
                channel: "email".into(),
            },
        ));
    }
    Rescored {
        customer_id: id,
        state,
        snapshot: None,
        notification: None,
    }
}

/// Stores `n` synthetic customers (`c0000000`, `c0000001`, …) of `tenant`, their events dated
/// back from `now`, without scores: a re-score gives them theirs.
pub async fn seed(store: &Store, tenant: &str, now: DateTime<Utc>, n: usize) -> anyhow::Result<()> {
    let mut i = 0;
    while i < n {
        let rows: Vec<Rescored> = (i..(i + 5_000).min(n)).map(|i| customer(i, now)).collect();
        store.save(tenant, &rows, Columns::All, None).await?;
        i += rows.len();
    }
    Ok(())
}
