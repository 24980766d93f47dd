//! Scoring pairs in document order: a chunk of pairs per call (the engine packs a chunk by
//! length), as many calls in flight as the reranker's pacing allows, the next chunk sent as soon
//! as one returns. So the scored documents grow as a prefix, and a deadline leaves a well-defined
//! window: at most the chunks in flight are ahead of it.

use std::sync::Arc;
use std::time::Duration;

use shared::Priority;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::upstream::{Rerank, UpstreamError};

/// The query, the documents in retrieval order, and the cut applied to them.
pub(super) struct Pairs {
    pub query: String,
    pub documents: Vec<String>,
    pub document_tokens: Option<usize>,
}

/// Chunks sent and not yet answered: each yields its documents' indices and their scores.
pub(super) type Running = JoinSet<(Vec<usize>, Result<Vec<f32>, UpstreamError>)>;

/// Why scoring stopped.
pub(super) enum Stop {
    Finished,
    /// The deadline came first: these chunks are still being scored, and the first `sent`
    /// documents of `todo` were sent (the rest never were).
    Deadline {
        running: Running,
        sent: usize,
    },
    /// A chunk failed; the ones in flight are abandoned.
    Failed(UpstreamError),
}

/// How long one chunk may take once sent. A search stops waiting at its own deadline; this only
/// bounds a call the background (or a search's leftover chunk) waits for, at bulk priority
/// behind every interactive search.
const CHUNK_BUDGET: Duration = Duration::from_secs(120);

/// Scores the documents at `todo` (indices, in order) at `priority`, handing each answered
/// chunk's `(index, score)` pairs to `done`, until all are scored, one fails, or `deadline`.
pub(super) async fn run(
    reranker: &Arc<dyn Rerank>,
    pairs: &Arc<Pairs>,
    todo: &[usize],
    priority: Priority,
    deadline: Option<Instant>,
    mut done: impl FnMut(&[(usize, f32)]),
) -> Stop {
    let pacing = reranker.pacing();
    let mut chunks = todo.chunks(pacing.chunk.max(1));
    let mut running = Running::new();
    let mut sent = 0;
    loop {
        while running.len() < pacing.in_flight.max(1) {
            let Some(chunk) = chunks.next() else { break };
            sent += chunk.len();
            let call = score_chunk(reranker.clone(), pairs.clone(), chunk.to_vec(), priority);
            running.spawn(call.instrument(tracing::Span::current()));
        }
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, running.join_next()).await {
                Ok(next) => next,
                Err(_) => return Stop::Deadline { running, sent },
            },
            None => running.join_next().await,
        };
        match next {
            None => return Stop::Finished,
            Some(Ok((indices, Ok(scores)))) => done(&indices.into_iter().zip(scores).collect::<Vec<_>>()),
            Some(Ok((_, Err(error)))) => return Stop::Failed(error),
            Some(Err(panicked)) => return Stop::Failed(UpstreamError::Failed("reranker", panicked.to_string())),
        }
    }
}

/// Waits for chunks still running and hands over what each answers (failures are dropped).
pub(super) async fn drain(mut running: Running, mut done: impl FnMut(&[(usize, f32)])) {
    while let Some(joined) = running.join_next().await {
        if let Ok((indices, Ok(scores))) = joined {
            done(&indices.into_iter().zip(scores).collect::<Vec<_>>());
        }
    }
}

async fn score_chunk(
    reranker: Arc<dyn Rerank>,
    pairs: Arc<Pairs>,
    indices: Vec<usize>,
    priority: Priority,
) -> (Vec<usize>, Result<Vec<f32>, UpstreamError>) {
    let documents = indices.iter().map(|&i| pairs.documents[i].clone()).collect();
    let query = pairs.query.clone();
    let scored = reranker.score(query, documents, pairs.document_tokens, priority, CHUNK_BUDGET).await;
    let scored = scored.and_then(|scores| match scores.len() == indices.len() {
        true => Ok(scores),
        false => Err(UpstreamError::Failed("reranker", format!("{} scores for {} pairs", scores.len(), indices.len()))),
    });
    (indices, scored)
}
