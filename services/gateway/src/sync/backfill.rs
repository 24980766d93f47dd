//! Catching up: when a consumer is new (or a resync is asked for), every searchable key of the
//! table is queued, a page per transaction, in key order from where the last page ended (so a
//! restart resumes), through the same queue as the trigger's changes: the trigger exists before
//! the first page, so a row written meanwhile is queued by it as well, and nothing is missed.
//! Then the collection's documents that have no searchable row (from before the table was
//! followed) are queued, which deletes them. A page holds the consumer's row lock, so two
//! gateways sharing a consumer take pages in turn.

use tokio_postgres::Client;

use super::status::{Backfill, rfc3339};
use super::{Follower, SyncError};

/// Keys queued per transaction.
const PAGE: i64 = 1000;

/// The backfill's progress as the consumer's row holds it.
pub(super) async fn read(client: &Client, consumer: &str) -> Result<Backfill, SyncError> {
    let row = client
        .query_one(
            "SELECT backfill_started_at, backfill_finished_at, backfill_total, backfill_queued \
             FROM semsearch.sync_consumers WHERE consumer = $1",
            &[&consumer],
        )
        .await?;
    let (started, finished): (Option<std::time::SystemTime>, Option<std::time::SystemTime>) = (row.get(0), row.get(1));
    let state = match (started, finished) {
        (None, _) => "not_started",
        (Some(_), None) => "running",
        (Some(_), Some(_)) => "done",
    };
    Ok(Backfill {
        state,
        total: row.get(2),
        queued: row.get(3),
        started_at: started.map(rfc3339),
        finished_at: finished.map(rfc3339),
    })
}

/// Queues the next page if a backfill is due; `true` if it queued anything.
pub(super) async fn step(follower: &Follower, client: &mut Client, key_type: &str) -> Result<bool, SyncError> {
    let consumer = &follower.consumer;
    let source = &follower.source;
    let transaction = client.transaction().await?;
    let row = transaction
        .query_one(
            "SELECT backfill_started_at IS NULL, backfill_finished_at IS NOT NULL, backfill_after \
             FROM semsearch.sync_consumers WHERE consumer = $1 FOR UPDATE",
            &[consumer],
        )
        .await?;
    let (fresh, finished, after): (bool, bool, Option<String>) = (row.get(0), row.get(1), row.get(2));
    if finished {
        transaction.commit().await?;
        return Ok(false);
    }
    if fresh {
        let total: i64 = transaction
            .query_one(&format!("SELECT count(*) FROM {} WHERE {}", source.table_sql(), source.searchable_sql()), &[])
            .await?
            .get(0);
        transaction
            .execute(
                "UPDATE semsearch.sync_consumers SET backfill_started_at = now(), backfill_total = $2, \
                 backfill_queued = 0, backfill_after = NULL WHERE consumer = $1",
                &[consumer, &total],
            )
            .await?;
        tracing::info!(collection = %follower.collection, table = %source.table, rows = total, "backfill started");
        follower.state().backfill = Backfill { state: "running", total: Some(total), ..Backfill::default() };
    }
    let key = crate::collections::source::quote(&source.key);
    let page = transaction
        .query_one(
            &format!(
                "WITH page AS (SELECT {key} AS key FROM {table} WHERE {searchable} \
                 AND ($2::text IS NULL OR {key} > $2::text::{key_type}) ORDER BY {key} LIMIT {PAGE}), \
                 queued AS (INSERT INTO semsearch.sync_queue (consumer, key) SELECT $1, key::text FROM page) \
                 SELECT count(*), (SELECT key::text FROM page ORDER BY key DESC LIMIT 1) FROM page",
                table = source.table_sql(),
                searchable = source.searchable_sql(),
            ),
            &[consumer, &after],
        )
        .await?;
    let (queued, last): (i64, Option<String>) = (page.get(0), page.get(1));
    if queued > 0 {
        transaction
            .execute(
                "UPDATE semsearch.sync_consumers SET backfill_after = $2, backfill_queued = backfill_queued + $3 \
                 WHERE consumer = $1",
                &[consumer, &last, &queued],
            )
            .await?;
        transaction.commit().await?;
        let mut state = follower.state();
        state.backfill.queued += queued;
        state.backfill.state = "running";
        return Ok(true);
    }
    // Every row is queued; then the documents without one.
    let extra = super::verify::extra_documents(follower, &transaction).await?;
    super::verify::enqueue(&transaction, consumer, &extra).await?;
    transaction
        .execute("UPDATE semsearch.sync_consumers SET backfill_finished_at = now() WHERE consumer = $1", &[consumer])
        .await?;
    transaction.commit().await?;
    tracing::info!(collection = %follower.collection, extra = extra.len(), "backfill queued every key");
    follower.state().backfill = read(client, consumer).await?;
    Ok(!extra.is_empty())
}

/// Asks for a backfill: the next pass of the lead worker starts one (a resync).
pub async fn request(client: &Client, consumer: &str) -> Result<(), SyncError> {
    client
        .execute(
            "UPDATE semsearch.sync_consumers SET backfill_started_at = NULL, backfill_finished_at = NULL, \
             backfill_after = NULL, backfill_queued = 0, backfill_total = NULL WHERE consumer = $1",
            &[&consumer],
        )
        .await?;
    Ok(())
}
