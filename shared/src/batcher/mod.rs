//! The dynamic batching engine: an actor that packs queued sequences into length-grouped batches
//! and runs them on dedicated inference threads that own the ONNX sessions.
//!
//! Callers tokenize first (off the model thread), then [`Batcher::submit`] their sequences. One
//! owner task drains the queue: when an inference thread is free it forms a batch at once if a
//! full batch is waiting or if requests have been arriving far apart (nobody is coming to share
//! it), or else after the oldest item has waited `max_wait`. Admission is bounded: a full queue
//! refuses work with [`BatcherError::Overloaded`] instead of growing. Work has a [`Priority`]:
//! interactive ahead of bulk (see `owner`).

pub mod calibrate;
pub mod in_flight;
mod learned;
mod metrics;
mod owner;
pub mod packing;
mod pending;
mod warmup;
mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use self::learned::{Learned, Wide};
pub use self::metrics::BatcherMetrics;
use self::owner::{Owner, Submitted};
pub use self::packing::BatchLimits;
use self::worker::{Job, Worker};
use crate::tokenize::Encoded;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    pub limits: BatchLimits,
    /// How long the first queued item may wait for company when an inference thread is idle
    /// and requests have recently been arriving less than this far apart.
    pub max_wait: Duration,
    /// Sequences that may wait at once; beyond this, requests are refused (HTTP 429).
    pub queue_capacity: usize,
    /// Inference threads, each with its own session (and its own copy of the weights).
    pub workers: usize,
    /// Padded-token cap of a bulk batch (at most `limits.max_batch_tokens`): a batch cannot be
    /// interrupted, so this bounds how long interactive work can find the threads busy with bulk.
    pub bulk_batch_tokens: usize,
    /// The longest bulk work waits while interactive work goes first: then one bulk batch runs.
    pub bulk_max_delay: Duration,
    /// How long after interactive work ends bulk work still waits, for more of it.
    pub interactive_linger: Duration,
    /// Batches a request may be passed over (others of a better-fitting length going first)
    /// before one of its items must join the next batch; 0 is first come, first served.
    pub max_passed_over: usize,
    /// Check at warm-up that a sequence's output is the same alone and padded in a batch; if it
    /// is not, run one sequence at a time (see `crate::exact`).
    pub probe_batch_invariance: bool,
}

/// Which work goes first. Interactive: someone is waiting for this answer (a search, a single
/// embedding). Bulk: a batch job's documents, which yield to interactive work but are not starved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Interactive,
    Bulk,
}

/// A count of interactive work in flight, shared by the engines that run on the same cores: while
/// it is above zero, and for a moment after (see `owner`), no bulk batch starts (except one per
/// `bulk_max_delay`). Each batcher counts its own interactive requests; a caller whose one piece
/// of work spans engines (a search: embed, then rerank) holds a [`ForegroundGuard`] for all of it.
#[derive(Clone)]
pub struct Foreground(Arc<watch::Sender<Activity>>);

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Activity {
    pub in_flight: usize,
    /// When interactive work last ended.
    pub last_exit: Option<Instant>,
}

impl Default for Foreground {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(Activity::default())))
    }
}

impl Foreground {
    /// Counts interactive work in flight until the guard is dropped.
    pub fn enter(&self) -> ForegroundGuard {
        self.0.send_modify(|a| a.in_flight += 1);
        ForegroundGuard(self.0.clone())
    }
}

pub struct ForegroundGuard(Arc<watch::Sender<Activity>>);

