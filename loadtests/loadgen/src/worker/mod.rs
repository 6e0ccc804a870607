//! Subscribers live in worker processes: every process on this machine may
//! hold at most 20,000 open files, so subscribers are spread over several,
//! at most `--per-worker` each. The parent
//! starts `loadgen worker` children (itself), drives them through phases with
//! one JSON line per command on their stdin, and reads one JSON line per
//! reply from their stdout. A worker whose stdin closes (the parent is gone)
//! or whose lifetime runs out exits by itself.

pub mod child;
pub mod pool;
pub mod protocol;
