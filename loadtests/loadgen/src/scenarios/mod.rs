//! The scenarios, and what they share: tokens, topic, source addresses,
//! worker specs, and watching the server's (and loadgen's own) RSS and CPU.

pub mod conns;
pub mod fanout;
pub mod publish;
pub mod storm;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cli::{Common, Scenario};
use crate::net::{Dialer, loopback_sources};
use crate::procstat::{self, Sample, cpu_between, round1};
use crate::publisher::Channel;
use crate::report::Outcome;
use crate::token::{Credentials, CredentialsError};
use crate::worker::pool::{Pool, PoolError, shares};
use crate::worker::protocol::{Tally, WorkerSpec, combine};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("{0}")]
    Setup(String),
}

pub async fn run(scenario: Scenario) -> Result<Outcome, RunError> {
    match scenario {
        Scenario::Conns(args) => conns::run(args).await,
        Scenario::Fanout(args) => fanout::run(args).await,
        Scenario::Publish(args) => publish::run(args).await,
        Scenario::Storm(args) => storm::run(args).await,
        Scenario::Worker => Err(RunError::Setup("`worker` is not a scenario".into())),
    }
}

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
                crate::probe::unix_micros() / 1000,
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

    /// One spec per worker for `sse + ws` subscribers.
    pub fn worker_specs(&self, sse: u32, ws: u32) -> Vec<WorkerSpec> {
        shares(sse, ws, self.common.per_worker)
            .into_iter()
            .enumerate()
            .map(|(index, (sse, ws, first_connection))| WorkerSpec {
                index,
                url: self.common.url.to_string(),
                server: self.common.server,
                token: self.credentials.reader().map(str::to_string),
                topic: self.topic.clone(),
                sse,
                ws,
                first_connection,
                source_ips: self.sources.clone(),
                connect_concurrency: self.common.connect_concurrency,
                connect_timeout_ms: self.common.connect_timeout.as_millis() as u64,
                lifetime_ms: self.lifetime.as_millis() as u64,
            })
            .collect()
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
}

