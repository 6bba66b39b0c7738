//! A backtest's reading: the tenant's event log up to the end of the horizon, paged from
//! ingestion and folded as of the backtest's time (see [`crate::backtest`]).

use super::*;
use crate::backtest::{Extras, Folded, Outcome, report};
use rapport_proto::ingestion::v1::ListEventsRequest;

/// Events per page read from ingestion.
const EVENTS_PAGE: u32 = 10_000;
/// Deadline of one page.
const PAGE_DEADLINE: Duration = Duration::from_secs(60);

impl Engine {
    /// Scores every customer known at `as_of` from the events that had occurred by then and
    /// reports how the score ranks them by `outcome` in `[as_of, end)`.
    pub async fn backtest(
        &self,
        tenant: &str,
        as_of: DateTime<Utc>,
        end: DateTime<Utc>,
        outcome: Outcome,
        extras: Extras,
    ) -> Result<pb::BacktestReport, ScoringError> {
        let ctx = self.context(tenant).await?;
        let mut folded = Folded::new(as_of, end);
        let now = self.clock.now();
        let mut after_seq = 0;
        loop {
            static RETRIES: std::sync::LazyLock<rapport_server::RetryBudget> =
                std::sync::LazyLock::new(Default::default);
            let page = rapport_server::with_retries(&RETRIES, || {
                let req = peer_request(
                    ListEventsRequest {
                        after_seq,
                        limit: EVENTS_PAGE,
                        occurred_before: Some(prost_types::Timestamp {
                            seconds: end.timestamp(),
                            nanos: 0,
                        }),
                    },
                    tenant,
                    &self.service_key,
                    PAGE_DEADLINE,
                );
                let mut ingestion = self.ingestion.clone();
                async move { ingestion.list_events(req).await }
            })
            .await
            .map_err(ScoringError::Upstream)?
            .into_inner();
            for stored in page.events {
                let Some(event) = stored.event else { continue };
                // A stored event that no longer validates is left out, as everywhere.
                if let Ok(event) = convert::draft(&event)
                    .and_then(|d| validate(d, now, &ValidationPolicy::stored()))
                {
                    folded.add(&event);
                }
            }
            if page.next_after_seq == 0 {
                break;
            }
            after_seq = page.next_after_seq;
        }
        let (cards, version) = (ctx.cards.clone(), ctx.version.clone());
        tokio::task::spawn_blocking(move || report(folded, cards, version, outcome, extras))
            .await
            .map_err(|e| ScoringError::Internal(format!("backtest: {e}")))
    }
}
