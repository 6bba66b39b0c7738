//! The gRPC adapter of ingestion: converts proto ↔ domain, authorises, maps errors to status.

use crate::store::{Checked, Outcome, QuarantineFilter, Store, StoreError, StoredEvent};
use prost::Message as _;
use rapport_domain::event::{RejectReason, Rejection, ValidationPolicy, validate};
use rapport_proto::convert;
use rapport_proto::ingestion::v1 as pb;
use rapport_server::Failure;
use rapport_server::args::time;
use rapport_server::{Principal, Quota, Role};
use rapport_storage::outbox::RelayWaker;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Most events in one `Ingest` request.
pub const MAX_BATCH: usize = 2_500;
/// Longest backfill label.
pub const MAX_BACKFILL_CHARS: usize = 200;
/// Most events committed together from a stream.
const STREAM_BATCH: usize = 2_500;
/// How long a stream may stay silent before the server checks again.
const STREAM_IDLE: std::time::Duration = std::time::Duration::from_secs(1);
/// How long to wait for more events before committing what a stream has sent.
const STREAM_LINGER: std::time::Duration = std::time::Duration::from_millis(5);
/// Most quarantined events in one answer.
const MAX_QUARANTINE_PAGE: u32 = 1_000;
/// Largest single event, encoded.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest `Ingest` request.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Most events returned by one `ListCustomerEvents` call per customer.
const MAX_EVENTS_PER_CUSTOMER: u32 = 10_000;
/// Most events in one `ListEvents` page.
const MAX_EVENTS_PER_PAGE: u32 = 10_000;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => rapport_server::failure::database(&db, "event store"),
            e @ StoreError::Vanished(_) => Failure::Internal(format!(
                "event store inconsistent; nothing from this request was stored: {e}"
            )),
        }
        .into()
    }
}

/// The ingestion gRPC service.
#[derive(Clone)]
pub struct IngestionApi {
    pub store: Store,
    pub policy: ValidationPolicy,
    pub waker: RelayWaker,
    /// Cancelled when the replica drains: an ingest stream stops reading, answers what it
    /// read, and ends with UNAVAILABLE so its producer sends the rest elsewhere.
    pub draining: tokio_util::sync::CancellationToken,
    /// The time events are received at.
    pub clock: rapport_server::Clock,
}

impl IngestionApi {
    /// Checks and stores a batch; `first_index` numbers its results (for streams);
    /// `backfill` names the import of history it belongs to (empty for live events).
    async fn process(
        &self,
        tenant: &str,
        events: &[pb::Event],
        first_index: u32,
        backfill: &str,
    ) -> Result<pb::IngestResponse, StoreError> {
        let now = self.clock.now();
        let checked: Vec<Checked> = events.iter().map(|e| check(e, now, &self.policy)).collect();
        let outcomes = self
            .store
            .ingest(
                tenant,
                checked,
                now.timestamp_millis(),
                rapport_telemetry::current_traceparent(),
                backfill,
            )
            .await?;
        self.waker.wake();
        let mut response = pb::IngestResponse::default();
        for (offset, (event, outcome)) in events.iter().zip(outcomes).enumerate() {
            let mut result = pb::EventResult {
                index: first_index.saturating_add(offset as u32),
                event_id: event.event_id.clone(),
                ..Default::default()
            };
            match outcome {
                Outcome::Accepted => {
                    response.accepted += 1;
                    result.verdict = pb::Verdict::Accepted.into();
                }
                Outcome::Duplicate => {
                    response.duplicates += 1;
                    result.verdict = pb::Verdict::Duplicate.into();
                }
                Outcome::Rejected(r) => {
                    response.rejected += 1;
                    result.verdict = pb::Verdict::Rejected.into();
                    result.reason = convert::reason(r.reason).into();
                    result.field = r.field;
                    result.message = r.message;
                }
            }
            response.results.push(result);
        }
        let events = &rapport_telemetry::metrics::metrics().events;
        for (verdict, n) in [
            ("accepted", response.accepted),
            ("duplicate", response.duplicates),
        ] {
            if n > 0 {
                events
                    .get_or_create(&vec![("verdict", verdict.to_owned())])
                    .inc_by(u64::from(n));
            }
        }
        for r in response
            .results
            .iter()
            .filter(|r| r.verdict == pb::Verdict::Rejected as i32)
        {
            let reason = pb::RejectReason::try_from(r.reason)
                .map_or("unknown", |x| x.as_str_name())
                .trim_start_matches("REJECT_REASON_")
                .to_lowercase();
            events
                .get_or_create(&vec![
                    ("verdict", "rejected".to_owned()),
                    ("reason", reason),
                ])
                .inc();
        }
        tracing::info!(
            tenant,
            accepted = response.accepted,
            duplicates = response.duplicates,
            rejected = response.rejected,
            "ingested"
        );
        Ok(response)
    }
}

