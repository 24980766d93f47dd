//! An inference thread: owns one model session and runs the batches the owner task hands it.

use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::{BatcherError, BatcherMetrics, FailOnPanic, Item, Model, Readiness, packing};
use crate::tokenize::Encoded;

/// A batch on its way to an inference thread.
pub(super) struct Job {
    pub(super) items: Vec<Item>,
    /// The thread's permit; for a `wide` batch, every thread's.
    pub(super) _workers: OwnedSemaphorePermit,
    /// Runs on the session with every core's intra-op thread (`learned::Wide`).
    pub(super) wide: bool,
    pub(super) span: tracing::Span,
    /// One `inference` span per request in the batch, ended when the batch has run.
    pub(super) inference: Vec<tracing::Span>,
}

/// An inference thread: owns one session and runs the batches it is handed.
pub(super) struct Worker {
    pub(super) jobs: Arc<Mutex<std_mpsc::Receiver<Job>>>,
    pub(super) metrics: BatcherMetrics,
}

impl Worker {
    /// Runs `model` on a new thread named `name`; a panic there fails the engine.
    pub(super) fn spawn(self, name: String, model: Box<dyn Model>, ready: Arc<watch::Sender<Readiness>>) {
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let _failed_if_panicking = FailOnPanic(ready);
                self.run(model)
            })
            .expect("spawning an inference thread");
    }

    pub(super) fn run(self, mut model: Box<dyn Model>) {
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
            let mut job = match next {
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
            let inference = std::mem::take(&mut job.inference);
            span.in_scope(|| self.run_job(model.as_mut(), job));
            drop(inference);
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
        let (size, wide, ms) = (job.items.len(), job.wide, elapsed.as_secs_f64() * 1e3);
        tracing::debug!(size, longest, real, ms, wide, "batch ran");
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
