//! Drift: the table's searchable rows (key, and the SHA-256 of the text a worker would write)
//! against the collection's documents (id, and the SHA-256 of the stored text). `missing`: a row
//! without its document; `stale`: a document whose text is not its row's; `extra`: a document
//! without a searchable row. Repair queues them all, and the workers do the rest as for any
//! change. (The payload is not compared: a payload-only change behind sync's back is missed.)

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

use super::{Follower, SyncError};
use crate::store::StoreError;

/// Ids listed per kind of drift, at most.
const LISTED: usize = 100;
/// Documents read from the store per page.
const PAGE: usize = 512;

/// `POST /collections/{name}/sync/verify`.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Queue every drifted key, so that the workers bring it up to date.
    #[serde(default)]
    pub repair: bool,
}

/// One kind of drift: how many, and the first ids (sorted).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Drifted {
    pub count: usize,
    /// At most 100 of them.
    pub ids: Vec<String>,
}

impl Drifted {
    fn of(mut ids: Vec<String>) -> Self {
        ids.sort();
        let count = ids.len();
        ids.truncate(LISTED);
        Self { count, ids }
    }
}

/// What a comparison found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub collection: String,
    pub table: String,
    /// Searchable rows in the table.
    pub rows: usize,
    /// Documents in the collection.
    pub documents: usize,
    pub missing: Drifted,
    pub stale: Drifted,
    pub extra: Drifted,
    /// Keys queued by a repair (0 without one).
    pub queued: usize,
}

fn text_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Every searchable row's key and text hash (a row without text is not searchable).
async fn table_side(follower: &Follower, client: &impl GenericClient) -> Result<HashMap<String, [u8; 32]>, SyncError> {
    let rows = client.query(&follower.source.searchable_rows_sql(), &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let (key, text): (String, String) = (row.get(0), row.get(1));
            (!text.trim().is_empty()).then(|| (key, text_hash(&text)))
        })
        .collect())
}

/// Every document's id and text hash (none if the collection does not exist yet).
async fn collection_side(follower: &Follower) -> Result<HashMap<String, [u8; 32]>, SyncError> {
    let gateway = follower.gateway()?;
    let mut documents = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = match gateway.store.scroll(&follower.collection, after.as_deref(), PAGE).await {
            Ok(page) => page,
            Err(StoreError::NotFound(_)) => return Ok(documents),
            Err(e) => return Err(SyncError::Write(e.to_string())),
        };
        for found in page.documents {
            documents.insert(found.id, text_hash(found.text.as_deref().unwrap_or_default()));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(documents),
        }
    }
}

/// Compares table and collection; with `repair`, queues every drifted key.
pub async fn verify(follower: &Follower, repair: bool) -> Result<VerifyReport, SyncError> {
    let (mut client, _) = follower.connect().await?;
    let table = table_side(follower, &client).await?;
    let collection = collection_side(follower).await?;
    let missing: Vec<String> = table.keys().filter(|k| !collection.contains_key(*k)).cloned().collect();
    let stale: Vec<String> = table
        .iter()
        .filter(|(k, hash)| collection.get(*k).is_some_and(|h| h != *hash))
        .map(|(k, _)| k.clone())
        .collect();
    let extra: Vec<String> = collection.keys().filter(|k| !table.contains_key(*k)).cloned().collect();
    let mut queued = 0;
    if repair {
        let all: Vec<String> = missing.iter().chain(&stale).chain(&extra).cloned().collect();
        let transaction = client.transaction().await?;
        queued = enqueue(&transaction, &follower.consumer, &all).await?;
        transaction.commit().await?;
    }
    Ok(VerifyReport {
        collection: follower.collection.clone(),
        table: follower.source.table.clone(),
        rows: table.len(),
        documents: collection.len(),
        missing: Drifted::of(missing),
        stale: Drifted::of(stale),
        extra: Drifted::of(extra),
        queued,
    })
}

/// The ids of documents without a searchable row in the table.
pub(super) async fn extra_documents(
    follower: &Follower,
    client: &impl GenericClient,
) -> Result<Vec<String>, SyncError> {
    let table = table_side(follower, client).await?;
    let collection = collection_side(follower).await?;
    Ok(collection.into_keys().filter(|k| !table.contains_key(k)).collect())
}

/// Queues `keys` for `consumer`; returns how many.
pub(super) async fn enqueue(client: &impl GenericClient, consumer: &str, keys: &[String]) -> Result<usize, SyncError> {
    let queued = client
        .execute(
            "INSERT INTO semsearch.sync_queue (consumer, key) SELECT $1, k FROM unnest($2::text[]) AS k",
            &[&consumer, &keys],
        )
        .await?;
    Ok(queued as usize)
}
