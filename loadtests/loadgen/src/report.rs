//! The end of a run: one JSON line on stdout for machines, a summary on
//! stderr for people, and an exit code for CI.

use std::fmt::Display;
use std::process::ExitCode;

use serde_json::{Map, Value};

/// A finished run.
pub struct Outcome {
    pub scenario: &'static str,
    /// Parameters and figures; `scenario`, `ok` and `violations` are added.
    pub figures: Map<String, Value>,
    /// Lines for people.
    pub summary: Vec<String>,
    pub checks: Checks,
}

/// Conditions a run must meet; each unmet one is a violation and fails it.
#[derive(Debug, Default)]
pub struct Checks {
    violations: Vec<String>,
}

impl Checks {
    /// `count` of `what` must be zero.
    pub fn none(&mut self, what: &str, count: u64) {
        if count > 0 {
            self.violations.push(format!("{what}: {count}"));
        }
    }

    /// At most `max_pct` percent of `attempted` may have `failed`.
    pub fn failure_rate(&mut self, what: &str, failed: u64, attempted: u64, max_pct: f64) {
        let pct = if attempted == 0 {
            0.0
        } else {
            failed as f64 * 100.0 / attempted as f64
        };
        if failed > 0 && pct > max_pct {
            self.violations.push(format!(
                "{what}: {failed} of {attempted} ({pct:.2}%, allowed {max_pct}%)"
            ));
        }
    }

    pub fn require(&mut self, condition: bool, violation: impl Into<String>) {
        if !condition {
            self.violations.push(violation.into());
        }
    }

    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}

/// The JSON line: `scenario`, `ok`, `violations` and `params` first, so the
/// verdict is the first thing a person sees; then the figures by name.
/// (Written by hand because serde_json's map sorts keys, and its
/// order-preserving feature would change map order for the whole workspace.)
fn result_line(outcome: &Outcome) -> String {
    let violations = outcome.checks.violations();
    let mut fields = vec![
        ("scenario".to_string(), Value::from(outcome.scenario)),
        ("ok".to_string(), Value::from(violations.is_empty())),
        ("violations".to_string(), Value::from(violations.to_vec())),
    ];
    if let Some(params) = outcome.figures.get("params") {
        fields.push(("params".to_string(), params.clone()));
    }
    for (name, value) in &outcome.figures {
        if name != "params" {
            fields.push((name.clone(), value.clone()));
        }
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}:{value}", Value::from(name.as_str())))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Prints the result and turns it into the exit code: 0 all checks held,
/// 1 a check failed, 2 the run could not be carried out. Why a run could
/// not be carried out is only ever printed here, so any error that displays
/// itself will do, and this module needs nothing from the scenarios.
pub fn finish(outcome: Result<Outcome, impl Display>) -> ExitCode {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("loadgen: {error}");
            let line = serde_json::json!({"ok": false, "error": error.to_string()});
            println!("{line}");
            return ExitCode::from(2);
        }
    };
    let violations = outcome.checks.violations();
    println!("{}", result_line(&outcome));

    eprintln!("── loadgen {} ──", outcome.scenario);
    for text in &outcome.summary {
        eprintln!("  {text}");
    }
    if violations.is_empty() {
        eprintln!("  OK: every check held");
        ExitCode::SUCCESS
    } else {
        for violation in violations {
            eprintln!("  FAILED: {violation}");
        }
        ExitCode::from(1)
    }
}
