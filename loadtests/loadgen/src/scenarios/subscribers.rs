//! The subscribers of `conns`, `fanout` and `storm`: N connections to the
//! run's topic, SSE and WebSocket mixed as asked, spread over worker
//! processes and source addresses, commanded all at once and tallied
//! together.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::error::RunError;
use super::setup::Setup;
use super::usage::Watch;
use crate::cli::TransportMix;
use crate::report::Checks;
use crate::worker::pool::{Pool, shares};
use crate::worker::protocol::{Command, Report, Tally, WorkerSpec, combine};

/// How many subscribers use each transport.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub transport: TransportMix,
    pub sse: u32,
    pub ws: u32,
}

impl Mix {
    /// `total` subscribers shared between the transports as `--transport` says.
    pub fn new(transport: TransportMix, total: u32) -> Mix {
        let (sse, ws) = transport.split(total);
        Mix { transport, sse, ws }
    }

    /// The mix as the result line's parameters.
    pub fn add_params(&self, params: &mut Map<String, Value>) {
        params.insert("transport".into(), self.transport.to_string().into());
        params.insert("sse".into(), self.sse.into());
        params.insert("ws".into(), self.ws.into());
    }
}

/// Live subscribers, held by worker processes until [`Subscribers::finish`].
pub struct Subscribers {
    pool: Pool,
    /// Every transport together, as the connections opened.
    pub at_open: Tally,
    /// How long opening them took.
    pub open_secs: f64,
}

/// Every worker's answer to one command, added up.
pub struct Round {
    /// Every transport together, as the command completed.
    pub all: Tally,
    /// Whether some worker's phase ended by its timeout rather than by
    /// completing.
    pub timed_out: bool,
}

/// The last tallies, after the workers have exited.
pub struct Finished {
    /// How many worker processes held the subscribers.
    pub workers: usize,
    pub per_transport: BTreeMap<String, Tally>,
    pub all: Tally,
}

impl Subscribers {
    /// Opens `mix` subscribers to the run's topic and counts their workers
    /// into `usage`, so loadgen's own figures include them. Returns once
    /// every subscriber is live or has failed.
    pub async fn open(setup: &Setup, mix: Mix, usage: &mut Watch) -> Result<Subscribers, RunError> {
        let began = Instant::now();
        let (pool, opened) = Pool::start(worker_specs(setup, mix), setup.connect_bound()).await?;
        let open_secs = began.elapsed().as_secs_f64();
        usage.add_workers(pool.pids());
        let (_, at_open) = combine(&opened);
        Ok(Subscribers {
            pool,
            at_open,
            open_secs,
        })
    }

    /// Sends `command` to every worker and waits for all to answer;
    /// `timeout` is the phase's own bound.
    pub async fn command(
        &mut self,
        command: Command,
        timeout: Duration,
    ) -> Result<Round, RunError> {
        let reports = self.pool.broadcast(&command, timeout).await?;
        Ok(round(&reports))
    }

    /// Waits until every live subscriber has every event up to `last_seq`,
    /// or `timeout` has passed.
    pub async fn drain(&mut self, last_seq: u64, timeout: Duration) -> Result<Round, RunError> {
        let command = Command::Drain {
            last_seq,
            timeout_ms: timeout.as_millis() as u64,
        };
        self.command(command, timeout).await
    }

    /// Tells every worker to report and exit. `last_seq`: the last event
    /// published, if any, so events never received count as missing.
    pub async fn finish(self, last_seq: Option<u64>) -> Result<Finished, RunError> {
        let workers = self.pool.len();
        let reports = self.pool.finish(last_seq).await?;
        let (per_transport, all) = combine(&reports);
        Ok(Finished {
            workers,
            per_transport,
            all,
        })
    }
}

fn round(reports: &[Report]) -> Round {
    let (_, all) = combine(reports);
    Round {
        all,
        timed_out: reports.iter().any(|report| report.timed_out),
    }
}

/// One spec per worker: at most `--per-worker` subscribers each, both
/// transports spread evenly, and every worker told the global number of its
/// first connection so source addresses rotate across workers.
fn worker_specs(setup: &Setup, mix: Mix) -> Vec<WorkerSpec> {
    let common = &setup.common;
    shares(mix.sse, mix.ws, common.per_worker)
        .into_iter()
        .enumerate()
        .map(|(index, (sse, ws, first_connection))| WorkerSpec {
            index,
            url: common.url.to_string(),
            server: common.server,
            token: setup.credentials.reader().map(str::to_string),
            topic: setup.topic.clone(),
            sse,
            ws,
            first_connection,
            source_ips: setup.sources.clone(),
            connect_concurrency: common.connect_concurrency,
            connect_timeout_ms: common.connect_timeout.as_millis() as u64,
            lifetime_ms: setup.lifetime.as_millis() as u64,
        })
        .collect()
}

/// The promise every subscriber checks: each event once, in order, and
/// every message readable.
pub fn check_every_event_once_in_order(checks: &mut Checks, all: &Tally) {
    checks.none("gaps", all.sequence.gaps);
    checks.none("missing events", all.missing_events);
    checks.none("duplicates", all.sequence.duplicates);
    checks.none("out-of-order events", all.sequence.out_of_order);
    checks.none("unreadable messages", all.unreadable);
}
