//! The worker side: hold a share of the subscribers and carry out the
//! parent's commands, one reply line per command.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::protocol::{Command, Reply, Report, Tally, WorkerSpec};
use crate::histogram::Recorder;
use crate::net::Dialer;
use crate::subscriber::{self, CatchUpGoal, Plan, Shared, State, Track, lock, slot};
use crate::target::Target;
use crate::transport::Transport;

/// How often a waiting phase looks at its subscribers. Each look locks every
/// record once, little next to the interval even for a full worker;
/// catch-up times are stamped by the subscribers themselves, not by this
/// poll.
const POLL: Duration = Duration::from_millis(20);

struct Subscriber {
    /// The global connection number (picks the source address).
    index: usize,
    track: Arc<Mutex<Track>>,
    task: Option<JoinHandle<()>>,
}

struct Worker {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    subscribers: Vec<Subscriber>,
    /// The last event published, as last told by the parent.
    last_seq: Option<u64>,
}

pub async fn run() -> ExitCode {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let spec = match lines.next_line().await {
        Ok(Some(line)) => match serde_json::from_str::<Command>(&line) {
            Ok(Command::Start(spec)) => spec,
            Ok(_) => return fail("the first command must be `start`"),
            Err(error) => return fail(&format!("unreadable command: {error}")),
        },
        Ok(None) => return fail("no start command"),
        Err(error) => return fail(&format!("cannot read stdin: {error}")),
    };
    let lifetime = Duration::from_millis(spec.lifetime_ms);
    let worker = match Worker::new(&spec) {
        Ok(worker) => worker,
        Err(error) => return fail(&error),
    };
    match tokio::time::timeout(lifetime, serve(worker, spec, &mut lines)).await {
        Ok(code) => code,
        Err(_) => fail("lifetime exceeded; exiting"),
    }
}

async fn serve(
    mut worker: Worker,
    spec: WorkerSpec,
    lines: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
) -> ExitCode {
    let began = Instant::now();
    let timeout = Duration::from_millis(spec.lifetime_ms);
    let all = worker.connect(spec.connect_concurrency, |_| true);
    let timed_out = worker
        .wait(timeout, &all, |t| t.state != State::Connecting)
        .await;
    send(&Reply::Report(worker.report(timed_out, began)));

    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            // The parent is gone: nobody will read a report.
            Ok(None) | Err(_) => return ExitCode::from(2),
        };
        let command = match serde_json::from_str::<Command>(&line) {
            Ok(command) => command,
            Err(error) => return fail(&format!("unreadable command: {error}")),
        };
        let began = Instant::now();
        match command {
            Command::Start(_) => return fail("already started"),
            Command::Drain {
                last_seq,
                timeout_ms,
            } => {
                worker.last_seq = Some(last_seq);
                let everyone: Vec<usize> = (0..worker.subscribers.len()).collect();
                let timed_out = worker
                    .wait(Duration::from_millis(timeout_ms), &everyone, |t| {
                        t.state != State::Live || t.check.next_expected() > last_seq
                    })
                    .await;
                send(&Reply::Report(worker.report(timed_out, began)));
            }
            Command::Drop => {
                worker.drop_all();
                send(&Reply::Report(worker.report(false, began)));
            }
            Command::Reconnect {
                target_id,
                concurrency,
                timeout_ms,
            } => {
                *lock(&worker.shared.catch_up) = Some(CatchUpGoal {
                    target_id,
                    since: Instant::now(),
                });
                // Only those dropped on purpose come back: a subscriber that
                // never connected has no cursor to resume from.
                let rejoining = worker.connect(concurrency, |t| t.state == State::Dropped);
                let timed_out = worker
                    .wait(Duration::from_millis(timeout_ms), &rejoining, |t| {
                        t.caught_up_after.is_some()
                            || matches!(t.state, State::Failed | State::Ended)
                    })
                    .await;
                send(&Reply::Report(worker.report(timed_out, began)));
            }
            Command::Finish { last_seq } => {
                if last_seq.is_some() {
                    worker.last_seq = last_seq;
                }
                let report = worker.report(false, began);
                worker.drop_all();
                send(&Reply::Report(report));
                return ExitCode::SUCCESS;
            }
        }
    }
}

impl Worker {
    fn new(spec: &WorkerSpec) -> Result<Worker, String> {
        let target: Target = spec.url.parse().map_err(|e| format!("{e}"))?;
        let plan = Plan {
            dialer: Dialer::new(target.addr, spec.source_ips.clone()),
            server: spec.server,
            target,
            token: spec.token.clone(),
            topic: spec.topic.clone(),
            connect_timeout: Duration::from_millis(spec.connect_timeout_ms),
        };
        let transports = std::iter::repeat_n(Transport::Sse, spec.sse as usize)
            .chain(std::iter::repeat_n(Transport::Ws, spec.ws as usize));
        let subscribers = transports
            .enumerate()
            .map(|(i, transport)| Subscriber {
                index: spec.first_connection + i,
                track: Arc::new(Mutex::new(Track::new(transport))),
                task: None,
            })
            .collect();
        Ok(Worker {
            plan: Arc::new(plan),
            shared: Arc::new(Shared::new()),
            subscribers,
            last_seq: None,
        })
    }

