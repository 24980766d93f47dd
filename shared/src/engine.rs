//! What every model service runs: a model directory's tokenizer and a dynamic batcher whose
//! inference threads own the ONNX sessions. [`crate::Embedder`] and [`crate::Reranker`] wrap it.

use std::sync::Arc;

use serde::Serialize;

use crate::batcher::calibrate::{Calibration, CalibrationSpec};
use crate::batcher::in_flight::{self, InFlightSpec};
use crate::batcher::{Batcher, BatcherError, BatcherMetrics, Model, ModelFactory, Priority, WarmUp};
use crate::config::{DEFAULT_MAX_BATCH_SIZE, EngineArgs};
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
    plan: Arc<BatchPlan>,
}

/// How an engine runs its model: decided at start from the flags and the model file, logged,
/// and shown in `/info`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BatchPlan {
    /// Most sequences in one inference run.
    pub max_batch_size: usize,
    /// Inference threads, each with its own session.
    pub workers: usize,
    /// ONNX Runtime intra-op threads of each session.
    pub intra_op_threads: usize,
    /// Whether a sequence's output must not depend on what it is batched with (--batch-invariant).
    pub batch_invariant: bool,
    /// Why.
    pub reason: String,
    /// What the warm-up measured of batching on this machine, when it calibrated the policy.
    pub calibration: Option<Calibration>,
}

impl BatchPlan {
    /// The plan for `kind`'s model in `onnx` on `cores` cores under `args`. A model that must be
    /// batch-invariant and is not (dynamic quantization, `crate::exact`) runs one sequence at a
    /// time, on one single-threaded session per core: as fast as the best batching on long
    /// pairs and on short ones (BENCHMARKS.md, "Exact scores"). Explicit flags win.
    pub fn decide(
        kind: ModelKind,
        onnx: &std::path::Path,
        args: &EngineArgs,
        cores: usize,
    ) -> Result<Self, std::io::Error> {
        let batch_invariant = args.batch_invariant.unwrap_or(kind == ModelKind::Reranker);
        let cap = args.max_batch_size.unwrap_or(DEFAULT_MAX_BATCH_SIZE);
        let dependent_op = if batch_invariant { crate::exact::batch_dependent_op(onnx)? } else { None };
        let (max_batch_size, workers, reason) = match dependent_op {
            Some(op) => (
                1,
                args.workers.unwrap_or(cores),
                format!(
                    "the graph quantizes dynamically ({op}), so a sequence's output depends on its batch-mates: each runs alone"
                ),
            ),
            None if batch_invariant => (
                cap,
                args.workers.unwrap_or(1),
                "no batch-dependent operator (checked again at warm-up): batched".to_string(),
            ),
            None => (cap, args.workers.unwrap_or(1), "batched (--batch-invariant off)".to_string()),
        };
        let intra_op_threads = args.intra_op_threads.unwrap_or((cores / workers.max(1)).max(1));
        Ok(Self { max_batch_size, workers, intra_op_threads, batch_invariant, reason, calibration: None })
    }

