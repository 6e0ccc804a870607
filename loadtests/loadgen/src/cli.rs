//! The command line: one subcommand per scenario, sharing [`Common`] flags.
//! Every scenario is bounded in connections, events and time.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::server::Server;
use crate::target::Target;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for pushlog: idle connections, fan-out latency, publish throughput, reconnect storms"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Hold N idle connections (half SSE, half WebSocket by default) with
    /// heartbeats on; report the server's RSS and CPU over the hold.
    Conns(ConnsArgs),
    /// N subscribers on one topic, one publisher at a set rate (or `max`);
    /// publish→receive latency and per-subscriber gap/duplicate/order checks.
    Fanout(FanoutArgs),
    /// C concurrent publishers over keep-alive connections for D seconds;
    /// acknowledged events/s and latency percentiles.
    Publish(PublishArgs),
    /// N clients subscribe, drop, fall K events behind, then all reconnect
    /// at once with their cursor while publishing continues.
    Storm(StormArgs),
    /// Internal: a child process holding a share of the subscribers, driven
    /// by JSON lines on stdin.
    #[command(hide = true)]
    Worker,
}

/// Flags every scenario shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The server's base URL; loopback addresses only.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: Target,

    /// Which server `--url` points at: pushlog, or nginx with the nchan
    /// module as configured in loadtests/compare (the baseline; no tokens).
    #[arg(long, value_enum, default_value_t = Server::Pushlog)]
    pub server: Server,

    /// HS256 secret to mint tokens with (the server's `PUSHLOG_JWT_SECRET`).
    #[arg(long, env = "LOADGEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// A token with the role `publisher`, instead of minting one.
    #[arg(long, env = "LOADGEN_PUBLISHER_TOKEN", hide_env_values = true)]
    pub publisher_token: Option<String>,

    /// A token for subscribers, instead of minting one.
    #[arg(long, env = "LOADGEN_READER_TOKEN", hide_env_values = true)]
    pub reader_token: Option<String>,

    /// The server's process id, to report its RSS and CPU from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// The topic to use; by default a fresh one per run, so that this run is
    /// the only publisher on it.
    #[arg(long)]
    pub topic: Option<String>,

    /// How many loopback source addresses (127.0.0.2, 127.0.0.3, …) to spread
    /// client sockets over; each gives ~28k ephemeral ports towards the server.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=200))]
    pub source_ips: u8,

    /// Most connections per worker process (each process may hold at most
    /// 20,000 open files).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=15_000))]
    pub per_worker: u32,

    /// Connection attempts in flight at once per worker while ramping up.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub connect_concurrency: u32,

    /// How long one connection attempt may take, up to the subscription
    /// being confirmed.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Percentage of connections that may fail (to connect, or by ending
    /// unexpectedly) before the run counts as failed.
    #[arg(long, default_value_t = 0.0)]
    pub max_failed_pct: f64,
}

/// Which transport subscribers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportMix {
    Sse,
    Ws,
    /// Half SSE, half WebSocket (SSE takes the odd one).
    Both,
}

impl TransportMix {
    /// `(sse, ws)` for `total` connections.
    pub fn split(self, total: u32) -> (u32, u32) {
        match self {
            TransportMix::Sse => (total, 0),
            TransportMix::Ws => (0, total),
            TransportMix::Both => (total - total / 2, total / 2),
        }
    }
}

impl fmt::Display for TransportMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportMix::Sse => "sse",
            TransportMix::Ws => "ws",
            TransportMix::Both => "both",
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct ConnsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold.
    #[arg(long, short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub connections: u32,
    #[arg(long, value_enum, default_value_t = TransportMix::Both)]
    pub transport: TransportMix,
    /// How long to hold them once all are open. Run the server with short
    /// heartbeats (PUSHLOG_HEARTBEAT_SECS, PUSHLOG_WS_PING_SECS) to see
    /// several within the hold.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub hold: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribers on the topic.
    #[arg(long, short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub subscribers: u32,
    #[arg(long, value_enum, default_value_t = TransportMix::Both)]
    pub transport: TransportMix,
    /// Events per second, or `max` to publish as fast as the publisher goes.
    #[arg(long, default_value = "10")]
    pub rate: Pace,
    /// How long to publish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Events per publish request.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    /// How long subscribers may take to receive the last event after
    /// publishing stops.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent publishers, each on its own keep-alive connection.
    #[arg(long, short = 'c', default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub publishers: u32,
    /// How long to publish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Events per request (1 = single events; up to 1000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    /// Approximate payload size per event, in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub payload_bytes: u32,
    /// Give every event an idempotency key (the server then looks keys up
    /// before appending).
    #[arg(long)]
    pub keys: bool,
    /// Give every event an entity, one of this many in turn, so the server
    /// keeps its entity index as well (0: events without an entity).
    #[arg(long, default_value_t = 0)]
    pub entities: u32,
}

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Clients that drop and reconnect together.
    #[arg(long, short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub clients: u32,
    #[arg(long, value_enum, default_value_t = TransportMix::Both)]
    pub transport: TransportMix,
    /// Events published while the clients are away: how far behind each is.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub behind: u32,
    /// Events per second published during the reconnect.
    #[arg(long, default_value = "20")]
    pub rate: Pace,
    /// Reconnect attempts in flight at once per worker; 0 = all at once.
    #[arg(long, default_value_t = 0)]
    pub reconnect_concurrency: u32,
    /// How long clients may take to catch up after reconnecting.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub catch_up_timeout: Duration,
}

/// A publishing pace: a fixed rate, or as fast as the publisher goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    PerSecond(f64),
    Max,
}

impl FromStr for Pace {
    type Err = String;
    fn from_str(raw: &str) -> Result<Pace, String> {
        if raw.eq_ignore_ascii_case("max") {
            return Ok(Pace::Max);
        }
        match raw.parse::<f64>() {
            Ok(rate) if rate > 0.0 && rate <= 1_000_000.0 => Ok(Pace::PerSecond(rate)),
            _ => Err(format!(
                "{raw:?} is not a rate: give events per second (0 < r ≤ 1000000) or `max`"
            )),
        }
    }
}

impl fmt::Display for Pace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pace::PerSecond(rate) => write!(f, "{rate}"),
            Pace::Max => f.write_str("max"),
        }
    }
}

/// `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds. Capped at a day
/// so that a typo cannot make a run go on indefinitely.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration (e.g. 500ms, 10s, 2m)"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("{raw:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{raw:?} is out of range (at most 24h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("25h").is_err());
    }

    #[test]
    fn both_transports_split_half_and_half() {
        assert_eq!(TransportMix::Both.split(19_000), (9_500, 9_500));
        assert_eq!(TransportMix::Both.split(5), (3, 2));
        assert_eq!(TransportMix::Ws.split(5), (0, 5));
    }

    #[test]
    fn pace_is_a_rate_or_max() {
        assert_eq!("max".parse::<Pace>(), Ok(Pace::Max));
        assert_eq!("10".parse::<Pace>(), Ok(Pace::PerSecond(10.0)));
        assert!("0".parse::<Pace>().is_err());
        assert!("fast".parse::<Pace>().is_err());
    }

    #[test]
    fn the_server_flag_defaults_to_pushlog() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().scenario {
            Scenario::Conns(args) => args.common.server,
            _ => unreachable!(),
        };
        assert_eq!(parse(&["loadgen", "conns"]), Server::Pushlog);
        assert_eq!(
            parse(&["loadgen", "conns", "--server", "nchan"]),
            Server::Nchan
        );
        assert!(Cli::try_parse_from(["loadgen", "conns", "--server", "centrifugo"]).is_err());
    }
}
