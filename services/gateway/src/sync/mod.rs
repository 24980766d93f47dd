//! `sync`: a collection follows a PostgreSQL table (`[NAME.source]` in `--collections-config`).
//! Row triggers queue the keys of changed rows in the gateway's own schema (`schema`); workers
//! inside the gateway claim them, read each row as it is now and write or delete its document
//! through the same writer as `PUT` (`worker`); the first start (or a resync) queues every key
//! through the same queue (`backfill`); `verify` compares table and collection and queues the
//! drift. No replication slot, no superuser; at-least-once with idempotent writes.
//!
//! Each index that follows a table is a *consumer* with a queue of its own: a qdrant-edge data
//! directory (an id kept in it), or a Qdrant server's collection, which every gateway replica
//! writing to that server shares, and whose workers then share the work.

mod backfill;
pub use backfill::request as backfill_request;
pub mod cli;
mod connect;
pub mod schema;
pub mod status;
pub mod verify;
mod worker;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use shared::batcher::Readiness;
use tokio::sync::watch;

use crate::Gateway;
pub use crate::collections::source::SourceSettings;
use crate::config::SyncArgs;
use status::State;
pub use status::SyncStatus;

/// How the workers run.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// Keys claimed per transaction.
    pub batch: usize,
    /// Workers per followed collection (each with a connection and a transaction of its own).
    pub workers: usize,
    /// How often an idle worker looks at the queue without a notification.
    pub poll: Duration,
    /// The pause before a failed key's first retry; it doubles with each attempt.
    pub retry: Duration,
    /// How long one batch's writes may take (its embeddings queue behind searches).
    pub timeout: Duration,
}

impl From<&SyncArgs> for SyncSettings {
    fn from(args: &SyncArgs) -> Self {
        Self {
            batch: args.sync_batch as usize,
            workers: args.sync_workers as usize,
            poll: Duration::from_millis(args.sync_poll_ms),
            retry: Duration::from_millis(args.sync_retry_ms),
            timeout: Duration::from_secs(args.sync_batch_timeout_secs),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration cannot work (no connection string, one that does not parse).
    #[error("{0}")]
    Config(String),
    /// The table does not fit `[NAME.source]` (missing, a column missing, a key without a
    /// unique index, SQL that does not read).
    #[error("{0}")]
    Source(String),
    #[error("{0}")]
    Privileges(String),
    /// The database did not answer, or refused.
    #[error("PostgreSQL: {0}")]
    Database(String),
    /// The engines or the store did not take the batch (it is rolled back and tried again).
    #[error("writing the collection: {0}")]
    Write(String),
}

impl From<tokio_postgres::Error> for SyncError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(db_message(&e))
    }
}

impl SyncError {
    /// `e`, or, if the role was not allowed to, what to do about it.
    fn privileges(e: tokio_postgres::Error, what: &str) -> Self {
        match e.code() {
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => Self::Privileges(format!(
                "this role may not {what} ({}): have the table's owner run `search-gateway sync sql --role <this role>` \
                 once, or grant CREATE on the database and make this role the table's owner",
                db_message(&e)
            )),
            _ => e.into(),
        }
    }
}

/// The server's own words for a database error (with its detail and hint), else the client's.
pub fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_string();
            for extra in [db.detail(), db.hint()].into_iter().flatten() {
                text = format!("{text} ({extra})");
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}

/// A collection that follows a table: what its workers and the routes share.
pub struct Follower {
    gateway: Weak<Gateway>,
    pub collection: String,
    pub source: SourceSettings,
    pub consumer: String,
    /// The connection string, if its variable is set.
    url: Option<String>,
    settings: SyncSettings,
    state: Mutex<State>,
}

impl Follower {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The gateway whose writer and store the sync uses, while it runs.
    fn gateway(&self) -> Result<Arc<Gateway>, SyncError> {
        self.gateway.upgrade().ok_or_else(|| SyncError::Write("the gateway is stopping".into()))
    }

    pub fn status(&self) -> SyncStatus {
        SyncStatus::of(&self.collection, &self.source.table, &self.consumer, &self.state())
    }

    /// The connection string, or why there is none.
    pub fn url(&self) -> Result<&str, SyncError> {
        self.url.as_deref().ok_or_else(|| {
            SyncError::Config(format!(
                "collection {:?} follows {} but {} is not set (or empty): set it to the database's connection string",
                self.collection,
                self.source.table,
                self.source.url_env()
            ))
        })
    }

