//! A process's memory and CPU, read from /proc: `VmRSS` from
//! `/proc/<pid>/status`, `Pss` from `/proc/<pid>/smaps_rollup`, `utime` and
//! `stime` from `/proc/<pid>/stat`, the open file count from
//! `/proc/<pid>/fd`. Two samples give CPU use between them. A server of
//! several processes (nginx: a master and its workers) is sampled whole.

use std::fs;
use std::io;
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read /proc/{pid}: {source}")]
    Read { pid: u32, source: io::Error },
    #[error("/proc/{pid}/{file} has no {field}")]
    Missing {
        pid: u32,
        file: &'static str,
        field: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rss_kib: u64,
    /// Proportional set size: shared pages split among the processes that
    /// map them, so that it adds up across processes where RSS would count
    /// pages shared by nginx's workers once per worker.
    pub pss_kib: Option<u64>,
    /// Processes summed in this sample.
    pub processes: u32,
    /// User plus system time, in clock ticks.
    pub cpu_ticks: u64,
    /// System time alone, in clock ticks: the kernel's share, which on
    /// loopback includes the receiving side of every TCP segment sent.
    pub sys_ticks: u64,
    pub open_files: Option<u64>,
    pub threads: Option<u64>,
    pub at: Instant,
}

pub fn sample(pid: u32) -> Result<Sample, ProcError> {
    let at = Instant::now();
    let read = |file: &'static str| {
        fs::read_to_string(format!("/proc/{pid}/{file}"))
            .map_err(|source| ProcError::Read { pid, source })
    };
    let status = read("status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let rss_kib = field("VmRSS:").ok_or(ProcError::Missing {
        pid,
        file: "status",
        field: "VmRSS",
    })?;
    let threads = field("Threads:");
    let stat = read("stat")?;
    let (user_ticks, sys_ticks) = cpu_ticks(&stat).ok_or(ProcError::Missing {
        pid,
        file: "stat",
        field: "utime/stime",
    })?;
    let open_files = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|dir| dir.count() as u64);
    let pss_kib = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|rollup| kib_field(&rollup, "Pss:"));
    Ok(Sample {
        rss_kib,
        pss_kib,
        processes: 1,
        cpu_ticks: user_ticks + sys_ticks,
        sys_ticks,
        open_files,
        threads,
        at,
    })
}

/// The sum over several processes (loadgen's own parent and workers); those
/// that cannot be read (already exited) are left out. `None` if none can.
pub fn sample_group(pids: &[u32]) -> Option<Sample> {
    let samples: Vec<Sample> = pids.iter().filter_map(|&pid| sample(pid).ok()).collect();
    let first = samples.first()?;
    Some(Sample {
        rss_kib: samples.iter().map(|s| s.rss_kib).sum(),
        pss_kib: samples.iter().map(|s| s.pss_kib).sum(),
        processes: samples.iter().map(|s| s.processes).sum(),
        cpu_ticks: samples.iter().map(|s| s.cpu_ticks).sum(),
        sys_ticks: samples.iter().map(|s| s.sys_ticks).sum(),
        open_files: Some(samples.iter().filter_map(|s| s.open_files).sum()),
        threads: Some(samples.iter().filter_map(|s| s.threads).sum()),
        at: first.at,
    })
}

/// A process and its children together: nginx's master with its workers,
/// which hold the connections; for pushlog, one process, just its sample.
/// Children are found by their parent pid in `/proc/*/stat`, since the
/// kernel's `children` file is not always there; grandchildren are not
/// looked for (nginx has none).
pub fn sample_tree(pid: u32) -> Result<Sample, ProcError> {
    let root = sample(pid)?;
    let children = children_of(pid);
    if children.is_empty() {
        return Ok(root);
    }
    let pids: Vec<u32> = std::iter::once(pid).chain(children).collect();
    Ok(sample_group(&pids).unwrap_or(root))
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| {
            fs::read_to_string(format!("/proc/{candidate}/stat"))
                .ok()
                .and_then(|stat| parent_pid(&stat))
                == Some(pid)
        })
        .collect()
}

/// `Name:   123 kB` → 123.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Field 4 of `/proc/<pid>/stat`, the parent's pid.
fn parent_pid(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Fields 14 and 15 of `/proc/<pid>/stat`, counted after the `(comm)` field,
/// which may itself contain spaces and parentheses.
/// `(utime, stime)`.
fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // After comm: state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// CPU used between two samples of the same process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    /// Percent of one core (200 = both cores of this machine, busy).
    pub cpu_pct: f64,
    pub cpu_us: u64,
    /// The part of `cpu_us` spent in the kernel.
    pub sys_us: u64,
    pub window_secs: f64,
}

pub fn cpu_between(before: &Sample, after: &Sample) -> CpuUse {
    let micros = |ticks: u64| ticks * 1_000_000 / ticks_per_second();
    let cpu_us = micros(after.cpu_ticks.saturating_sub(before.cpu_ticks));
    let sys_us = micros(after.sys_ticks.saturating_sub(before.sys_ticks));
    let window = after.at.duration_since(before.at).as_secs_f64();
    let cpu_pct = if window > 0.0 {
        round1(cpu_us as f64 / 1e6 / window * 100.0)
    } else {
        0.0
    };
    CpuUse {
        cpu_pct,
        cpu_us,
        sys_us,
        window_secs: (window * 100.0).round() / 100.0,
    }
}

/// Rounds to one decimal, for figures people read.
pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_odd_process_names() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 \
                    100 1000000 500 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some((250, 50)));
        assert_eq!(parent_pid(stat), Some(1));
    }

    #[test]
    fn a_process_tree_sums_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let alone = sample(std::process::id()).unwrap();
        let tree = sample_tree(std::process::id()).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(alone.processes, 1);
        // Other tests may start processes of their own meanwhile.
        assert!(tree.processes >= 2, "{tree:?}");
        let rollup = "Rss:  1780 kB\nPss:   281 kB\nPss_Dirty:  112 kB\n";
        assert_eq!(kib_field(rollup, "Pss:"), Some(281));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = sample(std::process::id()).unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.open_files.unwrap() > 0);
    }
}