    /// Starts a task for each subscriber `which` picks, `concurrency`
    /// connecting at a time (0: all at once, the storm's thundering herd).
    /// Returns the positions of the subscribers started.
    fn connect(&mut self, concurrency: u32, which: impl Fn(&Track) -> bool) -> Vec<usize> {
        let gate = (concurrency > 0).then(|| Arc::new(Semaphore::new(concurrency as usize)));
        let mut started = Vec::new();
        for (position, subscriber) in self.subscribers.iter_mut().enumerate() {
            {
                let mut track = lock(&subscriber.track);
                if !which(&track) {
                    continue;
                }
                // Set here, not in the task, so a wait that starts right
                // after this cannot see the old state.
                track.state = State::Connecting;
            }
            started.push(position);
            subscriber.task = Some(tokio::spawn(subscriber::run(
                self.plan.clone(),
                subscriber.index,
                subscriber.track.clone(),
                self.shared.clone(),
                gate.clone(),
            )));
        }
        started
    }

    /// Closes every connection. Aborting a task drops its socket, which is
    /// what a client losing its network looks like to the server.
    fn drop_all(&mut self) {
        for subscriber in &mut self.subscribers {
            if let Some(task) = subscriber.task.take() {
                task.abort();
            }
            let mut track = lock(&subscriber.track);
            if matches!(track.state, State::Live | State::Connecting) {
                track.state = State::Dropped;
            }
        }
    }

    /// Waits until `done` holds for each of `members` (positions), or
    /// `timeout`; returns whether it timed out.
    async fn wait(
        &self,
        timeout: Duration,
        members: &[usize],
        done: impl Fn(&Track) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if members
                .iter()
                .all(|&i| done(&lock(&self.subscribers[i].track)))
            {
                return false;
            }
            if Instant::now() >= deadline {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn report(&self, timed_out: bool, began: Instant) -> Report {
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        let mut catch_up = [Recorder::new(), Recorder::new()];
        for subscriber in &self.subscribers {
            let track = lock(&subscriber.track);
            let tally = tallies
                .entry(track.transport.name().to_string())
                .or_default();
            tally.subscribers += 1;
            tally.live += u64::from(track.state == State::Live);
            for kind in &track.failures {
                *tally.connect_failures.entry(kind.clone()).or_default() += 1;
            }
            for kind in &track.ends {
                *tally.unexpected_ends.entry(kind.clone()).or_default() += 1;
            }
            tally.heartbeats += track.heartbeats;
            tally.sequence.add(&track.check.counts);
            // A subscriber that never connected is a connect failure, not
            // a subscriber that missed events.
            let missing = if track.connections > 0 {
                track.check.missing(self.last_seq)
            } else {
                0
            };
            tally.missing_events += missing;
            let counts = &track.check.counts;
            if missing + counts.gaps + counts.duplicates + counts.out_of_order > 0 {
                tally.subscribers_with_problems += 1;
            }
            tally.foreign_events += track.foreign;
            tally.unreadable += track.unreadable;
            if let Some(after) = track.caught_up_after {
                tally.caught_up += 1;
                catch_up[slot(track.transport)].record(after.as_micros() as u64);
            }
        }
        let latency = lock(&self.shared.latency);
        let connect = lock(&self.shared.connect);
        let first = self.shared.first_receive_us.load(Ordering::Relaxed);
        let last = self.shared.last_receive_us.load(Ordering::Relaxed);
        for transport in [Transport::Sse, Transport::Ws] {
            if let Some(tally) = tallies.get_mut(transport.name()) {
                tally.latency_us = latency[slot(transport)].buckets();
                tally.connect_us = connect[slot(transport)].buckets();
                tally.catch_up_us = catch_up[slot(transport)].buckets();
                tally.first_receive_unix_us = (first != u64::MAX).then_some(first);
                tally.last_receive_unix_us = (last != 0).then_some(last);
            }
        }
        Report {
            pid: std::process::id(),
            timed_out,
            waited_ms: began.elapsed().as_millis() as u64,
            tallies,
        }
    }
}

/// Writes one reply line. Stdout is a pipe the parent reads line by line; a
/// failed write means the parent is gone, and the next stdin read notices.
fn send(reply: &Reply) {
    let line = serde_json::to_string(reply).unwrap_or_else(|error| {
        format!(r#"{{"reply":"failed","error":"cannot serialize the report: {error}"}}"#)
    });
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn fail(error: &str) -> ExitCode {
    eprintln!("loadgen worker {}: {error}", std::process::id());
    send(&Reply::Failed {
        error: error.to_string(),
    });
    ExitCode::from(2)
}
