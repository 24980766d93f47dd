//! Command-line/environment options shared by the services: the batching engine, secrets, and
//! where a model comes from (serving's own options are `http::ServeArgs`).

use std::path::Path;
use std::time::Duration;

use crate::batcher::{BatchLimits, BatcherConfig};
use crate::fetch::FetchError;
use crate::model::ModelDir;

/// The batch size cap when `--max-batch-size` is not given (the calibration chooses within it).
pub const DEFAULT_MAX_BATCH_SIZE: usize = 32;
/// A run's fixed cost in tokens when `--batch-overhead-tokens` is not given and nothing measures
/// it (tuned by hand on AVX-512 before the calibration existed).
pub const DEFAULT_OVERHEAD_TOKENS: usize = 48;

/// The dynamic batching engine's knobs.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Padded-token budget of one inference batch (batch size x longest sequence).
    #[arg(long, env = "MAX_BATCH_TOKENS", default_value_t = 4096)]
    pub max_batch_tokens: usize,
    /// Most sequences in one inference batch [default: measured at warm-up, at most 32: 1 when no
    /// batch runs 10% faster per sequence than one at a time on this machine, else the fastest
    /// size; /info shows the figures].
    #[arg(long, env = "MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,
    /// Largest share of padding a batch may carry; lower groups lengths more strictly.
    #[arg(long, env = "MAX_PADDING_RATIO", default_value_t = 0.2)]
    pub max_padding_ratio: f64,
    /// Fixed cost of one inference run, in tokens' worth of time: a sequence joins a batch only
    /// if its padding costs less than running it later in a batch of its own length [default:
    /// measured at warm-up with the batch size; 48 where nothing is measured].
    #[arg(long, env = "BATCH_OVERHEAD_TOKENS")]
    pub batch_overhead_tokens: Option<usize>,
    /// Milliseconds the first queued sequence waits for company while the model is idle, if
    /// requests have recently been arriving less than this far apart (otherwise it runs at once).
    #[arg(long, env = "MAX_WAIT_MS", default_value_t = 2)]
    pub max_wait_ms: u64,
    /// Sequences that may wait at once; more is refused with 429.
    #[arg(long, env = "QUEUE_CAPACITY", default_value_t = 4096)]
    pub queue_capacity: usize,
    /// ONNX Runtime intra-op threads per inference thread [default: the cores shared out among
    /// the inference threads].
    #[arg(long, env = "INTRA_OP_THREADS")]
    pub intra_op_threads: Option<usize>,
    /// Whether ONNX Runtime's idle intra-op threads spin-wait (lower latency, but they take CPU
    /// from tokenization and HTTP on small machines) [default: true; false in search-gateway
    /// when both engines run in process, where two spinning thread pools slow each other down]
    #[arg(long, env = "INTRA_OP_SPINNING", action = clap::ArgAction::Set)]
    pub intra_op_spinning: Option<bool>,
    /// Inference threads, each with its own copy of the model [default: 1; one per core when
    /// sequences run alone (an int8 reranker, see --batch-invariant); and, unless this or
    /// --intra-op-threads is given, one single-threaded session per core if, timed side by side
    /// at warm-up, they ran 5% faster than one session: then work that waits runs on them, and a
    /// batch with nothing else waiting runs on the one session, on every core].
    #[arg(long, env = "INFERENCE_WORKERS")]
    pub workers: Option<usize>,
    /// Keep each sequence's output the same whatever it is batched with: a model whose outputs
    /// depend on their batch-mates (dynamic int8 quantization) then runs one sequence at a time,
    /// on one inference thread per core [default: on for rerankers, whose scores search-gateway
    /// reuses per pair; off for embedders].
    #[arg(long, env = "BATCH_INVARIANT", action = clap::ArgAction::Set)]
    pub batch_invariant: Option<bool>,
    /// Padded-token cap of a batch of bulk work (batch jobs): a running batch cannot be
    /// interrupted, so this bounds how long a search can find the model busy with a job's batch.
    #[arg(long, env = "BULK_BATCH_TOKENS", default_value_t = 256)]
    pub bulk_batch_tokens: usize,
    /// Longest a bulk batch is held back while interactive work goes first; then one runs.
    #[arg(long, env = "BULK_MAX_DELAY_MS", default_value_t = 2000)]
    pub bulk_max_delay_ms: u64,
    /// Milliseconds after interactive work ends before bulk work may start again (a client's
    /// next search usually follows at once). On one machine with separate model services, about
    /// one rerank's time, so that the embed-service's bulk work pauses while a search reranks.
    #[arg(long, env = "INTERACTIVE_LINGER_MS", default_value_t = 50)]
    pub interactive_linger_ms: u64,
    /// Batches a request may be passed over by requests of a better-fitting length before one of
    /// its sequences must join the next batch (bounds the tail latency; 0 = first come, first served).
    #[arg(long, env = "MAX_PASSED_OVER", default_value_t = 4)]
    pub max_passed_over: usize,
}

