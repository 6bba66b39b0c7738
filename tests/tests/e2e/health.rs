//! Explainable health through the API of a running platform (`rapport up`): explanations,
//! comparisons whose deltas add up, history, lowest-first lists, versioned scorecards with
//! validation, overrides, and re-scoring everyone with progress.

use rapport_proto::common::v1::HealthBand;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::scoring::v1 as scoring;
use rapport_tests::scenario::{SETTLE, complaint, health, nps, order};
use rapport_tests::{Clients, Embedded, eventually, req};

async fn ingest(c: &Clients, events: Vec<ingestion::Event>) {
    let n = events.len() as u32;
    let answer = c
        .ingestion
        .clone()
        .ingest(req(ingestion::IngestRequest {
            events,
            ..Default::default()
        }))
        .await
        .expect("ingest")
        .into_inner();
    assert_eq!(answer.accepted, n, "{answer:?}");
}

/// Waits for a score of `customer` newer than `after` (any score when `None`).
async fn next_score(
    c: &Clients,
    customer: &str,
    after: Option<&scoring::HealthScore>,
) -> scoring::HealthScore {
    let after = after.and_then(|h| h.computed_at);
    eventually(&format!("a new score of {customer}"), SETTLE, || async {
        let h = health(c, customer).await?;
        (after.is_none() || h.computed_at != after).then_some(h)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn scores_explain_themselves_and_scorecards_are_versioned() {
    let platform = Embedded::start();
    let c = Clients::new(&platform.addrs);
    let mut scoring = c.scoring.clone();

    ingest(
        &c,
        vec![
            order("h1", "dana", 20, 200.0),
            order("h2", "dana", 5, 150.0),
            nps("h3", "dana", 4, 9),
            order("h4", "eli", 100, 20.0),
        ],
    )
    .await;
    let before = next_score(&c, "dana", None).await;
    next_score(&c, "eli", None).await;

    // Why: measures with data, biggest shortfall first; the rest named as missing.
    let why = scoring
        .explain_health(req(scoring::ExplainHealthRequest {
            customer_id: "dana".into(),
            at: None,
        }))
        .await
        .expect("explain")
        .into_inner();
    let shortfalls: Vec<f64> = why.measures.iter().map(|m| m.shortfall).collect();
    assert!(
        shortfalls.windows(2).all(|w| w[0] >= w[1]),
        "{shortfalls:?}"
    );
    assert!(
        why.missing.contains(&"csat_90d".to_owned()),
        "{:?}",
        why.missing
    );
    let points: f64 = why
        .measures
        .iter()
        .map(|m| m.contribution + m.shortfall)
        .sum();
    assert!((points - 100.0).abs() < 1e-9, "{points}");

    // Dana complains twice and turns detractor: what moved is answered measure by measure.
    ingest(
        &c,
        vec![
            complaint("h5", "dana", 2),
            complaint("h6", "dana", 1),
            nps("h7", "dana", 0, 2),
        ],
    )
    .await;
    let after = eventually("dana's score after the complaints", SETTLE, || async {
        let h = health(&c, "dana").await?;
        (h.score < before.score - 10.0).then_some(h)
    })
    .await;
    let cmp = scoring
        .compare_health(req(scoring::CompareHealthRequest {
            customer_id: "dana".into(),
            from: before.computed_at,
            to: None,
        }))
        .await
        .expect("compare")
        .into_inner();
    let sum: f64 = cmp.deltas.iter().map(|d| d.delta).sum();
    assert!((cmp.score_change - (after.score - before.score)).abs() < 1e-9);
    assert!(
        (sum - cmp.score_change).abs() < 1e-9,
        "{sum} vs {}",
        cmp.score_change
    );
    let biggest: Vec<&str> = cmp
        .deltas
        .iter()
        .take(2)
        .map(|d| d.measure.as_str())
        .collect();
    assert!(
        biggest.contains(&"nps") && biggest.contains(&"complaints_90d"),
        "{biggest:?}"
    );
    let history = scoring
        .list_health_history(req(scoring::ListHealthHistoryRequest {
            customer_id: "dana".into(),
            from: None,
            to: None,
            limit: 0,
        }))
        .await
        .expect("history")
        .into_inner()
        .points;
    assert!(history.len() >= 2);
    assert_eq!(history.last().map(|p| p.score), Some(after.score));

    // Lowest first, and filtered by band.
    let lowest = scoring
        .list_health(req(scoring::ListHealthRequest {
            limit: 10,
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner()
        .scores;
    let scores: Vec<f64> = lowest.iter().map(|h| h.score).collect();
    assert_eq!(lowest.len(), 2);
    assert!(scores[0] <= scores[1], "{scores:?}");
    let red = scoring
        .list_health(req(scoring::ListHealthRequest {
            limit: 10,
            band: HealthBand::Red.into(),
            ..Default::default()
        }))
        .await
        .expect("list red")
        .into_inner()
        .scores;
    assert!(!red.is_empty() && red.iter().all(|h| h.band == HealthBand::Red as i32));
    // Segmentation's view of dana: a detractor now.
    let features = scoring
        .list_customer_features(req(scoring::ListCustomerFeaturesRequest {
            after_customer_id: String::new(),
            page_size: 10,
            observation_end: None,
        }))
        .await
        .expect("features")
        .into_inner()
        .customers;
    let dana = features
        .iter()
        .find(|f| f.customer_id == "dana")
        .expect("dana");
    assert_eq!(
        (dana.nps_category.as_str(), dana.purchase_days),
        ("detractor", 2)
    );

    // A bad scorecard is refused with the setting and the reason; the old one stays.
    let builtin = scoring
        .get_scorecard(req(scoring::GetScorecardRequest {}))
        .await
        .expect("scorecard")
        .into_inner();
    assert!(builtin.builtin && builtin.version.starts_with("builtin-"));
    let bad = builtin.toml.replacen("weight = 20", "weight = 0", 1);
    let refused = scoring
        .set_scorecard(req(scoring::SetScorecardRequest { toml: bad }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("toml.groups[0].weight: must be a positive number"),
        "{}",
        refused.message()
    );
    let still = scoring
        .get_scorecard(req(scoring::GetScorecardRequest {}))
        .await
        .expect("scorecard")
        .into_inner();
    assert_eq!(still.version, builtin.version);

    // A simpler card: satisfaction only. Every customer is re-scored with it.
    let card = r#"
        [[groups]]
        name = "satisfaction"
        weight = 1
        [[groups.measures]]
        indicator = "nps"
        weight = 1
        normalise = { linear = { worst = 0, best = 10 } }
    "#;
    let set = scoring
        .set_scorecard(req(scoring::SetScorecardRequest { toml: card.into() }))
        .await
        .expect("valid scorecard")
        .into_inner();
    assert_eq!((set.version.as_str(), set.builtin), ("v1", false));
    let mut progress = scoring
        .rescore_all(req(scoring::RescoreAllRequest {}))
        .await
        .expect("rescore")
        .into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.expect("progress") {
        last = Some(p);
    }
    let last = last.expect("at least the final progress");
    assert!(
        last.done && last.customers_total == 2 && last.customers_done == 2,
        "{last:?}"
    );
    let dana = eventually("dana scored with v1", SETTLE, || async {
        health(&c, "dana")
            .await
            .filter(|h| h.scorecard_version == "v1")
    })
    .await;
    assert_eq!(dana.score, 20.0, "NPS 2 on a linear 0-10 scale");
    assert_eq!(dana.measures.len(), 1);

    // Overrides: validated, then in force with their author, reason and expiry.
    let in_a_day = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 86_400,
        nanos: 0,
    };
    let override_req = |value: f64, author: &str| scoring::SetOverrideRequest {
        customer_id: "dana".into(),
        target: scoring::OverrideTarget::Score.into(),
        value,
        author: author.into(),
        reason: "renewal call went well".into(),
        expires_at: Some(in_a_day),
    };
    for (value, author, field) in [(140.0, "kim", "value"), (80.0, " ", "author")] {
        let err = scoring
            .set_override(req(override_req(value, author)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    let overridden = scoring
        .set_override(req(override_req(80.0, "kim")))
        .await
        .expect("override")
        .into_inner();
    assert_eq!((overridden.score, overridden.computed_score), (80.0, 20.0));
    assert_eq!(overridden.overrides[0].author, "kim");
    let cleared = scoring
        .clear_override(req(scoring::ClearOverrideRequest {
            customer_id: "dana".into(),
            target: scoring::OverrideTarget::Score.into(),
            author: "kim".into(),
            reason: "set by mistake".into(),
        }))
        .await
        .expect("clear")
        .into_inner();
    assert_eq!(cleared.score, 20.0);
    assert!(cleared.overrides.is_empty());
}
