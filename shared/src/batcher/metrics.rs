//! Prometheus metrics of one batcher: queue, batch shapes, padding, and where time goes.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct BatcherMetrics {
    pub queue_depth: Gauge,
    pub batch_size: Histogram,
    pub batch_tokens: Histogram,
    pub padding_ratio: Histogram,
    pub queue_duration: Histogram,
    pub inference_duration: Histogram,
    pub items: Counter,
    /// The share of `items` that was bulk work.
    pub bulk_items: Counter,
    pub rejected: Counter,
    pub cancelled: Counter,
    /// Totals behind the padding ratio over any window: 1 - real / padded.
    pub real_tokens: Counter,
    pub padded_tokens: Counter,
}

impl Default for BatcherMetrics {
    fn default() -> Self {
        Self {
            queue_depth: Gauge::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            batch_tokens: Histogram::new(exponential_buckets(16.0, 2.0, 12)),
            padding_ratio: Histogram::new(linear_buckets(0.05, 0.05, 19)),
            queue_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            inference_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            items: Counter::default(),
            bulk_items: Counter::default(),
            rejected: Counter::default(),
            cancelled: Counter::default(),
            real_tokens: Counter::default(),
            padded_tokens: Counter::default(),
        }
    }
}

impl BatcherMetrics {
    /// Registers every metric under the registry's prefix (e.g. `embed_queue_depth`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("queue_depth", "Sequences waiting for a batch", self.queue_depth.clone());
        registry.register("batch_size", "Sequences per inference batch", self.batch_size.clone());
        registry.register("batch_tokens", "Padded tokens (size x longest) per batch", self.batch_tokens.clone());
        registry.register("batch_padding_ratio", "Share of padding in each batch", self.padding_ratio.clone());
        registry.register(
            "queue_duration_seconds",
            "Time a sequence waits before its batch runs",
            self.queue_duration.clone(),
        );
        registry.register("inference_duration_seconds", "ONNX Runtime time per batch", self.inference_duration.clone());
        registry.register("sequences", "Sequences run through the model", self.items.clone());
        registry.register("bulk_sequences", "Sequences run at bulk priority (batch jobs)", self.bulk_items.clone());
        registry.register("rejected_sequences", "Sequences refused because the queue was full", self.rejected.clone());
        registry.register(
            "cancelled_sequences",
            "Sequences dropped unrun because their caller left",
            self.cancelled.clone(),
        );
        registry.register("real_tokens", "Tokens of real text run through the model", self.real_tokens.clone());
        registry.register(
            "padded_tokens",
            "Tokens run through the model including padding",
            self.padded_tokens.clone(),
        );
    }
}
