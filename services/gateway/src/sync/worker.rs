//! One sync worker: in one transaction, claim a batch of queued keys (`FOR UPDATE SKIP LOCKED`,
//! and an advisory lock per key, so that no two workers, in this process or another, process one
//! key at once), read each row as it is now, write or delete its document through the same
//! writer as `PUT` (an unchanged text is not re-embedded), and, once the writes are durable,
//! delete the queue rows and commit. A kill anywhere rolls the transaction back: the keys are
//! claimed again and the writes repeated, to the same result. A change committed after the read
//! has queued its key again, so the index ends at the latest version. Nothing here depends on the
//! order of queue ids: transactions commit out of order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value};
use shared::Priority;
use tokio_postgres::Transaction;

use super::{Follower, SyncError};
use crate::collections::documents::Document;
use crate::error::ApiError;
use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// Attempts of a failing key before it is parked in `semsearch.sync_failed`.
pub(super) const MAX_ATTEMPTS: i32 = 5;

/// The longest pause before a retry (the first is `--sync-retry-ms`, doubling with each attempt).
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(300);

/// What a claimed key comes to.
enum Outcome {
    Written,
    Deleted,
    /// This key failed; it is retried later or parked.
    Failed(String),
}

/// The queue rows claimed for one key, and how often it has failed before.
#[derive(Default)]
struct Claimed {
    ids: Vec<i64>,
    attempts: i32,
}

/// Why a batch could not be finished: the whole batch is rolled back and tried again later.
pub(super) fn is_outage(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Upstream(UpstreamError::Overloaded(_) | UpstreamError::Unavailable(..) | UpstreamError::Timeout(_))
            | ApiError::Store(StoreError::Unavailable(_))
            | ApiError::Internal
    )
}

