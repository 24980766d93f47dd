//! Every request the gateway sends to a Qdrant server, each built by a pure function: the store
//! only sends them, and the tests beside them (`requests_tests.rs`) compare each with the
//! protobuf message it must be, so this path is checked where no server can run.

use std::collections::HashMap;

use qdrant_client::Payload;
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::{
    CreateAlias, CreateAliasBuilder, CreateCollection, CreateCollectionBuilder, DeletePoints, DeletePointsBuilder,
    Distance, Filter, Fusion as GrpcFusion, GetPoints, GetPointsBuilder, HnswConfigDiffBuilder, Modifier,
    OptimizersConfigDiffBuilder, PointId, PointStruct, PointsIdsList, PrefetchQueryBuilder,
    QuantizationSearchParamsBuilder, QuantizationType, Query, QueryPoints, QueryPointsBuilder, Rrf,
    ScalarQuantizationBuilder, ScrollPoints, ScrollPointsBuilder, SearchParams, SearchParamsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPoints, UpsertPointsBuilder, Vector, VectorInput,
    VectorParamsBuilder, VectorsConfigBuilder,
};

use super::super::{Point, point_id};
use super::Layout;
use super::convert::{ids, text_point_id};
use crate::retrieval::SearchParams as IndexUse;
use crate::retrieval::{FusionMethod, Retrieval, SPARSE_VECTOR, StoreQuery};
use crate::store::PointKeys;
use crate::store::index::IndexSettings;

/// A cosine collection of `dimension`-float vectors, unnamed or under the collection's vector
/// name, with the BM25 sparse vector (IDF by the server) if `sparse`, spread over the cluster as
/// `layout` says, indexed as `index` says (unset values are the server's defaults).
pub(super) fn create_collection(
    collection: &str,
    dimension: usize,
    vector: Option<&str>,
    sparse: bool,
    layout: Layout,
    index: &IndexSettings,
) -> CreateCollection {
    let mut params = VectorParamsBuilder::new(dimension as u64, Distance::Cosine);
    if let Some(on_disk) = index.vectors_on_disk {
        params = params.on_disk(on_disk);
    }
    if index.int8() {
        params = params.quantization_config(
            ScalarQuantizationBuilder::default().r#type(QuantizationType::Int8.into()).always_ram(true),
        );
    }
    let mut create = match vector {
        Some(name) => CreateCollectionBuilder::new(collection)
            .vectors_config(VectorsConfigBuilder::default().add_named_vector_params(name, params).clone()),
        None => CreateCollectionBuilder::new(collection).vectors_config(params),
    };
    if sparse {
        let mut config = SparseVectorsConfigBuilder::default();
        config.add_named_vector_params(SPARSE_VECTOR, SparseVectorParamsBuilder::default().modifier(Modifier::Idf));
        create = create.sparse_vectors_config(config);
    }
    if let Some(shards) = layout.shards {
        create = create.shard_number(shards);
    }
    if let Some(copies) = layout.replication_factor {
        create = create.replication_factor(copies);
    }
    if let Some(acks) = layout.write_consistency {
        create = create.write_consistency_factor(acks);
    }
    if index.hnsw_m.is_some() || index.hnsw_ef_construct.is_some() {
        let mut hnsw = HnswConfigDiffBuilder::default();
        if let Some(m) = index.hnsw_m {
            hnsw = hnsw.m(m as u64);
        }
        if let Some(ef) = index.hnsw_ef_construct {
            hnsw = hnsw.ef_construct(ef as u64);
        }
        create = create.hnsw_config(hnsw);
    }
    let IndexSettings { indexing_threshold_kb, default_segment_number, max_segment_size_kb, .. } = *index;
    if indexing_threshold_kb.is_some() || default_segment_number.is_some() || max_segment_size_kb.is_some() {
        let mut optimizers = OptimizersConfigDiffBuilder::default();
        if let Some(kb) = indexing_threshold_kb {
            optimizers = optimizers.indexing_threshold(kb as u64);
        }
        if let Some(n) = default_segment_number {
            optimizers = optimizers.default_segment_number(n as u64);
        }
        if let Some(kb) = max_segment_size_kb {
            optimizers = optimizers.max_segment_size(kb as u64);
        }
        create = create.optimizers_config(optimizers);
    }
    create.build()
}

