//! The embedding engine: E5-style prefixes, pooled and normalised vectors. Used in-process
//! (gateway, ingest) and behind the embed-service's routes.

use serde::Serialize;

use crate::batcher::{Batcher, BatcherMetrics, Priority};
use crate::config::EngineArgs;
use crate::engine::{Engine, EngineError, cut};
use crate::model::{ModelDir, ModelError, ModelKind};
use crate::pooling::Pooling;
use crate::tokenize::{InputType, TokenizeError};

/// What `/info` tells about the model.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedderInfo {
    pub model: String,
    pub max_length: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub query_prefix: String,
    pub passage_prefix: String,
}

/// Vectors in input order and the number of tokens the model saw.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: usize,
}

#[derive(Clone)]
pub struct Embedder {
    engine: Engine,
}

impl Embedder {
    /// Starts the engine on an embedding model directory; needs a tokio runtime.
    pub fn start(dir: &ModelDir, args: &EngineArgs, metrics: BatcherMetrics) -> Result<Self, ModelError> {
        let engine = Engine::start(dir, ModelKind::Embedding, args, metrics, |tokenizer, text| {
            tokenizer.encode(text, InputType::Passage)
        })?;
        Ok(Self { engine })
    }

    pub fn info(&self) -> EmbedderInfo {
        let config = self.engine.config();
        EmbedderInfo {
            model: self.engine.name().to_string(),
            max_length: config.max_length,
            pooling: config.pooling(),
            normalize: config.normalize(),
            query_prefix: config.query_prefix.clone().unwrap_or_default(),
            passage_prefix: config.passage_prefix.clone().unwrap_or_default(),
        }
    }

    pub fn name(&self) -> &str {
        self.engine.name()
    }

    /// How the engine batches texts (`crate::engine::BatchPlan`).
    pub fn plan(&self) -> crate::engine::BatchPlan {
        self.engine.plan()
    }

    pub fn batcher(&self) -> &Batcher {
        self.engine.batcher()
    }

    /// The embedding dimension, known once the model has run its warm-up.
    pub fn dimension(&self) -> Option<usize> {
        self.engine.batcher().output_width()
    }

    /// Embeds `texts` with the prefix of `input_type` at `priority`; vectors come back in input order.
    pub async fn embed(
        &self,
        texts: Vec<String>,
        input_type: InputType,
        priority: Priority,
    ) -> Result<Embedded, EngineError> {
        let (vectors, tokens) = self
            .engine
            .run(priority, move |tokenizer, byte_limit| {
                texts
                    .iter()
                    .map(|t| tokenizer.encode(cut(t, byte_limit), input_type))
                    .collect::<Result<_, TokenizeError>>()
            })
            .await?;
        Ok(Embedded { vectors, tokens })
    }
}
