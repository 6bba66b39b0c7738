//! KPIs from the whole platform: a hand-made tenant ingested through ingestion, graded by
//! segmentation, reported by `GetKpis` and `rapport kpis` with the figures worked out by hand.

use chrono::{TimeZone, Utc};
use rapport_proto::common::v1::Tier;
use rapport_proto::ingestion::v1 as ingestion;
use rapport_proto::ingestion::v1::event::Payload;
use rapport_proto::segmentation::v1 as segmentation;
use rapport_tests::scenario::{SETTLE, ingest, segment, wait_all_scored};
use rapport_tests::{Clients, Embedded, req};

fn at(m: u32, d: u32, h: u32) -> prost_types::Timestamp {
    let t = Utc
        .with_ymd_and_hms(2026, m, d, h, 0, 0)
        .single()
        .expect("valid time");
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

fn event(
    id: &str,
    customer: &str,
    when: prost_types::Timestamp,
    payload: Payload,
) -> ingestion::Event {
    ingestion::Event {
        event_id: id.to_owned(),
        customer_id: customer.to_owned(),
        occurred_at: Some(when),
        sent_at: None,
        payload: Some(payload),
    }
}

fn order(id: &str, customer: &str, when: prost_types::Timestamp, amount: f64) -> ingestion::Event {
    event(
        id,
        customer,
        when,
        Payload::Order(ingestion::Order {
            order_id: id.to_owned(),
            amount,
            currency: "EUR".to_owned(),
            items: 1,
        }),
    )
}

fn survey(
    id: &str,
    customer: &str,
    when: prost_types::Timestamp,
    kind: ingestion::SurveyKind,
    score: i32,
) -> ingestion::Event {
    event(
        id,
        customer,
        when,
        Payload::Survey(ingestion::Survey {
            kind: kind.into(),
            score,
            comment: String::new(),
        }),
    )
}

fn complaint(id: &str, customer: &str, when: prost_types::Timestamp) -> ingestion::Event {
    event(
        id,
        customer,
        when,
        Payload::Complaint(ingestion::Complaint {
            complaint_id: id.to_owned(),
            category: "delivery".to_owned(),
            severity: ingestion::Severity::Low.into(),
            channel: "web".to_owned(),
        }),
    )
}

fn ticket(
    id: &str,
    customer: &str,
    ticket: &str,
    when: prost_types::Timestamp,
    status: ingestion::TicketStatus,
) -> ingestion::Event {
    event(
        id,
        customer,
        when,
        Payload::SupportTicket(ingestion::SupportTicket {
            ticket_id: ticket.to_owned(),
            status: status.into(),
            channel: "email".to_owned(),
            priority: ingestion::Priority::Unspecified.into(),
        }),
    )
}

/// February 2026 of four customers: a buys (and bought in January, on two days by now), b
/// buys for the first time, c bought in January only, d has only complained and answered.
fn tenant() -> Vec<ingestion::Event> {
    use ingestion::SurveyKind::{Csat, Nps};
    use ingestion::TicketStatus::{FirstResponse, Opened};
    vec![
        order("a1", "a", at(1, 5, 10), 120.0),
        order("a2", "a", at(2, 3, 10), 80.0),
        order("a3", "a", at(2, 3, 15), 40.0),
        order("b1", "b", at(2, 10, 9), 30.0),
        order("c1", "c", at(1, 20, 9), 10.0),
        survey("a-nps", "a", at(2, 4, 9), Nps, 10),
        survey("b-nps", "b", at(2, 11, 9), Nps, 9),
        survey("c-nps", "c", at(2, 12, 9), Nps, 5),
        survey("d-nps", "d", at(2, 13, 9), Nps, 7),
        survey("c-nps-jan", "c", at(1, 25, 9), Nps, 0),
        survey("a-csat", "a", at(2, 4, 9), Csat, 5),
        survey("b-csat", "b", at(2, 4, 9), Csat, 4),
        survey("c-csat", "c", at(2, 4, 9), Csat, 2),
        complaint("c-k1", "c", at(2, 14, 9)),
        complaint("c-k2", "c", at(2, 15, 9)),
        complaint("d-k1", "d", at(2, 28, 23)),
        complaint("d-k2", "d", at(3, 1, 0)),
        ticket("t1-o", "a", "t1", at(2, 2, 9), Opened),
        ticket("t1-r", "a", "t1", at(2, 2, 10), FirstResponse),
        ticket("t2-r", "b", "t2", at(2, 5, 12), FirstResponse),
        ticket("t2-o", "b", "t2", at(2, 5, 9), Opened),
        ticket("t3-o", "c", "t3", at(2, 6, 9), Opened),
        ticket("t3-r", "c", "t3", at(2, 6, 11), FirstResponse),
        ticket("t4-o", "d", "t4", at(2, 7, 9), Opened),
    ]
}

fn kpis_request(by_tier: bool) -> segmentation::GetKpisRequest {
    segmentation::GetKpisRequest {
        granularity: segmentation::Granularity::Month.into(),
        from: Some(at(1, 1, 0)),
        to: Some(at(2, 28, 0)),
        by_tier,
    }
}

/// The KPI rows of January and February 2026 by month, per tier when `by_tier`.
async fn kpis(c: &Clients, by_tier: bool) -> Vec<segmentation::KpiRow> {
    c.segmentation
        .clone()
        .get_kpis(req(kpis_request(by_tier)))
        .await
        .expect("KPIs")
        .into_inner()
        .rows
}

#[tokio::test(flavor = "multi_thread")]
async fn kpis_of_a_hand_made_tenant_are_the_figures_worked_out_by_hand() {
    let platform = Embedded::start();
    let c = Clients::new(&platform.addrs);
    let answer = ingest(&c, tenant()).await;
    assert_eq!((answer.accepted, answer.rejected), (24, 0), "{answer:?}");
    wait_all_scored(&c, 4, 5, SETTLE).await;
    // Two runs asked for at once take turns: each customer's first grading is recorded once.
    let (first, second) = tokio::join!(segment(&c, None), segment(&c, None));
    assert_eq!((first.customers, second.customers), (4, 4));
    assert_eq!(
        first.tier_changes + second.tier_changes,
        4,
        "{first:?} {second:?}"
    );

    let rows = kpis(&c, false).await;
    let periods: Vec<&str> = rows.iter().map(|r| r.period.as_str()).collect();
    assert_eq!(periods, ["2026-01", "2026-02"]);
    let feb = &rows[1];
    assert_eq!((feb.customers, feb.buyers), (4, 2));
    assert_eq!((feb.nps, feb.nps_answers), (Some(25.0), 4));
    assert_eq!(feb.csat_answers, 3);
    assert!((feb.csat_pct.expect("CSAT") - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!((feb.retention_pct, feb.churn_pct), (Some(50.0), Some(50.0)));
    assert_eq!(feb.repurchase_pct, Some(50.0));
    assert_eq!((feb.complaints, feb.complaint_rate), (3, Some(75.0)));
    assert_eq!(feb.median_first_response_secs, Some(7_200.0));
    assert_eq!(feb.clv_total, None, "a past month has no CLV prediction");
    // January: a and c bought, c answered 0; nobody bought in December.
    let jan = &rows[0];
    assert_eq!((jan.customers, jan.buyers, jan.nps), (2, 2, Some(-100.0)));
    assert_eq!(jan.retention_pct, None);

    // By tier: every customer was graded now, so each month reports its first tier; the
    // tiers add up to the whole.
    let by_tier = kpis(&c, true).await;
    let feb_tiers: Vec<_> = by_tier.iter().filter(|r| r.period == "2026-02").collect();
    assert_eq!(feb_tiers.len(), 5, "{feb_tiers:?}");
    assert_eq!(feb_tiers.iter().map(|r| r.customers).sum::<u64>(), 4);
    assert_eq!(feb_tiers.iter().map(|r| r.complaints).sum::<u64>(), 3);
    let vip = feb_tiers
        .iter()
        .find(|r| r.tier == Tier::Vip as i32)
        .expect("a VIP row");
    assert_eq!((vip.customers, vip.buyers), (1, 1), "a, the top spender");

    // A report that cannot be served names its field.
    let reversed = c
        .segmentation
        .clone()
        .get_kpis(req(segmentation::GetKpisRequest {
            from: Some(at(3, 1, 0)),
            ..kpis_request(false)
        }))
        .await
        .expect_err("from after to");
    assert_eq!(reversed.code(), tonic::Code::InvalidArgument);
    assert!(
        reversed.message().starts_with("from:"),
        "{}",
        reversed.message()
    );

    // The command line: the same figures as JSON, and a table.
    let json: serde_json::Value = serde_json::from_str(&platform.cli(&[
        "kpis",
        "--from",
        "2026-02-01",
        "--to",
        "2026-02-28",
        "--json",
    ]))
    .expect("JSON output");
    assert_eq!(json[0]["period"], "2026-02");
    assert_eq!(json[0]["nps"], 25.0);
    assert_eq!(json[0]["complaint_rate"], 75.0);
    assert_eq!(json[0]["median_first_response_secs"], 7200.0);
    let table = platform.cli(&[
        "kpis",
        "--period",
        "quarter",
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-31",
        "--by",
        "tier",
    ]);
    assert!(table.starts_with("PERIOD"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("2026-Q1  vip")),
        "{table}"
    );
}

/// The overall monthly report of the default periods: the year up to now.
async fn this_year(
    c: &Clients,
    to: Option<prost_types::Timestamp>,
) -> segmentation::GetKpisResponse {
    c.segmentation
        .clone()
        .get_kpis(req(segmentation::GetKpisRequest {
            to,
            ..Default::default()
        }))
        .await
        .expect("KPIs")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_pages_show_is_kept_from_one_run_to_the_next() {
    use rapport_tests::scenario::order;
    let platform = Embedded::start();
    let c = Clients::new(&platform.addrs);
    let answer = ingest(
        &c,
        vec![order("k1", "a", 0, 10.0), order("k2", "b", 0, 20.0)],
    )
    .await;
    assert_eq!(answer.accepted, 2);
    wait_all_scored(&c, 2, 2, SETTLE).await;
    segment(&c, None).await;
    let customers = |r: &segmentation::GetKpisResponse| r.rows.last().map(|row| row.customers);
    let kept = this_year(&c, None).await;
    assert_eq!(customers(&kept), Some(2));
    assert!(kept.computed_at.is_some());

    // A new customer's order: the report of the default periods stays the run's until the
    // next run; a report asked for with its own periods is computed anew and counts it.
    let answer = ingest(&c, vec![order("k3", "c", 0, 30.0)]).await;
    assert_eq!(answer.accepted, 1);
    wait_all_scored(&c, 3, 3, SETTLE).await;
    assert_eq!(customers(&this_year(&c, None).await), Some(2));
    let now = prost_types::Timestamp::from(std::time::SystemTime::now());
    assert_eq!(customers(&this_year(&c, Some(now)).await), Some(3));
    segment(&c, None).await;
    let after = this_year(&c, None).await;
    assert_eq!(customers(&after), Some(3));
    let millis = |r: &segmentation::GetKpisResponse| {
        rapport_proto::convert::millis(r.computed_at.as_ref()).expect("computed_at")
    };
    assert!(millis(&after) > millis(&kept));
}
