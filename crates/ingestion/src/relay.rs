//! Delivery of ingestion's outbox: coalesced "these customers changed" calls to scoring.

use prost::Message;
use rapport_proto::scoring::v1::CustomersChanged;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_server::peer::delivery_error;
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::{Deliver, DeliveryError, OutboxMessage, readable};
use std::time::Duration;

/// Deadline of one notification; scoring fetches and scores the customers within it.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(30);

/// Most customers named in one notification, so each call fits its deadline.
const CUSTOMERS_PER_CALL: usize = 1_000;

/// Outbox topic of a batch's changed customers: one message per batch, its payload a
/// `CustomersChanged` listing them.
pub const CHANGED_CUSTOMERS: &str = "changed_customers";

/// Outbox topic of earlier versions, one message per customer with its bare id as payload;
/// still delivered so messages written before an upgrade are not lost.
const CUSTOMER_CHANGED_LEGACY: &str = "customers_changed";

/// The outbox payload announcing that `customer_ids` changed.
pub fn changed_customers(customer_ids: Vec<String>) -> Vec<u8> {
    CustomersChanged { customer_ids }.encode_to_vec()
}

/// The customers one outbox message names.
fn customers_of(topic: &str, message: &OutboxMessage) -> Result<Vec<String>, String> {
    match topic {
        CHANGED_CUSTOMERS => CustomersChanged::decode(message.payload.as_slice())
            .map(|c| c.customer_ids)
            .map_err(|e| e.to_string()),
        CUSTOMER_CHANGED_LEGACY => Ok(vec![String::from_utf8_lossy(&message.payload).into_owned()]),
        other => Err(format!("unknown topic {other:?}")),
    }
}

/// Tells scoring which customers have new events.
pub struct ScoringNotifier {
    client: ScoringServiceClient<PeerChannel>,
    service_key: String,
}

impl ScoringNotifier {
    /// A notifier calling scoring through `client`.
    pub fn new(client: ScoringServiceClient<PeerChannel>, service_key: String) -> Self {
        ScoringNotifier {
            client,
            service_key,
        }
    }
}

impl Deliver for ScoringNotifier {
    async fn deliver(
        &self,
        tenant: &str,
        topic: &str,
        messages: &[OutboxMessage],
    ) -> Result<(), DeliveryError> {
        // Each customer once, however many of the messages name it.
        let mut customer_ids = readable(messages, |m| customers_of(topic, m));
        customer_ids.sort_unstable();
        customer_ids.dedup();
        // Receivers are idempotent: after a failed call, the retry re-sending the calls
        // that succeeded is harmless.
        for chunk in customer_ids.chunks(CUSTOMERS_PER_CALL) {
            let req = peer_request(
                CustomersChanged {
                    customer_ids: chunk.to_vec(),
                },
                tenant,
                &self.service_key,
                NOTIFY_DEADLINE,
            );
            self.client
                .clone()
                .notify_customers_changed(req)
                .await
                .map_err(|s| delivery_error("scoring", &s))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: Vec<u8>) -> OutboxMessage {
        OutboxMessage {
            id: 7,
            tenant_id: "t".into(),
            topic: String::new(),
            payload,
            traceparent: None,
            attempts: 0,
        }
    }

    #[test]
    fn a_batch_message_names_its_customers_and_a_legacy_one_its_customer() {
        let ids = vec!["c1".to_owned(), "c\n2".to_owned()];
        let batch = message(changed_customers(ids.clone()));
        assert_eq!(customers_of(CHANGED_CUSTOMERS, &batch).ok(), Some(ids));
        let legacy = message(b"c9".to_vec());
        assert_eq!(
            customers_of(CUSTOMER_CHANGED_LEGACY, &legacy).ok(),
            Some(vec!["c9".to_owned()])
        );
        assert_eq!(
            customers_of("other", &legacy).err().as_deref(),
            Some("unknown topic \"other\"")
        );
    }
}