fn domain_reason(r: pb::RejectReason) -> RejectReason {
    match r {
        pb::RejectReason::MissingField | pb::RejectReason::Unspecified => {
            RejectReason::MissingField
        }
        pb::RejectReason::InvalidValue => RejectReason::InvalidValue,
        pb::RejectReason::OutOfRange => RejectReason::OutOfRange,
        pb::RejectReason::TooLong => RejectReason::TooLong,
        pb::RejectReason::InFuture => RejectReason::InFuture,
        pb::RejectReason::Conflict => RejectReason::Conflict,
        pb::RejectReason::UnsupportedType => RejectReason::UnsupportedType,
        pb::RejectReason::TooLarge => RejectReason::TooLarge,
    }
}

#[tonic::async_trait]
impl pb::ingestion_service_server::IngestionService for IngestionApi {
    async fn ingest(
        &self,
        req: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Ingest])?.to_owned();
        Quota::charge_events(&req, req.get_ref().events.len())?;
        let pb::IngestRequest { events, backfill } = req.into_inner();
        if backfill.chars().count() > MAX_BACKFILL_CHARS {
            return Err(Status::invalid_argument(format!(
                "backfill: at most {MAX_BACKFILL_CHARS} characters; nothing was stored"
            )));
        }
        if events.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "events: at most {MAX_BATCH} events per request, got {}; nothing was stored",
                events.len()
            )));
        }
        Ok(Response::new(
            self.process(&tenant, &events, 0, &backfill).await?,
        ))
    }

    async fn ingest_one(
        &self,
        req: Request<pb::Event>,
    ) -> Result<Response<pb::EventResult>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Ingest])?.to_owned();
        Quota::charge_events(&req, 1)?;
        let event = req.into_inner();
        let mut answer = self
            .process(&tenant, std::slice::from_ref(&event), 0, "")
            .await?;
        answer
            .results
            .pop()
            .map(Response::new)
            .ok_or_else(|| Status::internal("no verdict for the event"))
    }

    type IngestStreamStream = ReceiverStream<Result<pb::IngestResponse, Status>>;

    async fn ingest_stream(
        &self,
        req: Request<Streaming<pb::Event>>,
    ) -> Result<Response<Self::IngestStreamStream>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Ingest])?.to_owned();
        let quota = req.extensions().get::<Quota>().cloned();
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        // The next batch is gathered while the previous one commits: decoding and storing
        // overlap instead of taking turns.
        let (batches_tx, mut batches_rx) = mpsc::channel::<Vec<pb::Event>>(1);
        let draining = self.draining.clone();
        let cut_short = Arc::new(AtomicBool::new(false));
        let cut = cut_short.clone();
        let gather = async move {
            let mut open = true;
            while open {
                // What has arrived: up to a batch, or until the client pauses.
                let mut batch = Vec::new();
                while batch.len() < STREAM_BATCH {
                    let wait = if batch.is_empty() {
                        STREAM_IDLE
                    } else {
                        STREAM_LINGER
                    };
                    let next = tokio::select! {
                        next = tokio::time::timeout(wait, incoming.message()) => next,
                        _ = draining.cancelled() => {
                            cut.store(true, Ordering::SeqCst);
                            open = false;
                            break;
                        }
                    };
                    match next {
                        Ok(Ok(Some(event))) => batch.push(event),
                        Ok(Ok(None)) => {
                            open = false;
                            break;
                        }
                        Ok(Err(status)) => {
                            tracing::info!(%status, "ingest stream ended by the client");
                            open = false;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() && batches_tx.send(batch).await.is_err() {
                    return;
                }
            }
        };
        let api = self.clone();
        let store = async move {
            let mut next_index = 0u32;
            while let Some(batch) = batches_rx.recv().await {
                // Over the tenant's rate, the stream ends with what was answered: the
                // producer re-sends the rest after the pushback.
                let answer = match Quota::charge(quota.as_ref(), batch.len()) {
                    Ok(()) => api
                        .process(&tenant, &batch, next_index, "")
                        .await
                        .map_err(Status::from),
                    Err(exhausted) => Err(exhausted),
                };
                next_index = next_index.saturating_add(batch.len() as u32);
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
            // Everything read was answered; what the producer sent after is not taken.
            if cut_short.load(Ordering::SeqCst) {
                let _ = tx.send(Err(rapport_server::drain::shutting_down())).await;
            }
        };
        tokio::spawn(gather.instrument(tracing::Span::current()));
        tokio::spawn(store.instrument(tracing::Span::current()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_quarantine(
        &self,
        req: Request<pb::ListQuarantineRequest>,
    ) -> Result<Response<pb::ListQuarantineResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        let millis = |t: &Option<prost_types::Timestamp>, field: &str| {
            Ok::<_, Status>(time(t.as_ref(), field)?.map(|t| t.timestamp_millis()))
        };
        let reason = match pb::RejectReason::try_from(req.reason) {
            Ok(pb::RejectReason::Unspecified) => None,
            Ok(r) => Some(domain_reason(r)),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "reason: unknown reason {}",
                    req.reason
                )));
            }
        };
        let filter = QuarantineFilter {
            reason,
            received_from: millis(&req.received_from, "received_from")?,
            received_until: millis(&req.received_until, "received_until")?,
            include_replayed: req.include_replayed,
            before_id: Some(req.before_id).filter(|id| *id > 0),
            limit: u64::from(if req.limit == 0 {
                MAX_QUARANTINE_PAGE
            } else {
                req.limit.min(MAX_QUARANTINE_PAGE)
            }),
        };
        let events = self
            .store
            .quarantine(&tenant, &filter)
            .await?
            .into_iter()
            .map(|q| pb::QuarantinedEvent {
                id: q.id,
                reason: RejectReason::from_code(&q.reason)
                    .map_or(pb::RejectReason::Unspecified, convert::reason)
                    .into(),
                event: pb::Event::decode(q.raw.as_slice()).ok(),
                event_id: q.event_id,
                field: q.field,
                message: q.message,
                received_at: Some(convert::timestamp(q.received_at)),
                replayed_at: q.replayed_at.map(convert::timestamp),
            })
            .collect();
        Ok(Response::new(pb::ListQuarantineResponse { events }))
    }

    async fn replay_quarantined(
        &self,
        req: Request<pb::ReplayQuarantinedRequest>,
    ) -> Result<Response<pb::EventResult>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Ingest])?.to_owned();
        let req = req.into_inner();
        let entry = self
            .store
            .quarantined(&tenant, req.id)
            .await?
            .ok_or_else(|| Status::not_found(format!("id: no quarantined event {}", req.id)))?;
        let event = match req.event {
            Some(fixed) if fixed.event_id != entry.event_id => {
                return Err(Status::invalid_argument(format!(
                    "event.event_id: the replacement must keep the event id {:?}",
                    entry.event_id
                )));
            }
            Some(fixed) => fixed,
            None => pb::Event::decode(entry.raw.as_slice()).map_err(|e| {
                Status::failed_precondition(format!(
                    "the stored bytes are not an event ({e}); send the corrected event"
                ))
            })?,
        };
        let mut answer = self
            .process(&tenant, std::slice::from_ref(&event), 0, "")
            .await?;
        let result = answer
            .results
            .pop()
            .ok_or_else(|| Status::internal("no verdict for the event"))?;
        if result.verdict != pb::Verdict::Rejected as i32 {
            self.store
                .mark_replayed(&tenant, entry.id, self.clock.now().timestamp_millis())
                .await?;
        }
        Ok(Response::new(result))
    }

    async fn list_customer_events(
        &self,
        req: Request<pb::ListCustomerEventsRequest>,
    ) -> Result<Response<pb::ListCustomerEventsResponse>, Status> {
        let tenant = Principal::of(&req)?
            .require_or_service(&[Role::Read])?
            .to_owned();
        let req = req.into_inner();
        let limit = match req.limit_per_customer {
            0 => MAX_EVENTS_PER_CUSTOMER,
            n => n.min(MAX_EVENTS_PER_CUSTOMER),
        };
        let cursors: Vec<(String, i64)> = req
            .customers
            .into_iter()
            .map(|c| (c.customer_id, c.after_seq))
            .collect();
        let events = self
            .store
            .customers_events(&tenant, &cursors, u64::from(limit), req.newest_first)
            .await?
            .into_iter()
            .map(stored_event)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListCustomerEventsResponse { events }))
    }

    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let tenant = Principal::of(&req)?
            .require_or_service(&[Role::Read])?
            .to_owned();
        let req = req.into_inner();
        let limit = match req.limit {
            0 => MAX_EVENTS_PER_PAGE,
            n => n.min(MAX_EVENTS_PER_PAGE),
        };
        let before =
            time(req.occurred_before.as_ref(), "occurred_before")?.map(|t| t.timestamp_millis());
        let stored = self
            .store
            .events(&tenant, req.after_seq, before, u64::from(limit))
            .await?;
        let full = stored.len() == limit as usize;
        let events = stored
            .into_iter()
            .map(stored_event)
            .collect::<Result<Vec<_>, Status>>()?;
        let next_after_seq = match events.last() {
            Some(last) if full => last.seq,
            _ => 0,
        };
        Ok(Response::new(pb::ListEventsResponse {
            events,
            next_after_seq,
        }))
    }
}

