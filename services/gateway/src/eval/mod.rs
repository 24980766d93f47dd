//! `search-gateway eval`: how well searches answer. Runs a test collection's queries through the
//! same code as `POST /search` (in this process, or through `--gateway-url`), for each
//! configuration asked for, and scores the rankings against the judgments.

mod input;
pub mod metrics;
mod report;
mod target;

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};

pub use input::InputError;
use metrics::Figures;
pub use report::{Outcome, Report};
use target::{Ranking, Target};

use crate::backends::StartError;
use crate::config::{EvalArgs, IngestArgs, Switch};
use crate::jobs::ingest::{self, IngestError};
use crate::retrieval::{Fusion, FusionMethod, Retrieval};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("indexing the corpus: {0}")]
    Ingest(#[from] IngestError),
    #[error("{0}")]
    Failed(String),
}

/// One configuration of the search.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Configuration {
    pub retrieval: Retrieval,
    /// The fusion, for `hybrid`.
    pub fusion: Option<Fusion>,
    pub rerank: bool,
    pub candidates: usize,
}

impl Configuration {
    /// The retrieval and its fusion: `dense`, `hybrid rrf:60:0.5`, `hybrid dbsf`.
    pub fn retrieval_label(&self) -> String {
        match self.fusion {
            Some(f) if f.method == FusionMethod::Dbsf => format!("{} dbsf", self.retrieval.as_str()),
            Some(f) => format!("{} rrf:{}:{}", self.retrieval.as_str(), f.k, f.sparse_weight),
            None => self.retrieval.as_str().to_string(),
        }
    }

    pub fn label(&self) -> String {
        let rerank = if self.rerank { "on" } else { "off" };
        format!("{}, rerank {rerank}, {} candidates", self.retrieval_label(), self.candidates)
    }

    /// Every configuration the options ask for, in the order they are run.
    fn all(args: &EvalArgs) -> Vec<Self> {
        let mut all = Vec::new();
        for &candidates in &args.candidates {
            for rerank in &args.rerank {
                for &retrieval in &args.retrieval {
                    let fusions: Vec<Option<Fusion>> = match retrieval {
                        Retrieval::Hybrid => args.fusion.iter().copied().map(Some).collect(),
                        _ => vec![None],
                    };
                    for fusion in fusions {
                        all.push(Self { retrieval, fusion, rerank: *rerank == Switch::On, candidates });
                    }
                }
            }
        }
        all
    }
}

/// Hits asked of each search: enough for recall@100.
const DEPTH: usize = 100;

