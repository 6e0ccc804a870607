//! The parent's side: start the workers, send each command to all of them,
//! collect one reply from each. Every wait is bounded.

use std::process::Stdio;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command as Process};

use super::protocol::{Command, Reply, Report, WorkerSpec};

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot find this executable to start workers: {0}")]
    Exe(std::io::Error),
    #[error("cannot start worker {index}: {source}")]
    Spawn {
        index: usize,
        source: std::io::Error,
    },
    #[error("worker {index}: {detail}")]
    Worker { index: usize, detail: String },
    #[error("worker {index} did not answer `{command}` within {timeout:?}")]
    Timeout {
        index: usize,
        command: &'static str,
        timeout: Duration,
    },
}

struct WorkerProcess {
    index: usize,
    child: Child,
    stdin: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
}

pub struct Pool {
    workers: Vec<WorkerProcess>,
}

/// A reply takes at most the phase's own timeout plus this much.
const REPLY_SLACK: Duration = Duration::from_secs(30);

impl Pool {
    /// Starts one worker per spec and waits for each to report its
    /// connections (`connect_timeout` bounds the wait).
    pub async fn start(
        specs: Vec<WorkerSpec>,
        connect_timeout: Duration,
    ) -> Result<(Pool, Vec<Report>), PoolError> {
        let exe = std::env::current_exe().map_err(PoolError::Exe)?;
        let mut workers = Vec::with_capacity(specs.len());
        for spec in &specs {
            let mut child = Process::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                // If the parent dies or returns early, the workers go too.
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| PoolError::Spawn {
                    index: spec.index,
                    source,
                })?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(PoolError::Worker {
                    index: spec.index,
                    detail: "no pipes".into(),
                });
            };
            workers.push(WorkerProcess {
                index: spec.index,
                child,
                stdin,
                replies: BufReader::new(stdout).lines(),
            });
        }
        let mut pool = Pool { workers };
        let commands: Vec<Command> = specs.into_iter().map(Command::Start).collect();
        let reports = pool.exchange(&commands, "start", connect_timeout).await?;
        Ok((pool, reports))
    }

    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Sends `command` to every worker; `timeout` is the phase's own bound.
    pub async fn broadcast(
        &mut self,
        command: &Command,
        timeout: Duration,
    ) -> Result<Vec<Report>, PoolError> {
        let commands = vec![command.clone(); self.workers.len()];
        self.exchange(&commands, name(command), timeout).await
    }

    /// Tells every worker to report and exit, and waits for them to.
    pub async fn finish(mut self, last_seq: Option<u64>) -> Result<Vec<Report>, PoolError> {
        let reports = self
            .broadcast(&Command::Finish { last_seq }, Duration::from_secs(10))
            .await?;
        for worker in &mut self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(10), worker.child.wait()).await;
        }
        Ok(reports)
    }

    async fn exchange(
        &mut self,
        commands: &[Command],
        command_name: &'static str,
        timeout: Duration,
    ) -> Result<Vec<Report>, PoolError> {
        // Write to all first, then read, so workers run the phase together.
        for (worker, command) in self.workers.iter_mut().zip(commands) {
            let mut line = serde_json::to_string(command).map_err(|e| PoolError::Worker {
                index: worker.index,
                detail: format!("cannot serialize a command: {e}"),
            })?;
            line.push('\n');
            worker
                .stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| PoolError::Worker {
                    index: worker.index,
                    detail: format!("stdin closed: {e}"),
                })?;
        }
        let limit = timeout + REPLY_SLACK;
        let replies = join_all(self.workers.iter_mut().map(|worker| async move {
            let index = worker.index;
            match tokio::time::timeout(limit, worker.replies.next_line()).await {
                Err(_) => Err(PoolError::Timeout {
                    index,
                    command: command_name,
                    timeout: limit,
                }),
                Ok(Err(e)) => Err(PoolError::Worker {
                    index,
                    detail: format!("cannot read its reply: {e}"),
                }),
                Ok(Ok(None)) => Err(PoolError::Worker {
                    index,
                    detail: "exited without replying".into(),
                }),
                Ok(Ok(Some(line))) => match serde_json::from_str::<Reply>(&line) {
                    Ok(Reply::Report(report)) => Ok(report),
                    Ok(Reply::Failed { error }) => Err(PoolError::Worker {
                        index,
                        detail: error,
                    }),
                    Err(e) => Err(PoolError::Worker {
                        index,
                        detail: format!("unreadable reply: {e}"),
                    }),
                },
            }
        }))
        .await;
        replies.into_iter().collect()
    }
}

fn name(command: &Command) -> &'static str {
    match command {
        Command::Start(_) => "start",
        Command::Drain { .. } => "drain",
        Command::Drop => "drop",
        Command::Reconnect { .. } => "reconnect",
        Command::Finish { .. } => "finish",
    }
}

/// Splits `sse + ws` connections into workers of at most `per_worker` each,
/// spreading both transports evenly. Returns `(sse, ws, first_connection)`
/// per worker.
pub fn shares(sse: u32, ws: u32, per_worker: u32) -> Vec<(u32, u32, usize)> {
    let total = sse + ws;
    let workers = total.div_ceil(per_worker.max(1)).max(1);
    let mut first = 0usize;
    (0..workers)
        .map(|i| {
            // Each worker's total first, so none exceeds the cap; SSE is
            // spread the same way and WebSocket fills the rest.
            let part = |n: u32| n / workers + u32::from(i < n % workers);
            let (s, w) = (part(sse), part(total) - part(sse));
            let share = (s, w, first);
            first += (s + w) as usize;
            share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_shared_evenly_and_within_the_cap() {
        let shares = shares(9_500, 9_500, 15_000);
        assert_eq!(shares, vec![(4_750, 4_750, 0), (4_750, 4_750, 9_500)]);
        let shares = shares_total(&super::shares(7, 0, 3));
        assert_eq!(shares, 7);
        for (s, w, _) in super::shares(10_001, 9_999, 10_000) {
            assert!(s + w <= 10_000);
        }
    }

    fn shares_total(shares: &[(u32, u32, usize)]) -> u32 {
        shares.iter().map(|(s, w, _)| s + w).sum()
    }
}
