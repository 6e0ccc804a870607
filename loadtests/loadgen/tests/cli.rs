//! The loadgen binary as a user meets it. Besides checking the command line,
//! this test makes `cargo test --workspace` build the binary itself (with the
//! workspace's unified features), which CI's load smoke then runs: no second
//! build of the same crates.

use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("the loadgen binary runs")
}

#[test]
fn every_scenario_is_offered_on_the_command_line() {
    let output = loadgen(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for scenario in ["conns", "fanout", "publish", "storm"] {
        assert!(
            help.contains(scenario),
            "`loadgen --help` lists {scenario}:\n{help}"
        );
    }
}

#[test]
fn a_target_off_this_machine_is_refused_before_any_socket_opens() {
    // `.invalid` never resolves, and the URL is refused while the flags are
    // parsed, so no lookup or connection is even attempted.
    let output = loadgen(&["fanout", "--url", "http://example.invalid:8080", "-n", "1"]);
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "the error says why: {stderr}");
}

#[test]
fn nchan_refuses_the_scenarios_it_cannot_run() {
    let output = loadgen(&["storm", "--server", "nchan", "--url", "http://127.0.0.1:9"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "refused as a run that cannot be carried out"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nchan"),
        "the error names the server: {stderr}"
    );
}
