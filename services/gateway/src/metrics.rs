//! The gateway's own metrics (`gateway_...`): stage durations, cache outcomes, rerank outcomes,
//! cache and dependency errors, and each followed table's sync.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    kind: String,
}

type Counters = Family<Labels, Counter>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectionLabel {
    collection: String,
}

fn collection_label(collection: &str) -> CollectionLabel {
    CollectionLabel { collection: collection.to_string() }
}

/// A sync's figures, by collection.
#[derive(Clone, Default)]
struct SyncMetrics {
    queued: Family<CollectionLabel, Gauge>,
    failed: Family<CollectionLabel, Gauge>,
    oldest: Family<CollectionLabel, Gauge<f64, AtomicU64>>,
    done: Family<CollectionLabel, Counter>,
    errors: Family<CollectionLabel, Counter>,
}

#[derive(Clone)]
pub struct GatewayMetrics {
    stage_duration: Family<Labels, Histogram, fn() -> Histogram>,
    searches: Counters,
    reranks: Counters,
    rerank_pairs: Counters,
    sync: SyncMetrics,
    cache_errors: Counters,
    dependency_errors: Counters,
}

fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            stage_duration: Family::new_with_constructor(stage_histogram as fn() -> Histogram),
            searches: Counters::default(),
            reranks: Counters::default(),
            rerank_pairs: Counters::default(),
            sync: SyncMetrics::default(),
            cache_errors: Counters::default(),
            dependency_errors: Counters::default(),
        }
    }
}

fn inc(family: &Counters, kind: &str) {
    family.get_or_create(&Labels { kind: kind.to_string() }).inc();
}

impl GatewayMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "search_stage_duration_seconds",
            "Time per search stage (kind: cache, embed, search, rerank, total)",
            self.stage_duration.clone(),
        );
        registry.register("searches", "Searches by cache outcome (kind: hit, miss, bypass)", self.searches.clone());
        registry.register(
            "reranks",
            "Rerank outcomes (kind: applied, partial, skipped, fallback)",
            self.reranks.clone(),
        );
        registry.register(
            "rerank_pairs",
            "Query-document pairs by where their score came from (kind: reused from the score cache, scored by \
             the model for an answer, background: scored after a search's budget ran out, dropped: left unscored \
             because the background was full)",
            self.rerank_pairs.clone(),
        );
        registry.register("sync_queued", "Keys waiting in a followed table's queue", self.sync.queued.clone());
        registry.register("sync_failed", "Keys parked after failing every attempt", self.sync.failed.clone());
        registry.register(
            "sync_oldest_queued_seconds",
            "How long the oldest queued key of a followed table has waited",
            self.sync.oldest.clone(),
        );
        registry.register("sync_done", "Keys of a followed table brought up to date", self.sync.done.clone());
        registry.register(
            "sync_errors",
            "Times a sync paused (database, engine or store down; a table that does not fit)",
            self.sync.errors.clone(),
        );
        registry.register("cache_errors", "Cache operations that failed (kind: operation)", self.cache_errors.clone());
        registry.register(
            "dependency_errors",
            "Failed calls to dependencies (kind: embedder, reranker, vector_store)",
            self.dependency_errors.clone(),
        );
    }

    pub fn stage(&self, stage: &str, seconds: f64) {
        self.stage_duration.get_or_create(&Labels { kind: stage.to_string() }).observe(seconds);
    }

    pub fn search(&self, cache: &str) {
        inc(&self.searches, cache);
    }

    pub fn rerank(&self, outcome: &str) {
        inc(&self.reranks, outcome);
    }

    pub fn rerank_pairs(&self, kind: &str, pairs: usize) {
        self.rerank_pairs.get_or_create(&Labels { kind: kind.to_string() }).inc_by(pairs as u64);
    }

    /// Keys a sync of `collection` brought up to date.
    pub fn sync_done(&self, collection: &str, keys: usize) {
        self.sync.done.get_or_create(&collection_label(collection)).inc_by(keys as u64);
    }

    pub fn sync_error(&self, collection: &str) {
        self.sync.errors.get_or_create(&collection_label(collection)).inc();
    }

    /// The queue of `collection`'s sync as last read: keys waiting, keys parked, the oldest's age.
    pub fn sync_queue(&self, collection: &str, queued: i64, failed: i64, oldest_secs: f64) {
        let label = collection_label(collection);
        self.sync.queued.get_or_create(&label).set(queued);
        self.sync.failed.get_or_create(&label).set(failed);
        self.sync.oldest.get_or_create(&label).set(oldest_secs);
    }

    pub fn cache_error(&self, operation: &str) {
        inc(&self.cache_errors, operation);
    }

    pub fn dependency_error(&self, dependency: &str) {
        inc(&self.dependency_errors, dependency);
    }
}
