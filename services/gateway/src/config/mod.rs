//! search-gateway configuration: every option is a flag and an environment variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use shared::config::{EngineArgs, Secret};
use shared::http::ServeArgs;

mod eval;
pub use eval::{EvalArgs, MAX_CANDIDATES, Switch};

/// Semantic search: cache -> embed the query -> vector top-N -> rerank -> cache. Without
/// EMBED_URL/RERANK_URL/QDRANT_URL/REDIS_URL it runs everything in this process (ONNX Runtime
/// engines, qdrant-edge under --data-dir, an in-process cache).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "search-gateway", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Index a JSONL file of documents into a collection (in process, or through a gateway).
    Ingest(Box<IngestArgs>),
    /// Re-embed a collection into a new one and point an alias at it (in process, or through a gateway).
    Reindex(Box<ReindexArgs>),
    /// Measure relevance on a test collection (nDCG@10, MRR@10, recall, P@10), in process or
    /// through a gateway.
    Eval(Box<EvalArgs>),
    /// Exit 0 if the gateway on this machine answers 200 on /ready, else 1.
    Healthcheck(shared::http::HealthcheckArgs),
    /// Download the in-process engines' models (--embed-model, --rerank-model) and exit.
    Fetch,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free port, printed at start-up).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub backends: Backends,
    /// Collection searched when a request names none.
    #[arg(long, env = "DEFAULT_COLLECTION", default_value = "profiles")]
    pub default_collection: String,
    /// Largest `candidates` a search may ask for.
    #[arg(long, env = "MAX_CANDIDATES", default_value_t = 200)]
    pub max_candidates: usize,
    /// Longest accepted query, in bytes.
    #[arg(long, env = "MAX_QUERY_BYTES", default_value_t = 4096)]
    pub max_query_bytes: usize,
    /// Most documents in one upsert request.
    #[arg(long, env = "MAX_UPSERT_DOCUMENTS", default_value_t = 1000)]
    pub max_upsert_documents: usize,
    /// Seconds a search result stays cached.
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 3600)]
    pub cache_ttl_secs: u64,
    /// Serve the playground page at `/` (a search and upsert UI on the public API).
    #[arg(long, env = "PLAYGROUND", default_value_t = true, action = clap::ArgAction::Set)]
    pub playground: bool,
    /// Seconds a query embedding stays cached (embeddings survive re-ingest).
    #[arg(long, env = "EMBEDDING_CACHE_TTL_SECS", default_value_t = 86_400)]
    pub embedding_cache_ttl_secs: u64,
    /// Seconds a reranker's (query, document) score stays cached. A score only changes with the
    /// model, the query or the document's text, each of which is in its key; this only bounds
    /// how long an unused one takes room.
    #[arg(long, env = "SCORE_CACHE_TTL_SECS", default_value_t = 7 * 86_400)]
    pub score_cache_ttl_secs: u64,
    /// Most (query, document) pairs that searches whose rerank budget ran out may leave to be
    /// scored in the background (at bulk priority, into the score cache); beyond it they are dropped.
    #[arg(long, env = "RERANK_BACKGROUND_PAIRS", default_value_t = 2000)]
    pub rerank_background_pairs: usize,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Where the engines, the vector store and the cache live. Shared by the server and `ingest`.
