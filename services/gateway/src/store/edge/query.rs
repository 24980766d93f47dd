//! A search as qdrant-edge's Query API runs it: one nearest-neighbour search for dense or sparse
//! retrieval, and for hybrid a prefetch per vector (each `limit` deep, the filter applied to
//! both) fused by RRF or DBSF. The dense search takes the query's `hnsw_ef` and `exact`, and
//! rescores int8-quantized candidates from the original vectors.

use ordered_float::OrderedFloat;
use qdrant_edge::{
    Filter, Fusion, NamedQuery, Prefetch, QuantizationSearchParams, QueryEnum, QueryRequest, ScoringQuery,
    SearchParams, SparseVector, VectorInternal, WithPayloadInterface, WithVector,
};

use crate::retrieval::{FusionMethod, Retrieval, SPARSE_VECTOR, StoreQuery};

/// The request for `query`, run as `retrieval` (which the collection can run).
pub(super) fn request(query: StoreQuery, retrieval: Retrieval, filter: Option<Filter>) -> QueryRequest {
    let engine_limit = query.engine_limit(retrieval);
    let StoreQuery { dense, sparse, fusion, limit, params } = query;
    let params = Some(SearchParams {
        hnsw_ef: params.hnsw_ef,
        exact: params.exact,
        quantization: Some(QuantizationSearchParams { ignore: false, rescore: Some(true), oversampling: None }),
        ..SearchParams::default()
    });
    let dense = dense.map(|v| ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::default_dense(v))));
    let sparse = sparse.map(|v| {
        let vector = VectorInternal::Sparse(SparseVector { indices: v.indices, values: v.values });
        ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(vector, SPARSE_VECTOR)))
    });
    let (prefetches, scoring, params) = match retrieval {
        Retrieval::Dense => (Vec::new(), dense, params),
        Retrieval::Sparse => (Vec::new(), sparse, None),
        Retrieval::Hybrid => {
            let prefetch = |query, params| Prefetch {
                prefetches: Vec::new(),
                query,
                limit,
                params,
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
            (vec![prefetch(dense, params), prefetch(sparse, None)], Some(ScoringQuery::Fusion(fusion)), None)
        }
    };
    QueryRequest {
        prefetches,
        query: scoring,
        filter,
        score_threshold: None,
        limit: engine_limit,
        offset: 0,
        params,
        with_vector: WithVector::Bool(false),
        with_payload: WithPayloadInterface::Bool(true),
    }
}
