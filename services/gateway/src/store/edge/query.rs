//! A search as qdrant-edge's Query API runs it: one nearest-neighbour search for dense or sparse
//! retrieval, and for hybrid a prefetch per vector (each `limit` deep, the filter applied to
//! both) fused by RRF or DBSF.

use ordered_float::OrderedFloat;
use qdrant_edge::{
    Filter, Fusion, NamedQuery, Prefetch, QueryEnum, QueryRequest, ScoringQuery, SparseVector, VectorInternal,
    WithPayloadInterface, WithVector,
};

use crate::retrieval::{FusionMethod, Retrieval, SPARSE_VECTOR, StoreQuery};

/// The request for `query`, run as `retrieval` (which the collection can run).
pub(super) fn request(query: StoreQuery, retrieval: Retrieval, filter: Option<Filter>) -> QueryRequest {
    let engine_limit = query.engine_limit(retrieval);
    let StoreQuery { dense, sparse, fusion, limit } = query;
    let dense = dense.map(|v| ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::default_dense(v))));
    let sparse = sparse.map(|v| {
        let vector = VectorInternal::Sparse(SparseVector { indices: v.indices, values: v.values });
        ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(vector, SPARSE_VECTOR)))
    });
    let (prefetches, scoring) = match retrieval {
        Retrieval::Dense => (Vec::new(), dense),
        Retrieval::Sparse => (Vec::new(), sparse),
        Retrieval::Hybrid => {
            let prefetch = |query| Prefetch {
                prefetches: Vec::new(),
                query,
                limit,
                params: None,
                filter: None,
                score_threshold: None,
            };
            let fusion = match fusion.method {
                FusionMethod::Rrf => Fusion::Rrf {
                    k: fusion.k as usize,
                    weights: Some(vec![OrderedFloat(1.0), OrderedFloat(fusion.sparse_weight)]),
                },
                FusionMethod::Dbsf => Fusion::Dbsf,
            };
            (vec![prefetch(dense), prefetch(sparse)], Some(ScoringQuery::Fusion(fusion)))
        }
    };
    QueryRequest {
        prefetches,
        query: scoring,
        filter,
        score_threshold: None,
        limit: engine_limit,
        offset: 0,
        params: None,
        with_vector: WithVector::Bool(false),
        with_payload: WithPayloadInterface::Bool(true),
    }
}