/// Refuses, before anything connects, what only pushlog can do; `what`
/// says what and why.
pub fn require_pushlog(common: &Common, what: &str) -> Result<(), RunError> {
    common.server.require_pushlog(what).map_err(RunError::Setup)
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

/// Samples the server (with its child processes: nginx's workers) and
/// loadgen itself (parent and workers).
pub struct Watch {
    pub server_pid: Option<u32>,
    pub loadgen_pids: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub server: Option<Sample>,
    pub loadgen: Option<Sample>,
}

impl Watch {
    pub fn new(server_pid: Option<u32>) -> Watch {
        Watch {
            server_pid,
            loadgen_pids: vec![std::process::id()],
        }
    }

    pub fn add_workers(&mut self, pids: Vec<u32>) {
        self.loadgen_pids.extend(pids);
    }

    pub fn snapshot(&self) -> Snapshot {
        let server = self
            .server_pid
            .and_then(|pid| match procstat::sample_tree(pid) {
                Ok(sample) => Some(sample),
                Err(error) => {
                    eprintln!("loadgen: {error}");
                    None
                }
            });
        Snapshot {
            server,
            loadgen: procstat::sample_group(&self.loadgen_pids),
        }
    }
}

/// Warns when the server already holds many connections: pushlog notices a
/// vanished SSE client only when its next heartbeat write fails, so streams
/// from a previous run can hold connection slots (and memory) for up to a
/// heartbeat interval or two after it ended, and skew this run's figures.
pub fn warn_if_busy(scenario: &str, before: &Snapshot) {
    if let Some(files) = before.server.and_then(|s| s.open_files)
        && files > 200
    {
        progress(
            scenario,
            &format!(
                "warning: the server already has {files} open files; connections from an \
                 earlier run may not be reaped yet (wait a heartbeat interval or two)"
            ),
        );
    }
}

/// The server's figures: RSS, PSS and open files at each named moment, and
/// CPU over the window from `from` to `to`, all processes together.
pub fn server_figures(
    pid: Option<u32>,
    moments: &[(&str, &Snapshot)],
    from: &Snapshot,
    to: &Snapshot,
) -> Value {
    let Some(pid) = pid else {
        return Value::Null;
    };
    let mut rss = Map::new();
    let mut pss = Map::new();
    let mut files = Map::new();
    for (name, snapshot) in moments {
        if let Some(sample) = snapshot.server {
            rss.insert((*name).into(), sample.rss_kib.into());
            pss.insert((*name).into(), sample.pss_kib.into());
            files.insert((*name).into(), sample.open_files.into());
        }
    }
    let cpu = match (from.server, to.server) {
        (Some(a), Some(b)) => json!(cpu_between(&a, &b)),
        _ => Value::Null,
    };
    let threads = to.server.and_then(|s| s.threads);
    let processes = to.server.map(|s| s.processes);
    json!({
        "pid": pid, "processes": processes, "rss_kib": rss, "pss_kib": pss,
        "open_files": files, "threads": threads, "cpu": cpu,
    })
}

/// Loadgen's own CPU and RSS (all processes) over the same window: on a
/// two-core machine it competes with the server, and the reader should know
/// by how much.
pub fn loadgen_figures(workers: usize, from: &Snapshot, to: &Snapshot) -> Value {
    match (from.loadgen, to.loadgen) {
        (Some(a), Some(b)) => json!({
            "workers": workers,
            "cpu": cpu_between(&a, &b),
            "rss_kib": b.rss_kib,
        }),
        _ => json!({"workers": workers}),
    }
}

/// Opens `sse` + `ws` subscribers to the run's topic, spread over worker
/// processes, and counts the workers into `usage`; returns the pool and the
/// tally as the connections opened.
pub async fn subscribe_all(
    scenario: &str,
    setup: &Setup,
    sse: u32,
    ws: u32,
    usage: &mut Watch,
) -> Result<(Pool, Tally), RunError> {
    progress(
        scenario,
        &format!(
            "subscribing {sse} SSE + {ws} WebSocket clients to {}",
            setup.topic
        ),
    );
    let (pool, opened) = Pool::start(setup.worker_specs(sse, ws), setup.connect_bound()).await?;
    usage.add_workers(pool.pids());
    let (_, at_open) = combine(&opened);
    Ok((pool, at_open))
}

/// Each transport's tally as figures, keyed by transport name.
pub fn transport_figures(per_transport: &BTreeMap<String, Tally>) -> Value {
    per_transport
        .iter()
        .map(|(name, tally)| (name.clone(), json!(tally.view())))
        .collect::<Map<String, Value>>()
        .into()
}

/// Server CPU percent over a window, if measured.
pub fn server_cpu_pct(from: &Snapshot, to: &Snapshot) -> Option<f64> {
    Some(cpu_between(&from.server?, &to.server?).cpu_pct)
}

pub fn server_cpu_us(from: &Snapshot, to: &Snapshot) -> Option<u64> {
    Some(cpu_between(&from.server?, &to.server?).cpu_us)
}

/// The kernel's part of `server_cpu_us`.
pub fn server_sys_us(from: &Snapshot, to: &Snapshot) -> Option<u64> {
    Some(cpu_between(&from.server?, &to.server?).sys_us)
}

/// Microseconds per item, to two decimals; `None` without items.
pub fn per_item(micros: Option<u64>, items: u64) -> Option<f64> {
    micros
        .filter(|_| items > 0)
        .map(|us| (us as f64 / items as f64 * 100.0).round() / 100.0)
}

/// The flags every result line repeats, so a line stands on its own.
pub fn common_params(setup: &Setup) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("server".into(), setup.common.server.name().into());
    params.insert("url".into(), setup.common.url.to_string().into());
    params.insert("topic".into(), setup.topic.clone().into());
    params.insert("source_ips".into(), setup.common.source_ips.into());
    params.insert("per_worker".into(), setup.common.per_worker.into());
    params.insert(
        "connect_concurrency".into(),
        setup.common.connect_concurrency.into(),
    );
    params.insert("max_failed_pct".into(), setup.common.max_failed_pct.into());
    params
}

/// Prints a progress line on stderr.
pub fn progress(scenario: &str, text: &str) {
    eprintln!("[loadgen {scenario}] {text}");
}

/// Rounds a rate for the result line.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        round1(count as f64 / secs)
    } else {
        0.0
    }
}
