//! Relevance metrics of one ranking, as trec_eval defines them (and pytrec_eval computes them):
//! a document is relevant when its judgment is >= 1; nDCG uses the judgment itself as the gain
//! (linear gains, log2 discount, the ideal ranking from every judgment of the query); P@k divides
//! by k even when fewer documents came back; recall@k by the query's number of relevant documents.

use std::collections::HashMap;

/// One query's judgments: document id -> relevance (0 = judged not relevant).
pub type Judged = HashMap<String, i64>;

/// A query's figures (or their means over queries).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Figures {
    pub ndcg_10: f64,
    pub mrr_10: f64,
    pub recall_10: f64,
    /// With 20 and 30: recall at the rerank windows between 10 and 50 (a reranker that sees the
    /// first N candidates can find at most recall@N of them).
    pub recall_20: f64,
    pub recall_30: f64,
    pub recall_50: f64,
    pub recall_100: f64,
    pub p_10: f64,
    /// The share of the top 10 that has a judgment, relevant or not.
    pub judged_10: f64,
}

impl Figures {
    /// The figures of `ranking` (best first, no duplicates) under `judged`.
    pub fn of(ranking: &[String], judged: &Judged) -> Self {
        let relevant = |id: &String| judged.get(id).is_some_and(|&r| r >= 1);
        let relevant_total = judged.values().filter(|&&r| r >= 1).count();
        let found_in = |k: usize| ranking.iter().take(k).filter(|id| relevant(id)).count();
        let recall = |k: usize| if relevant_total == 0 { 0.0 } else { found_in(k) as f64 / relevant_total as f64 };
        let mrr_10 = ranking.iter().take(10).position(relevant).map_or(0.0, |i| 1.0 / (i + 1) as f64);
        let judged_10 = ranking.iter().take(10).filter(|id| judged.contains_key(*id)).count() as f64 / 10.0;
        Self {
            ndcg_10: ndcg(ranking, judged, 10),
            mrr_10,
            recall_10: recall(10),
            recall_20: recall(20),
            recall_30: recall(30),
            recall_50: recall(50),
            recall_100: recall(100),
            p_10: found_in(10) as f64 / 10.0,
            judged_10,
        }
    }

    /// The mean of each figure (all zero for no queries).
    pub fn mean(all: &[Figures]) -> Self {
        let n = all.len().max(1) as f64;
        let sum = |f: fn(&Figures) -> f64| all.iter().map(f).sum::<f64>() / n;
        Self {
            ndcg_10: sum(|f| f.ndcg_10),
            mrr_10: sum(|f| f.mrr_10),
            recall_10: sum(|f| f.recall_10),
            recall_20: sum(|f| f.recall_20),
            recall_30: sum(|f| f.recall_30),
            recall_50: sum(|f| f.recall_50),
            recall_100: sum(|f| f.recall_100),
            p_10: sum(|f| f.p_10),
            judged_10: sum(|f| f.judged_10),
        }
    }
}

/// nDCG@k with gain = relevance (negative judgments count as 0) and discount log2(rank + 1).
fn ndcg(ranking: &[String], judged: &Judged, k: usize) -> f64 {
    let gain = |r: i64| r.max(0) as f64;
    let discount = |i: usize| ((i + 2) as f64).log2();
    let dcg: f64 = ranking
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| gain(judged.get(id).copied().unwrap_or(0)) / discount(i))
        .sum();
    let mut ideal: Vec<i64> = judged.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal.iter().take(k).enumerate().map(|(i, &r)| gain(r) / discount(i)).sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
