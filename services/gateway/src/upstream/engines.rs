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
    /// Relevance scores in (0, 1), in document order, within `budget`; each document cut to its
    /// first `document_tokens` tokens first, if given (Cohere's `max_tokens_per_doc`).
    fn score(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<f32>, UpstreamError>>;
    /// Whether it runs in this process, on the same cores as an in-process embedder.
    fn in_process(&self) -> bool {
        false
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

    fn score(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<f32>, UpstreamError>> {
        Box::pin(async move {
            let scored =
                within(RERANKER, budget, self.score_cut(query, documents, document_tokens, Priority::Interactive))
                    .await?;
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

/// `/rerank`'s request, or, with `max_tokens_per_doc`, Cohere's (`/v2/rerank`), which cuts
/// documents; both answer sigmoid scores by index.
#[derive(Serialize)]
struct RerankRequest<'a> {
    query: &'a str,
    documents: &'a [String],
    return_documents: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens_per_doc: Option<usize>,
}

#[derive(Deserialize)]
struct RerankResponse {
    results: Vec<RerankResult>,
}

#[derive(Deserialize)]
struct RerankResult {
    index: usize,
    #[serde(alias = "relevance_score")]
    score: f32,
}

impl Rerank for RemoteReranker {
    fn model(&self) -> String {
        self.service.model_name()
    }

    fn score(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        budget: Duration,
    ) -> BoxFuture<'_, Result<Vec<f32>, UpstreamError>> {
        Box::pin(async move {
            let max_tokens_per_doc = document_tokens;
            let request =
                RerankRequest { query: &query, documents: &documents, return_documents: false, max_tokens_per_doc };
            let route = if document_tokens.is_some() { "/v2/rerank" } else { "/rerank" };
            let response: RerankResponse = self.service.post(route, &request, budget).await?;
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
