//! Progress lines for people while a scenario runs. They go to stderr, so
//! stdout carries nothing but the result line.

/// Prints a progress line on stderr, tagged with the scenario's name.
pub fn progress(scenario: &str, text: &str) {
    eprintln!("[loadgen {scenario}] {text}");
}
