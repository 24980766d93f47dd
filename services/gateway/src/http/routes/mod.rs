//! The HTTP API: `/search`, the collection routes, and Cohere's rerank routes (`rerank`), each
//! documented for `/openapi.json`.

mod lifecycle;
mod rerank;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use serde::Serialize;
use serde_json::{Map, Value};
use shared::http::Json;
use shared::http::openapi::{BadBody, Unauthorized};
use utoipa::ToSchema;

use crate::Gateway;
use crate::collections::documents::UpsertRequest;
use crate::error::{ApiError, Upstream};
use crate::search::{SearchRequest, SearchResponse};
use crate::store::CollectionInfo;

pub fn api(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/search", post(search))
        .route("/collections", get(collections))
        .route("/collections/{name}", get(collection).delete(lifecycle::delete_collection))
        .route("/collections/{name}/documents", put(upsert).get(lifecycle::page))
        .route("/aliases", get(lifecycle::aliases))
        .route("/aliases/{alias}", put(lifecycle::set_alias))
        .route("/collections/{name}/documents/{id}", get(document).delete(remove))
        .route("/collections/{name}/sync", get(sync::status))
        .route("/collections/{name}/sync/verify", post(sync::verify))
        .route("/collections/{name}/sync/resync", post(sync::resync))
        .route("/v1/rerank", post(rerank::rerank_v1))
        .route("/v2/rerank", post(rerank::rerank_v2))
        .with_state(gateway)
}

/// The path of a collection route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the derive reads it.
pub(crate) struct CollectionPath {
    /// The collection: 1-64 of A-Z, a-z, 0-9, `_`, `-`, not starting with `-`.
    #[param(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
    name: String,
}

/// The path of a document route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the derive reads it.
struct DocumentPath {
    /// The collection: 1-64 of A-Z, a-z, 0-9, `_`, `-`, not starting with `-`.
    #[param(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
    name: String,
    /// The document's id.
    id: String,
}

/// Every collection of the store.
#[derive(Serialize, ToSchema)]
pub struct CollectionList {
    /// Sorted by name.
    collections: Vec<CollectionInfo>,
}

/// What an upsert did.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"collection": "profiles", "upserted": 2, "unchanged": 1}))]
pub struct UpsertResponse {
    collection: String,
    /// Documents embedded and written.
    upserted: usize,
    /// Documents already stored with the same text and payload, left as they were.
    unchanged: usize,
}

/// A deleted document (deleting a missing one succeeds too).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"collection": "profiles", "id": "p-42", "deleted": true}))]
pub struct DeleteResponse {
    collection: String,
    id: String,
    deleted: bool,
}

/// A stored document as it was upserted.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"collection": "profiles", "id": "p-42", "text": "Rust engineer, Berlin", "payload": {"city": "Berlin"}}))]
pub struct DocumentResponse {
    collection: String,
    id: String,
    /// The text that was embedded (absent for points the gateway did not write).
    text: Option<String>,
    payload: Map<String, Value>,
}

/// Semantic search: cache -> embed the query -> vector top-`candidates` -> rerank -> top-`top_k`.
#[utoipa::path(post, path = "/search", tag = "search", request_body = SearchRequest,
    responses(
        (status = 200, description = "The hits, best first, with how they were found", body = SearchResponse),
        (status = 404, description = "No such collection (`unknown_collection`)", body = shared::http::ErrorBody),
        (status = 409, description = "The collections config does not match the collection (`conflict`)", body = shared::http::ErrorBody),
        BadBody, Upstream, Unauthorized,
    ))]
async fn search(
    State(gateway): State<Arc<Gateway>>,
    Json(request): Json<SearchRequest>,
) -> Result<axum::Json<SearchResponse>, ApiError> {
    crate::search::search(&gateway, request).await.map(axum::Json)
}

/// Every collection with its size and vector configuration.
#[utoipa::path(get, path = "/collections", tag = "collections",
    responses((status = 200, description = "The collections, by name", body = CollectionList), Upstream, Unauthorized))]
