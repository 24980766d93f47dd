//! The batch jobs' flags: `ingest`, `reindex`, and how either writes (`JobArgs`).

use std::path::PathBuf;

use shared::config::Secret;

use super::Backends;

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
