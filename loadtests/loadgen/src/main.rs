//! `loadgen`: parse the command line and run one scenario (or, when started
//! by another `loadgen`, one worker). Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = loadgen::cli::Cli::parse();
    loadgen::run(cli)
}
