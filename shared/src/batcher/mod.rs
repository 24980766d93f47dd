//! The dynamic batching engine: an actor that packs queued sequences into length-grouped batches
//! and runs them on dedicated inference threads that own the ONNX sessions.
//!
//! Callers tokenize first (off the model thread), then [`Batcher::submit`] their sequences. One
//! owner task drains the queue: when an inference thread is free it forms a batch at once if a
//! full batch is waiting or if requests have been arriving far apart (nobody is coming to share
//! it), or else after the oldest item has waited `max_wait`. Admission is bounded: a full queue
//! refuses work with [`BatcherError::Overloaded`] instead of growing.

mod metrics;
pub mod packing;
mod pending;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc as std_mpsc};
use std::time::Duration;

pub use self::metrics::BatcherMetrics;
pub use self::packing::BatchLimits;
use self::pending::Pending;
use crate::tokenize::Encoded;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

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
    /// The request's span, linked from the batch span that runs the item.
    span: tracing::Span,
}

struct Job {
    items: Vec<Item>,
    _worker: OwnedSemaphorePermit,
    span: tracing::Span,
}

/// What an inference thread runs: a padded batch in, one output vector per sequence out.
/// [`crate::session::InferenceSession`] is the real one; tests of the queue logic use fakes.
pub trait Model: Send {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String>;
}

/// Builds one model instance; called once on each inference thread, which then owns it.
pub type ModelFactory = Arc<dyn Fn() -> Result<Box<dyn Model>, String> + Send + Sync>;

/// A cloneable handle to the engine. Dropping every handle lets the owner finish and stop.
#[derive(Clone)]
pub struct Batcher {
    requests: mpsc::UnboundedSender<Vec<Item>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    metrics: BatcherMetrics,
    readiness: watch::Receiver<Readiness>,
    output_width: Arc<OnceLock<usize>>,
}

impl Batcher {
    /// Starts the owner task (on the current tokio runtime) and `config.workers` inference threads.
    /// Each batch of `warmup` is run once per session before the engine reports
    /// [`Readiness::Ready`]; the first batch's output width becomes [`Batcher::output_width`].
    pub fn start(
        config: BatcherConfig,
        factory: ModelFactory,
        warmup: Vec<Vec<Encoded>>,
        metrics: BatcherMetrics,
    ) -> Self {
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = std_mpsc::channel::<Job>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (ready_tx, ready_rx) = watch::channel(Readiness::Loading);
        let ready_tx = Arc::new(ready_tx);
        let workers = config.workers.max(1);
        let loaded = Arc::new(AtomicUsize::new(0));
        let output_width = Arc::new(OnceLock::new());
        for n in 0..workers {
            let worker = Worker { jobs: jobs_rx.clone(), metrics: metrics.clone() };
            let (factory, warmup, ready_tx, loaded) =
                (factory.clone(), warmup.clone(), ready_tx.clone(), loaded.clone());
            let output_width = output_width.clone();
            std::thread::Builder::new()
                .name(format!("inference-{n}"))
                .spawn(move || match load_and_warm(&factory, &warmup) {
                    Ok((model, width)) => {
                        let _failed_if_panicking = FailOnPanic(ready_tx.clone());
                        if let Some(width) = width {
                            let _ = output_width.set(width);
                        }
                        if loaded.fetch_add(1, Ordering::SeqCst) + 1 == workers {
                            ready_tx.send_replace(Readiness::Ready);
                        }
                        worker.run(model);
                    }
                    Err(message) => {
                        tracing::error!(%message, "model failed to load");
                        ready_tx.send_replace(Readiness::Failed(message));
                    }
                })
                .expect("spawning an inference thread");
        }
        let queued = Arc::new(AtomicUsize::new(0));
        let owner = Owner {
            config,
            requests: requests_rx,
            jobs: jobs_tx,
            free_workers: Arc::new(Semaphore::new(workers)),
            queued: queued.clone(),
            metrics: metrics.clone(),
        };
        tokio::spawn(owner.run());
        Self {
            requests: requests_tx,
            queued,
            capacity: config.queue_capacity,
            metrics,
            readiness: ready_rx,
            output_width,
        }
    }

