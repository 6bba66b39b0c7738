//! Delivery of segmentation's outbox: tier changes to scoring.

use prost::Message;
use rapport_proto::scoring::v1::ApplyTiersRequest;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_server::peer::delivery_error;
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::{Deliver, DeliveryError, OutboxMessage, readable};
use std::time::Duration;

/// Deadline of one delivery.
const DEADLINE: Duration = Duration::from_secs(30);

/// Most tier changes in one call: a pass may gather a whole run's changes of a large tenant.
const TIERS_PER_CALL: usize = 10_000;

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
        let tiers = readable(messages, |m| {
            ApplyTiersRequest::decode(m.payload.as_slice())
                .map(|req| req.tiers)
                .map_err(|e| e.to_string())
        });
        // Receivers are idempotent: after a failed call, the retry re-sending the calls
        // that succeeded is harmless.
        for chunk in tiers.chunks(TIERS_PER_CALL) {
            let req = peer_request(
                ApplyTiersRequest {
                    tiers: chunk.to_vec(),
                },
                tenant,
                &self.service_key,
                DEADLINE,
            );
            self.client
                .clone()
                .apply_tiers(req)
                .await
                .map_err(|s| delivery_error("scoring", &s))?;
        }
        Ok(())
    }
}
