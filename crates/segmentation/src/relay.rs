//! Delivery of segmentation's outbox: tier changes to scoring.

use prost::Message;
use rapport_proto::scoring::v1::ApplyTiersRequest;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_server::peer::delivery_error;
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::{Deliver, DeliveryError, OutboxMessage};
use std::time::Duration;

/// Deadline of one delivery.
const DEADLINE: Duration = Duration::from_secs(30);

/// Sends tier changes to scoring.
pub struct TierNotifier {
    client: ScoringServiceClient<PeerChannel>,
    service_key: String,
}

impl TierNotifier {
    /// A notifier calling scoring through `client`.
    pub fn new(client: ScoringServiceClient<PeerChannel>, service_key: String) -> Self {
        TierNotifier {
            client,
            service_key,
        }
    }
}

impl Deliver for TierNotifier {
    async fn deliver(
        &self,
        tenant: &str,
        _topic: &str,
        messages: &[OutboxMessage],
    ) -> Result<(), DeliveryError> {
        let mut tiers = Vec::new();
        for m in messages {
            match ApplyTiersRequest::decode(m.payload.as_slice()) {
                Ok(req) => tiers.extend(req.tiers),
                Err(error) => {
                    tracing::error!(id = m.id, %error, "unreadable tier notification dropped")
                }
            }
        }
        let req = peer_request(
            ApplyTiersRequest { tiers },
            tenant,
            &self.service_key,
            DEADLINE,
        );
        self.client
            .clone()
            .apply_tiers(req)
            .await
            .map_err(|s| delivery_error("scoring", &s))?;
        Ok(())
    }
}
