//! Delivery of scoring's outbox: new scores to alerting.

use prost::Message;
use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::alerting::v1::{NotifyScoresRequest, ScoreChange};
use rapport_server::peer::delivery_error;
use rapport_server::{PeerChannel, peer_request};
use rapport_storage::outbox::{Deliver, DeliveryError, OutboxMessage, readable};
use std::time::Duration;

/// Deadline of one notification to alerting.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(10);

/// Most score changes in one notification, so each call fits its deadline.
const SCORES_PER_CALL: usize = 1_000;

/// Outbox topic of the score changes of one write (a page of a re-score, a batch of
/// customers): one message, its payload a `NotifyScoresRequest` listing them in order.
pub const SCORE_CHANGES: &str = "score_changes";

/// Outbox topic of earlier versions, one message per change with a `ScoreChange` payload;
/// still delivered so messages written before an upgrade are not lost.
const SCORE_CHANGED_LEGACY: &str = "score_changed";

/// The outbox payload announcing `scores`.
pub fn score_changes(scores: Vec<ScoreChange>) -> Vec<u8> {
    NotifyScoresRequest { scores }.encode_to_vec()
}

/// The score changes one outbox message carries.
fn changes_of(topic: &str, message: &OutboxMessage) -> Result<Vec<ScoreChange>, String> {
    match topic {
        SCORE_CHANGES => NotifyScoresRequest::decode(message.payload.as_slice())
            .map(|r| r.scores)
            .map_err(|e| e.to_string()),
        SCORE_CHANGED_LEGACY => ScoreChange::decode(message.payload.as_slice())
            .map(|c| vec![c])
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown topic {other:?}")),
    }
}

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
        topic: &str,
        messages: &[OutboxMessage],
    ) -> Result<(), DeliveryError> {
        // In order: alerting steps each customer's alert tracks by its score changes.
        let scores = readable(messages, |m| changes_of(topic, m));
        // Receivers are idempotent: after a failed call, the retry re-sending the calls
        // that succeeded is harmless.
        for chunk in scores.chunks(SCORES_PER_CALL) {
            let req = peer_request(
                NotifyScoresRequest {
                    scores: chunk.to_vec(),
                },
                tenant,
                &self.service_key,
                NOTIFY_DEADLINE,
            );
            self.client
                .clone()
                .notify_scores(req)
                .await
                .map_err(|s| delivery_error("alerting", &s))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: Vec<u8>) -> OutboxMessage {
        OutboxMessage {
            id: 3,
            tenant_id: "t".into(),
            topic: String::new(),
            payload,
            traceparent: None,
            attempts: 0,
        }
    }

    fn change(customer: &str) -> ScoreChange {
        ScoreChange {
            customer_id: customer.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_write_message_carries_its_changes_in_order_and_a_legacy_one_its_change() {
        let changes = vec![change("b"), change("a")];
        let batch = message(score_changes(changes.clone()));
        assert_eq!(changes_of(SCORE_CHANGES, &batch), Ok(changes));
        let legacy = message(change("c").encode_to_vec());
        assert_eq!(
            changes_of(SCORE_CHANGED_LEGACY, &legacy),
            Ok(vec![change("c")])
        );
        assert_eq!(
            changes_of("other", &legacy),
            Err("unknown topic \"other\"".to_owned())
        );
    }
}
