//! Configuration: every setting is an environment variable and a matching
//! command-line flag, with the contract's defaults. A value that does not
//! parse stops the process with a message; nothing falls back silently.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client_address::TrustedProxy;
use crate::store::Retention;

#[derive(Debug, Parser)]
#[command(
    name = "pushlog",
    version,
    about = "Real-time push with a durable event log"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Mint a token signed with the configured HS256 secret.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Comma-separated roles, e.g. `publisher`.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Comma-separated topic patterns the token may read (default: all).
    #[arg(long, value_delimiter = ',')]
    pub topics: Option<Vec<String>>,
    /// Lifetime, e.g. `30m`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PUSHLOG_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: String,

    /// The event log: `sqlite://PATH` (embedded, the default).
    #[arg(
        long,
        env = "PUSHLOG_DATABASE_URL",
        default_value = "sqlite://pushlog.db"
    )]
    pub database_url: String,

    /// HS256 secret, at least 32 bytes. Without a secret or a public key the
    /// server runs in development mode with a generated secret.
    #[arg(long, env = "PUSHLOG_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// RS256/ES256 public key: PEM text, or the path of a PEM file.
    #[arg(long, env = "PUSHLOG_JWT_PUBLIC_KEY", conflicts_with = "jwt_secret")]
    pub jwt_public_key: Option<String>,

    /// When set, every token must name this audience in its `aud` claim;
    /// when unset, `aud` is ignored.
    #[arg(long, env = "PUSHLOG_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// When set, every token's `iss` claim must be exactly this; when
    /// unset, `iss` is ignored.
    #[arg(long, env = "PUSHLOG_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object a line) for log collectors.
    #[arg(long, env = "PUSHLOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seconds between SSE `: ping` comments.
    #[arg(long, env = "PUSHLOG_HEARTBEAT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_secs: u64,

    /// Seconds between WebSocket ping frames.
    #[arg(long, env = "PUSHLOG_WS_PING_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ws_ping_secs: u64,

    /// How long events are kept: an age (`7d`, `12h`), a count (`1000000`),
    /// both (`7d,1000000`), or `forever`.
    #[arg(long, env = "PUSHLOG_RETENTION", default_value = "7d", value_parser = parse_retention)]
    pub retention: Retention,

    /// How often the background pruner deletes what retention no longer
    /// keeps (`5s`, `1m`). Between runs the log may hold up to one interval
    /// of traffic beyond its bound.
    #[arg(long, env = "PUSHLOG_PRUNE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub prune_interval: Duration,

    /// Most open streams (SSE and WebSocket together); more get `503`.
    #[arg(long, env = "PUSHLOG_MAX_CONNECTIONS", default_value_t = 19_000)]
    pub max_connections: usize,

    /// WebSocket connections opened without a valid token, waiting for an
    /// `auth` message, held at once: a budget apart from
    /// `PUSHLOG_MAX_CONNECTIONS`, so clients without a token cannot take
    /// the slots of those that have one.
    #[arg(long, env = "PUSHLOG_MAX_PENDING_CONNECTIONS", default_value_t = 256)]
    pub max_pending_connections: usize,

    /// Reverse proxies (addresses or networks, comma-separated) whose
    /// `X-Forwarded-For` names the client for the per-address limits.
    #[arg(long, env = "PUSHLOG_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<TrustedProxy>,

    /// Of those, how many one client address may hold.
    #[arg(long, env = "PUSHLOG_MAX_PENDING_PER_ADDRESS", default_value_t = 8)]
    pub max_pending_per_address: usize,

    /// Most topic patterns one WebSocket connection may subscribe to.
    #[arg(long, env = "PUSHLOG_MAX_SUBSCRIPTIONS", default_value_t = 50)]
    pub max_subscriptions: usize,

    /// Inbound WebSocket messages per second per connection.
    #[arg(long, env = "PUSHLOG_MAX_MESSAGES_PER_SEC", default_value_t = 10)]
    pub max_messages_per_sec: u32,

    /// Largest WebSocket message a client may send, in bytes.
    #[arg(long, env = "PUSHLOG_WS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_frame_bytes: usize,

    /// Browser origins served from elsewhere, comma-separated
    /// (`https://app.example.com`): they may open a WebSocket authenticated
    /// by the `pushlog_token` cookie, and get CORS answers on the front-end
    /// routes. The server's own origin is always allowed; `*` allows any
    /// (CORS then without credentials).
    #[arg(long, env = "PUSHLOG_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Largest event payload, in bytes of compact JSON.
    #[arg(long, env = "PUSHLOG_MAX_PAYLOAD_BYTES", default_value_t = 64 * 1024)]
    pub max_payload_bytes: usize,

    /// Deepest nesting of arrays and objects in an event payload.
    #[arg(long, env = "PUSHLOG_MAX_PAYLOAD_DEPTH", default_value_t = 64)]
    pub max_payload_depth: usize,

    /// Largest publish request body, in bytes.
    #[arg(long, env = "PUSHLOG_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Events a live subscriber may fall behind by before it is reset
    /// (SSE `lagged`) or closed (WebSocket 4008) and must resume from its
    /// cursor.
    #[arg(long, env = "PUSHLOG_SUBSCRIBER_QUEUE", default_value_t = 4096)]
    pub subscriber_queue: usize,

    /// Recent events kept in memory so replays (reconnects) need no query;
    /// bounded to 64 MiB besides. 0 makes every replay read the log.
    #[arg(long, env = "PUSHLOG_REPLAY_MEMORY_EVENTS", default_value_t = 20_000)]
    pub replay_memory_events: usize,

    /// The `retry:` reconnect delay told to SSE clients, in milliseconds.
    #[arg(long, env = "PUSHLOG_SSE_RETRY_MS", default_value_t = 2000)]
    pub sse_retry_ms: u64,

    /// Seconds to let in-flight requests finish on shutdown.
    #[arg(long, env = "PUSHLOG_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Seconds a stream's write may wait on a client that reads nothing
    /// before the connection is dropped.
    #[arg(long, env = "PUSHLOG_STALLED_WRITE_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stalled_write_secs: u64,
}

