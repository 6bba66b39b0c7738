//! A scoring stand-in for benchmarks: the baseline of the read path and a sink for ingestion.

use rapport_proto::common::v1::Ack;
use rapport_proto::scoring::v1 as scoring;
use rapport_proto::scoring::v1::scoring_service_server::{ScoringService, ScoringServiceServer};

/// A scoring stand-in: it acknowledges every notification at once (so ingestion's outbox
/// drains as in production and an ingest figure is ingestion's alone), answers `GetHealth`
/// with a fixed score, doing no work (the bare-tonic baseline of the read path), and pages
/// through fixed customer features (whatever the observation end asked for), so a
/// segmentation figure is segmentation's alone.
pub struct StandInScoring {
    health: scoring::HealthScore,
    /// By customer id.
    features: Vec<scoring::CustomerFeatures>,
}

#[tonic::async_trait]
impl ScoringService for StandInScoring {
    async fn get_health(
        &self,
        _: tonic::Request<scoring::GetHealthRequest>,
    ) -> Result<tonic::Response<scoring::HealthScore>, tonic::Status> {
        Ok(tonic::Response::new(self.health.clone()))
    }
    async fn batch_get_health(
        &self,
        _: tonic::Request<scoring::BatchGetHealthRequest>,
    ) -> Result<tonic::Response<scoring::BatchGetHealthResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn notify_customers_changed(
        &self,
        _: tonic::Request<scoring::CustomersChanged>,
    ) -> Result<tonic::Response<Ack>, tonic::Status> {
        Ok(tonic::Response::new(Ack {}))
    }
    async fn list_customer_features(
        &self,
        req: tonic::Request<scoring::ListCustomerFeaturesRequest>,
    ) -> Result<tonic::Response<scoring::ListCustomerFeaturesResponse>, tonic::Status> {
        let req = req.into_inner();
        let from = self
            .features
            .partition_point(|f| f.customer_id <= req.after_customer_id);
        let size = match req.page_size {
            0 => 1_000,
            n => n as usize,
        };
        let customers: Vec<_> = self
            .features
            .iter()
            .skip(from)
            .take(size)
            .cloned()
            .collect();
        let next_after_customer_id = if from + customers.len() < self.features.len() {
            customers
                .last()
                .map(|f| f.customer_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(tonic::Response::new(
            scoring::ListCustomerFeaturesResponse {
                customers,
                next_after_customer_id,
            },
        ))
    }
    async fn apply_tiers(
        &self,
        _: tonic::Request<scoring::ApplyTiersRequest>,
    ) -> Result<tonic::Response<Ack>, tonic::Status> {
        Ok(tonic::Response::new(Ack {}))
    }
    async fn fit_models(
        &self,
        _: tonic::Request<scoring::FitModelsRequest>,
    ) -> Result<tonic::Response<scoring::FitModelsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn backtest(
        &self,
        _: tonic::Request<scoring::BacktestRequest>,
    ) -> Result<tonic::Response<scoring::BacktestReport>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn list_health(
        &self,
        _: tonic::Request<scoring::ListHealthRequest>,
    ) -> Result<tonic::Response<scoring::ListHealthResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn explain_health(
        &self,
        _: tonic::Request<scoring::ExplainHealthRequest>,
    ) -> Result<tonic::Response<scoring::HealthExplanation>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn compare_health(
        &self,
        _: tonic::Request<scoring::CompareHealthRequest>,
    ) -> Result<tonic::Response<scoring::HealthComparison>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn list_health_history(
        &self,
        _: tonic::Request<scoring::ListHealthHistoryRequest>,
    ) -> Result<tonic::Response<scoring::ListHealthHistoryResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn list_band_shares(
        &self,
        _: tonic::Request<scoring::ListBandSharesRequest>,
    ) -> Result<tonic::Response<scoring::ListBandSharesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn list_fallers(
        &self,
        _: tonic::Request<scoring::ListFallersRequest>,
    ) -> Result<tonic::Response<scoring::ListFallersResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn get_scorecard(
        &self,
        _: tonic::Request<scoring::GetScorecardRequest>,
    ) -> Result<tonic::Response<scoring::Scorecard>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn set_scorecard(
        &self,
        _: tonic::Request<scoring::SetScorecardRequest>,
    ) -> Result<tonic::Response<scoring::Scorecard>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn set_override(
        &self,
        _: tonic::Request<scoring::SetOverrideRequest>,
    ) -> Result<tonic::Response<scoring::HealthScore>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    async fn clear_override(
        &self,
        _: tonic::Request<scoring::ClearOverrideRequest>,
    ) -> Result<tonic::Response<scoring::HealthScore>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
    type RescoreAllStream = tokio_stream::Empty<Result<scoring::RescoreProgress, tonic::Status>>;
    async fn rescore_all(
        &self,
        _: tonic::Request<scoring::RescoreAllRequest>,
    ) -> Result<tonic::Response<Self::RescoreAllStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("benchmark stand-in"))
    }
}

/// Serves the stand-in on a free loopback port, answering `GetHealth` with `health`.
pub async fn start(health: scoring::HealthScore) -> anyhow::Result<std::net::SocketAddr> {
    serve(StandInScoring {
        health,
        features: Vec::new(),
    })
    .await
}

/// Serves the stand-in on a free loopback port, paging through `features`.
pub async fn start_with_features(
    mut features: Vec<scoring::CustomerFeatures>,
) -> anyhow::Result<std::net::SocketAddr> {
    features.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
    serve(StandInScoring {
        health: scoring::HealthScore::default(),
        features,
    })
    .await
}

async fn serve(standin: StandInScoring) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                ScoringServiceServer::new(standin).max_encoding_message_size(256 * 1024 * 1024),
            )
            .serve_with_incoming(rapport_server::incoming(listener)),
    );
    Ok(addr)
}
