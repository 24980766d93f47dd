//! The two model roles the gateway needs, each with an in-process implementation (the shared
//! engines) and a remote one (embed-service / rerank-service over HTTP).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::batcher::Foreground;
use shared::tokenize::InputType;
use shared::{Embedder, EngineError, Priority, Reranker};

use super::error::UpstreamError;
use super::remote::RemoteService;
use crate::BoxFuture;

/// Turns texts into vectors.
pub trait Embed: Send + Sync {
    /// The model's name (part of every cache key).
    fn model(&self) -> String;
    /// Vectors in input order, with the prefix of `input_type`, at `priority`, within `budget`.
    fn embed(
        &self,
        texts: Vec<String>,
        input_type: InputType,
        priority: Priority,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<Vec<f32>>, UpstreamError>>;
    /// The in-process engine's count of interactive work, which a search holds from its embed
    /// to its rerank so that no bulk batch starts on these cores meanwhile; none for a remote one.
    fn foreground(&self) -> Option<Foreground> {
        None
    }
}

/// Scores documents against a query.
pub trait Rerank: Send + Sync {
    fn model(&self) -> String;
    /// What a score cache keys this engine's scores by: the model's name and its score
    /// fingerprint (`shared::Reranker::fingerprint`); `None` until known (a remote service that
    /// has not answered `/info`), and then nothing is reused.
    fn identity(&self) -> Option<String>;
    /// How to feed it: pairs per call and calls in flight, so that its inference threads stay
    /// busy and no more is queued there than they are running.
    fn pacing(&self) -> Pacing;
    /// Relevance scores in (0, 1), in document order, at `priority`, within `budget`; each
    /// document cut to its first `document_tokens` tokens first, if given (Cohere's
    /// `max_tokens_per_doc`).
    fn score(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        priority: Priority,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<f32>, UpstreamError>>;
    /// Whether it runs in this process, on the same cores as an in-process embedder.
    fn in_process(&self) -> bool {
        false
    }
}

/// How many pairs go in one call to a reranker, and how many calls are in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub chunk: usize,
    pub in_flight: usize,
}

impl Pacing {
    /// Pairs per call: one when the engine runs pairs alone, else a batch of profile-length
    /// pairs (8 x ~400 tokens fills the default 4096-token budget); one call per inference
    /// thread.
    fn of(max_batch_size: usize, workers: usize) -> Self {
        Self { chunk: max_batch_size.clamp(1, 8), in_flight: workers.max(1) }
    }
}

const EMBEDDER: &str = "embedder";
const RERANKER: &str = "reranker";

/// Runs `work` within `budget`; dropping it on timeout cancels its queued batcher items.
async fn within<T>(
    service: &'static str,
    budget: Duration,
    work: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, UpstreamError> {
    match tokio::time::timeout(budget, work).await {
        Ok(result) => result.map_err(|e| UpstreamError::from_engine(service, e)),
        Err(_) => Err(UpstreamError::Timeout(service)),
    }
}

impl Embed for Embedder {
    fn model(&self) -> String {
        self.name().to_string()
    }

    fn embed(
        &self,
        texts: Vec<String>,
        input_type: InputType,
        priority: Priority,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<Vec<f32>>, UpstreamError>> {
        Box::pin(async move {
            within(EMBEDDER, budget, Embedder::embed(self, texts, input_type, priority)).await.map(|e| e.vectors)
        })
    }

    fn foreground(&self) -> Option<Foreground> {
        Some(self.batcher().foreground().clone())
    }
}

impl Rerank for Reranker {
    fn model(&self) -> String {
        self.name().to_string()
    }

    fn identity(&self) -> Option<String> {
        Some(format!("{}|{}", self.name(), self.fingerprint()?))
    }

    fn pacing(&self) -> Pacing {
        let plan = self.plan();
        Pacing::of(plan.max_batch_size, plan.workers)
    }

    fn score(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        priority: Priority,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<f32>, UpstreamError>> {
        Box::pin(async move {
            let scoring = self.score_cut(query, documents, document_tokens, priority);
            let scored = within(RERANKER, budget, scoring).await?;
            Ok(scored.logits.into_iter().map(shared::reranker::sigmoid).collect())
        })
    }

    fn in_process(&self) -> bool {
        true
    }
}

/// embed-service over HTTP.
pub struct RemoteEmbedder {
    service: RemoteService,
}

impl RemoteEmbedder {
    pub fn new(service: RemoteService) -> Self {
        Self { service }
    }
}

#[derive(Serialize)]
struct EmbedBatchRequest<'a> {
    texts: &'a [String],
    input_type: InputType,
    priority: Priority,
}

#[derive(Deserialize)]
struct EmbedBatchResponse {
    embeddings: Vec<Vec<f32>>,
}

impl Embed for RemoteEmbedder {
    fn model(&self) -> String {
        self.service.model_name()
    }

    fn embed(
        &self,
        texts: Vec<String>,
        input_type: InputType,
        priority: Priority,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<Vec<f32>>, UpstreamError>> {
        Box::pin(async move {
            let request = EmbedBatchRequest { texts: &texts, input_type, priority };
            let response: EmbedBatchResponse = self.service.post("/embed/batch", &request, budget).await?;
            if response.embeddings.len() != texts.len() {
                return Err(UpstreamError::Failed(
                    EMBEDDER,
                    format!("{} embeddings for {} texts", response.embeddings.len(), texts.len()),
                ));
            }
            Ok(response.embeddings)
        })
    }
}

/// rerank-service over HTTP.
pub struct RemoteReranker {
    service: RemoteService,
}

impl RemoteReranker {
    pub fn new(service: RemoteService) -> Self {
        Self { service }
    }
}

/// `/rerank`'s request; it answers sigmoid scores by index.
#[derive(Serialize)]
struct RerankRequest<'a> {
    query: &'a str,
    documents: &'a [String],
    return_documents: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens_per_doc: Option<usize>,
    priority: Priority,
}

#[derive(Deserialize)]
struct RerankResponse {
    results: Vec<RerankResult>,
}

#[derive(Deserialize)]
struct RerankResult {
    index: usize,
    score: f32,
}

impl Rerank for RemoteReranker {
    fn model(&self) -> String {
        self.service.model_name()
    }

    fn identity(&self) -> Option<String> {
        let info = self.service.info()?;
        Some(format!("{}|{}", info.model, info.fingerprint.as_deref()?))
    }

    /// As the service's plan says (pairs alone on two threads until it has answered `/info`),
    /// on each of its replicas.
    fn pacing(&self) -> Pacing {
        let batching = self.service.info().and_then(|info| info.batching);
        let (max_batch_size, workers) = batching.map_or((1, 2), |b| (b.max_batch_size, b.workers));
        Pacing::of(max_batch_size, workers * self.service.replicas())
    }

    fn score(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        priority: Priority,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<f32>, UpstreamError>> {
        Box::pin(async move {
            let max_tokens_per_doc = document_tokens;
            let request = RerankRequest {
                query: &query,
                documents: &documents,
                return_documents: false,
                max_tokens_per_doc,
                priority,
            };
            let response: RerankResponse = self.service.post("/rerank", &request, budget).await?;
            let mut scores = vec![f32::NAN; documents.len()];
            for result in response.results {
                if let Some(slot) = scores.get_mut(result.index) {
                    *slot = result.score;
                }
            }
            if scores.iter().any(|s| s.is_nan()) {
                return Err(UpstreamError::Failed(RERANKER, "the response does not score every document".into()));
            }
            Ok(scores)
        })
    }
}
