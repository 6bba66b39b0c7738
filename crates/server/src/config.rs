//! Settings every service shares, from flags or `RAPPORT_*` environment variables.

use crate::auth::{ApiKeys, DEV_API_KEY, DEV_SERVICE_KEY, DEV_TENANT, KeySpecError};
use std::path::PathBuf;

/// Storage and credentials, common to the four services.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Directory of the embedded SQLite databases (one file per service).
    #[arg(long, env = "RAPPORT_DATA_DIR", default_value = ".rapport")]
    pub data_dir: PathBuf,
    /// Database URL (postgres://… or sqlite://…); default: SQLite under the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// API keys as KEY=TENANT:ROLE,… (roles: ingest, read, admin); default: the development key.
    #[arg(long, env = "RAPPORT_API_KEYS")]
    pub api_keys: Option<String>,
    /// Key the services use to call each other.
    #[arg(long, env = "RAPPORT_SERVICE_KEY", default_value = DEV_SERVICE_KEY)]
    pub service_key: String,
    /// Accept the built-in development keys (refused otherwise, outside `rapport up`).
    #[arg(long, env = "RAPPORT_ALLOW_DEV_KEYS")]
    pub allow_dev_keys: bool,
    /// Rate limits per tenant and replica as TENANT=EVENTS/REQUESTS,… per second (`*`: every
    /// other tenant; 0: none): events for ingest, requests for every other call.
    #[arg(long, env = "RAPPORT_TENANT_LIMITS", default_value = "")]
    pub tenant_limits: String,
    /// Calls a replica serves at once; more are answered RESOURCE_EXHAUSTED (0: no limit).
    #[arg(long, env = "RAPPORT_MAX_CONCURRENT_CALLS", default_value_t = DEFAULT_MAX_CONCURRENT_CALLS)]
    pub max_concurrent_calls: usize,
    /// Address to serve Prometheus metrics on (`GET /metrics`); none when unset.
    #[arg(long, env = "RAPPORT_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds a replica keeps serving after SIGTERM, reporting NOT_SERVING, so that load
    /// balancers stop sending it calls (a few seconds on Kubernetes).
    #[arg(long, env = "RAPPORT_DRAIN_PAUSE_SECS", default_value_t = DEFAULT_DRAIN_PAUSE_SECS)]
    pub drain_pause_secs: u64,
    /// Seconds in-flight calls get to finish once a replica stops accepting calls. A replica
    /// exits at most pause + timeout + 5 s after SIGTERM.
    #[arg(long, env = "RAPPORT_DRAIN_TIMEOUT_SECS", default_value_t = DEFAULT_DRAIN_TIMEOUT_SECS)]
    pub drain_timeout_secs: u64,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    pub telemetry: rapport_telemetry::Settings,
}

/// A service's settings from `args` (its binary's name first, then flags) and its flags'
/// defaults, ignoring the environment: the one source of every default, for `rapport up` as
/// for the binaries (which read the environment too).
pub fn defaults<C: clap::Parser>(args: &[&str]) -> Result<C, clap::Error> {
    let command = C::command().mut_args(|a| a.env(None::<&'static str>));
    let matches = command.try_get_matches_from(args)?;
    C::from_arg_matches(&matches)
}

/// Default of `--drain-pause-secs`: none, for a replica no load balancer knows of.
pub const DEFAULT_DRAIN_PAUSE_SECS: u64 = 0;
/// Default of `--max-concurrent-calls`.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 1_000;
/// Default of `--drain-timeout-secs`.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 20;

impl CommonArgs {
    /// Defaults: SQLite under `data_dir`, development keys (allowed).
    pub fn embedded(data_dir: PathBuf) -> Self {
        CommonArgs {
            data_dir,
            database_url: None,
            api_keys: None,
            service_key: DEV_SERVICE_KEY.to_owned(),
            allow_dev_keys: true,
            tenant_limits: String::new(),
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            metrics_listen: None,
            drain_pause_secs: DEFAULT_DRAIN_PAUSE_SECS,
            drain_timeout_secs: DEFAULT_DRAIN_TIMEOUT_SECS,
            tls: crate::tls::TlsArgs::default(),
            telemetry: rapport_telemetry::Settings::default(),
        }
    }

    /// How this replica drains when asked to stop.
    pub fn drain(&self) -> crate::drain::Drain {
        crate::drain::Drain {
            pause: std::time::Duration::from_secs(self.drain_pause_secs),
            timeout: std::time::Duration::from_secs(self.drain_timeout_secs),
        }
    }

    /// A channel to the peer at `spec`, over TLS when this process has a CA to trust.
    pub fn peer(&self, spec: &str) -> anyhow::Result<crate::PeerChannel> {
        Ok(crate::peer::peer_channel_over(spec, self.tls.client())?)
    }

    /// The database URL for `service`.
    pub fn database_url(&self, service: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => rapport_storage::sqlite_url(&self.data_dir, service),
        }
    }

    /// The API keys this server accepts at start (managed keys join them once read): the
    /// development keys only when allowed.
    pub fn api_keys(&self) -> Result<ApiKeys, KeySpecError> {
        let spec = match (&self.api_keys, self.allow_dev_keys) {
            (Some(spec), _) => spec.clone(),
            (None, true) => format!("{DEV_API_KEY}={DEV_TENANT}:admin"),
            (None, false) => String::new(),
        };
        let keys = ApiKeys::parse(&spec, &self.service_key)?;
        if !self.allow_dev_keys {
            if self.service_key == DEV_SERVICE_KEY {
                return Err(KeySpecError::DevKey {
                    what: "RAPPORT_SERVICE_KEY",
                });
            }
            if keys.is_dev() {
                return Err(KeySpecError::DevKey {
                    what: "a key of RAPPORT_API_KEYS",
                });
            }
        } else if keys.is_dev() {
            tracing::warn!(
                "the built-in development API keys are allowed; never on a shared installation"
            );
        }
        Ok(keys)
    }

    /// The guard of this replica's server: `keys`, the tenants' rate limits and the
    /// concurrency limit.
    pub fn gate(&self, keys: std::sync::Arc<ApiKeys>) -> anyhow::Result<crate::Gate> {
        Ok(crate::Gate::new(
            keys,
            crate::limits::Limits::parse(&self.tenant_limits)?,
            self.max_concurrent_calls,
        ))
    }
}
