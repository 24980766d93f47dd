//! Finishing what a budget left unscored. The chunks a search still had in flight are waited for
//! (at most one per inference thread), and the pairs it never sent are scored at bulk priority,
//! one search's leftovers after another, so that they never go ahead of interactive work: the
//! engines run bulk batches only when no search is running (or once per `--bulk-max-delay-ms`).
//! Every score lands in the cache as its chunk returns. The pairs waiting here are bounded;
//! beyond the bound a search's leftovers are dropped (and counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shared::Priority;
use tokio::sync::mpsc;

use super::ScoreKeys;
use super::chunks::{self, Pairs, Running};
use crate::cache::CacheLayer;
use crate::metrics::GatewayMetrics;
use crate::upstream::Rerank;

struct Job {
    keys: ScoreKeys,
    pairs: Arc<Pairs>,
    /// Documents to score, in order.
    left: Vec<usize>,
}

/// What a score lands through: the cache, its TTL, and the count of pairs scored here.
#[derive(Clone)]
struct Sink {
    cache: CacheLayer,
    metrics: GatewayMetrics,
    ttl: Duration,
}

impl Sink {
    /// Writes one chunk's scores (without waiting: the next chunk is already on its way).
    fn keep(&self, keys: &ScoreKeys, scored: &[(usize, f32)]) {
        self.metrics.rerank_pairs("background", scored.len());
        let (cache, entries, ttl) = (self.cache.clone(), keys.entries(scored), self.ttl);
        tokio::spawn(async move { cache.set_many(entries, ttl).await });
    }
}

pub(super) struct Background {
    jobs: mpsc::UnboundedSender<Job>,
    /// Pairs sent here and not yet scored (or given up).
    waiting: Arc<AtomicUsize>,
    limit: usize,
    sink: Sink,
}

impl Background {
    /// Starts the task that scores leftovers, at most `limit` pairs of them waiting at once.
    pub(super) fn start(
        reranker: Arc<dyn Rerank>,
        cache: CacheLayer,
        metrics: GatewayMetrics,
        ttl: Duration,
        limit: usize,
    ) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let sink = Sink { cache, metrics, ttl };
        tokio::spawn(work(queue, reranker, sink.clone(), waiting.clone()));
        Self { jobs, waiting, limit, sink }
    }

    /// Takes over a search's chunks still `running` and the documents it `left` unscored.
    pub(super) fn finish(&self, keys: ScoreKeys, pairs: Arc<Pairs>, running: Running, left: Vec<usize>) {
        let sink = self.sink.clone();
        let in_flight_keys = keys.clone();
        tokio::spawn(chunks::drain(running, move |scored| sink.keep(&in_flight_keys, scored)));
        let n = left.len();
        if n == 0 {
            return;
        }
        let admitted =
            self.waiting.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| (w + n <= self.limit).then_some(w + n));
        if admitted.is_err() || self.jobs.send(Job { keys, pairs, left }).is_err() {
            if admitted.is_ok() {
                self.waiting.fetch_sub(n, Ordering::SeqCst);
            }
            self.sink.metrics.rerank_pairs("dropped", n);
            tracing::debug!(pairs = n, "background scoring is full; leftover pairs dropped");
        }
    }
}

async fn work(
    mut queue: mpsc::UnboundedReceiver<Job>,
    reranker: Arc<dyn Rerank>,
    sink: Sink,
    waiting: Arc<AtomicUsize>,
) {
    while let Some(job) = queue.recv().await {
        // Another search may have scored some of them meanwhile.
        let known = ScoreKeys::decode(sink.cache.get_many(&job.keys.of(&job.left)).await);
        let todo: Vec<usize> = job.left.iter().zip(known).filter(|(_, k)| k.is_none()).map(|(&i, _)| i).collect();
        let stop =
            chunks::run(&reranker, &job.pairs, &todo, Priority::Bulk, None, |scored| sink.keep(&job.keys, scored))
                .await;
        if let chunks::Stop::Failed(error) = stop {
            tracing::debug!(%error, "background scoring failed; the rest of this search's pairs are dropped");
        }
        waiting.fetch_sub(job.left.len(), Ordering::SeqCst);
    }
}
