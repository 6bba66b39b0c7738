//! Delivery of scoring's outbox: new scores to alerting.

use prost::Message;
use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::alerting::v1::{NotifyScoresRequest, ScoreChange};
use rapport_server::peer::delivery_error;
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::{Deliver, DeliveryError, OutboxMessage};
use std::time::Duration;

/// Deadline of one notification to alerting.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(10);

/// Sends new scores to alerting.
pub struct AlertNotifier {
    client: AlertingServiceClient<PeerChannel>,
    service_key: String,
}

impl AlertNotifier {
    /// A notifier calling alerting through `client`.
    pub fn new(client: AlertingServiceClient<PeerChannel>, service_key: String) -> Self {
        AlertNotifier {
            client,
            service_key,
        }
    }
}

impl Deliver for AlertNotifier {
    async fn deliver(
        &self,
        tenant: &str,
        _topic: &str,
        messages: &[OutboxMessage],
    ) -> Result<(), DeliveryError> {
        let mut scores = Vec::with_capacity(messages.len());
        for m in messages {
            match ScoreChange::decode(m.payload.as_slice()) {
                Ok(change) => scores.push(change),
                // An unreadable row can never be delivered; retrying it forever would block none
                // of the others (they are sent together), so it is dropped with a record of why.
                Err(error) => {
                    tracing::error!(id = m.id, %error, "unreadable score notification dropped")
                }
            }
        }
        let req = peer_request(
            NotifyScoresRequest { scores },
            tenant,
            &self.service_key,
            NOTIFY_DEADLINE,
        );
        self.client
            .clone()
            .notify_scores(req)
            .await
            .map_err(|s| delivery_error("alerting", &s))?;
        Ok(())
    }
}