async fn collections(State(gateway): State<Arc<Gateway>>) -> Result<axum::Json<CollectionList>, ApiError> {
    let mut collections = Vec::new();
    for name in gateway.store.collections().await? {
        match gateway.store.info(&name).await {
            Ok(info) => collections.push(info),
            // Deleted between the listing and the look: leave it out.
            Err(crate::store::StoreError::NotFound(_)) => {}
            // A configured collection that does not match its config: its own routes say why.
            Err(crate::store::StoreError::Conflict(why)) => tracing::warn!(collection = name, %why, "not listed"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(axum::Json(CollectionList { collections }))
}

/// A collection's size and vector configuration.
#[utoipa::path(get, path = "/collections/{name}", tag = "collections",
    params(CollectionPath),
    responses(
        (status = 200, description = "The collection", body = CollectionInfo),
        (status = 404, description = "No such collection (`unknown_collection`)", body = shared::http::ErrorBody),
        (status = 409, description = "The collections config does not match the collection (`conflict`)", body = shared::http::ErrorBody),
        (status = 422, description = "Not a valid collection name (`invalid_request`)", body = shared::http::ErrorBody),
        Upstream, Unauthorized,
    ))]
async fn collection(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Result<axum::Json<CollectionInfo>, ApiError> {
    crate::store::validate_collection_name(&name).map_err(ApiError::Invalid)?;
    let collection = gateway.collections.resolve(&name).await;
    Ok(axum::Json(gateway.store.info(&collection).await?))
}

/// Embeds (passage prefix) and stores documents; the collection is created on first write.
/// Documents stored with the same text and payload are skipped. A 2xx means durable.
#[utoipa::path(put, path = "/collections/{name}/documents", tag = "collections", request_body = UpsertRequest,
    params(CollectionPath),
    responses(
        (status = 200, description = "Written (or already stored unchanged)", body = UpsertResponse),
        (status = 409, description = "The collection holds vectors of another dimension (`dimension_mismatch`), or is served read-only (`read_only_collection`)", body = shared::http::ErrorBody),
        BadBody, Upstream, Unauthorized,
    ))]
async fn upsert(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Json(request): Json<UpsertRequest>,
) -> Result<axum::Json<UpsertResponse>, ApiError> {
    let (count, max) = (request.documents.len(), gateway.limits.max_upsert_documents);
    if count == 0 {
        return Err(ApiError::Invalid("`documents` must hold at least one document".into()));
    }
    if count > max {
        return Err(ApiError::TooMany(format!(
            "{count} documents in one request; the limit is {max} (--max-upsert-documents)"
        )));
    }
    let done = gateway.writer().upsert(&name, request.documents, request.priority).await?;
    Ok(axum::Json(UpsertResponse { collection: name, upserted: done.upserted, unchanged: done.unchanged }))
}

/// Deletes a document; a 2xx means durable.
#[utoipa::path(delete, path = "/collections/{name}/documents/{id}", tag = "collections",
    params(DocumentPath),
    responses(
        (status = 200, description = "Deleted, or was not there", body = DeleteResponse),
        (status = 404, description = "No such collection (`unknown_collection`)", body = shared::http::ErrorBody),
        (status = 409, description = "The collection is served read-only (`read_only_collection`), or its documents are found by an id key (`conflict`)", body = shared::http::ErrorBody),
        (status = 422, description = "Not a valid collection name (`invalid_request`)", body = shared::http::ErrorBody),
        Upstream, Unauthorized,
    ))]
async fn remove(
    State(gateway): State<Arc<Gateway>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<DeleteResponse>, ApiError> {
    gateway.writer().delete(&name, &id).await?;
    Ok(axum::Json(DeleteResponse { collection: name, id, deleted: true }))
}

/// A stored document's text and payload.
#[utoipa::path(get, path = "/collections/{name}/documents/{id}", tag = "collections",
    params(DocumentPath),
    responses(
        (status = 200, description = "The document", body = DocumentResponse),
        (status = 404, description = "No such collection (`unknown_collection`) or document (`unknown_document`)", body = shared::http::ErrorBody),
        (status = 422, description = "Not a valid collection name (`invalid_request`)", body = shared::http::ErrorBody),
        Upstream, Unauthorized,
    ))]
async fn document(
    State(gateway): State<Arc<Gateway>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<DocumentResponse>, ApiError> {
    crate::store::validate_collection_name(&name).map_err(ApiError::Invalid)?;
    let collection = gateway.collections.resolve(&name).await;
    match gateway.store.document(&collection, &id).await? {
        Some(found) => Ok(axum::Json(DocumentResponse {
            collection: name,
            id: found.id,
            text: found.text,
            payload: found.payload,
        })),
        None => Err(ApiError::UnknownDocument { collection: name, id }),
    }
}

/// The gateway's routes, for its OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    search,
    collections,
    collection,
    upsert,
    remove,
    document,
    lifecycle::page,
    lifecycle::aliases,
    lifecycle::set_alias,
    lifecycle::delete_collection,
    rerank::rerank_v1,
    rerank::rerank_v2,
    sync::status,
    sync::verify,
    sync::resync
))]
struct Api;

/// The OpenAPI 3.1 document served at `/openapi.json` (and checked in as openapi/search-gateway.json).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    shared::http::openapi::document(
        Api::openapi(),
        "search-gateway",
        "Semantic search: cache -> embed the query -> vector top-N -> rerank -> cache, and the collection \
         routes that write and read documents. Errors are `{\"error\": \"...\", \"code\": \"...\"}`; 429 and 503 \
         carry `Retry-After`.",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_is_the_checked_in_one() {
        let spec = super::openapi();
        for path in ["/search", "/collections/{name}", "/collections/{name}/documents/{id}", "/health"] {
            assert!(spec.paths.paths.contains_key(path), "{path} is documented");
        }
        shared::http::openapi::check_checked_in(&spec, "search-gateway.json");
    }
}