impl Drop for ForegroundGuard {
    fn drop(&mut self) {
        self.0.send_modify(|a| {
            a.in_flight -= 1;
            a.last_exit = Some(Instant::now());
        });
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatcherError {
    #[error("the inference queue is full")]
    Overloaded,
    #[error("the model is not running: {0}")]
    Unavailable(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Where the engine is in its life: loading, serving, or failed (to load, or later, if an
/// inference thread dies).
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Loading,
    Ready,
    Failed(String),
}

type ItemResult = Result<Vec<f32>, BatcherError>;

struct Item {
    encoded: Encoded,
    respond: oneshot::Sender<ItemResult>,
    enqueued: Instant,
    /// The request's span, linked from the batch span that runs the item, and parent of the
    /// `inference` span that shows the batch in the request's trace.
    span: tracing::Span,
    /// The request's `queue_wait` span, shared by its items: it ends when the last is dispatched.
    queued: tracing::Span,
}

/// What an inference thread runs: a padded batch in, one output vector per sequence out.
/// [`crate::session::InferenceSession`] is the real one; tests of the queue logic use fakes.
pub trait Model: Send {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String>;

    /// Runs a batch and says how long it took (the warm-up's calibration); a fake engine in a
    /// test reports its given cost model instead.
    fn timed_run(&mut self, batch: &[&Encoded]) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        self.run(batch)?;
        Ok(started.elapsed())
    }
}

/// What each inference thread runs before it serves: the warm-up batches, and, on the first
/// thread, the calibration of the batch policy (when there is one to make) and then the
/// single-threaded sessions to try side by side.
#[derive(Clone, Default)]
pub struct WarmUp {
    pub batches: Vec<Vec<Encoded>>,
    pub calibration: Option<calibrate::CalibrationSpec>,
    pub in_flight: Option<in_flight::InFlightSpec>,
}

impl From<Vec<Vec<Encoded>>> for WarmUp {
    fn from(batches: Vec<Vec<Encoded>>) -> Self {
        Self { batches, calibration: None, in_flight: None }
    }
}

/// Builds one model instance; called once on each inference thread, which then owns it.
pub type ModelFactory = Arc<dyn Fn() -> Result<Box<dyn Model>, String> + Send + Sync>;

/// A cloneable handle to the engine. Dropping every handle lets the owner finish and stop.
#[derive(Clone)]
pub struct Batcher {
    requests: mpsc::UnboundedSender<Submitted>,
    foreground: Foreground,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    metrics: BatcherMetrics,
    readiness: watch::Receiver<Readiness>,
    learned: Learned,
}

impl Batcher {
    /// Starts the owner task (on the current tokio runtime) and `config.workers` inference threads.
    /// Each batch of `warmup` is run once per session before the engine reports
    /// [`Readiness::Ready`]; the first sequence's output alone is [`Batcher::first_output`]. With
    /// a calibration, the first thread then measures what batching is worth and the owner batches
    /// as far as that says ([`Batcher::calibration`]).
    pub fn start(
        config: BatcherConfig,
        factory: ModelFactory,
        warmup: impl Into<WarmUp>,
        metrics: BatcherMetrics,
    ) -> Self {
        let warmup: WarmUp = warmup.into();
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = std_mpsc::channel::<Job>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (ready_tx, ready_rx) = watch::channel(Readiness::Loading);
        let ready_tx = Arc::new(ready_tx);
        let workers = config.workers.max(1);
        let loaded = Arc::new(AtomicUsize::new(0));
        let learned = Learned::default();
        let probe = config.probe_batch_invariance && config.limits.max_batch_size > 1;
        let free_workers = Arc::new(Semaphore::new(workers));
        for n in 0..workers {
            let worker = Worker { jobs: jobs_rx.clone(), metrics: metrics.clone() };
            let (factory, ready_tx, loaded, learned) =
                (factory.clone(), ready_tx.clone(), loaded.clone(), learned.clone());
            let batches = warmup.batches.clone();
            let (calibration, in_flight) =
                if n == 0 { (warmup.calibration.clone(), warmup.in_flight.clone()) } else { (None, None) };
            let (jobs, metrics, free_workers) = (jobs_rx.clone(), metrics.clone(), free_workers.clone());
            std::thread::Builder::new()
                .name(format!("inference-{n}"))
                .spawn(move || {
                    let load =
                        || warmup::load_and_warm(&factory, &batches, probe, calibration.as_ref(), in_flight.as_ref());
                    match lower_priority_then(load) {
                        Ok(mut warmed) => {
                            let _failed_if_panicking = FailOnPanic(ready_tx.clone());
                            learned.record(&warmed);
                            // Sessions the calibration chose to run beside this one: each gets an
                            // inference thread (this one's lowered priority is inherited), and
                            // the first session one of its own, with its own queue (`Wide`).
                            let extra = std::mem::take(&mut warmed.extra);
                            if let Some(session) = warmed.wide.take() {
                                let (wide_jobs, queue) = std_mpsc::channel();
                                let _ = learned.wide.set(Wide { jobs: wide_jobs, narrow: extra.len() + 1 });
                                let worker = Worker { jobs: Arc::new(Mutex::new(queue)), metrics: metrics.clone() };
                                worker.spawn("inference-wide".into(), session, ready_tx.clone());
                            }
                            for (k, model) in extra.into_iter().enumerate() {
                                let worker = Worker { jobs: jobs.clone(), metrics: metrics.clone() };
                                worker.spawn(format!("inference-{}", workers + k), model, ready_tx.clone());
                                free_workers.add_permits(1);
                            }
                            // Set before Ready, so no batch forms before the owner knows.
                            if loaded.fetch_add(1, Ordering::SeqCst) + 1 == workers {
                                ready_tx.send_replace(Readiness::Ready);
                            }
                            worker.run(warmed.model);
                        }
                        Err(message) => {
                            tracing::error!(%message, "model failed to load");
                            ready_tx.send_replace(Readiness::Failed(message));
                        }
                    }
                })
                .expect("spawning an inference thread");
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let foreground = Foreground::default();
        let owner = Owner {
            foreground: foreground.0.subscribe(),
            _foreground: foreground.clone(),
            config,
            requests: requests_rx,
            jobs: jobs_tx,
            free_workers,
            queued: queued.clone(),
            metrics: metrics.clone(),
            learned: learned.clone(),
        };
        tokio::spawn(owner.run());
        Self {
            requests: requests_tx,
            foreground,
            queued,
            capacity: config.queue_capacity,
            metrics,
            readiness: ready_rx,
            learned,
        }
    }

    /// The length of each output vector (the embedding dimension), known after warm-up.
    pub fn output_width(&self) -> Option<usize> {
        self.learned.first_output.get().map(Vec::len)
    }

    /// The first warm-up sequence's output, computed alone; known after warm-up.
    pub fn first_output(&self) -> Option<&[f32]> {
        self.learned.first_output.get().map(Vec::as_slice)
    }

    /// Whether the warm-up probe found outputs that depend on the batch, so that every sequence
    /// now runs alone.
    pub fn runs_alone(&self) -> bool {
        self.learned.alone.load(Ordering::SeqCst)
    }

    /// What the warm-up measured of batching on this machine, if it calibrated.
    pub fn calibration(&self) -> Option<&calibrate::Calibration> {
        self.learned.calibration.get()
    }

    pub fn readiness(&self) -> watch::Receiver<Readiness> {
        self.readiness.clone()
    }

    /// Sequences currently waiting for a batch.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// This engine's count of interactive work in flight, to share with a caller's guard.
    pub fn foreground(&self) -> &Foreground {
        &self.foreground
    }

    /// Queues the sequences of one request and waits for their outputs, in order. All or none
    /// are admitted. Dropping the returned future cancels the items that have not run yet.
    pub async fn submit(&self, sequences: Vec<Encoded>, priority: Priority) -> Result<Vec<Vec<f32>>, BatcherError> {
        let _interactive = (priority == Priority::Interactive).then(|| self.foreground.enter());
        let n = sequences.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if *self.readiness.borrow() != Readiness::Ready {
            return Err(BatcherError::Unavailable("the model is still loading".into()));
        }
        self.admit(n)?;
        let enqueued = Instant::now();
        let span = tracing::Span::current();
        let queued = tracing::info_span!("queue_wait", sequences = n);
        let (items, receivers): (Vec<Item>, Vec<_>) = sequences
            .into_iter()
            .map(|encoded| {
                let (respond, rx) = oneshot::channel();
                (Item { encoded, respond, enqueued, span: span.clone(), queued: queued.clone() }, rx)
            })
            .unzip();
        // From here the items hold the queue-wait span: it ends when they leave the queue.
        drop(queued);
        if self.requests.send(Submitted { items, priority }).is_err() {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(BatcherError::Unavailable("the batcher has stopped".into()));
        }
        let mut out = Vec::with_capacity(n);
        for rx in receivers {
            out.push(rx.await.map_err(|_| BatcherError::Unavailable("the inference thread stopped".into()))??);
        }
        Ok(out)
    }

    fn admit(&self, n: usize) -> Result<(), BatcherError> {
        let admitted =
            self.queued.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| (q + n <= self.capacity).then_some(q + n));
        match admitted {
            Ok(q) => {
                self.metrics.queue_depth.set((q + n) as i64);
                Ok(())
            }
            Err(_) => {
                self.metrics.rejected.inc_by(n as u64);
                Err(BatcherError::Overloaded)
            }
        }
    }
}

/// The middle of the warm-up's timings (`calibrate`, `in_flight`), sorted in place.
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Marks the engine failed if an inference thread unwinds, so `/ready` and the process (which
/// exits on failure, to be restarted) do not go on as if the model could still answer.
struct FailOnPanic(Arc<watch::Sender<Readiness>>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.send_replace(Readiness::Failed("an inference thread panicked".into()));
        }
    }
}

/// Runs `load` (which builds the session, and with it ONNX Runtime's threads) after lowering this
/// inference thread's CPU priority, so that they all run below the request threads.
fn lower_priority_then<T>(load: impl FnOnce() -> T) -> T {
    if let Err(error) = crate::niceness::lower_this_thread(crate::niceness::INFERENCE_NICE) {
        tracing::warn!(%error, "could not lower the inference thread's CPU priority");
    }
    load()
}

#[cfg(test)]
mod priority_tests;
#[cfg(test)]
mod side_by_side_tests;
#[cfg(test)]
mod tests;
