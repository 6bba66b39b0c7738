//! Synthetic customers for the benchmarks: orders over the last year, an NPS answer,
//! sometimes a complaint; the same customer for the same number on every run.

use chrono::{DateTime, Duration as Days, Utc};
use rapport_proto::ingestion::v1 as pb;
use rapport_proto::ingestion::v1::event::Payload;
use rapport_scoring::evaluate::CustomerState;
use rapport_scoring::store::{Columns, Rescored, Store};

/// The id of synthetic customer `i`.
pub fn customer_id(i: usize) -> String {
    format!("c{i:07}")
}

/// Synthetic customer `i`'s events, dated back from `now`: orders over the last year, an NPS
/// answer, and for one customer in seven a complaint.
pub fn events(i: usize, now: DateTime<Utc>) -> Vec<pb::Event> {
    let id = customer_id(i);
    let event = |n: usize, days: i64, payload| pb::Event {
        event_id: format!("{id}-{n}"),
        customer_id: id.clone(),
        occurred_at: Some(rapport_proto::convert::timestamp(
            (now - Days::days(days)).timestamp_millis(),
        )),
        sent_at: None,
        payload: Some(payload),
    };
    let mut out: Vec<pb::Event> = (0..(1 + i % 6))
        .map(|n| {
            let days = ((i * 7 + n * 53) % 360) as i64;
            event(
                n,
                days,
                Payload::Order(pb::Order {
                    order_id: format!("o{n}"),
                    amount: 10.0 + (i % 200) as f64,
                    currency: "EUR".into(),
                    items: 1,
                }),
            )
        })
        .collect();
    out.push(event(
        10,
        (i % 90) as i64,
        Payload::Survey(pb::Survey {
            kind: pb::SurveyKind::Nps.into(),
            score: (i % 11) as i32,
            comment: String::new(),
        }),
    ));
    if i.is_multiple_of(7) {
        out.push(event(
            11,
            (i % 60) as i64,
            Payload::Complaint(pb::Complaint {
                complaint_id: "k".into(),
                category: "delivery".into(),
                severity: pb::Severity::Medium.into(),
                channel: "email".into(),
            }),
        ));
    }
    out
}

/// Synthetic customer `i` as scoring holds it: its [`events`] folded, not yet scored.
pub fn customer(i: usize, now: DateTime<Utc>) -> Rescored {
    let mut state = CustomerState::default();
    for e in events(i, now) {
        // The events are made valid; one that were not would only be left out.
        if let Ok(event) = rapport_proto::convert::stored(&e, now) {
            state.metrics.apply(&event);
        }
    }
    Rescored {
        customer_id: customer_id(i),
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
