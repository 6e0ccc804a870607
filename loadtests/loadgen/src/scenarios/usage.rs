//! Watching what a run costs: the server's memory, open files and CPU (with
//! its child processes: nginx's workers), and loadgen's own, read from
//! `/proc` at named moments and turned into the result line's `server` and
//! `loadgen` figures.

use serde_json::{Map, Value, json};

use super::progress::progress;
use crate::procstat::{self, Sample, cpu_between};

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

    /// The snapshot a run's figures start from, taken before the scenario
    /// connects anything; warns when the server already looks busy.
    pub fn baseline(&self, scenario: &str) -> Snapshot {
        let before = self.snapshot();
        warn_if_busy(scenario, &before);
        before
    }

    /// Adds the `server` and `loadgen` figures: memory and open files at
    /// each named moment, CPU over the window from `from` to `to` (the same
    /// window for both, so the two compare); `workers` is how many worker
    /// processes loadgen ran.
    pub fn add_figures(
        &self,
        figures: &mut Map<String, Value>,
        moments: &[(&str, &Snapshot)],
        from: &Snapshot,
        to: &Snapshot,
        workers: usize,
    ) {
        figures.insert(
            "server".into(),
            server_figures(self.server_pid, moments, from, to),
        );
        figures.insert("loadgen".into(), loadgen_figures(workers, from, to));
    }
}

/// Warns when the server already holds many connections: pushlog notices a
/// vanished SSE client only when its next heartbeat write fails, so streams
/// from a previous run can hold connection slots (and memory) for up to a
/// heartbeat interval or two after it ended, and skew this run's figures.
fn warn_if_busy(scenario: &str, before: &Snapshot) {
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
fn server_figures(
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
fn loadgen_figures(workers: usize, from: &Snapshot, to: &Snapshot) -> Value {
    match (from.loadgen, to.loadgen) {
        (Some(a), Some(b)) => json!({
            "workers": workers,
            "cpu": cpu_between(&a, &b),
            "rss_kib": b.rss_kib,
        }),
        _ => json!({"workers": workers}),
    }
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
