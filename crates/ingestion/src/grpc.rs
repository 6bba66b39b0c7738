//! The gRPC adapter of ingestion: converts proto ↔ domain, authorises, maps errors to status.

use crate::store::{Checked, Outcome, Store, StoreError};
use prost::Message as _;
use rapport_domain::event::{RejectReason, Rejection, ValidationPolicy, validate};
use rapport_proto::convert;
use rapport_proto::ingestion::v1 as pb;
use rapport_server::{Principal, Role};
use rapport_storage::outbox::RelayWaker;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

/// Most events in one `Ingest` request.
pub const MAX_BATCH: usize = 2_500;
/// Largest single event, encoded.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest `Ingest` request.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Most events returned by one `ListCustomerEvents` call per customer.
const MAX_EVENTS_PER_CUSTOMER: u32 = 10_000;

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => {
                tracing::error!(error = %db, "ingestion storage failed");
                Status::unavailable(
                    "event store unavailable; nothing from this request was stored, retry",
                )
            }
        }
    }
}

/// The ingestion gRPC service.
pub struct IngestionApi {
    pub store: Store,
    pub policy: ValidationPolicy,
    pub waker: RelayWaker,
}

#[tonic::async_trait]
impl pb::ingestion_service_server::IngestionService for IngestionApi {
    async fn ingest(
        &self,
        req: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Ingest])?.to_owned();
        let events = req.into_inner().events;
        if events.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "events: at most {MAX_BATCH} events per request, got {}; nothing was stored",
                events.len()
            )));
        }
        let now = chrono::Utc::now();
        let checked: Vec<Checked> = events.iter().map(|e| check(e, now, &self.policy)).collect();
        let outcomes = self
            .store
            .ingest(
                &tenant,
                checked,
                now.timestamp_millis(),
                rapport_telemetry::current_traceparent(),
            )
            .await?;
        self.waker.wake();

        let mut response = pb::IngestResponse::default();
        for (index, (event, outcome)) in events.iter().zip(outcomes).enumerate() {
            let mut result = pb::EventResult {
                index: index as u32,
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
        tracing::info!(
            tenant,
            accepted = response.accepted,
            duplicates = response.duplicates,
            rejected = response.rejected,
            "ingested"
        );
        Ok(Response::new(response))
    }

    async fn list_customer_events(
        &self,
        req: Request<pb::ListCustomerEventsRequest>,
    ) -> Result<Response<pb::ListCustomerEventsResponse>, Status> {
        let tenant = Principal::of(&req)?.require(&[Role::Read])?.to_owned();
        let req = req.into_inner();
        let limit = match req.limit_per_customer {
            0 => MAX_EVENTS_PER_CUSTOMER,
            n => n.min(MAX_EVENTS_PER_CUSTOMER),
        };
        let mut events = Vec::new();
        for cursor in req.customers {
            for stored in self
                .store
                .customer_events(
                    &tenant,
                    &cursor.customer_id,
                    cursor.after_seq,
                    u64::from(limit),
                )
                .await?
            {
                let mut event = pb::Event::decode(stored.raw.as_slice()).map_err(|e| {
                    Status::data_loss(format!("stored event {} is unreadable: {e}", stored.seq))
                })?;
                // Consumers get the skew-corrected event time, which makes the send time moot.
                event.occurred_at = Some(convert::timestamp(stored.occurred_at));
                event.sent_at = None;
                events.push(pb::StoredEvent {
                    seq: stored.seq,
                    event: Some(event),
                    received_at: Some(convert::timestamp(stored.received_at)),
                });
            }
        }
        Ok(Response::new(pb::ListCustomerEventsResponse { events }))
    }
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
            content_hash: content_hash(event),
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

/// Hash of what an event says, leaving out when it was sent (a retry may be sent later).
fn content_hash(event: &pb::Event) -> String {
    let mut content = event.clone();
    content.sent_at = None;
    hex::encode(Sha256::digest(content.encode_to_vec()))
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
                let _ = check(&event, chrono::Utc::now(), &ValidationPolicy::default());
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
        assert_eq!(content_hash(&a), content_hash(&b));
        b.customer_id = "d".into();
        assert_ne!(content_hash(&a), content_hash(&b));
    }
}
