//! What every model service runs: a model directory's tokenizer and a dynamic batcher whose
//! inference threads own the ONNX sessions. [`crate::Embedder`] and [`crate::Reranker`] wrap it.

use std::sync::Arc;

use crate::batcher::{Batcher, BatcherError, BatcherMetrics, Model, ModelFactory, Priority};
use crate::config::EngineArgs;
use crate::model::{ModelConfig, ModelDir, ModelError, ModelKind};
use crate::session::{InferenceSession, SessionOptions};
use crate::tokenize::{Encoded, TextTokenizer, TokenizeError};

/// Texts are cut to this many bytes per allowed token before tokenizing, so a huge text costs no
/// more than a long one; real text is far below it, so the result does not change.
const MAX_BYTES_PER_TOKEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Batcher(#[from] BatcherError),
    #[error("{0}")]
    Tokenize(String),
}

#[derive(Clone)]
pub struct Engine {
    tokenizer: Arc<TextTokenizer>,
    batcher: Batcher,
    name: Arc<str>,
    config: Arc<ModelConfig>,
}

impl Engine {
    /// Loads the tokenizer now and the model on the inference threads (see [`Batcher::readiness`]).
    /// `warmup` tokenizes one warm-up text the way requests will be. Needs a tokio runtime.
    pub fn start(
        dir: &ModelDir,
        kind: ModelKind,
        args: &EngineArgs,
        metrics: BatcherMetrics,
        warmup: impl Fn(&TextTokenizer, &str) -> Result<Encoded, TokenizeError>,
    ) -> Result<Self, ModelError> {
        if dir.config.kind != kind {
            return Err(ModelError::Config {
                path: dir.path.join("model.toml"),
                message: format!(
                    "kind = \"{}\", but this service needs kind = \"{}\"",
                    dir.config.kind.as_str(),
                    kind.as_str()
                ),
            });
        }
        let tokenizer = Arc::new(TextTokenizer::load(&dir.tokenizer_path(), &dir.config)?);
        let options = SessionOptions { intra_threads: args.intra_threads(), spinning: args.spinning() };
        let (model_dir, pad_id) = (dir.clone(), tokenizer.pad_id());
        let factory: ModelFactory = Arc::new(move || {
            InferenceSession::load(&model_dir, pad_id, options)
                .map(|s| Box::new(s) as Box<dyn Model>)
                .map_err(|e| e.to_string())
        });
        let encode = |text: &str| {
            warmup(&tokenizer, text)
                .map_err(|e| ModelError::Tokenizer { path: dir.tokenizer_path(), message: e.to_string() })
        };
        let short = encode("warm-up")?;
        let longest = encode(&"warm-up ".repeat(dir.config.max_length))?;
        let batcher = Batcher::start(args.batcher_config(), factory, warmup_batches(short, longest, args), metrics);
        Ok(Self { tokenizer, batcher, name: dir.name().into(), config: Arc::new(dir.config.clone()) })
    }

    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// The model's name (its directory's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Tokenizes with `encode` on the blocking pool (never on the async workers), then runs the
    /// sequences through the batcher at `priority`. Returns the outputs in order and the tokens
    /// the model saw.
    pub async fn run<F>(&self, priority: Priority, encode: F) -> Result<(Vec<Vec<f32>>, usize), EngineError>
    where
        F: FnOnce(&TextTokenizer, usize) -> Result<Vec<Encoded>, TokenizeError> + Send + 'static,
    {
        let tokenizer = self.tokenizer.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let byte_limit = tokenizer.max_length() * MAX_BYTES_PER_TOKEN;
            encode(&tokenizer, byte_limit)
        })
        .await
        .map_err(|e| EngineError::Tokenize(e.to_string()))?
        .map_err(|e| EngineError::Tokenize(e.to_string()))?;
        let tokens = encoded.iter().map(Encoded::len).sum();
        Ok((self.batcher.submit(encoded, priority).await?, tokens))
    }
}

/// The warm-up: one short sequence (it also tells the output width), then the largest batch the
/// token budget allows of full-length sequences, so memory reaches its working size before
/// `/ready` and the first big request is not the one that pays for it.
fn warmup_batches(short: Encoded, longest: Encoded, args: &EngineArgs) -> Vec<Vec<Encoded>> {
    let count = (args.max_batch_tokens / longest.len().max(1)).clamp(1, args.max_batch_size.max(1));
    vec![vec![short], vec![longest; count]]
}

/// `text` cut to at most `limit` bytes, on a character boundary.
pub fn cut(text: &str, limit: usize) -> &str {
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
