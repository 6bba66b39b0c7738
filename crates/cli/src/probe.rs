//! `rapport probe`: a health check for images without a shell, speaking `grpc.health.v1`
//! the way Kubernetes' gRPC probes do.

use std::time::Duration;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Options of `rapport probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The server: `HOST:PORT` or `http://HOST:PORT` (https with --tls-ca).
    pub addr: String,
    /// The service to ask about (`rapport.scoring.v1.ScoringService`, …); empty asks about
    /// the server as a whole.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Seconds one check may take.
    #[arg(long, default_value_t = 2)]
    pub timeout_secs: u64,
    /// Keep checking, once a second, until the server serves or this many seconds passed.
    #[arg(long, default_value_t = 0)]
    pub wait_secs: u64,
}

/// Succeeds when the server answers SERVING; otherwise fails with what it answered (the
/// process then exits 1, which is what container health checks read).
pub async fn probe(
    args: ProbeArgs,
    tls: &rapport_server::tls::ClientTlsArgs,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let channel = tls
        .endpoint(&args.addr)?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_lazy();
    let client = HealthClient::new(channel);
    let until = tokio::time::Instant::now() + Duration::from_secs(args.wait_secs);
    loop {
        let answer = check(client.clone(), &args.service).await;
        match answer {
            Ok(()) => {
                outln!("{}: SERVING", args.addr);
                return Ok(());
            }
            Err(why) if tokio::time::Instant::now() >= until => {
                anyhow::bail!("{}: {why}", args.addr)
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// One check: `Ok` when SERVING, else what was answered instead.
async fn check(
    mut client: HealthClient<tonic::transport::Channel>,
    service: &str,
) -> Result<(), String> {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    match client.check(request).await {
        Ok(response) => match ServingStatus::try_from(response.into_inner().status) {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(status) => Err(status.as_str_name().to_owned()),
            Err(_) => Err("an unknown serving status".to_owned()),
        },
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}