impl Config {
    /// The defaults, as if no variable or flag were given.
    pub fn defaults() -> Config {
        Cli::parse_from(["pushlog"]).config
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }
}

/// `90s`, `15m`, `12h`, `7d`, `2w`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{raw:?} needs a unit: s, m, h, d or w (e.g. 7d)"))?;
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a number followed by a unit"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {raw:?}: use s, m, h, d or w"
            ));
        }
    };
    if number == 0 {
        return Err(format!("{raw:?} must be longer than zero"));
    }
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// `7d`, `1000000`, `7d,1000000`, or `forever`.
pub fn parse_retention(raw: &str) -> Result<Retention, String> {
    if raw.trim() == "forever" {
        return Ok(Retention::default());
    }
    let mut retention = Retention::default();
    for part in raw.split(',').map(str::trim) {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            let count: u64 = part
                .parse()
                .map_err(|_| format!("{part:?} is too large an event count"))?;
            if count == 0 {
                return Err("an event count must be at least 1".into());
            }
            if retention.max_events.replace(count).is_some() {
                return Err(format!("{raw:?} gives two event counts"));
            }
        } else if retention.max_age.replace(parse_duration(part)?).is_some() {
            return Err(format!("{raw:?} gives two ages"));
        }
    }
    Ok(retention)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7y").is_err());
        assert!(parse_duration("0h").is_err());
    }

    #[test]
    fn retention_is_an_age_a_count_or_both() {
        assert_eq!(
            parse_retention("7d,1000"),
            Ok(Retention {
                max_age: Some(Duration::from_secs(7 * 86_400)),
                max_events: Some(1000)
            })
        );
        assert_eq!(parse_retention("forever"), Ok(Retention::default()));
        assert!(parse_retention("0").is_err());
        assert!(parse_retention("1d,2d").is_err());
    }

    #[test]
    fn the_defaults_are_the_contracts() {
        let config = Config::defaults();
        assert_eq!(config.addr, "0.0.0.0:8080");
        assert_eq!(config.database_url, "sqlite://pushlog.db");
        assert_eq!(config.heartbeat_secs, 15);
        assert_eq!(config.ws_ping_secs, 30);
        assert_eq!(config.max_payload_bytes, 65_536);
        assert_eq!(config.prune_interval, Duration::from_secs(5));
    }
}
