//! search-gateway configuration: every option is a flag and an environment variable.

use std::net::IpAddr;
use std::time::Duration;

use shared::http::ServeArgs;

mod backends;
mod eval;
mod jobs;
mod sync;
pub use backends::Backends;
pub use eval::{EvalArgs, MAX_CANDIDATES, Switch};
pub use jobs::{IngestArgs, JobArgs, ReindexArgs};
pub use sync::{GatewayTarget, SyncArgs, SyncCommand};

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
    /// Keeping collections in sync with PostgreSQL tables: the SQL to install, and a running
    /// gateway's status, verify and resync.
    #[command(subcommand)]
    Sync(SyncCommand),
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
    /// Milliseconds a search's rerank stage may take. Candidates are scored in retrieval order;
    /// when the time is up the answer is the scored ones by score, then the others in retrieval
    /// order (`"rerank": "partial"`, not cached), and the others are scored in the background, so
    /// that the next identical search is complete. 2 s: a wait a person accepts, in which the
    /// int8 reranker scores the first 23-40 of 50 profile-length candidates on two cores
    /// (BENCHMARKS.md, "A live corpus").
    #[arg(long, env = "RERANK_BUDGET_MS", default_value_t = 2_000)]
    pub rerank_budget_ms: u64,
    /// Seconds a reranker's (query, document) score stays cached; 0 turns the score cache off.
    /// A score only changes with the model, the query or the document's text, each of which is
    /// in its key; this only bounds how long an unused one takes room.
    #[arg(long, env = "SCORE_CACHE_TTL_SECS", default_value_t = 7 * 86_400)]
    pub score_cache_ttl_secs: u64,
    /// Most (query, document) pairs that searches whose rerank budget ran out may leave to be
    /// scored in the background (at bulk priority, into the score cache); beyond it they are dropped.
    #[arg(long, env = "RERANK_BACKGROUND_PAIRS", default_value_t = 2000)]
    pub rerank_background_pairs: usize,
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl ServerArgs {
    pub fn validate(&self) -> Result<(), String> {
        crate::store::validate_collection_name(&self.default_collection)
            .map_err(|e| format!("--default-collection: {e}"))?;
        if self.max_candidates == 0 || self.max_upsert_documents == 0 || self.max_query_bytes == 0 {
            return Err("--max-candidates, --max-upsert-documents and --max-query-bytes must be at least 1".into());
        }
        if self.rerank_budget_ms == 0 {
            return Err("--rerank-budget-ms must be at least 1".into());
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

    pub fn rerank_budget(&self) -> Duration {
        Duration::from_millis(self.rerank_budget_ms)
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
        assert_eq!(b.data_dir, std::path::PathBuf::from("data"));
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

    /// compose.yaml passes `${VAR:-}` for what the operator may leave unset: each such variable
    /// must parse when empty, whatever its flag's type (a path's parser refuses "" by default).
    #[test]
    fn every_variable_compose_may_leave_empty_parses_when_empty() {
        let compose = include_str!("../../../../compose.yaml");
        let empty: Vec<&str> =
            compose.split("${").skip(1).filter_map(|rest| rest.split_once(":-}")).map(|(name, _)| name).collect();
        assert!(empty.contains(&"COLLECTIONS_CONFIG") && empty.contains(&"DATABASE_URL"), "{empty:?}");
        let command = <Config as clap::CommandFactory>::command();
        let mut checked = 0;
        for arg in command.get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else { continue };
            if !empty.iter().any(|name| env == *name) {
                continue;
            }
            let parsed = Config::try_parse_from(["search-gateway", &format!("--{long}="), "--port", "0"]);
            assert!(parsed.is_ok(), "{env:?}= (--{long}) is refused: {}", parsed.unwrap_err());
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} of {empty:?} are the gateway's flags");
        let config = Config::try_parse_from(["search-gateway", "--collections-config="]).unwrap();
        assert_eq!(config.server.backends.collections_config, Some(std::path::PathBuf::new()), "read as none at start");
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