    /// Connects for one request (a verify, a resync) and checks the table as a worker does.
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, String), SyncError> {
        let mut connection = connect::connect(self.url()?, "search-gateway sync").await?;
        schema::migrate(&mut connection.client).await?;
        let registered = schema::register(&mut connection.client, &self.source, &self.consumer).await?;
        Ok((connection.client, registered.key_type))
    }

    /// Records a failure (logged at most every 30 s per collection: an outage repeats it).
    fn failed(&self, error: &SyncError) {
        let mut state = self.state();
        let repeated = state.last_error.as_ref().is_some_and(|(e, t)| {
            *e == error.to_string() && t.elapsed().is_ok_and(|since| since < Duration::from_secs(30))
        });
        if !repeated {
            tracing::warn!(collection = %self.collection, table = %self.source.table, %error, "sync paused; retrying");
        }
        if let Some(gateway) = self.gateway.upgrade() {
            gateway.metrics.sync_error(&self.collection);
        }
        state.connected = false;
        state.failed_with(error.to_string());
    }
}

/// The collections this gateway keeps in sync, by name.
#[derive(Default)]
pub struct Registry(Mutex<HashMap<String, Arc<Follower>>>);

impl Registry {
    pub fn get(&self, collection: &str) -> Option<Arc<Follower>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(collection).cloned()
    }
}

/// The first pause after a failure; it doubles up to [`LAST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LAST_PAUSE: Duration = Duration::from_secs(30);

/// Starts the workers of every collection with a `[NAME.source]`, on `gateway`'s writer, once
/// the in-process engines are `ready`. A source that cannot work now (no connection string, a
/// database that refuses, a table that does not fit) is logged and retried; searches are served
/// meanwhile.
pub fn start(
    gateway: &Arc<Gateway>,
    data_dir: &Path,
    qdrant_url: Option<&str>,
    settings: SyncSettings,
    ready: Vec<watch::Receiver<Readiness>>,
) {
    for (collection, profile) in gateway.collections.profiles.iter() {
        let Some(source) = &profile.source else { continue };
        let consumer = match consumer_id(collection, data_dir, qdrant_url) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(%collection, error = %e, "cannot name this index for sync; not syncing");
                continue;
            }
        };
        let url = std::env::var(source.url_env()).ok().filter(|u| !u.trim().is_empty());
        let follower = Arc::new(Follower {
            gateway: Arc::downgrade(gateway),
            collection: collection.clone(),
            source: source.clone(),
            consumer,
            url,
            settings,
            state: Mutex::default(),
        });
        gateway.sync.0.lock().unwrap_or_else(|p| p.into_inner()).insert(collection.clone(), follower.clone());
        if let Err(e) = follower.url() {
            tracing::error!(%collection, error = %e, "not syncing");
            follower.state().failed_with(e.to_string());
            continue;
        }
        tracing::info!(%collection, table = %source.table, consumer = %follower.consumer, "following a table");
        let ready = ready.clone();
        tokio::spawn(async move {
            // Writes need the engines: a batch sent while they load would only wait and retry.
            for mut engine in ready {
                if engine.wait_for(|r| *r != Readiness::Loading).await.is_err() {
                    return;
                }
            }
            for n in 0..settings.workers.max(1) {
                tokio::spawn(run(follower.clone(), n == 0));
            }
        });
    }
}

/// This index's name among the table's consumers: a Qdrant server's collection (shared by the
/// replicas writing to it), or a qdrant-edge data directory's (an id kept in the directory).
fn consumer_id(collection: &str, data_dir: &Path, qdrant_url: Option<&str>) -> Result<String, String> {
    if let Some(url) = qdrant_url {
        return Ok(format!("qdrant:{}:{collection}", url.trim_end_matches('/')));
    }
    let path = data_dir.join("sync-id");
    let id = match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
            std::fs::write(&path, &id).map_err(|e| format!("{}: {e}", path.display()))?;
            id
        }
    };
    Ok(format!("edge:{id}:{collection}"))
}

