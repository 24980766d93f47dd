//! Between qdrant-client's types and the store's: errors, point ids, payloads.

use std::collections::HashMap;

use qdrant_client::qdrant::PointId;
use qdrant_client::{Payload, QdrantError};
use serde_json::{Map, Value};

use super::super::{StoreError, point_id};

pub(super) fn refused_key(e: &QdrantError) -> bool {
    matches!(e, QdrantError::ResponseError { status }
        if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied))
}

pub(super) fn store_error(e: QdrantError) -> StoreError {
    if refused_key(&e) {
        return StoreError::Unavailable("the Qdrant server refused the API key (QDRANT_API_KEY)".into());
    }
    match &e {
        QdrantError::ResponseError { status } => match status.code() {
            tonic::Code::NotFound => StoreError::NotFound(status.message().to_string()),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
                StoreError::Unavailable(status.message().to_string())
            }
            // qdrant-client reports a refused connection as an internal error.
            tonic::Code::Internal if status.message().contains("Failed to connect") => {
                StoreError::Unavailable(status.message().to_string())
            }
            tonic::Code::InvalidArgument => StoreError::BadFilter(status.message().to_string()),
            _ => StoreError::Failed(e.to_string()),
        },
        QdrantError::ResourceExhaustedError { .. } => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Failed(e.to_string()),
    }
}

/// Not-found errors name the collection the caller asked for.
pub(super) fn in_collection(collection: &str) -> impl Fn(QdrantError) -> StoreError + '_ {
    move |e| match store_error(e) {
        StoreError::NotFound(_) => StoreError::NotFound(collection.to_string()),
        other => other,
    }
}

pub(super) fn to_json(payload: HashMap<String, qdrant_client::qdrant::Value>) -> Map<String, Value> {
    Map::from(Payload::from(payload))
}

pub(super) fn point_id_text(id: Option<PointId>) -> String {
    use qdrant_client::qdrant::point_id::PointIdOptions;
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(n)) => n.to_string(),
        Some(PointIdOptions::Uuid(u)) => u,
        None => String::new(),
    }
}

/// A point id given as text: a number, or else a UUID (as the server prints them).
pub(super) fn text_point_id(text: &str) -> PointId {
    match text.parse::<u64>() {
        Ok(n) => PointId::from(n),
        Err(_) => PointId::from(text.to_string()),
    }
}

pub(super) fn ids(document_ids: &[String]) -> Vec<PointId> {
    document_ids.iter().map(|id| PointId::from(point_id(id).to_string())).collect()
}
