//! `search-gateway eval`'s options.

use std::path::PathBuf;

use super::JobArgs;
use crate::retrieval::{Fusion, FusionMethod, Retrieval};

/// Measure how well searches answer: run a test collection's queries through the same code as
/// `POST /search` and score the rankings against its judgments (nDCG@10, MRR@10, recall, P@10),
/// for each configuration asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// The queries: JSONL, `{"_id", "text"}` a line (BEIR's queries.jsonl).
    #[arg(long)]
    pub queries: PathBuf,
    /// The judgments: BEIR's TSV (`query-id<TAB>corpus-id<TAB>score`, a header row first) or TREC
    /// qrels (`query 0 document relevance`). Queries without judgments are skipped and counted.
    #[arg(long)]
    pub qrels: PathBuf,
    /// Index this corpus first (BEIR's corpus.jsonl, `{"_id", "title", "text"}` a line; title and
    /// text are indexed together), with ingest's pipeline: unchanged documents are skipped, so a
    /// re-run only searches.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// The collection to search (it must exist unless --corpus is given) [default with --corpus:
    /// `eval-` and the first 12 hex digits of the corpus file's SHA-256].
    #[arg(long)]
    pub collection: Option<String>,
    /// Retrievals to evaluate, comma-separated: `dense`, `sparse`, `hybrid` [default: the
    /// search default].
    #[arg(long, value_delimiter = ',', default_value = "hybrid")]
    pub retrieval: Vec<Retrieval>,
    /// Fusions to evaluate for `hybrid`, comma-separated: `rrf` (k 5, sparse weight 0.05, the
    /// search default), `rrf:K` or `rrf:K:SPARSE_WEIGHT`, or `dbsf`.
    #[arg(long, value_delimiter = ',', default_value = "rrf", value_parser = parse_fusion)]
    pub fusion: Vec<Fusion>,
    /// Reranking settings to evaluate, comma-separated: `off`, `on` or both.
    #[arg(long, value_delimiter = ',', default_value = "off,on")]
    pub rerank: Vec<Switch>,
    /// Vector candidates per search (reranked when reranking is on), comma-separated for several
    /// configurations; each search returns the best min(100, candidates).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub candidates: Vec<usize>,
    /// Print the results as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write each query's figures, ranking and the ranking's scores to this JSONL file, a line per
    /// query and configuration.
    #[arg(long)]
    pub per_query: Option<PathBuf>,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    Off,
    On,
}

/// `rrf`, `rrf:K`, `rrf:K:W` or `dbsf`.
fn parse_fusion(text: &str) -> Result<Fusion, String> {
    let mut parts = text.split(':');
    let bad = || format!("{text:?}: use rrf, rrf:K, rrf:K:SPARSE_WEIGHT or dbsf");
    let mut fusion = Fusion::default();
    match parts.next() {
        Some("dbsf") => fusion.method = FusionMethod::Dbsf,
        Some("rrf") => {
            if let Some(k) = parts.next() {
                fusion.k = k.parse().map_err(|_| bad())?;
            }
            if let Some(w) = parts.next() {
                fusion.sparse_weight = w.parse().map_err(|_| bad())?;
            }
        }
        _ => return Err(bad()),
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    fusion.validate()?;
    Ok(fusion)
}

/// The most candidates a configuration may ask for.
pub const MAX_CANDIDATES: usize = 1000;

impl EvalArgs {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = self.candidates.iter().find(|&&c| c == 0 || c > MAX_CANDIDATES) {
            return Err(format!("--candidates {c}: each must be between 1 and {MAX_CANDIDATES}"));
        }
        if self.collection.is_none() && self.corpus.is_none() {
            return Err("give --collection (already indexed) or --corpus (to index first)".into());
        }
        if let Some(name) = &self.collection {
            crate::store::validate_collection_name(name).map_err(|why| format!("--collection: {why}"))?;
        }
        Ok(())
    }
}