#[derive(Debug, Clone, clap::Args)]
pub struct Backends {
    /// embed-service base URL (e.g. http://embed-service:5555); unset = in-process engine.
    #[arg(long, env = "EMBED_URL")]
    pub embed_url: Option<String>,
    /// rerank-service base URL (e.g. http://rerank-service:5556); unset = in-process engine.
    #[arg(long, env = "RERANK_URL")]
    pub rerank_url: Option<String>,
    /// The API key sent to embed-service (`Authorization: Bearer`), when it runs with API_KEY.
    #[arg(long, env = "EMBED_API_KEY", hide_env_values = true)]
    pub embed_api_key: Option<Secret>,
    /// The API key sent to rerank-service, when it runs with API_KEY.
    #[arg(long, env = "RERANK_API_KEY", hide_env_values = true)]
    pub rerank_api_key: Option<Secret>,
    /// The in-process embedder's model directory; wins over --embed-model.
    #[arg(long, env = "EMBED_MODEL_DIR")]
    pub embed_model_dir: Option<PathBuf>,
    /// The in-process embedder's model name from models/models.toml, fetched on first use.
    #[arg(long, env = "EMBED_MODEL", default_value = "multilingual-e5-large")]
    pub embed_model: String,
    /// The in-process reranker's model directory; wins over --rerank-model.
    #[arg(long, env = "RERANK_MODEL_DIR")]
    pub rerank_model_dir: Option<PathBuf>,
    /// The in-process reranker's model name from models/models.toml, fetched on first use.
    #[arg(long, env = "RERANK_MODEL", default_value = "bge-reranker-base")]
    pub rerank_model: String,
    /// Where named models are kept.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Qdrant server gRPC URL (e.g. http://qdrant:6334); unset or empty = qdrant-edge under --data-dir.
    #[arg(long, env = "QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// Qdrant API key.
    #[arg(long, env = "QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<Secret>,
    /// Shards of each collection the gateway creates on a Qdrant server [default: Qdrant's, one
    /// per node of a cluster].
    #[arg(long, env = "QDRANT_SHARDS")]
    pub qdrant_shards: Option<u32>,
    /// Copies of each shard, on distinct nodes of a Qdrant cluster [default: 1]; with 2, a node
    /// can be lost without losing data or availability.
    #[arg(long, env = "QDRANT_REPLICATION_FACTOR")]
    pub qdrant_replication_factor: Option<u32>,
    /// Copies that must confirm a write before Qdrant acknowledges it [default: 1].
    #[arg(long, env = "QDRANT_WRITE_CONSISTENCY")]
    pub qdrant_write_consistency: Option<u32>,
    /// A TOML file with a table per collection: for ones the gateway did not build (the old
    /// stack's), their text and id payload keys, vector name, embedding model and input type,
    /// whether writable; for any, its BM25 tokenizer (`[name.bm25]`) or `sparse = false`.
    #[arg(long, env = "COLLECTIONS_CONFIG")]
    pub collections_config: Option<PathBuf>,
    /// qdrant-edge storage (one process owns it).
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// KiB the qdrant-edge write-ahead journal may hold before a checkpoint flushes every
    /// collection to disk and empties it (bounds the replay after a crash).
    #[arg(long, env = "JOURNAL_CHECKPOINT_KIB", default_value_t = 64 * 1024)]
    pub journal_checkpoint_kib: u64,
    /// KiB of each WAL file of a new qdrant-edge collection; the oldest are deleted (in a short
    /// reopen) once four of them and a quarter of the collection's size can go.
    #[arg(long, env = "WAL_FILE_KIB", default_value_t = 4 * 1024, value_parser = clap::value_parser!(u64).range(64..=1 << 20))]
    pub wal_file_kib: u64,
    /// Redis URL, password included (redis://:PASSWORD@redis:6379/0); unset = in-process cache.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Milliseconds a Redis command may take before the cache is skipped.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 100)]
    pub redis_timeout_ms: u64,
    /// Size of the in-process cache, in MiB.
    #[arg(long, env = "CACHE_MAX_MIB", default_value_t = 256)]
    pub cache_max_mib: u64,
    /// Milliseconds embedding a query (or an upsert chunk) may take.
    #[arg(long, env = "EMBED_TIMEOUT_MS", default_value_t = 30_000)]
    pub embed_timeout_ms: u64,
    /// Milliseconds the rerank stage of a search may take: candidates are scored in retrieval
    /// order, and when the time is up the answer is the scored ones by score, then the rest in
    /// retrieval order (`"rerank": "partial"`); the rest are scored in the background for the next
    /// search. Cohere's rerank routes answer 504 instead.
    #[arg(long, env = "RERANK_TIMEOUT_MS", default_value_t = 15_000)]
    pub rerank_timeout_ms: u64,
    /// Milliseconds a Qdrant server call may take.
    #[arg(long, env = "QDRANT_TIMEOUT_MS", default_value_t = 10_000)]
    pub qdrant_timeout_ms: u64,
    /// Retries of a remote engine call answered 429/503 (Retry-After is honoured).
    #[arg(long, env = "UPSTREAM_RETRIES", default_value_t = 2)]
    pub upstream_retries: u32,
    /// In-process engines' batching (both engines use these).
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl Backends {
    pub fn embed_timeout(&self) -> Duration {
        Duration::from_millis(self.embed_timeout_ms)
    }

    pub fn rerank_timeout(&self) -> Duration {
        Duration::from_millis(self.rerank_timeout_ms)
    }

    /// The server's in-process engine settings. When both engines run in process they share the
    /// cores, and the spinning threads of the idle one slow the other's runs down about twofold
    /// (BENCHMARKS.md), so spinning is off there unless asked for.
    pub fn server_engine_args(&self) -> EngineArgs {
        let mut engine = self.engine.clone();
        if self.embed_url.is_none() && self.rerank_url.is_none() {
            engine.intra_op_spinning.get_or_insert(false);
        }
        engine
    }

    /// The Qdrant server, if any: an empty `QDRANT_URL=` (compose's unset `${VAR:-}`) means none,
    /// as an unset one does.
    pub fn qdrant_url(&self) -> Option<&str> {
        self.qdrant_url.as_deref().filter(|url| !url.trim().is_empty())
    }

    pub fn qdrant_layout(&self) -> crate::store::Layout {
        crate::store::Layout {
            shards: self.qdrant_shards,
            replication_factor: self.qdrant_replication_factor,
            write_consistency: self.qdrant_write_consistency,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let layout = [self.qdrant_shards, self.qdrant_replication_factor, self.qdrant_write_consistency];
        if layout.contains(&Some(0)) {
            return Err(
                "--qdrant-shards, --qdrant-replication-factor and --qdrant-write-consistency must be at least 1".into(),
            );
        }
        if let (Some(copies), Some(acks)) = (self.qdrant_replication_factor, self.qdrant_write_consistency)
            && acks > copies
        {
            return Err(format!(
                "--qdrant-write-consistency ({acks}) cannot exceed --qdrant-replication-factor ({copies})"
            ));
        }
        if self.embed_timeout_ms == 0 || self.rerank_timeout_ms == 0 || self.redis_timeout_ms == 0 {
            return Err("--embed-timeout-ms, --rerank-timeout-ms and --redis-timeout-ms must be at least 1".into());
        }
        self.engine.validate(1)
    }
}

/// Index documents from a JSONL file: one {"id", "text", "payload"?} object per line.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// The collection to write (created on first write).
    #[arg(long)]
    pub collection: String,
    /// The JSONL file, or `-` for stdin.
    #[arg(long)]
    pub input: PathBuf,
    /// Stop at the first bad line instead of reporting and skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Longest accepted text, in bytes; longer documents are bad lines.
    #[arg(long, default_value_t = 100_000)]
    pub max_text_bytes: usize,
    #[command(flatten)]
    pub job: JobArgs,
}

/// How a batch job writes: through a running gateway, or with this process's engines and store.
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// Send the documents to a running gateway (e.g. http://127.0.0.1:8080) instead of
    /// embedding and storing them in this process; the engine and store flags are then unused.
    #[arg(long)]
    pub gateway_url: Option<String>,
    /// The API key sent to that gateway, when it runs with API_KEY.
    #[arg(long, env = "GATEWAY_API_KEY", hide_env_values = true)]
    pub gateway_api_key: Option<Secret>,
    /// Documents per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Batches embedded and written at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds one batch may take to be embedded and written (batches in flight share the
    /// engine, so this is far above a single search's budget).
    #[arg(long, default_value_t = 600)]
    pub batch_timeout_secs: u64,
    /// Seconds between progress lines when stderr is not a terminal (0: after every batch).
    #[arg(long, default_value_t = 5)]
    pub progress_secs: u64,
    /// Retries of a batch refused with 429/503 by a service (with backoff).
    #[arg(long, default_value_t = 8)]
    pub retries: u32,
    #[command(flatten)]
    pub backends: Backends,
}

