//! Every request the gateway sends to a Qdrant server, each built by a pure function: the store
//! only sends them, and the tests beside them (`requests_tests.rs`) compare each with the
//! protobuf message it must be, so this path is checked where no server can run.

use std::collections::HashMap;

use qdrant_client::Payload;
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::{
    CreateAlias, CreateAliasBuilder, CreateCollection, CreateCollectionBuilder, DeletePoints, DeletePointsBuilder,
    Distance, Filter, GetPoints, GetPointsBuilder, PointId, PointStruct, PointsIdsList, Query, QueryPoints,
    QueryPointsBuilder, ScrollPoints, ScrollPointsBuilder, UpsertPoints, UpsertPointsBuilder, VectorParamsBuilder,
    VectorsConfigBuilder,
};

use super::super::{Point, point_id};
use super::Layout;
use super::convert::{ids, text_point_id};
use crate::store::PointKeys;

/// A cosine collection of `dimension`-float vectors, unnamed or under the collection's vector
/// name, spread over the cluster as `layout` says (unset values are the server's defaults).
pub(super) fn create_collection(
    collection: &str,
    dimension: usize,
    vector: Option<&str>,
    layout: Layout,
) -> CreateCollection {
    let params = VectorParamsBuilder::new(dimension as u64, Distance::Cosine);
    let mut create = match vector {
        Some(name) => CreateCollectionBuilder::new(collection)
            .vectors_config(VectorsConfigBuilder::default().add_named_vector_params(name, params).clone()),
        None => CreateCollectionBuilder::new(collection).vectors_config(params),
    };
    if let Some(shards) = layout.shards {
        create = create.shard_number(shards);
    }
    if let Some(copies) = layout.replication_factor {
        create = create.replication_factor(copies);
    }
    if let Some(acks) = layout.write_consistency {
        create = create.write_consistency_factor(acks);
    }
    create.build()
}

/// The `limit` points nearest `vector` (in the named vector, if the collection has one), with
/// their whole payloads: the text the reranker reads and the app's payload.
pub(super) fn nearest(
    collection: &str,
    vector: Vec<f32>,
    limit: usize,
    using: Option<&str>,
    filter: Option<Filter>,
) -> QueryPoints {
    let mut query =
        QueryPointsBuilder::new(collection).query(Query::new_nearest(vector)).limit(limit as u64).with_payload(true);
    if let Some(name) = using {
        query = query.using(name);
    }
    if let Some(filter) = filter {
        query = query.filter(filter);
    }
    query.build()
}

/// Writes the points with their stored payloads, answered once applied (`wait`), which is what
/// lets a 2xx mean the write is there.
pub(super) fn upsert(collection: &str, points: &[Point], keys: &PointKeys) -> UpsertPoints {
    let points: Vec<PointStruct> = points
        .iter()
        .map(|p| {
            let (id, payload) = (point_id(&p.id).to_string(), Payload::from(p.stored_payload(keys)));
            match &keys.vector {
                Some(name) => PointStruct::new(id, HashMap::from([(name.clone(), p.vector.clone())]), payload),
                None => PointStruct::new(id, p.vector.clone(), payload),
            }
        })
        .collect();
    UpsertPointsBuilder::new(collection, points).wait(true).build()
}

/// Removes the gateway document `document_id` (by its derived point id), once applied.
pub(super) fn delete(collection: &str, document_id: &str) -> DeletePoints {
    let selector = PointsSelectorOneOf::Points(PointsIdsList { ids: ids(&[document_id.to_string()]) });
    DeletePointsBuilder::new(collection).points(selector).wait(true).build()
}

/// One page in point-id order from the cursor `after` (a point id as text), with payloads.
pub(super) fn page(collection: &str, after: Option<&str>, limit: usize) -> ScrollPoints {
    let mut scroll = ScrollPointsBuilder::new(collection).limit(limit.max(1) as u32).with_payload(true);
    if let Some(after) = after {
        scroll = scroll.offset(text_point_id(after));
    }
    scroll.build()
}

/// The first point that `filter` matches (a configured collection's document by its id key).
pub(super) fn first_match(collection: &str, filter: Filter) -> ScrollPoints {
    ScrollPointsBuilder::new(collection).filter(filter).limit(1).with_payload(true).build()
}

/// Points by id, with payloads.
pub(super) fn get(collection: &str, ids: Vec<PointId>) -> GetPoints {
    GetPointsBuilder::new(collection, ids).with_payload(true).build()
}

/// Points `alias` at `collection`; the server replaces an alias of that name in the same step.
pub(super) fn set_alias(alias: &str, collection: &str) -> CreateAlias {
    CreateAliasBuilder::new(collection, alias).build()
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
