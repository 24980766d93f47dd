//! A search as qdrant-edge's Query API runs it: one nearest-neighbour search for dense or sparse
//! retrieval, and for hybrid a prefetch per vector (each `limit` deep, the filter applied to
//! both) fused by RRF or DBSF. The dense search takes the query's `hnsw_ef` and `exact`, and
//! rescores int8-quantized candidates from the original vectors.
//!
//! Reading a payload costs about 5 µs a point (qdrant-edge parses each stored payload whole), as
//! much as the search itself for 50 candidates of a small collection. A hybrid search gets the
//! whole union of its prefetches (up to twice `limit`) for the store to cut, so it reads the
//! payloads only of the points that can survive the cut.

use ordered_float::OrderedFloat;
use std::collections::HashMap;

use qdrant_edge::{
    EdgeShard, Filter, Fusion, NamedQuery, OperationResult, Prefetch, QuantizationSearchParams, QueryEnum,
    QueryRequest, ScoredPoint, ScoringQuery, SearchParams, SparseVector, VectorInternal, WithPayloadInterface,
    WithVector,
};

use crate::retrieval::{FusionMethod, Retrieval, SPARSE_VECTOR, StoreQuery};

/// Runs `query` as `retrieval` (which the collection can run): the points with their payloads,
/// for hybrid only those that can be among the best `limit` once ties are broken.
pub(super) fn run(
    shard: &EdgeShard,
    query: StoreQuery,
    retrieval: Retrieval,
    filter: Option<Filter>,
) -> OperationResult<Vec<ScoredPoint>> {
    let limit = query.limit;
    let points = shard.query(request(query, retrieval, filter))?;
    if retrieval != Retrieval::Hybrid {
        return Ok(points);
    }
    let points = cut_keeping_ties(points, limit);
    let ids: Vec<_> = points.iter().map(|p| p.id).collect();
    let records = shard.retrieve(&ids, Some(WithPayloadInterface::Bool(true)), Some(WithVector::Bool(false)))?;
    let mut payloads: HashMap<_, _> = records.into_iter().map(|r| (r.id, r.payload)).collect();
    // A point deleted since the search is left out, as qdrant-edge's own payload fill does.
    Ok(points.into_iter().filter_map(|p| Some(ScoredPoint { payload: payloads.remove(&p.id)?, ..p })).collect())
}

/// The best `limit` points by score, and those tying with the last of them (which of the tied
/// ones make the cut is decided by their document ids, in the payloads).
fn cut_keeping_ties(mut points: Vec<ScoredPoint>, limit: usize) -> Vec<ScoredPoint> {
    points.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let Some(last) = limit.checked_sub(1).and_then(|i| points.get(i)).map(|p| p.score) {
        let keep = points.iter().position(|p| p.score.total_cmp(&last).is_lt()).unwrap_or(points.len());
        points.truncate(keep);
    } else if limit == 0 {
        points.clear();
    }
    points
}

/// The request for `query`, run as `retrieval` (which the collection can run).
fn request(query: StoreQuery, retrieval: Retrieval, filter: Option<Filter>) -> QueryRequest {
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
        // Hybrid reads the payloads after the cut (`run`).
        with_payload: WithPayloadInterface::Bool(retrieval != Retrieval::Hybrid),
    }
}

#[cfg(test)]
mod tests {
    use qdrant_edge::PointId;

    use super::*;

    fn scored(id: u64, score: f32) -> ScoredPoint {
        ScoredPoint {
            id: PointId::NumId(id),
            version: 0,
            score,
            payload: None,
            vector: None,
            shard_key: None,
            order_value: None,
        }
    }

    fn ids(points: &[ScoredPoint]) -> Vec<PointId> {
        points.iter().map(|p| p.id).collect()
    }

    #[test]
    fn the_cut_keeps_the_best_and_whatever_ties_with_the_last_of_them() {
        let points = || vec![scored(1, 0.5), scored(2, 0.9), scored(3, 0.7), scored(4, 0.7), scored(5, 0.1)];
        let n = |ids: &[u64]| ids.iter().map(|&i| PointId::NumId(i)).collect::<Vec<_>>();
        assert_eq!(ids(&cut_keeping_ties(points(), 1)), n(&[2]));
        assert_eq!(ids(&cut_keeping_ties(points(), 2)), n(&[2, 3, 4]), "3 and 4 tie for second place");
        assert_eq!(ids(&cut_keeping_ties(points(), 3)), n(&[2, 3, 4]));
        assert_eq!(ids(&cut_keeping_ties(points(), 4)), n(&[2, 3, 4, 1]));
        assert_eq!(cut_keeping_ties(points(), 9).len(), 5);
        assert!(cut_keeping_ties(points(), 0).is_empty());
    }
}
