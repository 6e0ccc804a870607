//! Configuration: every setting is an environment variable and a matching
//! command-line flag, with the contract's defaults. A value that does not
//! parse stops the process with a message; nothing falls back silently.
//! Messages name the setting the way the user set it: the variable when the
//! value came from the environment, the flag when from the command line.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::domain::trusted_proxy::TrustedProxy;

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

    /// The event log: `sqlite://PATH` (embedded, the default) or
    /// `postgres://…` (one log shared by several nodes).
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
    pub retention: LogRetention,

    /// How long the entity index keeps the latest event of each entity, for
    /// `/events/changes`: an age (`90d`) or `forever`. An entry ages out only
    /// once the log has let its event go too. Meant to be much longer than
    /// `PUSHLOG_RETENTION`, so that a client away longer than the log keeps
    /// can still learn which entities changed.
    #[arg(long, env = "PUSHLOG_ENTITY_RETENTION", default_value = "90d",
          value_parser = parse_entity_retention)]
    pub entity_retention: EntityRetention,

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

impl Cli {
    /// The process's command line and environment. A value that does not
    /// parse ends the process with status 2 and a message naming what the
    /// user set (see [`Cli::try_parse_named`]); `--help` and `--version`
    /// end it as clap does.
    pub fn parse_named() -> (Cli, Origins) {
        match Cli::try_parse_named(std::env::args_os(), |name| std::env::var_os(name)) {
            Ok(parsed) => parsed,
            Err(ParseError::Clap(error)) => error.exit(),
            Err(named) => {
                eprintln!("pushlog: {}", named.message());
                std::process::exit(2)
            }
        }
    }

    /// Parses `args`, with the environment as clap reads it. clap reports a
    /// bad value under its flag wherever the value came from, which sends
    /// someone who set `PUSHLOG_RETENTION` looking for a `--retention` they
    /// never typed; so a bad value or a conflict is told again here under
    /// the name the user set, found from `args` and `env` (the variable
    /// lookup, a parameter so tests need not touch the process's
    /// environment). Anything else is clap's own error.
    pub fn try_parse_named<I, T>(
        args: I,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<(Cli, Origins), ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Cli::command();
        // Built, as parsing builds its own copy: an argument is displayed
        // (and so found by clap's name for it) only once built.
        command.build();
        let matches = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(|error| ParseError::named(error, &command, &args, &env))?;
        let cli = Cli::from_arg_matches(&matches).map_err(ParseError::Clap)?;
        Ok((cli, Origins::of(&command, &matches)))
    }
}

/// A command line or environment pushlog cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A value that does not parse, under the name the user set it by.
    #[error("{}", describe_invalid(setting, value.as_deref(), reason))]
    Invalid {
        /// `PUSHLOG_RETENTION` or `--retention`.
        setting: String,
        /// What was given; `None` for a value never to be echoed (secrets).
        value: Option<String>,
        reason: String,
        /// What the setting takes: its help text.
        accepted: Option<String>,
    },
    /// Two settings that exclude each other, both set.
    #[error("{first} and {second} cannot both be set: use one")]
    Conflict { first: String, second: String },
    /// Everything else (`--help`, an unknown flag, a missing value), as
    /// clap words it: those name the flags as they were typed.
    #[error(transparent)]
    Clap(clap::Error),
}

fn describe_invalid(setting: &str, value: Option<&str>, reason: &str) -> String {
    match value {
        Some(value) => format!("invalid value {value:?} for {setting}: {reason}"),
        None => format!("invalid value for {setting}: {reason}"),
    }
}

impl ParseError {
    /// The message as printed: the error, then on a line of its own what
    /// the setting accepts.
    pub fn message(&self) -> String {
        match self {
            ParseError::Invalid {
                setting,
                accepted: Some(accepted),
                ..
            } => format!("{self}\n  {setting}: {accepted}"),
            _ => self.to_string(),
        }
    }

    fn named(
        error: clap::Error,
        command: &clap::Command,
        args: &[OsString],
        env: &impl Fn(&str) -> Option<OsString>,
    ) -> ParseError {
        let arg_named = |context| match error.get(context) {
            Some(ContextValue::String(shown)) => command
                .get_arguments()
                .find(|arg| arg.to_string() == *shown),
            Some(ContextValue::Strings(shown)) => shown.first().and_then(|shown| {
                command
                    .get_arguments()
                    .find(|arg| arg.to_string() == *shown)
            }),
            _ => None,
        };
        match error.kind() {
            ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
                let Some(arg) = arg_named(ContextKind::InvalidArg) else {
                    return ParseError::Clap(error);
                };
                let from_env = source_of(arg, args, env) == Some(ValueSource::EnvVariable);
                // A secret is not echoed, wherever it came from.
                let value = match error.get(ContextKind::InvalidValue) {
                    Some(ContextValue::String(value)) if !arg.is_hide_env_values_set() => {
                        Some(value.clone())
                    }
                    _ => None,
                };
                let reason = match (error.kind(), error.get(ContextKind::ValidValue)) {
                    (ErrorKind::InvalidValue, Some(ContextValue::Strings(valid))) => {
                        format!("use one of {}", valid.join(", "))
                    }
                    _ => std::error::Error::source(&error)
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "not a valid value".into()),
                };
                ParseError::Invalid {
                    setting: name_of(arg, from_env),
                    value,
                    reason,
                    accepted: arg.get_help().map(ToString::to_string),
                }
            }
            ErrorKind::ArgumentConflict => {
                match (
                    arg_named(ContextKind::InvalidArg),
                    arg_named(ContextKind::PriorArg),
                ) {
                    (Some(first), Some(second)) => {
                        let name = |arg: &Arg| {
                            let from_env =
                                source_of(arg, args, env) == Some(ValueSource::EnvVariable);
                            name_of(arg, from_env)
                        };
                        ParseError::Conflict {
                            first: name(first),
                            second: name(second),
                        }
                    }
                    _ => ParseError::Clap(error),
                }
            }
            _ => ParseError::Clap(error),
        }
    }
}

