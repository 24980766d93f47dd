//! The `[NAME.source]` sync's flags: the server's workers, and `search-gateway sync`.

use std::path::PathBuf;

use shared::config::Secret;

/// How the workers that keep collections in sync with their tables run.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Keys a sync worker claims per transaction.
    #[arg(long, env = "SYNC_BATCH", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub sync_batch: u64,
    /// Sync workers per followed table, each with a database connection (two keep the embedder
    /// busy while one commits and claims the next batch).
    #[arg(long, env = "SYNC_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub sync_workers: u64,
    /// Milliseconds between looks at an idle queue (a notification wakes a worker sooner; this is
    /// what guarantees progress when one is lost).
    #[arg(long, env = "SYNC_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub sync_poll_ms: u64,
    /// Milliseconds before a failed key is tried again; the pause doubles with each attempt (at
    /// most 5 minutes), and after 5 attempts the key is parked in semsearch.sync_failed.
    #[arg(long, env = "SYNC_RETRY_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub sync_retry_ms: u64,
    /// Seconds one batch's writes may take: its embeddings share the engine with the other
    /// workers and yield to searches (as `ingest --batch-timeout-secs`); then it is rolled back
    /// and claimed again.
    #[arg(long, env = "SYNC_BATCH_TIMEOUT_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub sync_batch_timeout_secs: u64,
}

/// `search-gateway sync`: what a DBA applies, and a running gateway's sync from a terminal.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SyncCommand {
    /// Print the SQL that installs the sync schema and the triggers of every `[NAME.source]`
    /// (what the gateway applies at start), for a DBA to apply by hand.
    Sql {
        /// The collections config whose sources to install.
        #[arg(long, env = "COLLECTIONS_CONFIG")]
        collections_config: PathBuf,
        /// Also grant this role what a gateway needs once the script has run.
        #[arg(long)]
        role: Option<String>,
    },
    /// Compare a collection with its table (missing, stale and extra documents) through a running
    /// gateway; with --repair, queue the drift.
    Verify {
        #[command(flatten)]
        target: GatewayTarget,
        #[arg(long)]
        repair: bool,
    },
    /// Queue every key of the table again through the backfill (a running gateway's).
    Resync {
        #[command(flatten)]
        target: GatewayTarget,
    },
    /// Print a collection's sync status (a running gateway's).
    Status {
        #[command(flatten)]
        target: GatewayTarget,
    },
}

/// The gateway a `sync` command talks to, and its collection.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayTarget {
    /// The collection that follows a table.
    #[arg(long)]
    pub collection: String,
    /// The running gateway.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    pub gateway_url: String,
    /// Its API key, when it runs with API_KEY.
    #[arg(long, env = "GATEWAY_API_KEY", hide_env_values = true)]
    pub gateway_api_key: Option<Secret>,
}
