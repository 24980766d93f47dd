//! An embedding engine: tokenizer + dynamic batcher + ONNX session, usable in-process (gateway,
//! ingest) or behind the embed-service's HTTP routes.

use std::sync::Arc;

use serde::Serialize;

use crate::batcher::{Batcher, BatcherError, BatcherMetrics, ModelFactory};
use crate::config::EngineArgs;
use crate::model::{ModelDir, ModelError, ModelKind};
use crate::pooling::Pooling;
use crate::session::{InferenceSession, SessionOptions};
use crate::tokenize::{Encoded, InputType, TextTokenizer};

/// Texts are cut to this many bytes per allowed token before tokenizing, so a huge text costs
/// no more than a long one: real text is far below it.
const MAX_BYTES_PER_TOKEN: usize = 128;

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

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Engine(#[from] BatcherError),
    #[error("{0}")]
    Tokenize(String),
}

/// Vectors in input order and the number of tokens the model saw.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: usize,
}

#[derive(Clone)]
pub struct Embedder {
    tokenizer: Arc<TextTokenizer>,
    batcher: Batcher,
    info: Arc<EmbedderInfo>,
}

impl Embedder {
    /// Loads the tokenizer now and the model on the inference threads; see [`Batcher::readiness`].
    /// Must be called within a tokio runtime.
    pub fn start(dir: &ModelDir, engine: &EngineArgs, metrics: BatcherMetrics) -> Result<Self, ModelError> {
        if dir.config.kind != ModelKind::Embedding {
            return Err(ModelError::Config {
                path: dir.path.join("model.toml"),
                message: format!("kind = {:?}, but an embedding model is needed", dir.config.kind),
            });
        }
        let tokenizer = Arc::new(TextTokenizer::load(&dir.tokenizer_path(), &dir.config)?);
        let options = SessionOptions {
            intra_threads: engine.intra_threads(),
            spinning: engine.intra_op_spinning,
        };
        let (model_dir, pad_id) = (dir.clone(), tokenizer.pad_id());
        let factory: ModelFactory = Arc::new(move || {
            InferenceSession::load(&model_dir, pad_id, options)
                .map(|s| Box::new(s) as Box<dyn crate::batcher::Model>)
                .map_err(|e| e.to_string())
        });
        let encode = |text: &str| {
            tokenizer
                .encode(text, InputType::Passage)
                .map_err(|e| ModelError::Tokenizer {
                    path: dir.tokenizer_path(),
                    message: e.to_string(),
                })
        };
        let warmup = warmup_batches(
            encode("warm-up")?,
            encode(&"warm-up ".repeat(dir.config.max_length))?,
            engine,
        );
        let batcher = Batcher::start(engine.batcher_config(), factory, warmup, metrics);
        let config = &dir.config;
        let info = EmbedderInfo {
            model: dir.name(),
            max_length: config.max_length,
            pooling: config.pooling(),
            normalize: config.normalize(),
            query_prefix: config.query_prefix.clone().unwrap_or_default(),
            passage_prefix: config.passage_prefix.clone().unwrap_or_default(),
        };
        Ok(Self {
            tokenizer,
            batcher,
            info: Arc::new(info),
        })
    }

    pub fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// The embedding dimension, known once the model has run its warm-up.
    pub fn dimension(&self) -> Option<usize> {
        self.batcher.output_width()
    }

    /// Tokenizes on the blocking pool (never on the async workers).
    pub async fn tokenize(&self, texts: Vec<String>, input_type: InputType) -> Result<Vec<Encoded>, EmbedError> {
        let tokenizer = self.tokenizer.clone();
        tokio::task::spawn_blocking(move || {
            let limit = tokenizer.max_length() * MAX_BYTES_PER_TOKEN;
            texts
                .iter()
                .map(|t| tokenizer.encode(cut(t, limit), input_type))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| EmbedError::Tokenize(e.to_string()))?
        .map_err(|e| EmbedError::Tokenize(e.to_string()))
    }

    /// Embeds `texts` with the prefix of `input_type`; vectors come back in input order.
    pub async fn embed(&self, texts: Vec<String>, input_type: InputType) -> Result<Embedded, EmbedError> {
        let encoded = self.tokenize(texts, input_type).await?;
        let tokens = encoded.iter().map(Encoded::len).sum();
        let vectors = self.batcher.submit(encoded).await?;
        Ok(Embedded { vectors, tokens })
    }
}

/// The warm-up: one short sequence (it also tells the output width), then the largest batch the
/// token budget allows of full-length sequences, so memory reaches its working size before
/// `/ready` and the first big request is not the one that pays for it.
pub(crate) fn warmup_batches(short: Encoded, longest: Encoded, engine: &EngineArgs) -> Vec<Vec<Encoded>> {
    let count = (engine.max_batch_tokens / longest.len().max(1)).clamp(1, engine.max_batch_size.max(1));
    vec![vec![short], vec![longest; count]]
}

/// `text` cut to at most `limit` bytes, on a character boundary.
pub(crate) fn cut(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }
}
