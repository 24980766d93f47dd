//! What upgrades use: a collection read page by page, aliases, and deleting a collection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::http::Json;
use shared::http::openapi::{BadBody, Unauthorized};
use utoipa::{IntoParams, ToSchema};

use super::CollectionPath;
use crate::Gateway;
use crate::error::{ApiError, Upstream};
use crate::store::validate_collection_name;

/// Most documents in one page.
const MAX_PAGE: usize = 1000;

/// Where a page starts and how long it is.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// The `next` of the previous page (a point id: a number or a UUID); absent for the first page.
    #[param(pattern = r"^([0-9]{1,19}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")]
    after: Option<String>,
    /// Documents in the page, 1-1000 [default: 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// One stored document.
#[derive(Serialize, ToSchema)]
pub(super) struct PageDocument {
    id: String,
    /// The text (absent for points without one).
    text: Option<String>,
    payload: Map<String, Value>,
}

/// A page of a collection's documents, in point-id order.
#[derive(Serialize, ToSchema)]
pub(super) struct DocumentPage {
    /// The collection read (an alias's target).
    collection: String,
    documents: Vec<PageDocument>,
    /// Pass as `after` for the next page; `null` after the last.
    next: Option<String>,
}

/// Reads a collection page by page (configured collections with their own text and id keys).
#[utoipa::path(get, path = "/collections/{name}/documents", tag = "collections", params(CollectionPath, PageQuery),
    responses(
        (status = 200, description = "A page of documents", body = DocumentPage),
        (status = 404, description = "No such collection (`unknown_collection`)", body = shared::http::ErrorBody),
        (status = 422, description = "A bad name, cursor or limit (`invalid_request`)", body = shared::http::ErrorBody),
        Upstream, Unauthorized,
    ))]
pub(super) async fn page(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<DocumentPage>, ApiError> {
    validate_collection_name(&name).map_err(ApiError::Invalid)?;
    let Query(query) = query.map_err(|e| ApiError::Invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!("`limit` must be 1-{MAX_PAGE}, not {limit}")));
    }
    let collection = gateway.collections.resolve(&name).await;
    let page = gateway.store.scroll(&collection, query.after.as_deref(), limit).await?;
    let documents =
        page.documents.into_iter().map(|f| PageDocument { id: f.id, text: f.text, payload: f.payload }).collect();
    Ok(axum::Json(DocumentPage { collection, documents, next: page.next }))
}

/// Every alias and the collection it names.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"aliases": {"profiles": "profiles_v2"}}))]
pub(super) struct AliasList {
    aliases: HashMap<String, String>,
}

/// The aliases.
#[utoipa::path(get, path = "/aliases", tag = "collections",
    responses((status = 200, description = "Every alias", body = AliasList), Upstream, Unauthorized))]
pub(super) async fn aliases(State(gateway): State<Arc<Gateway>>) -> Result<axum::Json<AliasList>, ApiError> {
    Ok(axum::Json(AliasList { aliases: gateway.store.aliases().await? }))
}

/// The collection an alias should name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AliasTarget {
    #[schema(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
    collection: String,
}

/// The path of an alias route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the derive reads it.
pub(super) struct AliasPath {
    /// The alias (the same rules as a collection name).
    #[param(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")]
    alias: String,
}

/// Points an alias at a collection in one step; searches by the alias follow at once.
#[utoipa::path(put, path = "/aliases/{alias}", tag = "collections", params(AliasPath), request_body = AliasTarget,
    responses(
        (status = 200, description = "The alias now names the collection", body = AliasList),
        (status = 404, description = "No such collection (`unknown_collection`)", body = shared::http::ErrorBody),
        (status = 409, description = "A collection has that name (`conflict`)", body = shared::http::ErrorBody),
        BadBody, Upstream, Unauthorized,
    ))]
pub(super) async fn set_alias(
    State(gateway): State<Arc<Gateway>>,
    Path(alias): Path<String>,
    Json(target): Json<AliasTarget>,
) -> Result<axum::Json<AliasList>, ApiError> {
    validate_collection_name(&alias).map_err(ApiError::Invalid)?;
    validate_collection_name(&target.collection).map_err(ApiError::Invalid)?;
    gateway.collections.set_alias(&alias, &target.collection).await?;
    // Results cached under the alias's old target must not be served for the new one.
    gateway.cache.bump(&alias).await;
    tracing::info!(alias, collection = target.collection, "alias set");
    Ok(axum::Json(AliasList { aliases: gateway.store.aliases().await? }))
}

/// A deleted collection.
#[derive(Serialize, ToSchema)]
pub(super) struct CollectionDeleted {
    collection: String,
    deleted: bool,
}

/// Deletes a collection (by its own name, not an alias) and the aliases naming it.
#[utoipa::path(delete, path = "/collections/{name}", tag = "collections", params(CollectionPath),
    responses(
        (status = 200, description = "Deleted", body = CollectionDeleted),
        (status = 404, description = "No such collection (`unknown_collection`)", body = shared::http::ErrorBody),
        (status = 409, description = "The name is an alias (`conflict`)", body = shared::http::ErrorBody),
        (status = 422, description = "Not a valid collection name (`invalid_request`)", body = shared::http::ErrorBody),
        Upstream, Unauthorized,
    ))]
pub(super) async fn delete_collection(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Result<axum::Json<CollectionDeleted>, ApiError> {
    validate_collection_name(&name).map_err(ApiError::Invalid)?;
    if gateway.collections.aliases().await.contains_key(&name) {
        return Err(ApiError::Conflict(format!(
            "{name:?} is an alias; delete the collection it names by its own name"
        )));
    }
    if !gateway.collections.delete(&name).await? {
        return Err(ApiError::UnknownCollection(name));
    }
    gateway.cache.bump(&name).await;
    Ok(axum::Json(CollectionDeleted { collection: name, deleted: true }))
}
