//! Fitting the customer-base models through the platform: FitModels on stored purchases,
//! stored fits, and P(alive), expected purchases and CLV in GetHealth and the scores.

use rapport_proto::ingestion::v1::{Event, IngestRequest};
use rapport_proto::scoring::v1::{FitModelsRequest, FitModelsResponse};
use rapport_tests::scenario::{SETTLE, health, order};
use rapport_tests::{Clients, Embedded, eventually, req};

/// Fits the tenant's models now.
async fn fit_now(clients: &Clients) -> FitModelsResponse {
    let request = req(FitModelsRequest {
        observation_end: None,
    });
    clients
        .scoring
        .clone()
        .fit_models(request)
        .await
        .unwrap()
        .into_inner()
}

async fn ingest(clients: &Clients, events: Vec<Event>) {
    let n = events.len() as u32;
    let answer = clients
        .ingestion
        .clone()
        .ingest(req(IngestRequest {
            events,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.accepted, n, "{answer:?}");
}

/// Purchase histories: `c-regular-*` buy every 20–40 days up to now, `c-lapsed-*` bought a
/// few times a year ago, `c-once-*` once.
fn histories() -> Vec<Event> {
    let mut events = Vec::new();
    for i in 0..20 {
        let step = 20 + i % 21;
        for k in 0..(330 / step) {
            events.push(order(
                &format!("r{i}-{k}"),
                &format!("c-regular-{i:02}"),
                2 + k * step,
                30.0 + f64::from(i as u8),
            ));
        }
    }
    for i in 0..20 {
        for k in 0..3 {
            events.push(order(
                &format!("l{i}-{k}"),
                &format!("c-lapsed-{i:02}"),
                300 + k * 15 + i,
                25.0,
            ));
        }
    }
    for i in 0..20 {
        events.push(order(
            &format!("o{i}"),
            &format!("c-once-{i:02}"),
            10 + 15 * i,
            40.0,
        ));
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn fitted_models_feed_p_alive_expected_purchases_and_clv() {
    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    ingest(&clients, histories()).await;
    eventually("all 60 customers scored", SETTLE, || async {
        health(&clients, "c-once-19").await
    })
    .await;

    let fit = fit_now(&clients).await;
    let bgnbd = fit.bgnbd.unwrap();
    assert_eq!(bgnbd.error, "", "{bgnbd:?}");
    assert!(bgnbd.converged && bgnbd.customers == 60, "{bgnbd:?}");
    assert!(["r", "alpha", "a", "b"].iter().all(|k| {
        bgnbd
            .params
            .get(*k)
            .is_some_and(|v| v.is_finite() && *v > 0.0)
    }));
    let gg = fit.gamma_gamma.unwrap();
    assert_eq!(gg.error, "", "{gg:?}");
    assert_eq!(gg.customers, 40, "repeat buyers only");
    assert_eq!(fit.customers_rescored, 60);

    let regular = health(&clients, "c-regular-03").await.unwrap();
    let lapsed = health(&clients, "c-lapsed-03").await.unwrap();
    for h in [&regular, &lapsed] {
        let p = h.p_alive.expect("p_alive once fitted");
        assert!((0.0..=1.0).contains(&p), "{h:?}");
        assert!(
            h.expected_purchases_90d.unwrap() >= 0.0 && h.clv_12m.unwrap() >= 0.0,
            "{h:?}"
        );
        // The built-in card reads expected purchases (P(alive) ranks one-time buyers wrong).
        let measure = h
            .measures
            .iter()
            .find(|m| m.measure == "expected_purchases_90d")
            .unwrap();
        assert_eq!(
            measure.value, h.expected_purchases_90d,
            "expected purchases are a scorecard measure"
        );
        assert!(measure.contribution > 0.0 || measure.score == Some(0.0));
    }
    assert!(regular.p_alive > lapsed.p_alive, "{regular:?} {lapsed:?}");
    assert!(regular.expected_purchases_90d > lapsed.expected_purchases_90d);
    assert!(regular.clv_12m > lapsed.clv_12m);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handful_of_customers_is_too_few_to_fit() {
    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    let events = (0..3)
        .flat_map(|i| {
            [
                order(&format!("f{i}a"), &format!("few-{i}"), 40, 10.0),
                order(&format!("f{i}b"), &format!("few-{i}"), 3, 12.0),
            ]
        })
        .collect();
    ingest(&clients, events).await;
    eventually("scores", SETTLE, || async {
        health(&clients, "few-2").await
    })
    .await;
    let fit = fit_now(&clients).await;
    assert!(fit.bgnbd.unwrap().error.contains("too few customers"));
    assert_eq!(health(&clients, "few-1").await.unwrap().p_alive, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_repeat_buyers_the_fit_fails_clearly_and_scores_stay_finite() {
    let platform = Embedded::start();
    let clients = Clients::new(&platform.addrs);
    let events = (0..30)
        .map(|i| order(&format!("s{i}"), &format!("single-{i:02}"), 5 + i, 10.0))
        .collect();
    ingest(&clients, events).await;
    eventually("scores", SETTLE, || async {
        health(&clients, "single-29").await
    })
    .await;

    let fit = fit_now(&clients).await;
    // 30 customers and not one repeat buyer: nothing to learn repeat behaviour from.
    let bg_error = fit.bgnbd.unwrap().error;
    assert!(bg_error.contains("0 repeat buyers"), "{bg_error}");
    assert!(fit.gamma_gamma.unwrap().error.contains("0 repeat buyers"));
    let h = health(&clients, "single-03").await.unwrap();
    assert_eq!(h.p_alive, None);
    assert!(
        h.score.is_finite()
            && h.measures
                .iter()
                .all(|m| m.score.is_none_or(f64::is_finite))
    );
}
