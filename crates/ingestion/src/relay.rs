//! Delivery of ingestion's outbox: coalesced "these customers changed" calls to scoring.

use rapport_proto::scoring::v1::CustomersChanged;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_server::peer::delivery_error;
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::{Deliver, DeliveryError, OutboxMessage};
use std::collections::BTreeSet;
use std::time::Duration;

/// Deadline of one notification; scoring fetches and scores the customers within it.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(30);

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
        _topic: &str,
        messages: &[OutboxMessage],
    ) -> Result<(), DeliveryError> {
        let customer_ids: BTreeSet<String> = messages
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        let req = peer_request(
            CustomersChanged {
                customer_ids: customer_ids.into_iter().collect(),
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
        Ok(())
    }
}
