//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default
//! [`DEFAULT_FILTER`]).

use tracing_subscriber::EnvFilter;

/// `info`, except actix's HTTP/1 dispatcher: it reports every malformed
/// request a client sends at ERROR, so anyone on the network could fill the
/// log (45 lines for 45 probes). Clients' mistakes are not the server's
/// errors; `RUST_LOG=info,actix_http::h1::dispatcher=error` shows them.
pub const DEFAULT_FILTER: &str = "info,actix_http::h1::dispatcher=off";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // A second call (several tests in one process) keeps the first setup.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
