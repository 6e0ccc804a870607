//! Logging setup: `tracing` to stderr, as text or JSON lines
//! (`PUSHLOG_LOG_FORMAT`), filtered by `RUST_LOG` (default
//! [`DEFAULT_FILTER`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `info`, except actix's HTTP/1 dispatcher: it reports every malformed
/// request a client sends at ERROR, so anyone on the network could fill the
/// log, a line per probe. Clients' mistakes are not the server's
/// errors; `RUST_LOG=info,actix_http::h1::dispatcher=error` shows them.
pub const DEFAULT_FILTER: &str = "info,actix_http::h1::dispatcher=off";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (several tests in one process) keeps the first setup.
    let _ = match format {
        // One JSON object a line, with the spans (request, connection) each
        // line happened in: what a log collector parses.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        // Colours only for a person at a terminal, never into a file.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
