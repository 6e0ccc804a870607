//! The scenarios, one module each, and what they share, one module per job:
//! [`setup`] (topic, tokens, source addresses), [`subscribers`] (opening and
//! commanding N subscribers), [`usage`] (the server's and loadgen's memory
//! and CPU), [`figures`] (pieces of the result line), [`progress`] and
//! [`error`]. Only this file names the scenarios; they import the shared
//! modules, never this one.

pub mod conns;
pub mod error;
pub mod fanout;
pub mod figures;
pub mod progress;
pub mod publish;
pub mod setup;
pub mod storm;
pub mod subscribers;
pub mod usage;

use crate::cli::Scenario;
use crate::report::Outcome;
use error::RunError;

pub async fn run(scenario: Scenario) -> Result<Outcome, RunError> {
    match scenario {
        Scenario::Conns(args) => conns::run(args).await,
        Scenario::Fanout(args) => fanout::run(args).await,
        Scenario::Publish(args) => publish::run(args).await,
        Scenario::Storm(args) => storm::run(args).await,
        Scenario::Worker => Err(RunError::Setup("`worker` is not a scenario".into())),
    }
}