/// Re-embed a collection (or what an alias names) into a new one with the current embedder, keeping
/// the documents' ids and payloads, then point an alias at the new one. Resumable like ingest.
#[derive(Debug, Clone, clap::Args)]
pub struct ReindexArgs {
    /// The collection (or alias) to read.
    #[arg(long)]
    pub from: String,
    /// The collection to write (created on first write; a re-run resumes it).
    #[arg(long)]
    pub to: String,
    /// Once every document is in, point this alias at --to (in one step) and invalidate its
    /// cached results.
    #[arg(long)]
    pub alias: Option<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

impl ReindexArgs {
    pub fn validate(&self) -> Result<(), String> {
        for (flag, name) in [("--from", Some(&self.from)), ("--to", Some(&self.to)), ("--alias", self.alias.as_ref())] {
            if let Some(name) = name {
                crate::store::validate_collection_name(name).map_err(|e| format!("{flag}: {e}"))?;
            }
        }
        if self.from == self.to {
            return Err("--from and --to must differ".into());
        }
        self.job.validate()
    }

    /// The ingest job that writes --to (its input is the old collection, read by `reindex`).
    pub fn ingest_args(&self) -> IngestArgs {
        IngestArgs {
            collection: self.to.clone(),
            input: PathBuf::from("-"),
            strict: false,
            max_text_bytes: usize::MAX,
            job: self.job.clone(),
        }
    }
}

impl JobArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.concurrency == 0 || self.batch_timeout_secs == 0 {
            return Err("--batch-size, --concurrency and --batch-timeout-secs must be at least 1".into());
        }
        if self.gateway_url.is_none() {
            self.backends.validate()?;
        }
        Ok(())
    }
}