impl EngineArgs {
    /// `--intra-op-spinning` as set, or on.
    pub fn spinning(&self) -> bool {
        self.intra_op_spinning.unwrap_or(true)
    }

    pub fn batcher_config(&self) -> BatcherConfig {
        BatcherConfig {
            limits: BatchLimits {
                max_batch_tokens: self.max_batch_tokens,
                max_batch_size: self.max_batch_size.unwrap_or(DEFAULT_MAX_BATCH_SIZE),
                max_padding_ratio: self.max_padding_ratio,
                overhead_tokens: self.batch_overhead_tokens.unwrap_or(DEFAULT_OVERHEAD_TOKENS),
            },
            max_wait: Duration::from_millis(self.max_wait_ms),
            queue_capacity: self.queue_capacity,
            workers: self.workers.unwrap_or(1),
            bulk_batch_tokens: self.bulk_batch_tokens,
            bulk_max_delay: Duration::from_millis(self.bulk_max_delay_ms),
            interactive_linger: Duration::from_millis(self.interactive_linger_ms),
            max_passed_over: self.max_passed_over,
            probe_batch_invariance: false,
        }
    }

    /// Rejects settings that cannot work; `largest_request` is the most sequences one request may queue.
    pub fn validate(&self, largest_request: usize) -> Result<(), String> {
        if self.max_batch_size == Some(0)
            || self.max_batch_tokens == 0
            || self.bulk_batch_tokens == 0
            || self.workers == Some(0)
            || self.intra_op_threads == Some(0)
        {
            return Err(
                "--max-batch-size, --max-batch-tokens, --bulk-batch-tokens, --workers and --intra-op-threads must be at least 1"
                    .into(),
            );
        }
        if !(0.0..=1.0).contains(&self.max_padding_ratio) {
            return Err(format!("--max-padding-ratio must be within 0..=1, not {}", self.max_padding_ratio));
        }
        if self.queue_capacity < largest_request {
            return Err(format!(
                "--queue-capacity ({}) is smaller than the largest request ({largest_request}), which could never be admitted",
                self.queue_capacity
            ));
        }
        Ok(())
    }
}

/// A secret taken from a flag or the environment (an API key, a URL with a password). Its `Debug`
/// and `Display` print `***`, so logging a config never shows it; [`Secret::expose`] is the one
/// way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(value))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The model directory to serve: `--model-dir` if given, else the named model under
/// `models_dir`, fetched from the Hugging Face hub on first use.
pub async fn resolve_model(model_dir: Option<&Path>, name: &str, models_dir: &Path) -> Result<ModelDir, FetchError> {
    match model_dir {
        Some(dir) => Ok(ModelDir::open(dir)?),
        None => crate::fetch::ensure(name, models_dir).await,
    }
}