/// One worker, until the gateway is gone: a session after another, with growing pauses between
/// failed ones. The lead worker also keeps the status fresh and runs the backfill.
async fn run(follower: Arc<Follower>, lead: bool) {
    let mut pause = FIRST_PAUSE;
    loop {
        let started = Instant::now();
        match follower.session(lead).await {
            Ok(()) => return,
            Err(error) => follower.failed(&error),
        }
        if started.elapsed() > LAST_PAUSE {
            pause = FIRST_PAUSE;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LAST_PAUSE);
    }
}

impl Follower {
    /// Connects, installs, then claims batches until an error or the gateway's end (`Ok`).
    async fn session(&self, lead: bool) -> Result<(), SyncError> {
        let url = self.url()?.to_string();
        let mut connection = connect::connect(&url, "search-gateway sync").await?;
        schema::migrate(&mut connection.client).await?;
        let registered = schema::register(&mut connection.client, &self.source, &self.consumer).await?;
        let read_rows = self.source.read_rows_sql(&registered.key_type);
        self.state().connected = true;
        let mut refreshed: Option<Instant> = None;
        let mut outage = FIRST_PAUSE;
        loop {
            if self.gateway.strong_count() == 0 {
                return Ok(());
            }
            if lead && refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
                self.refresh(&connection.client).await?;
                refreshed = Some(Instant::now());
            }
            // A backfill runs at the first start, or when a resync asks (seen at the next refresh).
            let backfilling = lead && self.state().backfill.state != "done";
            if backfilling && backfill::step(self, &mut connection.client, &registered.key_type).await? {
                continue;
            }
            let transaction = connection.client.transaction().await?;
            match self.process_batch(transaction, &read_rows).await {
                Ok(0) => {
                    tokio::select! {
                        _ = connection.woken.notified() => {}
                        _ = tokio::time::sleep(self.settings.poll) => {}
                    }
                }
                Ok(_) => {
                    outage = FIRST_PAUSE;
                    self.state().last_error = None;
                }
                // The engines or the store are down: the batch was rolled back; wait, keep the connection.
                Err(error @ SyncError::Write(_)) => {
                    self.failed(&error);
                    self.state().connected = true;
                    tokio::time::sleep(outage).await;
                    outage = (outage * 2).min(LAST_PAUSE);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Reads the queue's figures for the status and the metrics, and says this consumer is alive.
    async fn refresh(&self, client: &tokio_postgres::Client) -> Result<(), SyncError> {
        let consumer = &self.consumer;
        let queue = client
            .query_one(
                "SELECT count(*), extract(epoch FROM now() - min(queued_at))::float8 FROM semsearch.sync_queue WHERE consumer = $1",
                &[consumer],
            )
            .await?;
        let failed: i64 = client
            .query_one("SELECT count(*) FROM semsearch.sync_failed WHERE consumer = $1", &[consumer])
            .await?
            .get(0);
        let backfill = backfill::read(client, consumer).await?;
        client
            .execute("UPDATE semsearch.sync_consumers SET last_seen_at = now() WHERE consumer = $1", &[consumer])
            .await?;
        // An index nobody has served for a week (a data directory thrown away): its queue would
        // only grow. If it comes back, it registers again and catches up with a backfill.
        let dropped: i64 = client
            .query_one(
                "WITH gone AS (DELETE FROM semsearch.sync_consumers WHERE last_seen_at < now() - interval '7 days' \
                 RETURNING consumer), \
                 queue AS (DELETE FROM semsearch.sync_queue WHERE consumer IN (SELECT consumer FROM gone)), \
                 failed AS (DELETE FROM semsearch.sync_failed WHERE consumer IN (SELECT consumer FROM gone)) \
                 SELECT count(*) FROM gone",
                &[],
            )
            .await?
            .get(0);
        if dropped > 0 {
            tracing::info!(table = %self.source.table, "dropped the queue of a consumer not seen for a week");
        }
        let (queued, oldest): (i64, Option<f64>) = (queue.get(0), queue.get(1));
        self.gateway
            .upgrade()
            .inspect(|g| g.metrics.sync_queue(&self.collection, queued, failed, oldest.unwrap_or(0.0)));
        let mut state = self.state();
        (state.queued, state.failed, state.oldest_queued_secs, state.backfill) =
            (Some(queued), Some(failed), oldest, backfill);
        state.connected = true;
        Ok(())
    }
}

/// How often the lead worker reads the queue's figures.
const REFRESH: Duration = Duration::from_secs(2);