/// Where `arg`'s value came from when parsing failed (clap's matches, which
/// would say, are lost with the error): the command line when its flag is
/// there, which wins over the environment as in clap; else the environment
/// when its variable is set.
fn source_of(
    arg: &Arg,
    args: &[OsString],
    env: &impl Fn(&str) -> Option<OsString>,
) -> Option<ValueSource> {
    let on_command_line = arg.get_long().is_some_and(|long| {
        let flag = format!("--{long}");
        let with_value = format!("--{long}=");
        args.iter()
            .skip(1)
            .take_while(|given| given.as_os_str() != OsStr::new("--"))
            .filter_map(|given| given.to_str())
            .any(|given| given == flag || given.starts_with(&with_value))
    });
    if on_command_line {
        Some(ValueSource::CommandLine)
    } else if arg
        .get_env()
        .and_then(|name| name.to_str())
        .is_some_and(|name| env(name).is_some())
    {
        Some(ValueSource::EnvVariable)
    } else {
        None
    }
}

/// `PUSHLOG_RETENTION` when the value came from the environment, else
/// `--retention`.
fn name_of(arg: &Arg, from_env: bool) -> String {
    match (from_env, arg.get_env(), arg.get_long()) {
        (true, Some(env), _) => env.to_string_lossy().into_owned(),
        (_, _, Some(long)) => format!("--{long}"),
        _ => arg.get_id().to_string(),
    }
}

/// Where each setting of a successful parse came from, so that an error
/// found later (an address that cannot be bound, a database that cannot be
/// opened) names the setting to fix the way the user set it.
#[derive(Debug)]
pub struct Origins {
    names: HashMap<String, String>,
}

impl Origins {
    fn of(command: &clap::Command, matches: &ArgMatches) -> Origins {
        let names = command
            .get_arguments()
            .map(|arg| {
                let id = arg.get_id().as_str();
                // A default is changed through the variable, the way a
                // deployment configures; the flag only when it was typed.
                let typed = matches.value_source(id) == Some(ValueSource::CommandLine);
                (id.to_owned(), name_of(arg, !typed))
            })
            .collect();
        Origins { names }
    }

    /// The name of the setting with this field name (`"database_url"`):
    /// `--database-url` when the command line set it, else
    /// `PUSHLOG_DATABASE_URL`.
    pub fn name<'a>(&'a self, field: &'a str) -> &'a str {
        self.names.get(field).map_or(field, String::as_str)
    }
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

/// How long the log keeps events: an age, a count, both (an event goes once
/// it is outside either), or neither (forever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRetention {
    pub max_age: Option<Duration>,
    pub max_events: Option<u64>,
}

/// How long entity index rows are kept; `None` is forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityRetention(pub Option<Duration>);

/// `--entity-retention`: an age, or `forever`.
pub fn parse_entity_retention(raw: &str) -> Result<EntityRetention, String> {
    if raw.trim() == "forever" {
        return Ok(EntityRetention(None));
    }
    parse_duration(raw).map(|age| EntityRetention(Some(age)))
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
pub fn parse_retention(raw: &str) -> Result<LogRetention, String> {
    if raw.trim() == "forever" {
        return Ok(LogRetention::default());
    }
    let mut retention = LogRetention::default();
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
            Ok(LogRetention {
                max_age: Some(Duration::from_secs(7 * 86_400)),
                max_events: Some(1000),
            })
        );
        assert_eq!(parse_retention("forever"), Ok(LogRetention::default()));
        assert!(parse_retention("0").is_err());
        assert!(parse_retention("1d,2d").is_err());
    }

    #[test]
    fn entity_retention_is_an_age_or_forever() {
        assert_eq!(
            parse_entity_retention("90d"),
            Ok(EntityRetention(Some(Duration::from_secs(90 * 86_400))))
        );
        assert_eq!(parse_entity_retention("forever"), Ok(EntityRetention(None)));
        assert!(parse_entity_retention("1000").is_err(), "a count is no age");
    }

    /// The command line alone, as if no variable were set.
    fn parse(args: &[&str]) -> Result<(Cli, Origins), ParseError> {
        Cli::try_parse_named(args.iter().copied(), |_| None)
    }

    #[test]
    fn a_bad_value_on_the_command_line_is_named_by_its_flag_with_what_it_takes() {
        let Err(error) = parse(&["pushlog", "--retention=banana"]) else {
            panic!("banana is no retention");
        };
        assert!(
            matches!(&error, ParseError::Invalid { setting, value: Some(value), .. }
                if setting == "--retention" && value == "banana"),
            "{error:?}"
        );
        assert!(error.message().contains("`forever`"), "{}", error.message());
    }

    #[test]
    fn a_bad_choice_lists_the_choices() {
        let Err(error) = parse(&["pushlog", "--log-format", "xml"]) else {
            panic!("xml is no log format");
        };
        assert!(error.to_string().contains("text, json"), "{error}");
    }

    #[test]
    fn settings_are_named_by_their_flag_only_when_the_command_line_set_them() {
        let (_, origins) = parse(&["pushlog", "--addr", "127.0.0.1:9"]).expect("parses");
        assert_eq!(origins.name("addr"), "--addr");
        assert_eq!(origins.name("database_url"), "PUSHLOG_DATABASE_URL");
    }

    #[test]
    fn usage_mistakes_keep_clap_words() {
        assert!(matches!(
            parse(&["pushlog", "--no-such-flag"]),
            Err(ParseError::Clap(_))
        ));
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
