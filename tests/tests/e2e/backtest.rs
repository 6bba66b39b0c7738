//! Backtests read the past as it was: events that occurred after the as-of time change no
//! customer's score in the backtest (only the outcomes they are), and live scores are left
//! as they are.

use rapport_proto::ingestion::v1::IngestRequest;
use rapport_proto::ingestion::v1::SubscriptionChange;
use rapport_proto::scoring::v1 as scoring;
use rapport_tests::scenario::{complaint, nps, order, subscription};
use rapport_tests::{Clients, Embedded, req};
use std::collections::BTreeMap;

const AS_OF_DAYS_AGO: i64 = 120;

async fn ingest(clients: &mut Clients, events: Vec<rapport_proto::ingestion::v1::Event>) {
    clients
        .ingestion
        .ingest(req(IngestRequest {
            events,
            backfill: String::new(),
        }))
        .await
        .unwrap();
}

/// A customer in a backtest: score, tier, stage and measures as of then.
type AsOf = (f64, String, String, Vec<(String, f64)>);

/// Each customer's score, tier, stage and measures in a backtest as of 120 days ago, with a
/// 60-day horizon; and each one's outcome.
async fn backtest(clients: &mut Clients) -> (BTreeMap<String, AsOf>, BTreeMap<String, bool>) {
    backtest_of(clients, "").await.expect("backtest")
}

/// [`backtest`] against `outcome`, or the service's refusal.
async fn backtest_of(
    clients: &mut Clients,
    outcome: &str,
) -> Result<(BTreeMap<String, AsOf>, BTreeMap<String, bool>), tonic::Status> {
    let as_of = chrono::Utc::now().date_naive() - chrono::Duration::days(AS_OF_DAYS_AGO);
    let report = clients
        .scoring
        .backtest(req(scoring::BacktestRequest {
            as_of: Some(prost_types::Timestamp {
                seconds: as_of.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp(),
                nanos: 0,
            }),
            horizon: Some(prost_types::Duration {
                seconds: 60 * 86_400,
                nanos: 0,
            }),
            outcome: outcome.to_owned(),
            with_customers: true,
            fit: false,
            stage_p_alive_floor: None,
        }))
        .await?
        .into_inner();
    let scores = report
        .customer_rows
        .iter()
        .map(|c| {
            let mut measures: Vec<(String, f64)> =
                c.measures.iter().map(|(k, v)| (k.clone(), *v)).collect();
            measures.sort_by(|a, b| a.0.cmp(&b.0));
            let as_of = (c.score, c.tier.clone(), c.stage.clone(), measures);
            (c.customer_id.clone(), as_of)
        })
        .collect();
    let outcomes = report
        .customer_rows
        .iter()
        .map(|c| (c.customer_id.clone(), c.outcome))
        .collect();
    Ok((scores, outcomes))
}

#[tokio::test(flavor = "multi_thread")]
async fn events_after_the_as_of_time_change_no_score_in_a_backtest() {
    let platform = Embedded::start();
    let mut clients = Clients::new(&platform.addrs);
    // Forty customers with a history before the as-of time; half of them buy in the horizon.
    let mut events = Vec::new();
    for c in 0..40 {
        let id = format!("c{c}");
        for k in 0..(1 + c % 4) {
            let days_ago = AS_OF_DAYS_AGO + 10 + 25 * k + c;
            events.push(order(&format!("{id}-{k}"), &id, days_ago, 20.0 + c as f64));
        }
        if c % 2 == 0 {
            events.push(order(&format!("{id}-h"), &id, AS_OF_DAYS_AGO - 30, 15.0));
        }
    }
    ingest(&mut clients, events).await;
    let (before, outcomes_before) = backtest(&mut clients).await;
    assert_eq!(before.len(), 40);
    assert!(
        before.values().all(|c| !c.1.is_empty() && !c.2.is_empty()),
        "everyone has a tier and a stage as of then: {before:?}"
    );
    assert_eq!(outcomes_before.values().filter(|o| **o).count(), 20);

    // What happened after the as-of time: new orders in the horizon (outcomes change),
    // detractors and complaints after it, and a customer who arrived after it.
    let mut later = Vec::new();
    for c in (1..40).step_by(2) {
        let id = format!("c{c}");
        later.push(order(
            &format!("{id}-late"),
            &id,
            AS_OF_DAYS_AGO - 10,
            999.0,
        ));
        later.push(nps(&format!("{id}-nps"), &id, 5, 0));
        later.push(complaint(&format!("{id}-cmp"), &id, 3));
    }
    later.push(order("newcomer-1", "newcomer", 50, 100.0));
    ingest(&mut clients, later).await;
    let (after, outcomes_after) = backtest(&mut clients).await;

    assert_eq!(
        after, before,
        "scores, tiers or stages as of then moved with later events"
    );
    assert!(!after.contains_key("newcomer"));
    assert_eq!(
        outcomes_after.values().filter(|o| **o).count(),
        0,
        "everyone bought in the horizon now"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancellations_and_downgrades_in_the_horizon_are_outcomes_and_no_others() {
    let platform = Embedded::start();
    let mut clients = Clients::new(&platform.addrs);
    // Every customer subscribed and bought before the as-of time; what each did after it:
    let mut events = Vec::new();
    for c in 0..12 {
        let id = format!("s{c}");
        events.push(order(&format!("{id}-o"), &id, AS_OF_DAYS_AGO + 20, 50.0));
        events.push(subscription(
            &format!("{id}-start"),
            &id,
            AS_OF_DAYS_AGO + 30,
            SubscriptionChange::Start,
        ));
    }
    let change = |id: &str, days_ago: i64, change| {
        subscription(&format!("{id}-{days_ago}"), id, days_ago, change)
    };
    // Cancelled in the 60-day horizon: s0, s1; downgraded in it: s2, s3; s4 cancelled before
    // the as-of time, s5 after the horizon, s6 downgraded after it: none of those is an outcome.
    events.push(change("s0", AS_OF_DAYS_AGO - 5, SubscriptionChange::Cancel));
    events.push(change(
        "s1",
        AS_OF_DAYS_AGO - 50,
        SubscriptionChange::Cancel,
    ));
    events.push(change(
        "s2",
        AS_OF_DAYS_AGO - 1,
        SubscriptionChange::Downgrade,
    ));
    events.push(change(
        "s3",
        AS_OF_DAYS_AGO - 59,
        SubscriptionChange::Downgrade,
    ));
    events.push(change("s4", AS_OF_DAYS_AGO + 5, SubscriptionChange::Cancel));
    events.push(change(
        "s5",
        AS_OF_DAYS_AGO - 70,
        SubscriptionChange::Cancel,
    ));
    events.push(change(
        "s6",
        AS_OF_DAYS_AGO - 61,
        SubscriptionChange::Downgrade,
    ));
    ingest(&mut clients, events).await;

    let who = |outcomes: BTreeMap<String, bool>| -> Vec<String> {
        outcomes
            .into_iter()
            .filter(|(_, o)| *o)
            .map(|(id, _)| id)
            .collect()
    };
    let (_, cancelled) = backtest_of(&mut clients, "cancelled").await.unwrap();
    assert_eq!(cancelled.len(), 12);
    assert_eq!(who(cancelled), ["s0", "s1"]);
    let (_, downgraded) = backtest_of(&mut clients, "downgraded").await.unwrap();
    assert_eq!(who(downgraded), ["s2", "s3"]);
    let refused = backtest_of(&mut clients, "churned").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().starts_with("outcome"),
        "{}",
        refused.message()
    );
}
