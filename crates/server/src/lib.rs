//! What every Rapport gRPC server and client shares: API-key authentication, TLS, server assembly
//! (trace-context layer, health, reflection, graceful shutdown) and channels to peer services.
//! Business code never sees this crate; each service's `grpc.rs` adapter does.

pub mod args;
pub mod auth;
pub mod caller;
pub mod clock;
pub mod config;
pub mod drain;
pub mod event_log;
pub mod failure;
pub mod guard;
pub mod keys;
pub mod limits;
pub mod peer;
pub mod process;
pub mod progress;
pub mod serve;
pub mod tls;

pub use auth::{ApiKeys, Principal, Role};
pub use clock::Clock;
pub use config::CommonArgs;
pub use drain::{Drain, until_draining};
pub use failure::Failure;
pub use guard::Gate;
pub use limits::Quota;
pub use peer::{
    PeerChannel, RetryBudget, peer_channel, peer_channel_over, peer_request, peer_unavailable,
    with_retries,
};
pub use process::run_process;
pub use progress::{ProgressStream, Reporter, progress_stream};
pub use serve::{ServeError, incoming, serve, shutdown_signal};
