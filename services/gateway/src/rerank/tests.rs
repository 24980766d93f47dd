//! The reranking stage on tokio's paused clock, over a fake reranker whose score for a pair is a
//! fixed function of query and text, and which records every pair it scores and at what priority.
//! (The real engines' scores are checked to the bit end to end, in tests/tests/rerank_reuse.rs.)

use std::sync::Mutex;

use super::*;
use crate::BoxFuture;
use crate::cache::MemoryCache;
use crate::upstream::Pacing;

/// Each pair takes `per_pair` (chunks in flight overlap); a chunk holding `poison` fails at once.
struct Fake {
    scored: Mutex<Vec<(String, Priority)>>,
    per_pair: Duration,
    pacing: Pacing,
    poison: Option<String>,
    identity: Option<String>,
}

fn score_of(query: &str, text: &str) -> f32 {
    let mut h: u32 = 17;
    for b in query.bytes().chain([0]).chain(text.bytes()) {
        h = h.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    (h % 10_000) as f32 / 10_000.0
}

impl Rerank for Fake {
    fn model(&self) -> String {
        "fake".into()
    }
    fn identity(&self) -> Option<String> {
        self.identity.clone()
    }
    fn pacing(&self) -> Pacing {
        self.pacing
    }
    fn score(
        &self,
        query: String,
        documents: Vec<String>,
        _document_tokens: Option<usize>,
        priority: Priority,
        _budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<f32>, UpstreamError>> {
        Box::pin(async move {
            if self.poison.as_ref().is_some_and(|p| documents.contains(p)) {
                return Err(UpstreamError::Failed("reranker", "poisoned".into()));
            }
            tokio::time::sleep(self.per_pair * documents.len() as u32).await;
            self.scored.lock().unwrap().extend(documents.iter().map(|d| (d.clone(), priority)));
            Ok(documents.iter().map(|d| score_of(&query, d)).collect())
        })
    }
}

fn fake(chunk: usize, poison: Option<&str>) -> Arc<Fake> {
    Arc::new(Fake {
        scored: Mutex::default(),
        per_pair: Duration::from_millis(100),
        pacing: Pacing { chunk, in_flight: 2 },
        poison: poison.map(String::from),
        identity: Some("fake|00000000".into()),
    })
}

fn reranking(reranker: Arc<Fake>, background_pairs: usize) -> (Reranking, GatewayMetrics) {
    let metrics = GatewayMetrics::default();
    let cache = CacheLayer::new(Arc::new(MemoryCache::new(1 << 20)), metrics.clone());
    let settings = Settings { ttl: Duration::from_secs(3600), background_pairs };
    (Reranking::new(reranker, cache, metrics.clone(), settings), metrics)
}

fn documents(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("profile {i}")).collect()
}

fn scored_count(fake: &Fake) -> usize {
    fake.scored.lock().unwrap().len()
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn a_score_is_computed_once_and_reused_to_the_bit() {
    let fake = fake(1, None);
    let (reranking, _) = reranking(fake.clone(), 100);
    let first = reranking.score("rust".into(), documents(10), None, Reuse::Use, LONG).await;
    assert_eq!((first.scores.len(), first.reused, first.scored, first.stopped), (10, 0, 10, None));
    let want: Vec<u32> = documents(10).iter().map(|d| score_of("rust", d).to_bits()).collect();
    assert_eq!(first.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>(), want);

    // One document changed, one new, the rest the same but in another order.
    let mut next = documents(10);
    next.swap(0, 9);
    next[3] = "profile 3, now in Lisbon".into();
    next.push("profile 10".into());
    let second = reranking.score("rust".into(), next.clone(), None, Reuse::Use, LONG).await;
    assert_eq!((second.scores.len(), second.reused, second.scored), (11, 9, 2));
    let want: Vec<u32> = next.iter().map(|d| score_of("rust", d).to_bits()).collect();
    assert_eq!(second.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>(), want, "the same bits as fresh ones");
    let rescored: Vec<String> = fake.scored.lock().unwrap()[10..].iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(rescored, vec!["profile 3, now in Lisbon".to_string(), "profile 10".to_string()]);

    let other_query = reranking.score("python".into(), documents(3), None, Reuse::Use, LONG).await;
    assert_eq!(other_query.reused, 0, "a score belongs to its query");
    let cut = reranking.score("rust".into(), documents(3), Some(16), Reuse::Use, LONG).await;
    assert_eq!(cut.reused, 0, "and to the cut documents had");
}

#[tokio::test(start_paused = true)]
async fn bypass_neither_reads_nor_writes_and_refresh_rescores_and_writes() {
    let fake = fake(4, None);
    let (reranking, _) = reranking(fake.clone(), 100);
    let bypassed = reranking.score("q".into(), documents(5), None, Reuse::Bypass, LONG).await;
    assert_eq!((bypassed.reused, bypassed.scored), (0, 5));
    let used = reranking.score("q".into(), documents(5), None, Reuse::Use, LONG).await;
    assert_eq!((used.reused, used.scored), (0, 5), "bypass kept nothing");
    let refreshed = reranking.score("q".into(), documents(5), None, Reuse::Refresh, LONG).await;
    assert_eq!((refreshed.reused, refreshed.scored), (0, 5), "refresh reads nothing");
    assert_eq!(reranking.score("q".into(), documents(5), None, Reuse::Bypass, LONG).await.reused, 0);
    assert_eq!(reranking.score("q".into(), documents(5), None, Reuse::Use, LONG).await.reused, 5);
    assert_eq!(scored_count(&fake), 20);
}

#[tokio::test(start_paused = true)]
async fn a_zero_ttl_turns_the_score_cache_off() {
    let fake = fake(1, None);
    let metrics = GatewayMetrics::default();
    let cache = CacheLayer::new(Arc::new(MemoryCache::new(1 << 20)), metrics.clone());
    let settings = Settings { ttl: Duration::ZERO, background_pairs: 100 };
    let reranking = Reranking::new(fake.clone(), cache, metrics, settings);
    for _ in 0..2 {
        let scored = reranking.score("q".into(), documents(3), None, Reuse::Use, LONG).await;
        assert_eq!((scored.reused, scored.scored), (0, 3));
    }
}

#[tokio::test(start_paused = true)]
async fn without_an_identity_nothing_is_reused() {
    let fake = Arc::new(Fake { identity: None, ..Arc::into_inner(fake(1, None)).unwrap() });
    let (reranking, _) = reranking(fake.clone(), 100);
    for _ in 0..2 {
        let scored = reranking.score("q".into(), documents(3), None, Reuse::Use, LONG).await;
        assert_eq!((scored.reused, scored.scored), (0, 3));
    }
}

#[tokio::test(start_paused = true)]
async fn a_budget_keeps_the_scored_prefix_and_the_background_finishes_the_rest_at_bulk_priority() {
    let fake = fake(1, None);
    let (reranking, metrics) = reranking(fake.clone(), 100);
    let started = Instant::now();
    // Two pairs in flight at 100 ms each: by 450 ms, pairs 0-7 are scored and 8-9 are running.
    let budget = Duration::from_millis(450);
    let partial = reranking.score("q".into(), documents(20), None, Reuse::Use, budget).await;
    assert_eq!(started.elapsed(), budget, "the stage answers at its budget, not after a chunk");
    assert_eq!(partial.scores.len(), 8);
    assert_eq!(partial.stopped, Some(UpstreamError::Timeout("reranker")));
    let want: Vec<u32> = documents(8).iter().map(|d| score_of("q", d).to_bits()).collect();
    assert_eq!(partial.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>(), want);

    tokio::time::sleep(Duration::from_secs(5)).await;
    let scored = fake.scored.lock().unwrap().clone();
    assert_eq!(scored.len(), 20, "every pair scored once: {scored:?}");
    let priorities: Vec<Priority> = scored.iter().map(|(_, p)| *p).collect();
    assert!(priorities[..10].iter().all(|p| *p == Priority::Interactive), "the chunks in flight finish as sent");
    assert!(priorities[10..].iter().all(|p| *p == Priority::Bulk), "the rest yields to searches: {priorities:?}");
    assert!(metrics_text(&metrics).contains("gateway_rerank_pairs_total{kind=\"background\"} 12"));

    let complete = reranking.score("q".into(), documents(20), None, Reuse::Use, budget).await;
    assert_eq!((complete.scores.len(), complete.reused, complete.scored, complete.stopped), (20, 20, 0, None));
}

#[tokio::test(start_paused = true)]
async fn a_chunk_packs_several_pairs_and_the_window_grows_a_chunk_at_a_time() {
    let fake = fake(4, None);
    let (reranking, _) = reranking(fake.clone(), 100);
    // Chunks of 4 take 400 ms, two in flight: at 900 ms chunks 0-3 (16 pairs) have answered.
    let partial = reranking.score("q".into(), documents(30), None, Reuse::Use, Duration::from_millis(900)).await;
    assert_eq!(partial.scores.len(), 16);
}

#[tokio::test(start_paused = true)]
async fn the_window_starts_after_known_scores_and_stops_at_the_first_gap() {
    let fake = fake(1, None);
    let (reranking, _) = reranking(fake.clone(), 0);
    reranking.score("q".into(), documents(3), None, Reuse::Use, LONG).await;
    // 0-2 are known: the window starts with them, then 3 and 4 are scored in 100 ms.
    let partial = reranking.score("q".into(), documents(10), None, Reuse::Use, Duration::from_millis(150)).await;
    assert_eq!((partial.scores.len(), partial.reused, partial.scored), (5, 3, 2));
}

#[tokio::test(start_paused = true)]
async fn a_failure_keeps_only_what_was_scored() {
    let poisoned = fake(1, Some("profile 5"));
    let (reranking, metrics) = reranking(poisoned, 100);
    let failed = reranking.score("q".into(), documents(10), None, Reuse::Use, LONG).await;
    assert!(matches!(failed.stopped, Some(UpstreamError::Failed(..))), "{:?}", failed.stopped);
    // Pairs 0-3 answered; 4 was in flight beside 5 when 5 failed, and is abandoned.
    assert_eq!(failed.scores.len(), 4, "the prefix before the failure");
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Nothing was left to the background, and no score was kept that the model did not give.
    assert!(!metrics_text(&metrics).contains("kind=\"background\""));
    let healthy = fake(1, None);
    let (again, _) = reranking_sharing(&reranking, healthy.clone());
    let next = again.score("q".into(), documents(10), None, Reuse::Use, LONG).await;
    let reused_ok =
        (0..10).filter(|i| *i != 5).all(|i| next.scores[i].to_bits() == score_of("q", &documents(10)[i]).to_bits());
    assert!(reused_ok && next.scores[5].to_bits() == score_of("q", "profile 5").to_bits());
    assert!(healthy.scored.lock().unwrap().iter().any(|(d, _)| d == "profile 5"), "the failed pair is scored afresh");
}

#[tokio::test(start_paused = true)]
async fn the_background_is_bounded_and_says_what_it_dropped() {
    let fake = fake(1, None);
    let (reranking, metrics) = reranking(fake.clone(), 10);
    let budget = Duration::from_millis(50);
    reranking.score("a".into(), documents(10), None, Reuse::Use, budget).await; // 8 left: taken
    reranking.score("b".into(), documents(10), None, Reuse::Use, budget).await; // 8 more: dropped
    assert!(metrics_text(&metrics).contains("gateway_rerank_pairs_total{kind=\"dropped\"} 8"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let done = reranking.score("a".into(), documents(10), None, Reuse::Use, budget).await;
    assert_eq!(done.scores.len(), 10, "the admitted leftovers were finished");
    let after = reranking.score("c".into(), documents(10), None, Reuse::Use, budget).await;
    assert_eq!(after.scores.len(), 0);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        reranking.score("c".into(), documents(10), None, Reuse::Use, budget).await.scores.len(),
        10,
        "room again"
    );
}

/// A second stage over the same cache with another reranker of the same identity.
fn reranking_sharing(stage: &Reranking, reranker: Arc<Fake>) -> (Reranking, GatewayMetrics) {
    let metrics = GatewayMetrics::default();
    let settings = Settings { ttl: Duration::from_secs(3600), background_pairs: 100 };
    (Reranking::new(reranker, stage.cache.clone(), metrics.clone(), settings), metrics)
}

fn metrics_text(metrics: &GatewayMetrics) -> String {
    let mut registry = prometheus_client::registry::Registry::with_prefix("gateway");
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}
