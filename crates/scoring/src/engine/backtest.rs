//! A backtest's reading: the tenant's event log up to the end of the horizon, paged from
//! ingestion and folded as of the backtest's time (see [`crate::backtest`]).

use super::*;
use crate::backtest::{Extras, Folded, Outcome, report};
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
        rapport_server::event_log::read(
            &self.ingestion,
            tenant,
            &self.service_key,
            convert::timestamp(end.timestamp_millis()),
            PAGE_DEADLINE,
            |stored| {
                // A stored event that no longer validates is left out, as everywhere.
                if let Some(Ok(event)) = stored.event.map(|e| convert::stored(&e, now)) {
                    folded.add(&event);
                }
            },
        )
        .await
        .map_err(ScoringError::Upstream)?;
        let (cards, version) = (ctx.cards.clone(), ctx.version.clone());
        tokio::task::spawn_blocking(move || report(folded, cards, version, outcome, extras))
            .await
            .map_err(|e| ScoringError::Internal(format!("backtest: {e}")))
    }
}