/// A dense search's use of the index; quantized candidates are rescored from the originals.
fn search_params(params: IndexUse) -> SearchParams {
    let mut built = SearchParamsBuilder::default();
    if params.exact {
        built = built.exact(true);
    }
    if let Some(ef) = params.hnsw_ef {
        built = built.hnsw_ef(ef as u64);
    }
    built.quantization(QuantizationSearchParamsBuilder::default().rescore(true)).build()
}

/// The query as `retrieval` runs it, with whole payloads (the text the reranker reads and the
/// app's payload): the nearest points by the dense vector (the collection's named one, if it has
/// one) or by BM25, or for hybrid a prefetch of each, `limit` deep (the filter applies to both),
/// fused by the server.
pub(super) fn query(
    collection: &str,
    query: StoreQuery,
    retrieval: Retrieval,
    using: Option<&str>,
    filter: Option<Filter>,
) -> QueryPoints {
    let limit = query.limit as u64;
    let mut request =
        QueryPointsBuilder::new(collection).limit(query.engine_limit(retrieval) as u64).with_payload(true);
    let params = search_params(query.params);
    let dense = query.dense.map(Query::new_nearest);
    let sparse = query.sparse.map(|v| Query::new_nearest(VectorInput::new_sparse(v.indices, v.values)));
    match (retrieval, dense, sparse) {
        (Retrieval::Sparse, _, Some(sparse)) => request = request.query(sparse).using(SPARSE_VECTOR),
        (Retrieval::Hybrid, Some(dense), Some(sparse)) => {
            let mut dense = PrefetchQueryBuilder::default().query(dense).limit(limit).params(params);
            if let Some(name) = using {
                dense = dense.using(name);
            }
            let sparse = PrefetchQueryBuilder::default().query(sparse).using(SPARSE_VECTOR).limit(limit);
            let fusion = match query.fusion.method {
                FusionMethod::Rrf => {
                    Query::new_rrf(Rrf { k: Some(query.fusion.k), weights: vec![1.0, query.fusion.sparse_weight] })
                }
                FusionMethod::Dbsf => Query::new_fusion(GrpcFusion::Dbsf),
            };
            request = request.prefetch(vec![dense.build(), sparse.build()]).query(fusion);
        }
        (_, dense, _) => {
            if let Some(dense) = dense {
                request = request.query(dense).params(params);
            }
            if let Some(name) = using {
                request = request.using(name);
            }
        }
    }
    if let Some(filter) = filter {
        request = request.filter(filter);
    }
    request.build()
}

/// Writes the points with their stored payloads (and their sparse vectors where the collection
/// has them, `sparse`), answered once applied (`wait`), which is what lets a 2xx mean the write
/// is there.
pub(super) fn upsert(collection: &str, points: &[Point], keys: &PointKeys, sparse: bool) -> UpsertPoints {
    let points: Vec<PointStruct> = points
        .iter()
        .map(|p| {
            let (id, payload) = (point_id(&p.id).to_string(), Payload::from(p.stored_payload(keys)));
            match (&keys.vector, p.sparse.as_ref().filter(|_| sparse)) {
                (name, Some(s)) => {
                    // The unnamed dense vector is the one named "" beside a named one.
                    let dense = (name.clone().unwrap_or_default(), Vector::new_dense(p.vector.clone()));
                    let sparse = (SPARSE_VECTOR.to_string(), Vector::new_sparse(s.indices.clone(), s.values.clone()));
                    PointStruct::new(id, HashMap::from([dense, sparse]), payload)
                }
                (Some(name), None) => PointStruct::new(id, HashMap::from([(name.clone(), p.vector.clone())]), payload),
                (None, None) => PointStruct::new(id, p.vector.clone(), payload),
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

#[cfg(test)]
#[path = "requests_index_tests.rs"]
mod index_tests;
