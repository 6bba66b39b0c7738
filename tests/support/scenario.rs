//! The walking-skeleton flow, run the same way against every shape of the platform.

use crate::{Clients, eventually, req};
use rapport_proto::alerting::v1 as alerting;
use rapport_proto::common::v1::{HealthBand, Tier};
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::segmentation::v1 as segmentation;
use std::time::Duration;

/// How long asynchronous effects (outbox deliveries) may take in a test.
pub const SETTLE: Duration = Duration::from_secs(30);

fn ts(days_ago: i64) -> prost_types::Timestamp {
    let t = chrono::Utc::now() - chrono::Duration::days(days_ago);
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

/// An order event.
pub fn order(id: &str, customer: &str, days_ago: i64, amount: f64) -> ingestion::Event {
    ingestion::Event {
        event_id: id.to_owned(),
        customer_id: customer.to_owned(),
        occurred_at: Some(ts(days_ago)),
        sent_at: None,
        payload: Some(ingestion::event::Payload::Order(ingestion::Order {
            order_id: format!("o-{id}"),
            amount,
            currency: "EUR".to_owned(),
            items: 1,
        })),
    }
}

/// A subscription change (no revenue, so no currency needed).
pub fn subscription(
    id: &str,
    customer: &str,
    days_ago: i64,
    change: ingestion::SubscriptionChange,
) -> ingestion::Event {
    ingestion::Event {
        event_id: id.to_owned(),
        customer_id: customer.to_owned(),
        occurred_at: Some(ts(days_ago)),
        sent_at: None,
        payload: Some(ingestion::event::Payload::Subscription(
            ingestion::Subscription {
                plan: "team".to_owned(),
                change: change.into(),
                seats: 5,
                mrr: 0.0,
                currency: String::new(),
            },
        )),
    }
}

/// An NPS answer.
pub fn nps(id: &str, customer: &str, days_ago: i64, score: i32) -> ingestion::Event {
    ingestion::Event {
        event_id: id.to_owned(),
        customer_id: customer.to_owned(),
        occurred_at: Some(ts(days_ago)),
        sent_at: None,
        payload: Some(ingestion::event::Payload::Survey(ingestion::Survey {
            kind: ingestion::SurveyKind::Nps.into(),
            score,
            comment: String::new(),
        })),
    }
}

/// A complaint.
pub fn complaint(id: &str, customer: &str, days_ago: i64) -> ingestion::Event {
    ingestion::Event {
        event_id: id.to_owned(),
        customer_id: customer.to_owned(),
        occurred_at: Some(ts(days_ago)),
        sent_at: None,
        payload: Some(ingestion::event::Payload::Complaint(ingestion::Complaint {
            complaint_id: format!("k-{id}"),
            category: "delivery".to_owned(),
            severity: ingestion::Severity::High.into(),
            channel: "email".to_owned(),
        })),
    }
}

/// The batch of the flow: three customers' good events and three bad ones among them.
/// Returns the events and, per index, the field a rejection must name (None = accepted).
pub fn batch() -> (Vec<ingestion::Event>, Vec<Option<&'static str>>) {
    let events = vec![
        order("a1", "alice", 20, 400.0),
        order("a2", "alice", 10, 350.0),
        order("x1", "", 3, 10.0),
        order("a3", "alice", 2, 300.0),
        nps("a4", "alice", 1, 10),
        order("x2", "dave", 3, -5.0),
        order("b1", "bob", 250, 20.0),
        complaint("b2", "bob", 12),
        complaint("b3", "bob", 5),
        nps("x3", "erin", 1, 11),
        nps("b4", "bob", 4, 2),
        order("c1", "carol", 40, 80.0),
        order("c2", "carol", 8, 90.0),
        nps("c3", "carol", 7, 8),
    ];
    let expect = events
        .iter()
        .map(|e| match e.event_id.as_str() {
            "x1" => Some("customer_id"),
            "x2" => Some("order.amount"),
            "x3" => Some("survey.score"),
            _ => None,
        })
        .collect();
    (events, expect)
}

/// Reads a customer's health, or None while it has none.
pub async fn health(c: &Clients, customer: &str) -> Option<scoring::HealthScore> {
    c.scoring
        .clone()
        .get_health(req(scoring::GetHealthRequest {
            customer_id: customer.to_owned(),
        }))
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Sends one `Ingest` batch and returns the per-event answer.
pub async fn ingest(c: &Clients, events: Vec<ingestion::Event>) -> ingestion::IngestResponse {
    c.ingestion
        .clone()
        .ingest(req(ingestion::IngestRequest {
            events,
            ..Default::default()
        }))
        .await
        .expect("ingest")
        .into_inner()
}

/// Runs segmentation (as of `as_of`, default now) to the end and returns its summary, checking
/// that its progress only grows.
pub async fn segment(
    c: &Clients,
    as_of: Option<prost_types::Timestamp>,
) -> segmentation::SegmentationSummary {
    let mut progress = c
        .segmentation
        .clone()
        .run_segmentation(req(segmentation::RunSegmentationRequest { as_of }))
        .await
        .expect("segmentation")
        .into_inner();
    let mut last = (0, 0);
    // What the run itself last reported, before the message that carries its summary.
    let mut reported = (0, 0);
    let mut summary = None;
    while let Some(p) = progress.message().await.expect("segmentation progress") {
        assert!(summary.is_none(), "progress after the summary: {p:?}");
        assert!(
            p.customers_read >= last.0
                && p.customers_graded >= last.1
                && p.customers_graded <= p.customers_read,
            "progress {p:?} after {last:?}"
        );
        last = (p.customers_read, p.customers_graded);
        if p.summary.is_none() {
            reported = last;
        }
        summary = p.summary;
    }
    let summary = summary.expect("the run's summary");
    assert_eq!(
        reported,
        (summary.customers, summary.customers),
        "the run's progress ends at every customer read and graded"
    );
    summary
}

/// Runs `RescoreAll` to the end and returns its last progress message.
pub async fn rescore_all(c: &Clients) -> scoring::RescoreProgress {
    let mut progress = c
        .scoring
        .clone()
        .rescore_all(req(scoring::RescoreAllRequest {}))
        .await
        .expect("rescore")
        .into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.expect("progress") {
        last = Some(p);
    }
    last.expect("at least the final progress")
}

/// Runs the flow and checks every step; returns the final health of alice, bob and carol.
pub async fn run(c: &Clients) -> Vec<scoring::HealthScore> {
    let (events, expect) = batch();
    let answer = ingest(c, events.clone()).await;
    assert_eq!(
        (answer.accepted, answer.duplicates, answer.rejected),
        (11, 0, 3),
        "{answer:?}"
    );
    for (result, field) in answer.results.iter().zip(&expect) {
        match field {
            None => assert_eq!(
                result.verdict,
                ingestion::Verdict::Accepted as i32,
                "{result:?}"
            ),
            Some(field) => {
                assert_eq!(
                    result.verdict,
                    ingestion::Verdict::Rejected as i32,
                    "{result:?}"
                );
                assert_eq!(result.field, *field, "{result:?}");
                assert!(!result.message.is_empty());
            }
        }
    }

    // A retry of the whole batch changes nothing: the good ones are duplicates.
    let retry = ingest(c, events).await;
    assert_eq!(
        (retry.accepted, retry.duplicates, retry.rejected),
        (0, 11, 3),
        "{retry:?}"
    );

    let mut scores = Vec::new();
    for customer in ["alice", "bob", "carol"] {
        let h = eventually(&format!("a score for {customer}"), SETTLE, || {
            health(c, customer)
        })
        .await;
        let sum: f64 = h.measures.iter().map(|m| m.contribution).sum();
        assert!(
            (sum - h.score).abs() < 1e-6,
            "contributions {sum} must add up to the score {}",
            h.score
        );
        let builtin = rapport_domain::scorecard::ScorecardSet::builtin();
        assert_eq!(h.measures.len(), builtin.default.measures().count());
        assert!(
            h.scorecard_version.starts_with("builtin-"),
            "{}",
            h.scorecard_version
        );
        assert_eq!(h.p_alive, None, "no models are fitted yet");
        scores.push(h);
    }
    assert!(
        scores[0].score > 75.0 && scores[0].band == HealthBand::Green as i32,
        "alice: {:?}",
        scores[0]
    );
    assert!(
        scores[1].score < 50.0 && scores[1].band == HealthBand::Red as i32,
        "bob: {:?}",
        scores[1]
    );
    assert!(
        scores[2].score > scores[1].score && scores[2].score < scores[0].score,
        "carol: {:?}",
        scores[2]
    );

    let open = eventually("bob's alert", SETTLE, || async {
        let alerts = c
            .alerting
            .clone()
            .list_alerts(req(alerting::ListAlertsRequest {
                state: alerting::AlertState::Open.into(),
                customer_id: String::new(),
                rule: "health_below".into(),
                ..Default::default()
            }))
            .await
            .ok()?
            .into_inner()
            .alerts;
        (!alerts.is_empty()).then_some(alerts)
    })
    .await;
    assert_eq!(open.len(), 1, "only bob is unhealthy: {open:?}");
    assert_eq!(
        (open[0].customer_id.as_str(), open[0].rule.as_str()),
        ("bob", "health_below")
    );
    assert!(open[0].dedup_key.contains("bob"));
    // Bob's NPS of 2 four days ago reached alerting with his score: a detractor alert, keyed
    // by the survey kind, with the playbook's recommendations unless held out.
    let detractor = eventually("bob's detractor alert", SETTLE, || async {
        let alerts = c
            .alerting
            .clone()
            .list_alerts(req(alerting::ListAlertsRequest {
                customer_id: "bob".into(),
                rule: "detractor".into(),
                ..Default::default()
            }))
            .await
            .ok()?
            .into_inner()
            .alerts;
        alerts.into_iter().next()
    })
    .await;
    assert_eq!(detractor.discriminator, "nps");
    assert!(detractor.evidence.contains("NPS answer 2"), "{detractor:?}");
    assert!(
        detractor.holdout || !detractor.recommendations.is_empty(),
        "{detractor:?}"
    );

    let run = segment(c, None).await;
    assert_eq!((run.customers, run.tier_changes), (3, 3), "{run:?}");
    let vip = run
        .tiers
        .iter()
        .find(|t| t.tier == Tier::Vip as i32)
        .map_or(0, |t| t.customers);
    assert_eq!(vip, 1);
    let again = segment(c, None).await;
    assert_eq!(again.tier_changes, 0, "nothing changed between two runs");

    let alice = eventually("alice's tier in GetHealth", SETTLE, || async {
        health(c, "alice")
            .await
            .filter(|h| h.tier == Tier::Vip as i32)
    })
    .await;
    let bob = eventually("bob's tier in GetHealth", SETTLE, || async {
        health(c, "bob")
            .await
            .filter(|h| h.tier != Tier::Unspecified as i32)
    })
    .await;
    assert!(
        bob.tier < alice.tier,
        "the top spender ranks above the smallest"
    );
    let segments = c
        .segmentation
        .clone()
        .get_segments(req(segmentation::GetSegmentsRequest {
            customer_ids: vec!["alice".into(), "bob".into()],
        }))
        .await
        .expect("segments")
        .into_inner()
        .segments;
    let alice_rfm = segments
        .iter()
        .find(|s| s.customer_id == "alice")
        .expect("alice graded");
    let bob_rfm = segments
        .iter()
        .find(|s| s.customer_id == "bob")
        .expect("bob graded");
    assert!(
        alice_rfm.recency_score > bob_rfm.recency_score,
        "{segments:?}"
    );
    assert!(
        alice_rfm.monetary_score > bob_rfm.monetary_score,
        "{segments:?}"
    );
    assert!(
        alice_rfm.frequency_score > bob_rfm.frequency_score,
        "{segments:?}"
    );
    // Lifecycle: alice's first order was 20 days ago, bob's only one 250 days ago.
    assert_eq!(
        (alice_rfm.stage.as_str(), bob_rfm.stage.as_str()),
        ("new", "dormant"),
        "{segments:?}"
    );
    assert_eq!(
        run.stage_changes, 3,
        "every first grading is a change: {run:?}"
    );
    assert_eq!(again.stage_changes, 0);
    let spread = c
        .segmentation
        .clone()
        .get_distribution(req(segmentation::GetDistributionRequest {}))
        .await
        .expect("distribution")
        .into_inner();
    assert_eq!(spread.customers, 3);
    assert_eq!(spread.tiers, run.tiers, "the stored spread is the run's");
    assert_eq!(spread.stages.iter().map(|s| s.customers).sum::<u64>(), 3);

    // A custom segment in CEL: refused with its position when invalid; otherwise a run
    // selects exactly whom the same filter written by hand selects.
    let mut seg = c.segmentation.clone();
    let bad = seg
        .define_segment(req(segmentation::DefineSegmentRequest {
            name: "watch".into(),
            expression: "tier == ".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("expression: 1:"), "{bad:?}");
    let expression = r#"tier == "vip" || stage == "dormant" || (score != null && score < 50.0)"#;
    seg.define_segment(req(segmentation::DefineSegmentRequest {
        name: "watch".into(),
        expression: expression.into(),
    }))
    .await
    .expect("define segment");
    let counted = segment(c, None).await.custom_segments;
    let members = seg
        .list_segment_members(req(segmentation::ListSegmentMembersRequest {
            name: "watch".into(),
            ..Default::default()
        }))
        .await
        .expect("members")
        .into_inner();
    let graded = seg
        .get_segments(req(segmentation::GetSegmentsRequest {
            customer_ids: vec!["alice".into(), "bob".into(), "carol".into()],
        }))
        .await
        .expect("segments")
        .into_inner()
        .segments;
    let mut by_hand = Vec::new();
    for g in &graded {
        let score = health(c, &g.customer_id).await.map(|h| h.score);
        if g.tier == Tier::Vip as i32 || g.stage == "dormant" || score.is_some_and(|s| s < 50.0) {
            by_hand.push(g.customer_id.clone());
        }
    }
    by_hand.sort();
    assert!(!by_hand.is_empty());
    assert_eq!(members.customer_ids, by_hand, "{expression}");
    assert_eq!(members.total, by_hand.len() as u64);
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].customers, by_hand.len() as u64);
    // Scoring hears of the stages too, for per-stage scorecards.
    eventually("bob's stage in GetHealth", SETTLE, || async {
        health(c, "bob").await.filter(|h| h.stage == "dormant")
    })
    .await;
    let carol = eventually("carol's tier in GetHealth", SETTLE, || async {
        health(c, "carol")
            .await
            .filter(|h| h.tier != Tier::Unspecified as i32)
    })
    .await;
    vec![alice, bob, carol]
}

/// Orders counted and their summed value, by customer.
pub type Folded = std::collections::BTreeMap<String, (u64, f64)>;

/// What `scoring` holds for every customer (up to 10,000): orders counted and their value;
/// empty when it does not answer.
pub async fn folded(
    scoring: &rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient<
        tonic::transport::Channel,
    >,
) -> Folded {
    let page = scoring
        .clone()
        .list_customer_features(req(scoring::ListCustomerFeaturesRequest {
            after_customer_id: String::new(),
            page_size: 10_000,
            observation_end: None,
        }))
        .await
        .map(|r| r.into_inner().customers)
        .unwrap_or_default();
    page.into_iter()
        .map(|f| (f.customer_id, (f.frequency, f.monetary)))
        .collect()
}

/// Waits until scoring knows exactly `customers` customers with `orders` orders between them,
/// that is, every event reached its score.
pub async fn wait_all_scored(c: &Clients, customers: usize, orders: u64, within: Duration) {
    eventually(
        "every customer scored on all its events",
        within,
        || async {
            let now = folded(&c.scoring).await;
            let counted: u64 = now.values().map(|(n, _)| n).sum();
            (now.len() == customers && counted == orders).then_some(())
        },
    )
    .await;
}
