//! A followed table's sync (`crate::sync`): its status, a comparison of table and collection
//! that can repair the drift, and a resync (every key queued again).

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::Serialize;
use shared::http::Json;
use shared::http::openapi::{BadBody, Unauthorized};
use utoipa::ToSchema;

use super::CollectionPath;
use crate::Gateway;
use crate::error::ApiError;
use crate::sync::verify::{VerifyReport, VerifyRequest};
use crate::sync::{Follower, SyncError, SyncStatus};

async fn follower(gateway: &Gateway, name: &str) -> Result<Arc<Follower>, ApiError> {
    crate::store::validate_collection_name(name).map_err(ApiError::Invalid)?;
    let collection = gateway.collections.resolve(name).await;
    gateway.sync.get(&collection).ok_or_else(|| ApiError::NotSynced(name.to_string()))
}

fn unavailable(error: SyncError) -> ApiError {
    ApiError::Database(error.to_string())
}

/// How the collection's sync stands: keys queued, parked and done, the oldest queued key's age,
/// the last error, the backfill's progress.
#[utoipa::path(get, path = "/collections/{name}/sync", tag = "sync",
    params(CollectionPath),
    responses(
        (status = 200, description = "The sync's status", body = SyncStatus),
        (status = 404, description = "The collection follows no table (`not_synced`)", body = shared::http::ErrorBody),
        (status = 422, description = "Not a valid collection name (`invalid_request`)", body = shared::http::ErrorBody),
        Unauthorized,
    ))]
pub(super) async fn status(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Result<axum::Json<SyncStatus>, ApiError> {
    Ok(axum::Json(follower(&gateway, &name).await?.status()))
}

/// Compares the table's searchable rows (keys and text hashes) with the collection's documents:
/// `missing`, `stale` and `extra` documents, counted, with the first 100 ids of each; with
/// `repair`, queues them all for the workers.
#[utoipa::path(post, path = "/collections/{name}/sync/verify", tag = "sync", request_body = VerifyRequest,
    params(CollectionPath),
    responses(
        (status = 200, description = "What differs (and what was queued)", body = VerifyReport),
        (status = 404, description = "The collection follows no table (`not_synced`)", body = shared::http::ErrorBody),
        (status = 503, description = "The database or the store cannot be read (`database_unavailable`)", body = shared::http::ErrorBody),
        BadBody, Unauthorized,
    ))]
pub(super) async fn verify(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Json(request): Json<VerifyRequest>,
) -> Result<axum::Json<VerifyReport>, ApiError> {
    let follower = follower(&gateway, &name).await?;
    crate::sync::verify::verify(&follower, request.repair).await.map(axum::Json).map_err(unavailable)
}

/// A resync asked for.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"collection": "profiles", "backfill": "requested"}))]
pub(super) struct ResyncResponse {
    collection: String,
    /// `requested`: the lead worker queues every key again, in pages (see the status).
    backfill: &'static str,
}

/// Queues every key of the table again through the backfill (unchanged texts are not embedded
/// again), then the documents without a searchable row.
#[utoipa::path(post, path = "/collections/{name}/sync/resync", tag = "sync",
    params(CollectionPath),
    responses(
        (status = 202, description = "The backfill will run", body = ResyncResponse),
        (status = 404, description = "The collection follows no table (`not_synced`)", body = shared::http::ErrorBody),
        (status = 503, description = "The database cannot be reached (`database_unavailable`)", body = shared::http::ErrorBody),
        Unauthorized,
    ))]
pub(super) async fn resync(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Result<(axum::http::StatusCode, axum::Json<ResyncResponse>), ApiError> {
    let follower = follower(&gateway, &name).await?;
    let (client, _) = follower.connect().await.map_err(unavailable)?;
    crate::sync::backfill_request(&client, &follower.consumer).await.map_err(unavailable)?;
    tracing::info!(collection = %follower.collection, "resync requested");
    let body = ResyncResponse { collection: follower.collection.clone(), backfill: "requested" };
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(body)))
}