impl Follower {
    /// The gateway's writer, with a batch job's time budget: a batch of keys shares the embedder
    /// with the other workers and yields to searches, so it may take far longer than one `PUT`.
    fn writer<'a>(&self, gateway: &'a crate::Gateway) -> crate::collections::documents::Writer<'a> {
        crate::collections::documents::Writer { embed_timeout: self.settings.timeout, ..gateway.writer() }
    }

    /// Claims and processes one batch; returns how many keys it brought up to date (0: the queue
    /// had nothing due that no other worker holds).
    pub(super) async fn process_batch(
        &self,
        transaction: Transaction<'_>,
        read_rows: &str,
    ) -> Result<usize, SyncError> {
        let consumer = &self.consumer;
        let batch = i64::try_from(self.settings.batch).unwrap_or(i64::MAX);
        let first = transaction
            .query(
                "SELECT id, key FROM semsearch.sync_queue WHERE consumer = $1 AND not_before <= now() \
                 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[consumer, &batch],
            )
            .await?;
        if first.is_empty() {
            transaction.commit().await?;
            return Ok(0);
        }
        // A key another worker holds is left for it (its rows stay queued: reprocessing is harmless).
        let candidates: BTreeSet<String> =
            first.iter().map(|row| row.get::<_, Option<String>>(1).unwrap_or_default()).collect();
        let candidates: Vec<String> = candidates.into_iter().collect();
        let mine: Vec<String> = transaction
            .query(
                "SELECT k FROM unnest($2::text[]) AS k WHERE pg_try_advisory_xact_lock(hashtextextended($1 || ':' || k, 0))",
                &[consumer, &candidates],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        // Every queued row of those keys, due or waiting for a retry: this pass supersedes them.
        // ('' stands for a TRUNCATE marker, NULL in the queue: a real key is never empty.)
        let truncated = mine.iter().any(String::is_empty);
        let rows = transaction
            .query(
                "SELECT id, coalesce(key, ''), attempts FROM semsearch.sync_queue \
                 WHERE consumer = $1 AND (key = ANY($2) OR ($3 AND key IS NULL)) FOR UPDATE SKIP LOCKED",
                &[consumer, &mine, &truncated],
            )
            .await?;
        let mut claimed: BTreeMap<String, Claimed> = BTreeMap::new();
        for row in &rows {
            let entry = claimed.entry(row.get(1)).or_default();
            entry.ids.push(row.get(0));
            entry.attempts = entry.attempts.max(row.get(2));
        }
        if claimed.is_empty() {
            transaction.commit().await?;
            return Ok(0);
        }
        if claimed.contains_key("") {
            self.after_truncate(&transaction).await?;
        }
        let keys: Vec<String> = claimed.keys().filter(|k| !k.is_empty()).cloned().collect();
        let outcomes = self.bring_up_to_date(&transaction, &keys, read_rows).await?;
        self.finish(&transaction, &claimed, &outcomes).await?;
        transaction.commit().await?;
        let mut state = self.state();
        let done = claimed.len();
        for outcome in outcomes.values() {
            match outcome {
                Outcome::Written => state.upserted += 1,
                Outcome::Deleted => state.deleted += 1,
                Outcome::Failed(_) => {}
            }
        }
        state.processed(done as u64);
        self.gateway()?.metrics.sync_done(&self.collection, done);
        Ok(done)
    }

    /// Reads the rows of `keys` as they are now and writes each one's document, or deletes it.
    /// An outage (an engine or the store not answering) fails the whole batch; a key's own
    /// failure (an invalid id, a text the embedder refuses) is that key's only.
    async fn bring_up_to_date(
        &self,
        transaction: &Transaction<'_>,
        keys: &[String],
        read_rows: &str,
    ) -> Result<BTreeMap<String, Outcome>, SyncError> {
        let rows = transaction.query(read_rows, &[&keys]).await?;
        let mut documents = Vec::new();
        let mut outcomes = BTreeMap::new();
        for row in &rows {
            let (key, text, payload, searchable): (String, String, String, bool) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if !searchable || text.trim().is_empty() {
                self.state().unsearchable += 1;
                continue;
            }
            match serde_json::from_str::<Map<String, Value>>(&payload) {
                Ok(payload) => documents.push(Document { id: key, text, payload: Some(payload) }),
                Err(e) => {
                    outcomes.insert(key, Outcome::Failed(format!("the payload columns do not read as JSON: {e}")));
                }
            }
        }
        let gateway = self.gateway()?;
        let writer = self.writer(&gateway);
        let written: BTreeSet<String> = documents.iter().map(|d| d.id.clone()).collect();
        match writer.upsert_from_source(&self.collection, documents.clone(), Priority::Bulk).await {
            Ok(_) => outcomes.extend(written.iter().map(|k| (k.clone(), Outcome::Written))),
            Err(e) if is_outage(&e) => return Err(SyncError::Write(e.to_string())),
            // One document's fault fails the batch: each goes alone, so only it fails.
            Err(_) => {
                for document in documents {
                    let key = document.id.clone();
                    let outcome =
                        match writer.upsert_from_source(&self.collection, vec![document], Priority::Bulk).await {
                            Ok(_) => Outcome::Written,
                            Err(e) if is_outage(&e) => return Err(SyncError::Write(e.to_string())),
                            Err(e) => Outcome::Failed(e.to_string()),
                        };
                    outcomes.insert(key, outcome);
                }
            }
        }
        // Keys without a searchable row: their documents go (removing a missing one is fine).
        let unwritten: Vec<&String> = keys.iter().filter(|k| !outcomes.contains_key(*k)).collect();
        for key in unwritten {
            let outcome = match writer.delete_from_source(&self.collection, key).await {
                Ok(()) => Outcome::Deleted,
                Err(e) if is_outage(&e) => return Err(SyncError::Write(e.to_string())),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            outcomes.insert(key.clone(), outcome);
        }
        Ok(outcomes)
    }

    /// Deletes the queue rows of the keys that are done (and their parked entries); a failed
    /// key keeps one row, to be retried after a pause that doubles with each attempt, or is
    /// parked once it has had [`MAX_ATTEMPTS`].
    async fn finish(
        &self,
        transaction: &Transaction<'_>,
        claimed: &BTreeMap<String, Claimed>,
        outcomes: &BTreeMap<String, Outcome>,
    ) -> Result<(), SyncError> {
        let consumer = &self.consumer;
        let mut done_ids = Vec::new();
        let mut done_keys = Vec::new();
        for (key, rows) in claimed {
            match outcomes.get(key) {
                Some(Outcome::Failed(error)) if rows.attempts + 1 < MAX_ATTEMPTS => {
                    let attempts = rows.attempts + 1;
                    let pause = (self.settings.retry * 2u32.pow(attempts as u32 - 1)).min(MAX_RETRY_PAUSE);
                    tracing::warn!(collection = %self.collection, key, attempts, %error, "a key failed; retrying later");
                    let (keep, rest) = rows.ids.split_first().expect("a claimed key has rows");
                    transaction
                        .execute(
                            "UPDATE semsearch.sync_queue SET attempts = $2, last_error = $3, \
                             not_before = now() + make_interval(secs => $4) WHERE id = $1",
                            &[keep, &attempts, error, &pause.as_secs_f64()],
                        )
                        .await?;
                    done_ids.extend_from_slice(rest);
                }
                Some(Outcome::Failed(error)) => {
                    tracing::error!(collection = %self.collection, key, %error, "a key failed every attempt; parked in semsearch.sync_failed");
                    transaction
                        .execute(
                            "INSERT INTO semsearch.sync_failed (consumer, key, attempts, error) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (consumer, key) DO UPDATE SET attempts = EXCLUDED.attempts, \
                             error = EXCLUDED.error, failed_at = now()",
                            &[consumer, key, &(rows.attempts + 1), error],
                        )
                        .await?;
                    self.state().parked += 1;
                    done_ids.extend_from_slice(&rows.ids);
                }
                _ => {
                    done_ids.extend_from_slice(&rows.ids);
                    done_keys.push(key.clone());
                }
            }
        }
        transaction.execute("DELETE FROM semsearch.sync_queue WHERE id = ANY($1)", &[&done_ids]).await?;
        transaction
            .execute("DELETE FROM semsearch.sync_failed WHERE consumer = $1 AND key = ANY($2)", &[consumer, &done_keys])
            .await?;
        Ok(())
    }

    /// After a TRUNCATE: the documents whose rows are gone go too (rows inserted since have
    /// queued their own keys).
    async fn after_truncate(&self, transaction: &Transaction<'_>) -> Result<(), SyncError> {
        let extra = super::verify::extra_documents(self, transaction).await?;
        let gateway = self.gateway()?;
        let writer = self.writer(&gateway);
        for id in &extra {
            writer.delete_from_source(&self.collection, id).await.map_err(|e| SyncError::Write(e.to_string()))?;
        }
        tracing::info!(collection = %self.collection, removed = extra.len(), "the table was truncated");
        self.state().deleted += extra.len() as u64;
        Ok(())
    }
}
