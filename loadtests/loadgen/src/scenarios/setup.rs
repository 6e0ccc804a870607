//! What every scenario settles before anything connects: the topic, the
//! tokens, the source addresses, how long workers may live, and the refusal
//! of what only pushlog can do.

use std::net::IpAddr;
use std::time::Duration;

use super::error::RunError;
use crate::cli::Common;
use crate::http::HttpClient;
use crate::net::{Dialer, loopback_sources};
use crate::probe::unix_micros;
use crate::publisher::{Channel, ProbePublisher};
use crate::token::Credentials;

/// What every scenario sets up the same way.
pub struct Setup {
    pub common: Common,
    pub credentials: Credentials,
    pub topic: String,
    pub sources: Vec<IpAddr>,
    pub dialer: Dialer,
    /// How long workers may live: the run's own length plus its bounded
    /// phases, so a worker outlives any legitimate run but not a stuck one.
    pub lifetime: Duration,
}

impl Setup {
    /// `run_time`: how long the scenario's timed phases take in total.
    pub fn new(common: &Common, scenario: &str, run_time: Duration) -> Result<Setup, RunError> {
        if let Some(topic) = &common.topic {
            common.server.check_topic(topic).map_err(RunError::Setup)?;
        }
        let lifetime = run_time + connect_bound(common) + Duration::from_secs(300);
        // Tokens outlive the workers: an SSE stream ends when its token does.
        let credentials = Credentials::resolve(common, lifetime + Duration::from_secs(600))?;
        let topic = common.topic.clone().unwrap_or_else(|| {
            format!(
                "loadgen.{scenario}.{}.{}",
                unix_micros() / 1000,
                std::process::id()
            )
        });
        let sources = loopback_sources(common.url.addr, common.source_ips);
        let dialer = Dialer::new(common.url.addr, sources.clone());
        Ok(Setup {
            common: common.clone(),
            credentials,
            topic,
            sources,
            dialer,
            lifetime,
        })
    }

    pub fn connect_bound(&self) -> Duration {
        connect_bound(&self.common)
    }

    /// Where this run publishes.
    pub fn channel(&self) -> Result<Channel, RunError> {
        Ok(Channel {
            server: self.common.server,
            topic: self.topic.clone(),
            token: self.credentials.publisher()?.map(str::to_string),
        })
    }

    /// A keep-alive client to the server whose socket takes the source
    /// address connection number `index` would, so publishers spread over
    /// the addresses the way subscribers do.
    pub fn http_client(&self, index: usize) -> HttpClient {
        HttpClient::new(self.dialer.clone(), index, self.common.url.clone())
    }

    /// The one publisher of probe events that subscribers check against.
    /// Its socket comes from the first source address, like connection 0;
    /// it is one socket among thousands.
    pub fn probe_publisher(&self, channel: Channel) -> ProbePublisher {
        ProbePublisher::new(self.http_client(0), channel)
    }
}

/// Refuses, before anything connects, what only pushlog can do; `what`
/// says what and why.
pub fn require_pushlog(common: &Common, what: &str) -> Result<(), RunError> {
    common.server.require_pushlog(what).map_err(RunError::Setup)
}

/// Refuses `--batch` above 1 against nchan, which takes one message per
/// request.
pub fn require_single_events_for_nchan(common: &Common, batch: u32) -> Result<(), RunError> {
    if batch > 1 {
        require_pushlog(common, "nchan takes one message per request; drop --batch")?;
    }
    Ok(())
}

/// The longest connecting every subscriber of one worker can take: each
/// attempt is bounded by the connect timeout, `connect_concurrency` at a time.
fn connect_bound(common: &Common) -> Duration {
    let rounds = common
        .per_worker
        .div_ceil(common.connect_concurrency)
        .max(1);
    (common.connect_timeout * rounds).min(Duration::from_secs(1800)) + Duration::from_secs(5)
}