    /// What the warm-up should measure, given `sequence` (the longest warm-up one, cut short),
    /// and whether it should then try `sessions` single-threaded sessions side by side (at least
    /// 2: one per core as memory allows; only when the thread settings are not flags). Nothing
    /// when both batch settings are flags and batches are allowed, or when several inference
    /// threads would share the cores while one measures (then the reason says so).
    pub fn calibration_spec(
        &mut self,
        args: &EngineArgs,
        sequence: &Encoded,
        sessions: usize,
    ) -> (Option<CalibrationSpec>, bool) {
        let (choose_size, choose_overhead) = (args.max_batch_size.is_none(), args.batch_overhead_tokens.is_none());
        let side_by_side = args.workers.is_none() && args.intra_op_threads.is_none() && sessions > 1;
        let wanted = match self.max_batch_size {
            0 | 1 => side_by_side,
            _ => choose_size || choose_overhead,
        };
        if !wanted || (self.workers > 1 && self.max_batch_size < 2) {
            return (None, false); // (several threads running sequences alone: what side by side would give)
        }
        if self.workers > 1 {
            self.reason.push_str(&format!(
                "; not calibrated ({} inference threads would share the cores while one measured): \
                 the flags' values or their defaults",
                self.workers
            ));
            return (None, false);
        }
        (Some(CalibrationSpec::new(sequence, self.max_batch_size, choose_size, choose_overhead)), side_by_side)
    }
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut plan = BatchPlan::decide(kind, &dir.onnx_path(), args, cores)
            .map_err(|e| ModelError::Onnx { path: dir.onnx_path(), message: e.to_string() })?;
        tracing::info!(
            model = dir.name(),
            max_batch_size = plan.max_batch_size,
            workers = plan.workers,
            intra_op_threads = plan.intra_op_threads,
            reason = %plan.reason,
            "batching plan"
        );
        let options = SessionOptions { intra_threads: plan.intra_op_threads, spinning: args.spinning() };
        let pad_id = tokenizer.pad_id();
        let factory = session_factory(dir, pad_id, options);
        let encode = |text: &str| {
            warmup(&tokenizer, text)
                .map_err(|e| ModelError::Tokenizer { path: dir.tokenizer_path(), message: e.to_string() })
        };
        let short = encode("warm-up")?;
        let longest = encode(&"warm-up ".repeat(dir.config.max_length))?;
        let model_bytes = std::fs::metadata(dir.onnx_path()).map_or(u64::MAX / 4, |m| m.len());
        let sessions = in_flight::sessions_that_fit(cores, model_bytes, in_flight::available_memory());
        let (calibration, side_by_side) = plan.calibration_spec(args, &longest, sessions);
        let in_flight = side_by_side.then(|| InFlightSpec {
            factory: session_factory(dir, pad_id, SessionOptions { intra_threads: 1, ..options }),
            sessions,
            warmup: vec![vec![short.clone()], vec![longest.clone()]],
        });
        let mut config = args.batcher_config();
        config.limits.max_batch_size = plan.max_batch_size;
        config.workers = plan.workers;
        config.probe_batch_invariance = plan.batch_invariant;
        let batches = warmup_batches(short, longest, config.limits.max_batch_tokens, plan.max_batch_size);
        let warmup = WarmUp { batches, calibration, in_flight };
        let batcher = Batcher::start(config, factory, warmup, metrics);
        let (name, config, plan) = (dir.name().into(), Arc::new(dir.config.clone()), Arc::new(plan));
        Ok(Self { tokenizer, batcher, name, config, plan })
    }

    /// How the engine runs its batches; after warm-up, as far as the calibration found batching
    /// pays, and one at a time if the probe found outputs that depend on the batch.
    pub fn plan(&self) -> BatchPlan {
        let mut plan = (*self.plan).clone();
        if let Some(calibration) = self.batcher.calibration() {
            plan.max_batch_size = calibration.max_batch_size.unwrap_or(plan.max_batch_size);
            plan.reason = format!("{}; calibrated: {}", plan.reason, calibration.reason);
            if let Some(in_flight) = calibration.in_flight.as_ref().filter(|f| f.chosen) {
                (plan.workers, plan.intra_op_threads) = (in_flight.sessions, 1);
            }
            plan.calibration = Some(calibration.clone());
        }
        if self.batcher.runs_alone() && plan.max_batch_size > 1 {
            plan.max_batch_size = 1;
            plan.reason = "the warm-up probe found a sequence's output changed in a batch: each runs alone".into();
        }
        plan
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

/// Builds sessions of the model in `dir` with `options`, one per call (on the thread that calls).
fn session_factory(dir: &ModelDir, pad_id: i64, options: SessionOptions) -> ModelFactory {
    let dir = dir.clone();
    Arc::new(move || {
        InferenceSession::load(&dir, pad_id, options).map(|s| Box::new(s) as Box<dyn Model>).map_err(|e| e.to_string())
    })
}

/// The warm-up: one short sequence (it also tells the output width), then the largest batch the
/// token budget allows of full-length sequences, so memory reaches its working size before
/// `/ready` and the first big request is not the one that pays for it.
fn warmup_batches(
    short: Encoded,
    longest: Encoded,
    max_batch_tokens: usize,
    max_batch_size: usize,
) -> Vec<Vec<Encoded>> {
    let count = (max_batch_tokens / longest.len().max(1)).clamp(1, max_batch_size.max(1));
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
