//! Why a scenario could not be carried out at all, as opposed to a check
//! that failed: the run ends with exit code 2 and no figures.

use crate::token::CredentialsError;
use crate::worker::pool::PoolError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("{0}")]
    Setup(String),
}
