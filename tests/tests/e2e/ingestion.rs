//! Ingestion's three ways in (unary, batch, client stream), its limits, conflicts, and
//! quarantine with replay, against a running platform.

use rapport_proto::ingestion::v1 as pb;
use rapport_tests::scenario::{nps, order};
use rapport_tests::{Clients, Embedded, req};
use std::collections::BTreeMap;

fn verdict(r: &pb::EventResult) -> pb::Verdict {
    pb::Verdict::try_from(r.verdict).unwrap_or(pb::Verdict::Unspecified)
}

#[tokio::test(flavor = "multi_thread")]
async fn unary_batch_limits_and_conflicts() {
    let platform = Embedded::start();
    let c = Clients::new(&platform.addrs);
    let mut ingestion = c.ingestion.clone();

    // One event value: `order` stamps the time when called, and a retry must be identical.
    let ann = order("u1", "ann", 3, 10.0);
    let first = ingestion
        .ingest_one(req(ann.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verdict(&first), pb::Verdict::Accepted);
    let again = ingestion
        .ingest_one(req(ann.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verdict(&again), pb::Verdict::Duplicate);
    let mut changed = ann.clone();
    if let Some(pb::event::Payload::Order(o)) = changed.payload.as_mut() {
        o.amount = 99.0;
    }
    let conflict = ingestion
        .ingest_one(req(changed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (verdict(&conflict), conflict.reason, conflict.field.as_str()),
        (
            pb::Verdict::Rejected,
            pb::RejectReason::Conflict as i32,
            "event_id"
        )
    );

    // A request over the limit fails as a whole and stores nothing.
    let too_many: Vec<_> = (0..2_501)
        .map(|i| order(&format!("big-{i}"), "bob", 2, 1.0))
        .collect();
    let status = ingestion
        .ingest(req(pb::IngestRequest {
            events: too_many,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("2500"), "{}", status.message());
    // A request over 4 MiB is refused whole too.
    let padded: Vec<_> = (0..200)
        .map(|i| {
            let mut e = nps(&format!("pad-{i}"), "bob", 2, 5);
            if let Some(pb::event::Payload::Survey(s)) = e.payload.as_mut() {
                s.comment = "x".repeat(30_000);
            }
            e
        })
        .collect();
    let status = ingestion
        .ingest(req(pb::IngestRequest {
            events: padded,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );
    let pad = ingestion
        .ingest_one(req(nps("pad-0", "bob", 2, 5)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        verdict(&pad),
        pb::Verdict::Accepted,
        "nothing of the oversized request was stored"
    );
    let after = ingestion
        .ingest_one(req(order("big-0", "bob", 2, 1.0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        verdict(&after),
        pb::Verdict::Accepted,
        "nothing of the refused request was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_is_acknowledged_in_batches_once_per_event() {
    let platform = Embedded::start();
    let c = Clients::new(&platform.addrs);
    let total = 3_000;
    let events: Vec<pb::Event> = (0..total)
        .map(|i| {
            if i % 100 == 7 {
                nps(&format!("s{i}"), "sam", 1, 11)
            } else {
                order(
                    &format!("s{i}"),
                    &format!("cust-{}", i % 50),
                    1 + i % 30,
                    5.0,
                )
            }
        })
        .collect();
    let answers = c
        .ingestion
        .clone()
        .ingest_stream(req(tokio_stream::iter(events.clone())))
        .await
        .unwrap()
        .into_inner();
    let mut acks: BTreeMap<u32, pb::EventResult> = BTreeMap::new();
    let mut batches = 0;
    let mut answers = answers;
    while let Some(batch) = answers.message().await.unwrap() {
        batches += 1;
        for r in batch.results {
            assert!(
                acks.insert(r.index, r).is_none(),
                "an event acknowledged twice"
            );
        }
    }
    assert_eq!(acks.len(), total as usize, "every event acknowledged");
    assert!(batches > 1, "acknowledgements come in batches");
    for (i, event) in events.iter().enumerate() {
        let r = &acks[&(i as u32)];
        assert_eq!(r.event_id, event.event_id);
        let expected = if i % 100 == 7 {
            pb::Verdict::Rejected
        } else {
            pb::Verdict::Accepted
        };
        assert_eq!(verdict(r), expected, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantined_events_can_be_listed_and_replayed_once_fixed() {
    let platform = Embedded::start();
    let c = Clients::new(&platform.addrs);
    let mut ingestion = c.ingestion.clone();
    let bad = nps("q1", "quinn", 1, 11);
    let answer = ingestion
        .ingest(req(pb::IngestRequest {
            events: vec![bad.clone(), order("q2", "quinn", 1, 5.0)],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.accepted, answer.rejected), (1, 1));

    let list = |reason: pb::RejectReason, include_replayed: bool| pb::ListQuarantineRequest {
        reason: reason.into(),
        include_replayed,
        ..Default::default()
    };
    let entries = ingestion
        .list_quarantine(req(list(pb::RejectReason::OutOfRange, false)))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(
        (entry.event_id.as_str(), entry.field.as_str()),
        ("q1", "survey.score")
    );
    assert_eq!(entry.event.as_ref(), Some(&bad), "the raw event is kept");
    assert!(
        ingestion
            .list_quarantine(req(list(pb::RejectReason::Conflict, false)))
            .await
            .unwrap()
            .into_inner()
            .events
            .is_empty()
    );

    // Replaying it unchanged fails the same way; with another id it is refused.
    let same = ingestion
        .replay_quarantined(req(pb::ReplayQuarantinedRequest {
            id: entry.id,
            event: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verdict(&same), pb::Verdict::Rejected);
    let other = nps("other", "quinn", 1, 9);
    let refused = ingestion
        .replay_quarantined(req(pb::ReplayQuarantinedRequest {
            id: entry.id,
            event: Some(other),
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let fixed = nps("q1", "quinn", 1, 9);
    let replayed = ingestion
        .replay_quarantined(req(pb::ReplayQuarantinedRequest {
            id: entry.id,
            event: Some(fixed),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verdict(&replayed), pb::Verdict::Accepted);
    let open: Vec<_> = ingestion
        .list_quarantine(req(list(pb::RejectReason::Unspecified, false)))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        open.iter().all(|e| e.id != entry.id),
        "a replayed entry leaves the open list"
    );
    let all = ingestion
        .list_quarantine(req(list(pb::RejectReason::Unspecified, true)))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        all.iter()
            .any(|e| e.id == entry.id && e.replayed_at.is_some())
    );
}

/// Ingests `events` as one batch; answers each event's verdict and reason.
async fn verdicts(
    ingestion: &mut pb::ingestion_service_client::IngestionServiceClient<tonic::transport::Channel>,
    events: Vec<pb::Event>,
) -> Vec<(pb::Verdict, i32)> {
    ingestion
        .ingest(req(pb::IngestRequest {
            events,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .results
        .iter()
        .map(|r| (verdict(r), r.reason))
        .collect()
}

/// The URLs of a SQLite file in `dir` and of `pg`'s database.
fn both_stores(pg: &rapport_tests::Postgres, dir: &std::path::Path) -> [String; 2] {
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("ingestion.db").display());
    [sqlite, pg.url()]
}

/// Ingestion on `database_url` (its log in `dir`), and a client of it.
fn ingestion_on(
    database_url: &str,
    dir: &std::path::Path,
) -> (
    rapport_tests::Proc,
    pb::ingestion_service_client::IngestionServiceClient<tonic::transport::Channel>,
) {
    let addrs = rapport_tests::Addrs::free();
    let backing = rapport_tests::Backing::database(database_url);
    let process =
        rapport_tests::start_service(rapport_tests::Service::Ingestion, &addrs, &backing, dir);
    (process, Clients::new(&addrs).ingestion)
}

/// An id repeated within a batch or across batches is judged against the content stored
/// under it: the same content is DUPLICATE, other content a conflict, on both stores.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_ids_are_judged_against_what_is_stored_on_sqlite_and_postgres() {
    let pg = rapport_tests::Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    for database_url in both_stores(&pg, dir.path()) {
        let (_ingestion, mut ingestion) = ingestion_on(&database_url, dir.path());

        let with_amount = |e: &pb::Event, amount: f64| {
            let mut e = e.clone();
            if let Some(pb::event::Payload::Order(o)) = e.payload.as_mut() {
                o.amount = amount;
            }
            e
        };
        let (a, b, c) = (
            order("a", "ann", 3, 10.0),
            order("b", "bob", 3, 20.0),
            order("c", "cy", 3, 30.0),
        );
        let d = order("d", "dee", 1, 40.0);
        let blank = order("e", "", 1, 5.0);
        let (accepted, duplicate, rejected) = (
            pb::Verdict::Accepted,
            pb::Verdict::Duplicate,
            pb::Verdict::Rejected,
        );
        let conflict = pb::RejectReason::Conflict as i32;
        let missing = pb::RejectReason::MissingField as i32;
        let none = pb::RejectReason::Unspecified as i32;
        assert_eq!(
            verdicts(
                &mut ingestion,
                vec![
                    a.clone(),
                    a.clone(),
                    b.clone(),
                    with_amount(&b, 21.0),
                    blank,
                    c.clone()
                ]
            )
            .await,
            [
                (accepted, none),
                (duplicate, none),
                (accepted, none),
                (rejected, conflict),
                (rejected, missing),
                (accepted, none)
            ],
            "{database_url}"
        );
        assert_eq!(
            verdicts(
                &mut ingestion,
                vec![
                    with_amount(&b, 21.0),
                    a,
                    with_amount(&d, 41.0),
                    c,
                    d.clone(),
                    b
                ]
            )
            .await,
            [
                (rejected, conflict),
                (duplicate, none),
                (accepted, none),
                (duplicate, none),
                (rejected, conflict),
                (duplicate, none)
            ],
            "{database_url}"
        );
        let conflicts = ingestion
            .list_quarantine(req(pb::ListQuarantineRequest {
                reason: pb::RejectReason::Conflict.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .events;
        let ids: Vec<&str> = conflicts.iter().map(|q| q.event_id.as_str()).collect();
        assert_eq!(ids, ["d", "b", "b"], "newest first, {database_url}");
        assert_eq!(
            conflicts[0].event.as_ref(),
            Some(&d),
            "the rejected content is kept"
        );
    }
}

/// Several customers' events read in one call are each customer's read alone, in the order
/// of the cursors, from each cursor, within the limit, both ways, on both stores.
#[tokio::test(flavor = "multi_thread")]
async fn customers_read_together_are_each_read_alone_on_sqlite_and_postgres() {
    let pg = rapport_tests::Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    for database_url in both_stores(&pg, dir.path()) {
        let (_ingestion, mut ingestion) = ingestion_on(&database_url, dir.path());
        // Interleaved, so each customer's sequence numbers are not consecutive.
        let events = (0..40)
            .map(|i| order(&format!("e{i}"), ["ann", "bob", "cy"][i % 3], 2, i as f64))
            .collect();
        let accepted = verdicts(&mut ingestion, events).await;
        assert!(accepted.iter().all(|(v, _)| *v == pb::Verdict::Accepted));
        let read = |cursors: Vec<(&str, i64)>, limit: u32, newest_first: bool| {
            let mut ingestion = ingestion.clone();
            let customers = cursors
                .into_iter()
                .map(|(c, after_seq)| pb::CustomerCursor {
                    customer_id: c.to_owned(),
                    after_seq,
                })
                .collect();
            async move {
                ingestion
                    .list_customer_events(req(pb::ListCustomerEventsRequest {
                        customers,
                        limit_per_customer: limit,
                        newest_first,
                    }))
                    .await
                    .unwrap()
                    .into_inner()
                    .events
                    .into_iter()
                    .map(|e| (e.event.unwrap().customer_id, e.seq))
                    .collect::<Vec<_>>()
            }
        };
        let bob = read(vec![("bob", 0)], 0, false).await;
        assert_eq!(bob.len(), 13, "{database_url}");
        let after = bob[4].1;
        for newest_first in [false, true] {
            for limit in [0, 5] {
                let cursors = vec![("cy", 0), ("nobody", 0), ("bob", after), ("ann", 0)];
                let mut alone = Vec::new();
                for c in &cursors {
                    alone.extend(read(vec![*c], limit, newest_first).await);
                }
                let together = read(cursors, limit, newest_first).await;
                assert_eq!(together, alone, "{database_url} {limit} {newest_first}");
                let per: Vec<usize> = ["cy", "bob", "ann"]
                    .iter()
                    .map(|c| together.iter().filter(|(id, _)| id == c).count())
                    .collect();
                let expected = if limit == 5 { [5, 5, 5] } else { [13, 8, 14] };
                assert_eq!(per, expected, "{database_url} {limit} {newest_first}");
            }
        }
    }
}