    /// The length of each output vector (the embedding dimension), known after warm-up.
    pub fn output_width(&self) -> Option<usize> {
        self.output_width.get().copied()
    }

    pub fn readiness(&self) -> watch::Receiver<Readiness> {
        self.readiness.clone()
    }

    /// Sequences currently waiting for a batch.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues the sequences of one request and waits for their outputs, in order. All or none
    /// are admitted. Dropping the returned future cancels the items that have not run yet.
    pub async fn submit(&self, sequences: Vec<Encoded>) -> Result<Vec<Vec<f32>>, BatcherError> {
        let n = sequences.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if *self.readiness.borrow() != Readiness::Ready {
            return Err(BatcherError::Unavailable("the model is still loading".into()));
        }
        self.admit(n)?;
        let enqueued = Instant::now();
        let (items, receivers): (Vec<Item>, Vec<_>) = sequences
            .into_iter()
            .map(|encoded| {
                let (respond, rx) = oneshot::channel();
                (Item { encoded, respond, enqueued, span: tracing::Span::current() }, rx)
            })
            .unzip();
        if self.requests.send(items).is_err() {
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

/// Builds the model and runs the warm-up batches; returns the model and its output width.
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

fn load_and_warm(factory: &ModelFactory, warmup: &[Vec<Encoded>]) -> Result<(Box<dyn Model>, Option<usize>), String> {
    let mut model = factory()?;
    let mut width = None;
    for batch in warmup {
        let batch: Vec<&Encoded> = batch.iter().collect();
        let outputs = model.run(&batch).map_err(|e| format!("warm-up failed: {e}"))?;
        width = width.or(outputs.first().map(Vec::len));
    }
    Ok((model, width))
}

/// The single owner of the queue.
struct Owner {
    config: BatcherConfig,
    requests: mpsc::UnboundedReceiver<Vec<Item>>,
    jobs: std_mpsc::Sender<Job>,
    free_workers: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    metrics: BatcherMetrics,
}

impl Owner {
    async fn run(mut self) {
        let mut pending = Pending::default();
        let mut arrivals = Arrivals::default();
        let mut worker: Option<OwnedSemaphorePermit> = None;
        let mut open = true;
        loop {
            let cancelled = pending.drop_cancelled();
            if cancelled > 0 {
                self.metrics.cancelled.inc_by(cancelled as u64);
                self.dequeued(cancelled);
            }
            if pending.is_empty() {
                if !open {
                    return;
                }
                match self.requests.recv().await {
                    Some(items) => arrivals.push(&mut pending, items, self.config.max_wait),
                    None => open = false,
                }
                continue;
            }
            let Some(permit) = worker.take() else {
                tokio::select! {
                    biased;
                    permit = self.free_workers.clone().acquire_owned() => {
                        worker = Some(permit.expect("the worker semaphore is never closed"));
                    }
                    items = self.requests.recv(), if open => match items {
                        Some(items) => arrivals.push(&mut pending, items, self.config.max_wait),
                        None => open = false,
                    },
                }
                continue;
            };
            while let Ok(items) = self.requests.try_recv() {
                arrivals.push(&mut pending, items, self.config.max_wait);
            }
            let deadline = pending.oldest().map_or_else(Instant::now, |t| t + self.config.max_wait);
            let worth_waiting =
                open && arrivals.company_likely(self.config.max_wait) && !pending.can_fill(&self.config.limits);
            if worth_waiting && Instant::now() < deadline {
                worker = Some(permit);
                tokio::select! {
                    _ = sleep_until(deadline) => {}
                    items = self.requests.recv() => match items {
                        Some(items) => arrivals.push(&mut pending, items, self.config.max_wait),
                        None => open = false,
                    },
                }
                continue;
            }
            let items = pending.take_batch(&self.config.limits);
            self.dequeued(items.len());
            let span = tracing::debug_span!("batch", size = items.len());
            for item in &items {
                span.follows_from(&item.span);
            }
            if let Err(std_mpsc::SendError(job)) = self.jobs.send(Job { items, _worker: permit, span }) {
                for item in job.items {
                    let _ = item.respond.send(Err(BatcherError::Unavailable("no inference thread is running".into())));
                }
            }
        }
    }

    fn dequeued(&self, n: usize) {
        let before = self.queued.fetch_sub(n, Ordering::SeqCst);
        self.metrics.queue_depth.set((before - n) as i64);
    }
}

/// How far apart requests have recently arrived, to tell whether a lone item waiting `max_wait`
/// can expect company. A client sending one request at a time (each after the previous answer)
/// never brings company within `max_wait`, and waiting would only add to every request's latency;
/// concurrent clients and bursts arrive close together and share batches.
#[derive(Default)]
struct Arrivals {
    last: Option<Instant>,
    /// Moving average (weight 1/4 for the newest) of the gaps between requests, each counted as
    /// at most `8 x max_wait` so that one idle pause is forgotten within a few requests.
    mean_gap: Option<Duration>,
}

impl Arrivals {
    fn push(&mut self, pending: &mut Pending, items: Vec<Item>, max_wait: Duration) {
        let now = Instant::now();
        if let Some(last) = self.last {
            let gap = now.duration_since(last).min(max_wait * 8);
            self.mean_gap = Some(self.mean_gap.map_or(gap, |mean| (mean * 3 + gap) / 4));
        }
        self.last = Some(now);
        pending.push_request(items);
    }

    /// With no history yet (the very first request), yes: it waits as configured.
    fn company_likely(&self, max_wait: Duration) -> bool {
        self.mean_gap.is_none_or(|gap| gap <= max_wait)
    }
}

/// An inference thread: owns one session and runs the batches it is handed.
struct Worker {
    jobs: Arc<Mutex<std_mpsc::Receiver<Job>>>,
    metrics: BatcherMetrics,
}

impl Worker {
    fn run(self, mut model: Box<dyn Model>) {
        // Freed activation buffers go back to the OS: after warm-up, at most once a second under
        // load, and whenever the thread has been idle for a second since its last batch.
        const IDLE: Duration = Duration::from_secs(1);
        let mut trimmer = crate::memory::Trimmer::new(IDLE);
        trimmer.trim_now();
        let mut untrimmed = false;
        loop {
            let next = {
                let jobs = self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                jobs.recv_timeout(IDLE)
            };
            let job = match next {
                Ok(job) => job,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if untrimmed {
                        trimmer.trim_now();
                        untrimmed = false;
                    }
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let span = job.span.clone();
            span.in_scope(|| self.run_job(model.as_mut(), job));
            untrimmed = !trimmer.maybe_trim();
        }
    }

    fn run_job(&self, model: &mut dyn Model, job: Job) {
        let started = Instant::now();
        let sequences: Vec<&Encoded> = job.items.iter().map(|i| &i.encoded).collect();
        let longest = sequences.iter().map(|e| e.len()).max().unwrap_or(0);
        let real: usize = sequences.iter().map(|e| e.len()).sum();
        let m = &self.metrics;
        for item in &job.items {
            m.queue_duration.observe(started.duration_since(item.enqueued).as_secs_f64());
        }
        let outputs = model.run(&sequences);
        let elapsed = started.elapsed();
        m.inference_duration.observe(elapsed.as_secs_f64());
        tracing::debug!(size = job.items.len(), longest, real, ms = elapsed.as_secs_f64() * 1e3, "batch ran");
        m.batch_size.observe(job.items.len() as f64);
        m.batch_tokens.observe((longest * job.items.len()) as f64);
        m.padding_ratio.observe(packing::padding_ratio(real, job.items.len(), longest));
        m.items.inc_by(job.items.len() as u64);
        m.real_tokens.inc_by(real as u64);
        m.padded_tokens.inc_by((longest * job.items.len()) as u64);
        match outputs {
            Ok(outputs) => {
                for (item, output) in job.items.into_iter().zip(outputs) {
                    let _ = item.respond.send(Ok(output));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "batch failed");
                for item in job.items {
                    let _ = item.respond.send(Err(BatcherError::Inference(e.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
