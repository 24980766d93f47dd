//! The cross-encoder reranking engine: each (query, document) pair is one batcher item, so the
//! documents of a request are packed by length and share the queue fairly with other requests.

use crate::batcher::{Batcher, BatcherMetrics, Priority};
use crate::config::EngineArgs;
use crate::engine::{BatchPlan, Engine, EngineError, cut};
use crate::model::{ModelDir, ModelError, ModelKind};
use crate::tokenize::TokenizeError;

/// Relevance logits in document order and the number of tokens the model saw.
#[derive(Debug, Clone)]
pub struct Scored {
    pub logits: Vec<f32>,
    pub tokens: usize,
}

#[derive(Clone)]
pub struct Reranker {
    engine: Engine,
}

impl Reranker {
    /// Starts the engine on a reranker model directory; needs a tokio runtime.
    pub fn start(dir: &ModelDir, args: &EngineArgs, metrics: BatcherMetrics) -> Result<Self, ModelError> {
        let engine = Engine::start(dir, ModelKind::Reranker, args, metrics, |tokenizer, text| {
            tokenizer.encode_pair("warm-up", text)
        })?;
        Ok(Self { engine })
    }

    pub fn name(&self) -> &str {
        self.engine.name()
    }

    pub fn max_length(&self) -> usize {
        self.engine.config().max_length
    }

    pub fn batcher(&self) -> &Batcher {
        self.engine.batcher()
    }

    /// How the engine batches pairs (`crate::engine::BatchPlan`).
    pub fn plan(&self) -> BatchPlan {
        self.engine.plan()
    }

    /// What tells this engine's scores from another's: the bits of the warm-up pair's logit,
    /// in hex. Another model, or the same one on kernels that round otherwise (ONNX Runtime picks
    /// them by CPU), scores that pair differently. `None` before the warm-up.
    pub fn fingerprint(&self) -> Option<String> {
        let logit = self.engine.batcher().first_output()?.first()?;
        Some(format!("{:08x}", logit.to_bits()))
    }

    /// Scores every document against `query` (one logit each, in document order).
    pub async fn score(&self, query: String, documents: Vec<String>) -> Result<Scored, EngineError> {
        self.score_cut(query, documents, None, Priority::Interactive).await
    }

    /// [`Self::score`] at `priority`, each document first cut to its first `document_tokens`
    /// tokens, if given.
    pub async fn score_cut(
        &self,
        query: String,
        documents: Vec<String>,
        document_tokens: Option<usize>,
        priority: Priority,
    ) -> Result<Scored, EngineError> {
        let (outputs, tokens) = self
            .engine
            .run(priority, move |tokenizer, byte_limit| {
                let query = cut(&query, byte_limit);
                documents
                    .iter()
                    .map(|d| {
                        let document = cut(d, byte_limit);
                        let document = document_tokens.map_or(document, |n| tokenizer.first_tokens(document, n));
                        tokenizer.encode_pair(query, document)
                    })
                    .collect::<Result<_, TokenizeError>>()
            })
            .await?;
        let logits = outputs.into_iter().map(|v| v.first().copied().unwrap_or(f32::NAN)).collect();
        Ok(Scored { logits, tokens })
    }
}

/// Document indices from most to least relevant; equal logits keep their input order.
pub fn rank(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // A stable sort: descending by logit, NaN (never expected) last.
    order.sort_by(|&a, &b| match (logits[a].is_nan(), logits[b].is_nan()) {
        (false, false) => logits[b].partial_cmp(&logits[a]).unwrap_or(std::cmp::Ordering::Equal),
        (a_nan, b_nan) => a_nan.cmp(&b_nan),
    });
    order
}

/// The logistic function: a relevance probability from a logit.
pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ties_keep_input_order() {
        assert_eq!(rank(&[0.5, 2.0, 0.5, 2.0, -1.0]), vec![1, 3, 0, 2, 4]);
    }

    #[test]
    fn sigmoid_maps_logits_to_probabilities() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(10.0) > 0.9999 && sigmoid(-10.0) < 0.0001);
    }

    proptest! {
        #[test]
        fn rank_is_a_descending_stable_permutation(logits in prop::collection::vec(-5i8..5, 0..64)) {
            let logits: Vec<f32> = logits.into_iter().map(|x| f32::from(x) / 2.0).collect();
            let order = rank(&logits);
            let mut seen = order.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..logits.len()).collect::<Vec<_>>());
            for pair in order.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                prop_assert!(logits[a] > logits[b] || (logits[a] == logits[b] && a < b));
            }
        }
    }
}
