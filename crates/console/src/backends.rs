//! The services the console reads and acts through, and the requests it sends them on a
//! person's behalf.

use rapport_proto::alerting::v1::alerting_service_client::AlertingServiceClient;
use rapport_proto::common::v1::caller_service_client::CallerServiceClient;
use rapport_proto::ingestion::v1::ingestion_service_client::IngestionServiceClient;
use rapport_proto::scoring::v1::scoring_service_client::ScoringServiceClient;
use rapport_proto::segmentation::v1::segmentation_service_client::SegmentationServiceClient;
use rapport_server::PeerChannel;
use std::time::Duration;

/// How long a page waits for any one call: a page that cannot be drawn in this time says so
/// rather than hanging the person's browser.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Channels to the four services whose APIs the console draws on.
#[derive(Clone)]
pub struct Backends {
    ingestion: PeerChannel,
    scoring: PeerChannel,
    segmentation: PeerChannel,
    alerting: PeerChannel,
}

/// Where the four services are (`host:port`, a URL, or several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub ingestion: String,
    pub scoring: String,
    pub segmentation: String,
    pub alerting: String,
}

/// Why a backend could not be reached as configured.
#[derive(Debug, thiserror::Error)]
#[error("{service} address: {source}")]
pub struct BackendError {
    service: &'static str,
    source: rapport_server::peer::PeerAddrError,
}

impl Backends {
    /// Lazily connected channels to the services at these addresses (`host:port`, a URL, or
    /// several, as for the services' own peer flags), over TLS when `tls` is given.
    pub fn new(
        addrs: &Addresses,
        tls: Option<rapport_server::tls::ClientTls>,
    ) -> Result<Backends, BackendError> {
        let channel = |service, spec: &str| {
            rapport_server::peer_channel_over(spec, tls.clone())
                .map_err(|source| BackendError { service, source })
        };
        Ok(Backends {
            ingestion: channel("ingestion", &addrs.ingestion)?,
            scoring: channel("scoring", &addrs.scoring)?,
            segmentation: channel("segmentation", &addrs.segmentation)?,
            alerting: channel("alerting", &addrs.alerting)?,
        })
    }

    /// A client of the ingestion service (a customer's recent events).
    pub fn ingestion(&self) -> IngestionServiceClient<PeerChannel> {
        IngestionServiceClient::new(self.ingestion.clone())
    }

    /// A client of the scoring service.
    pub fn scoring(&self) -> ScoringServiceClient<PeerChannel> {
        ScoringServiceClient::new(self.scoring.clone())
    }

    /// A client of the segmentation service.
    pub fn segmentation(&self) -> SegmentationServiceClient<PeerChannel> {
        SegmentationServiceClient::new(self.segmentation.clone())
    }

    /// A client of the alerting service.
    pub fn alerting(&self) -> AlertingServiceClient<PeerChannel> {
        AlertingServiceClient::new(self.alerting.clone())
    }

    /// A client of the service every service serves: who the calling key is.
    pub fn caller(&self) -> CallerServiceClient<PeerChannel> {
        CallerServiceClient::new(self.scoring.clone())
    }
}

/// Who is looking at a page: the API key the console calls the services with for them, and
/// the name their actions are recorded under.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: String,
    pub person: String,
    /// Whether the key may act on alerts (an admin key): the pages offer actions only then.
    /// A hint for the pages; the services check every call whatever it says.
    pub can_write: bool,
}

impl Caller {
    /// `message` as a call made for this person: their key, and a deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = self.stream_request(message);
        req.set_timeout(CALL_DEADLINE);
        req
    }

    /// `message` as a call without a deadline, for streams that stay open.
    pub fn stream_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.key).parse() {
            req.metadata_mut().insert("authorization", value);
        }
        req
    }
}