impl IngestArgs {
    pub fn validate(&self) -> Result<(), String> {
        crate::store::validate_collection_name(&self.collection).map_err(|e| format!("--collection: {e}"))?;
        self.job.validate()
    }
}

impl ServerArgs {
    pub fn validate(&self) -> Result<(), String> {
        crate::store::validate_collection_name(&self.default_collection)
            .map_err(|e| format!("--default-collection: {e}"))?;
        if self.max_candidates == 0 || self.max_upsert_documents == 0 || self.max_query_bytes == 0 {
            return Err("--max-candidates, --max-upsert-documents and --max-query-bytes must be at least 1".into());
        }
        if self.backends.embed_url.is_none() && self.backends.engine.queue_capacity < self.max_upsert_documents {
            return Err(format!(
                "--queue-capacity ({}) is smaller than --max-upsert-documents ({}), whose texts queue at once",
                self.backends.engine.queue_capacity, self.max_upsert_documents
            ));
        }
        self.serve.validate()?;
        self.backends.validate()
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub fn embedding_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.embedding_cache_ttl_secs)
    }

    pub fn score_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.score_cache_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn defaults_are_the_embedded_mode() {
        let config = Config::try_parse_from(["search-gateway"]).unwrap();
        let s = &config.server;
        assert_eq!((s.port, s.max_candidates, s.cache_ttl_secs), (8080, 200, 3600));
        let b = &s.backends;
        assert!(b.embed_url.is_none() && b.rerank_url.is_none() && b.qdrant_url.is_none() && b.redis_url.is_none());
        assert_eq!(b.data_dir, PathBuf::from("data"));
        assert!(s.validate().is_ok());
        assert!(!b.server_engine_args().spinning(), "two engines in process: no spinning");
    }

    #[test]
    fn an_empty_qdrant_url_is_the_embedded_store() {
        let url = |args: &[&str]| {
            let config = Config::try_parse_from([&["search-gateway"], args].concat()).unwrap();
            config.server.backends.qdrant_url().map(str::to_string)
        };
        assert_eq!(url(&["--qdrant-url", ""]), None);
        assert_eq!(url(&["--qdrant-url", " "]), None);
        assert_eq!(url(&["--qdrant-url", "http://qdrant:6334"]).as_deref(), Some("http://qdrant:6334"));
    }

    #[test]
    fn spinning_is_off_only_for_two_engines_in_process_and_unless_asked_for() {
        let spinning = |args: &[&str]| {
            let config = Config::try_parse_from([&["search-gateway"], args].concat()).unwrap();
            config.server.backends.server_engine_args().spinning()
        };
        assert!(spinning(&["--rerank-url", "http://rerank:5556"]), "one engine in process");
        assert!(spinning(&["--intra-op-spinning", "true"]));
        assert!(!spinning(&["--embed-url", "http://embed:5555", "--intra-op-spinning", "false"]));
    }

    #[test]
    fn impossible_settings_are_refused() {
        let bad = |args: &[&str]| {
            let config = Config::try_parse_from([&["search-gateway"], args].concat()).unwrap();
            config.server.validate().unwrap_err()
        };
        assert!(bad(&["--default-collection", "../x"]).contains("--default-collection"));
        assert!(bad(&["--max-candidates", "0"]).contains("--max-candidates"));
        assert!(bad(&["--rerank-timeout-ms", "0"]).contains("--rerank-timeout-ms"));
        assert!(bad(&["--queue-capacity", "10"]).contains("--queue-capacity"));
    }
}