/// A stored event as consumers get it: with the skew-corrected event time, which makes the
/// send time moot.
fn stored_event(stored: StoredEvent) -> Result<pb::StoredEvent, Status> {
    let mut event = pb::Event::decode(stored.raw.as_slice()).map_err(|e| {
        Status::data_loss(format!("stored event {} is unreadable: {e}", stored.seq))
    })?;
    event.occurred_at = Some(convert::timestamp(stored.occurred_at));
    event.sent_at = None;
    Ok(pb::StoredEvent {
        seq: stored.seq,
        event: Some(event),
        received_at: Some(convert::timestamp(stored.received_at)),
        backfill: stored.backfill.unwrap_or_default(),
    })
}

fn check(
    event: &pb::Event,
    now: chrono::DateTime<chrono::Utc>,
    policy: &ValidationPolicy,
) -> Checked {
    let raw = event.encode_to_vec();
    if raw.len() > MAX_EVENT_BYTES {
        let rejection = Rejection::new(
            RejectReason::TooLarge,
            "payload",
            format!(
                "the event is {} bytes, at most {MAX_EVENT_BYTES} are allowed",
                raw.len()
            ),
        );
        return Checked::Invalid {
            event_id: event.event_id.clone(),
            raw,
            rejection,
        };
    }
    match convert::draft(event).and_then(|d| validate(d, now, policy)) {
        Ok(valid) => Checked::Valid {
            sent_at: event
                .sent_at
                .as_ref()
                .and_then(|t| convert::time(t, "sent_at").ok())
                .map(|t| t.timestamp_millis()),
            content_hash: content_hash(event, &raw),
            event: valid,
            raw,
        },
        Err(rejection) => Checked::Invalid {
            event_id: event.event_id.clone(),
            raw,
            rejection,
        },
    }
}

