//! A load generator for pushlog, for what k6 does badly: tens of thousands of
//! long-lived connections, per-subscriber ordering checks, and reconnect storms.
//!
//! How it fits together, top down:
//!
//! - [`cli`]: the scenarios as subcommands and their flags.
//! - [`scenarios`]: one module per scenario (`conns`, `fanout`, `publish`,
//!   `storm`), each a straight script of phases that ends in a [`report`];
//!   what they share (setup, subscribers, `/proc` figures) sits in modules
//!   of its own beside them.
//! - [`worker`]: subscribers live in child processes (every process here is
//!   capped at 20,000 open files). [`worker::pool`] is the parent's side,
//!   [`worker::child`] the child's, [`worker::protocol`] the JSON lines between.
//! - [`subscriber`]: one subscriber's life (connect, read, check) on a
//!   [`feed`], which picks [`sse`] or [`ws`] underneath. Both speak
//!   [`subscription`] (what opening needs, what a feed yields, how it fails)
//!   and [`transport`] (SSE or WebSocket, and where to start); [`sequence`]
//!   checks order and [`probe`] carries the publisher's sequence number and
//!   send time in each payload.
//! - [`publisher`]: the publishing side, over [`http`], a keep-alive HTTP/1.1
//!   client small enough to read in one sitting.
//! - [`net`] spreads sockets over loopback source addresses; [`fdlimit`]
//!   raises the open-file limit; [`target`] refuses anything but loopback;
//!   [`token`] mints HS256 tokens; [`procstat`] reads a process's RSS and CPU;
//!   [`histogram`] ships latency histograms between processes.
//! - [`server`]: what differs between pushlog and nginx with nchan, the
//!   baseline `loadtests/compare` measures pushlog against (`--server`).

pub mod cli;
pub mod fdlimit;
pub mod feed;
pub mod histogram;
pub mod http;
pub mod net;
pub mod probe;
pub mod procstat;
pub mod publisher;
pub mod report;
pub mod scenarios;
pub mod sequence;
pub mod server;
pub mod sse;
pub mod subscriber;
pub mod subscription;
pub mod target;
pub mod token;
pub mod transport;
pub mod worker;
pub mod ws;

use std::process::ExitCode;

use cli::{Cli, Scenario};

/// Runs what the command line asks for and turns the outcome into the exit
/// code: 0 when every check held, 1 when one failed, 2 when the run itself
/// could not be carried out.
pub fn run(cli: Cli) -> ExitCode {
    if let Err(error) = fdlimit::raise_to_hard_limit() {
        eprintln!("loadgen: could not raise the open-file limit: {error}");
    }
    match cli.scenario {
        // A worker is one of many processes on two cores: one thread each.
        Scenario::Worker => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("loadgen worker: cannot start a runtime: {error}");
                    return ExitCode::from(2);
                }
            };
            runtime.block_on(worker::child::run())
        }
        scenario => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("loadgen: cannot start a runtime: {error}");
                    return ExitCode::from(2);
                }
            };
            let outcome = runtime.block_on(scenarios::run(scenario));
            report::finish(outcome)
        }
    }
}
