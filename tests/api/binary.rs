//! The real `pushlog` binary as a child process, for what only a process of
//! its own can show: surviving `kill -9`, and its memory in `/proc`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{SECRET, client, free_port};

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts the binary on `db` with `env` on top of the defaults, and
    /// waits until it is ready.
    pub async fn start(db: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pushlog"));
        command
            .env("PUSHLOG_ADDR", format!("127.0.0.1:{port}"))
            .env("PUSHLOG_DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("PUSHLOG_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the pushlog binary starts");
        let base = format!("http://127.0.0.1:{port}");
        // Poll readiness: the process announces nothing else we could await.
        let client = client();
        for _ in 0..200 {
            if let Ok(response) = client.get(format!("{base}/readyz")).send().await
                && response.status().is_success()
            {
                return Server { child, base };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("pushlog did not become ready on port {port}");
    }

    /// A `kB` figure of `/proc/<pid>/status`: `VmRSS` (resident now) or
    /// `VmHWM` (the most it has been resident).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
