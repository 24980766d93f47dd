//! What an evaluation found, as a table for people or one JSON object for machines.

use super::Configuration;
use super::metrics::Figures;

/// One configuration's mean figures and latencies.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub configuration: Configuration,
    /// The retrieval that ran (`dense` where a collection without sparse vectors was asked for
    /// more; several joined by `+` if it varied).
    pub ran: String,
    pub figures: Figures,
    pub latency_ms: Latency,
    pub queries: usize,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
}

impl Outcome {
    pub fn new(configuration: Configuration, figures: &[Figures], mut ms: Vec<f64>, ran: String) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms.get(((ms.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        let latency_ms = Latency { mean, p50: at(0.5), p99: at(0.99) };
        Self { configuration, ran, figures: Figures::mean(figures), latency_ms, queries: figures.len() }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub collection: String,
    /// Where the reranker runs: its URL, model directory or model name.
    pub reranker: String,
    /// Queries evaluated: those with at least one judgment.
    pub queries: usize,
    /// Queries of the queries file without a judgment, skipped.
    pub unjudged_queries: usize,
    pub judged_documents: usize,
    /// Judged documents the collection does not hold (they can never be found).
    pub missing_judged_documents: usize,
    /// Documents of --corpus that could not be indexed.
    pub unindexed_documents: usize,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "collection {}: {} queries with judgments ({} without, skipped); {} of {} judged documents missing from the collection\n\n",
            self.collection, self.queries, self.unjudged_queries, self.missing_judged_documents, self.judged_documents
        );
        out += "| retrieval | rerank | candidates | nDCG@10 | MRR@10 | R@10 | R@50 | R@100 | P@10 | judged@10 | mean ms | p50 ms | p99 ms | queries |\n";
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        for o in &self.outcomes {
            let (c, f, l) = (&o.configuration, &o.figures, &o.latency_ms);
            let mut retrieval = c.retrieval_label();
            if o.ran != c.retrieval.as_str() {
                retrieval += &format!(" (ran: {})", o.ran);
            }
            out += &format!(
                "| {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.3} | {:.1} | {:.1} | {:.1} | {} |\n",
                retrieval,
                if c.rerank { "on" } else { "off" },
                c.candidates,
                f.ndcg_10,
                f.mrr_10,
                f.recall_10,
                f.recall_50,
                f.recall_100,
                f.p_10,
                f.judged_10,
                l.mean,
                l.p50,
                l.p99,
                o.queries
            );
        }
        let retrievals: Vec<&Outcome> = self.outcomes.iter().filter(|o| !o.configuration.rerank).collect();
        if !retrievals.is_empty() {
            out += "\nWhere the rerank window should be: the share of judged-relevant documents within the first N \
                    candidates (recall@N of the retrieval), the most any reranker can find with `candidates` = N\n\n";
            out += "| retrieval | candidates | N = 10 | N = 20 | N = 30 | N = 50 |\n|---|---|---|---|---|---|\n";
            for o in retrievals {
                let f = &o.figures;
                out += &format!(
                    "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
                    o.configuration.retrieval_label(),
                    o.configuration.candidates,
                    f.recall_10,
                    f.recall_20,
                    f.recall_30,
                    f.recall_50
                );
            }
        }
        if self.unindexed_documents > 0 {
            out += &format!("\n{} documents of the corpus could not be indexed\n", self.unindexed_documents);
        }
        out
    }
}
