//! Reading a tenant's event log from ingestion, a page at a time, as the services that fold
//! the whole history do (KPIs, backtests): `ListEvents` with the service key, each page
//! retried within a budget.

use crate::{PeerChannel, RetryBudget, peer_request, with_retries};
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::ingestion::v1::{ListEventsRequest, StoredEvent};
use std::sync::LazyLock;
use std::time::Duration;

/// Events per page.
const PAGE: u32 = 10_000;

/// Hands `each` every stored event of `tenant` that occurred before `before`, in commit
/// order; a page gets `deadline`. Fails with ingestion's status when a page cannot be read.
pub async fn read(
    ingestion: &IngestionServiceClient<PeerChannel>,
    tenant: &str,
    service_key: &str,
    before: prost_types::Timestamp,
    deadline: Duration,
    mut each: impl FnMut(StoredEvent),
) -> Result<(), tonic::Status> {
    static RETRIES: LazyLock<RetryBudget> = LazyLock::new(Default::default);
    let mut after_seq = 0;
    loop {
        let page = with_retries(&RETRIES, || {
            let req = peer_request(
                ListEventsRequest {
                    after_seq,
                    limit: PAGE,
                    occurred_before: Some(before),
                },
                tenant,
                service_key,
                deadline,
            );
            let mut ingestion = ingestion.clone();
            async move { ingestion.list_events(req).await }
        })
        .await?
        .into_inner();
        page.events.into_iter().for_each(&mut each);
        if page.next_after_seq == 0 {
            return Ok(());
        }
        after_seq = page.next_after_seq;
    }
}
