//! What the warm-up learned about the model on this machine: its first output, whether outputs
//! depend on their batch-mates, and what batching is worth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc as std_mpsc};

use super::BatchLimits;
use super::calibrate::Calibration;
use super::warmup::Warmed;
use super::worker::Job;

/// What the warm-up learned, shared by the inference threads (which set it before Ready), the
/// owner (which batches by it) and the handles.
#[derive(Clone, Default)]
pub(super) struct Learned {
    pub(super) first_output: Arc<OnceLock<Vec<f32>>>,
    /// A sequence's output changed in a batch: every sequence runs alone.
    pub(super) alone: Arc<AtomicBool>,
    pub(super) calibration: Arc<OnceLock<Calibration>>,
    /// Where single-threaded sessions serve side by side: the first session, on every core.
    pub(super) wide: Arc<OnceLock<Wide>>,
}

/// The session a batch runs on when it has the machine to itself (nothing else running or
/// waiting); the batch takes every inference thread's permit, so nothing runs beside it. It has
/// an inference thread of its own (one thread keeps its memory warm).
pub(super) struct Wide {
    /// Its inference thread's queue.
    pub(super) jobs: std_mpsc::Sender<Job>,
    /// The single-threaded sessions serving beside it.
    pub(super) narrow: usize,
}

impl Learned {
    pub(super) fn record(&self, warmed: &Warmed) {
        if let Some(output) = &warmed.first_output {
            let _ = self.first_output.set(output.clone());
        }
        if warmed.batch_dependent && !self.alone.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "a sequence's output changed when it shared a batch: each sequence runs alone \
                 (--batch-invariant false to batch anyway)"
            );
        }
        if let Some(calibration) = &warmed.calibration {
            tracing::info!(
                max_batch_size = calibration.max_batch_size,
                overhead_tokens = calibration.overhead_tokens,
                points = ?calibration.points.iter().map(|p| (p.batch_size, p.sequences_per_sec.round())).collect::<Vec<_>>(),
                reason = %calibration.reason,
                "batch policy calibrated"
            );
            let _ = self.calibration.set(calibration.clone());
        }
    }

    /// `configured` as the warm-up left it: batches of one if outputs depend on the batch, and
    /// the calibration's size and fixed cost where it set them.
    pub(super) fn limits(&self, configured: BatchLimits) -> BatchLimits {
        let mut limits = configured;
        if let Some(c) = self.calibration.get() {
            limits.max_batch_size = c.max_batch_size.unwrap_or(limits.max_batch_size);
            limits.overhead_tokens = c.overhead_tokens.unwrap_or(limits.overhead_tokens);
        }
        if self.alone.load(Ordering::SeqCst) {
            limits.max_batch_size = 1;
        }
        limits
    }
}