/// Runs the evaluation and returns what it found; prints nothing but progress.
pub async fn run(args: &EvalArgs) -> Result<Report, EvalError> {
    let queries = input::queries(&args.queries)?;
    let qrels = input::qrels(&args.qrels, &queries)?;
    let judged: Vec<&(String, String)> = queries.iter().filter(|(id, _)| qrels.contains_key(id)).collect();
    let max_candidates = args.candidates.iter().copied().max().unwrap_or(DEPTH);
    let target = Target::new(&args.job, max_candidates).await?;
    let collection = match (&args.collection, &args.corpus) {
        (Some(name), _) => name.clone(),
        (None, Some(corpus)) => fresh_name(corpus)?,
        (None, None) => return Err(EvalError::Failed("give --collection or --corpus".into())),
    };
    let mut unindexed = 0;
    if let Some(corpus) = &args.corpus {
        unindexed = index(args, &target, corpus, &collection).await?;
    } else if !target.exists(&collection).await.map_err(EvalError::Failed)? {
        return Err(EvalError::Failed(format!(
            "collection {collection:?} does not exist: index it first, or give --corpus to index one"
        )));
    }
    let judged_documents: Vec<String> =
        qrels.values().flat_map(|j| j.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let missing = target.missing(&collection, &judged_documents).await.map_err(EvalError::Failed)?;

    let mut per_query = match &args.per_query {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| EvalError::Failed(format!("cannot write {}: {e}", path.display())))?,
        )),
        None => None,
    };
    let mut outcomes = Vec::new();
    for configuration in Configuration::all(args) {
        let mut figures = Vec::with_capacity(judged.len());
        let mut latencies = Vec::with_capacity(judged.len());
        let mut ran = BTreeSet::new();
        let mut progress = Progress::new(&configuration, judged.len());
        for (i, (id, text)) in judged.iter().enumerate() {
            let request = json!({
                "query": text, "collection": collection, "top_k": DEPTH.min(configuration.candidates),
                "candidates": configuration.candidates, "rerank": configuration.rerank, "cache": "bypass",
                "retrieval": configuration.retrieval, "fusion": configuration.fusion,
            });
            let started = Instant::now();
            let (Ranking { ids: ranking, scores }, retrieval) =
                target.search(request).await.map_err(|e| EvalError::Failed(format!("query {id}: {e}")))?;
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
            ran.insert(retrieval);
            let f = Figures::of(&ranking, &qrels[id]);
            if let Some(out) = per_query.as_mut() {
                let line = json!({"configuration": configuration, "query": id, "figures": f, "ranking": ranking, "scores": scores});
                writeln!(out, "{line}").map_err(|e| EvalError::Failed(format!("writing --per-query: {e}")))?;
            }
            figures.push(f);
            progress.tick(i + 1);
        }
        progress.done();
        let ran = ran.into_iter().collect::<Vec<_>>().join("+");
        outcomes.push(Outcome::new(configuration, &figures, latencies, ran));
    }
    if let Some(mut out) = per_query {
        out.flush().map_err(|e| EvalError::Failed(format!("writing --per-query: {e}")))?;
    }
    let b = &args.job.backends;
    let reranker = match (&args.job.gateway_url, &b.rerank_url, &b.rerank_model_dir) {
        (Some(url), _, _) => format!("the one of the gateway at {url}"),
        (None, Some(url), _) => url.clone(),
        (None, None, Some(dir)) => dir.display().to_string(),
        (None, None, None) => b.rerank_model.clone(),
    };
    Ok(Report {
        collection,
        reranker,
        queries: judged.len(),
        unjudged_queries: queries.len() - judged.len(),
        judged_documents: judged_documents.len(),
        missing_judged_documents: missing,
        unindexed_documents: unindexed,
        outcomes,
    })
}

/// Indexes the corpus with ingest's pipeline; returns how many of its documents were not indexed.
async fn index(
    args: &EvalArgs,
    target: &Target,
    corpus: &std::path::Path,
    collection: &str,
) -> Result<usize, EvalError> {
    let (jsonl, documents) = input::corpus_documents(corpus)?;
    let ingest_args = IngestArgs {
        collection: collection.to_string(),
        input: corpus.to_path_buf(),
        strict: false,
        max_text_bytes: 1_000_000,
        job: args.job.clone(),
    };
    let sink = Arc::new(target.sink(&args.job)?);
    let total = Some(jsonl.len() as u64);
    let summary = ingest::run_from(&ingest_args, Box::new(std::io::Cursor::new(jsonl)), total, sink).await?;
    target.settle().await;
    if summary.interrupted {
        return Err(EvalError::Failed("interrupted while indexing the corpus".into()));
    }
    eprintln!(
        "eval: {documents} documents in {collection}: {} written, {} unchanged, {} not indexed",
        summary.upserted,
        summary.unchanged,
        summary.failed + summary.bad_lines
    );
    Ok(summary.failed + summary.bad_lines)
}

/// `eval-` and the first 12 hex digits of the corpus file's SHA-256: the same corpus gets the
/// same collection, so a re-run skips indexing.
fn fresh_name(corpus: &std::path::Path) -> Result<String, EvalError> {
    let bytes = std::fs::read(corpus).map_err(|e| InputError {
        path: corpus.display().to_string(),
        line: 0,
        reason: e.to_string(),
    })?;
    let digest = Sha256::digest(&bytes);
    Ok(format!("eval-{}", digest.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()))
}

/// A progress line on a terminal (nothing when stderr is not one).
struct Progress {
    label: String,
    total: usize,
    on: bool,
}

impl Progress {
    fn new(configuration: &Configuration, total: usize) -> Self {
        Self { label: configuration.label(), total, on: std::io::stderr().is_terminal() }
    }

    fn tick(&mut self, done: usize) {
        if self.on {
            let width = 30;
            let filled = done * width / self.total.max(1);
            eprint!("\r{}: [{}{}] {done}/{}", self.label, "#".repeat(filled), " ".repeat(width - filled), self.total);
        }
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}