/// Hash of what an event says, leaving out when it was sent (a retry may be sent later);
/// `raw` is the event's encoding, which already leaves it out when it was not given.
fn content_hash(event: &pb::Event, raw: &[u8]) -> String {
    let digest = if event.sent_at.is_none() {
        Sha256::digest(raw)
    } else {
        let mut content = event.clone();
        content.sent_at = None;
        Sha256::digest(content.encode_to_vec())
    };
    format!("{digest:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn good() -> pb::Event {
        goods().remove(0)
    }

    /// One valid event of each of the nine types.
    fn goods() -> Vec<pb::Event> {
        use pb::event::Payload as P;
        let t = |ms| Some(convert::timestamp(ms));
        let payloads = vec![
            P::Order(pb::Order {
                order_id: "o-1".into(),
                amount: 12.5,
                currency: "EUR".into(),
                items: 2,
            }),
            P::Refund(pb::Refund {
                order_id: "o-1".into(),
                amount: 2.5,
                currency: "EUR".into(),
            }),
            P::Survey(pb::Survey {
                kind: pb::SurveyKind::Csat.into(),
                score: 4,
                comment: "fine".into(),
            }),
            P::Complaint(pb::Complaint {
                complaint_id: "k".into(),
                category: "billing".into(),
                severity: pb::Severity::High.into(),
                channel: "mail".into(),
            }),
            P::SupportTicket(pb::SupportTicket {
                ticket_id: "t".into(),
                status: pb::TicketStatus::Opened.into(),
                channel: "chat".into(),
                priority: pb::Priority::High.into(),
            }),
            P::Engagement(pb::Engagement {
                kind: pb::EngagementKind::Login.into(),
                channel: "app".into(),
                count: 3,
                subject: String::new(),
            }),
            P::Subscription(pb::Subscription {
                plan: "pro".into(),
                change: pb::SubscriptionChange::Upgrade.into(),
                seats: 5,
                mrr: 99.0,
                currency: "EUR".into(),
            }),
            P::Payment(pb::Payment {
                invoice_id: "i".into(),
                due_at: t(1_699_000_000_000),
                paid_at: None,
                amount: 99.0,
                currency: "EUR".into(),
            }),
            P::Profile(pb::Profile {
                region: "EU".into(),
                acquisition_cost: Some(120.0),
                currency: "EUR".into(),
                ..Default::default()
            }),
        ];
        payloads
            .into_iter()
            .map(|p| pb::Event {
                event_id: "e-1".into(),
                customer_id: "c-1".into(),
                occurred_at: t(1_700_000_000_000),
                sent_at: t(1_700_000_000_500),
                payload: Some(p),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever bytes arrive, decoding and checking never panics, and every rejection
        /// names a field and says why.
        #[test]
        fn mutated_events_get_a_verdict_naming_the_field(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
            which in 0usize..9,
        ) {
            let mut bytes = goods().swap_remove(which).encode_to_vec();
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Ok(event) = pb::Event::decode(bytes.as_slice()) {
                let now = chrono::DateTime::from_timestamp(1_700_000_100, 0).unwrap();
                match check(&event, now, &ValidationPolicy::default()) {
                    Checked::Valid { event: valid, .. } => prop_assert_eq!(valid.event_id, event.event_id),
                    Checked::Invalid { rejection, .. } => {
                        prop_assert!(!rejection.field.is_empty());
                        prop_assert!(!rejection.message.is_empty());
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(event) = pb::Event::decode(bytes.as_slice()) {
                let _ = check(&event, rapport_server::Clock::system().now(), &ValidationPolicy::default());
            }
        }
    }

    #[test]
    fn a_good_event_of_every_type_is_valid_and_an_oversized_one_is_not() {
        let now = chrono::DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        for event in goods() {
            let checked = check(&event, now, &ValidationPolicy::default());
            assert!(
                matches!(checked, Checked::Valid { .. }),
                "{event:?}: {checked:?}"
            );
        }
        let mut huge = good();
        huge.payload = Some(pb::event::Payload::Survey(pb::Survey {
            kind: pb::SurveyKind::Nps.into(),
            score: 5,
            comment: "x".repeat(MAX_EVENT_BYTES),
        }));
        match check(&huge, now, &ValidationPolicy::default()) {
            Checked::Invalid { rejection, .. } => {
                assert_eq!(
                    (rejection.reason, rejection.field.as_str()),
                    (RejectReason::TooLarge, "payload")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_hash_ignores_sent_at_only() {
        let a = pb::Event {
            event_id: "e".into(),
            customer_id: "c".into(),
            ..Default::default()
        };
        let mut b = a.clone();
        b.sent_at = Some(convert::timestamp(5));
        // Stored hashes are lowercase hex SHA-256: a change of format would turn every
        // retry of an earlier event into a conflict.
        assert_eq!(
            content_hash(&pb::Event::default(), &[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let hash = |e: &pb::Event| content_hash(e, &e.encode_to_vec());
        assert_eq!(hash(&a), hash(&b));
        b.customer_id = "d".into();
        assert_ne!(hash(&a), hash(&b));
    }
}
