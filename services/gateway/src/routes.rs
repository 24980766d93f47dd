//! The HTTP API: `/search` and the collection routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use shared::http::Json;

use crate::Gateway;
use crate::documents::UpsertRequest;
use crate::error::ApiError;
use crate::search::{SearchRequest, SearchResponse};

pub fn api(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/search", post(search))
        .route("/collections/{name}", get(collection))
        .route("/collections/{name}/documents", put(upsert))
        .route("/collections/{name}/documents/{id}", get(document).delete(remove))
        .with_state(gateway)
}

async fn search(
    State(gateway): State<Arc<Gateway>>,
    Json(request): Json<SearchRequest>,
) -> Result<axum::Json<SearchResponse>, ApiError> {
    crate::search::search(&gateway, request).await.map(axum::Json)
}

async fn collection(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    crate::store::validate_collection_name(&name).map_err(ApiError::Invalid)?;
    let info = gateway.store.info(&name).await?;
    Ok(axum::Json(serde_json::to_value(info).map_err(|_| ApiError::Internal)?))
}

async fn upsert(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Json(request): Json<UpsertRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    let (count, max) = (request.documents.len(), gateway.limits.max_upsert_documents);
    if count == 0 {
        return Err(ApiError::Invalid("`documents` must hold at least one document".into()));
    }
    if count > max {
        return Err(ApiError::TooMany(format!(
            "{count} documents in one request; the limit is {max} (--max-upsert-documents)"
        )));
    }
    let done = gateway.writer().upsert(&name, request.documents).await?;
    Ok(axum::Json(json!({"collection": name, "upserted": done.upserted, "unchanged": done.unchanged})))
}

async fn remove(
    State(gateway): State<Arc<Gateway>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    gateway.writer().delete(&name, &id).await?;
    Ok(axum::Json(json!({"collection": name, "id": id, "deleted": true})))
}

async fn document(
    State(gateway): State<Arc<Gateway>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    crate::store::validate_collection_name(&name).map_err(ApiError::Invalid)?;
    match gateway.store.document(&name, &id).await? {
        Some(found) => {
            Ok(axum::Json(json!({"collection": name, "id": found.id, "text": found.text, "payload": found.payload})))
        }
        None => Err(ApiError::UnknownDocument { collection: name, id }),
    }
}
