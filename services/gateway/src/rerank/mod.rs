//! The reranking stage. A cross-encoder's score depends only on the engine, the query, the
//! document's text and how it was cut, so each one is computed once and kept in the cache layer
//! under exactly those (`scores`), whatever else the collection does: a write invalidates
//! results, not scores. The pairs nobody has scored yet go to the reranker in retrieval order, a
//! chunk per call, as many calls in flight as it has inference threads (`chunks`). When the
//! budget runs out the answer keeps the longest scored prefix (a rerank window), and the pairs
//! left unscored are finished in the background at bulk priority (`background`), so that the next
//! identical search is complete.

mod background;
mod chunks;
mod scores;

use std::sync::Arc;
use std::time::Duration;

use shared::Priority;
use tokio::time::Instant;

use crate::cache::CacheLayer;
use crate::metrics::GatewayMetrics;
use crate::upstream::{Rerank, UpstreamError};
use background::Background;
use chunks::{Pairs, Stop};
pub use scores::ScoreKeys;

/// How a call uses the score cache (a search's `cache` mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Read known scores, write new ones.
    Use,
    /// Neither: every pair is scored afresh and nothing is kept.
    Bypass,
    /// Score every pair afresh and write the scores.
    Refresh,
}

/// What one call got: the scores of a prefix of the documents (all of them unless `stopped`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The first `scores.len()` documents' scores, in document order: the rerank window.
    pub scores: Vec<f32>,
    /// Pairs of the window whose score came from the cache.
    pub reused: usize,
    /// Pairs the model scored for this call (within the window or not).
    pub scored: usize,
    /// Why the window stops short of the documents: the budget ran out, or the reranker failed.
    pub stopped: Option<UpstreamError>,
}

/// Scores with reuse, within budgets, finishing the rest in the background.
pub struct Reranking {
    reranker: Arc<dyn Rerank>,
    cache: CacheLayer,
    metrics: GatewayMetrics,
    ttl: Duration,
    background: Background,
}

/// What the reranking stage is built from.
pub struct Settings {
    /// How long a score stays cached.
    pub ttl: Duration,
    /// Pairs that may wait for the background at once; beyond it, a budget's leftovers are dropped.
    pub background_pairs: usize,
}

impl Reranking {
    pub fn new(reranker: Arc<dyn Rerank>, cache: CacheLayer, metrics: GatewayMetrics, settings: Settings) -> Self {
        let background = Background::start(
            reranker.clone(),
            cache.clone(),
            metrics.clone(),
            settings.ttl,
            settings.background_pairs,
        );
        Self { reranker, cache, metrics, ttl: settings.ttl, background }
    }

    pub fn reranker(&self) -> &Arc<dyn Rerank> {
        &self.reranker
    }

    /// Scores `documents` against `query` (each cut to `document_tokens` first, if given): known
    /// scores from the cache in one round trip, the others by the reranker in document order
    /// until `budget` runs out. What the budget leaves unscored goes to the background, and is
    /// cached when done; what a failure leaves unscored is dropped.
    pub async fn score(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        reuse: Reuse,
        budget: Duration,
    ) -> Scored {
        let deadline = Instant::now() + budget;
        // Without an identity (a remote reranker not yet identified), or with the score cache
        // off (a TTL of 0), nothing is read or kept.
        let keys = match (reuse, self.reranker.identity()) {
            (Reuse::Bypass, _) | (_, None) => None,
            _ if self.ttl.is_zero() => None,
            (_, Some(identity)) => Some(ScoreKeys::new(&identity, &query, document_tokens, &documents)),
        };
        let mut known: Vec<Option<f32>> = match (&keys, reuse) {
            (Some(keys), Reuse::Use) => ScoreKeys::decode(self.cache.get_many(keys.all()).await),
            _ => vec![None; documents.len()],
        };
        let cached: Vec<bool> = known.iter().map(Option::is_some).collect();
        let todo: Vec<usize> = (0..documents.len()).filter(|&i| known[i].is_none()).collect();
        let pairs = Arc::new(Pairs { query, documents, document_tokens });
        let mut fresh = Vec::new();
        let stop = chunks::run(&self.reranker, &pairs, &todo, Priority::Interactive, Some(deadline), |done| {
            for &(i, score) in done {
                known[i] = Some(score);
            }
            fresh.extend_from_slice(done);
        })
        .await;

        if let Some(keys) = &keys {
            self.cache.set_many(keys.entries(&fresh), self.ttl).await;
        }
        let stopped = match stop {
            Stop::Finished => None,
            Stop::Failed(error) => Some(error),
            Stop::Deadline { running, sent } => {
                let left = todo[sent..].to_vec();
                if let Some(keys) = keys {
                    self.background.finish(keys, pairs.clone(), running, left);
                }
                Some(UpstreamError::Timeout("reranker"))
            }
        };
        let scores: Vec<f32> = known.iter().map_while(|s| *s).collect();
        let reused = cached[..scores.len()].iter().filter(|c| **c).count();
        self.metrics.rerank_pairs("reused", reused);
        self.metrics.rerank_pairs("scored", fresh.len());
        Scored { scored: fresh.len(), reused, scores, stopped }
    }
}

#[cfg(test)]
mod tests;
