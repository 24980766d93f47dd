//! Where the engines, the vector store and the cache live: the flags the server and the batch
//! jobs share.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use shared::config::{EngineArgs, Secret};

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
    /// An empty value (compose's unset `${VAR:-}`) means none: read as a path, not refused.
    #[arg(long, env = "COLLECTIONS_CONFIG", value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
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
    /// Milliseconds a rerank may take where no partial answer exists (Cohere's rerank routes
    /// answer 504 after it; the pairs left are scored in the background for a retry). A search's
    /// rerank stage has a budget of its own (--rerank-budget-ms).
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
