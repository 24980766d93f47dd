//! Why a model service or the vector store could not answer, as every layer above reports it
//! (the HTTP errors translate it to a status in one place, `error.rs`).

use shared::{BatcherError, EngineError};

/// Why a dependency (engine, vector store) could not answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UpstreamError {
    #[error("the {0} is overloaded")]
    Overloaded(&'static str),
    #[error("the {0} is unavailable: {1}")]
    Unavailable(&'static str, String),
    #[error("the {0} did not answer in time")]
    Timeout(&'static str),
    #[error("the {0} failed: {1}")]
    Failed(&'static str, String),
}

impl UpstreamError {
    pub(super) fn from_engine(service: &'static str, error: EngineError) -> Self {
        match error {
            EngineError::Batcher(BatcherError::Overloaded) => Self::Overloaded(service),
            EngineError::Batcher(BatcherError::Unavailable(why)) => Self::Unavailable(service, why),
            EngineError::Batcher(BatcherError::Inference(why)) | EngineError::Tokenize(why) => {
                Self::Failed(service, why)
            }
        }
    }
}
