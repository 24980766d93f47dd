//! A search request checked against the gateway's limits: every refusal names the field.

use super::api::{DEFAULT_CANDIDATES, DEFAULT_RETRIEVAL};
use super::{Search, SearchRequest};
use crate::Gateway;
use crate::error::ApiError;
use crate::retrieval::{HNSW_EF_RANGE, SearchParams};
use crate::store::{SearchFilter, validate_collection_name};

/// The most dimensions a caller's `vector` may have (Qdrant's limit).
const MAX_VECTOR_DIMENSIONS: usize = 65_536;

/// Trims and collapses runs of whitespace: queries that differ only there are the same search.
pub fn normalize_query(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn validate(gateway: &Gateway, request: SearchRequest) -> Result<Search, ApiError> {
    let limits = &gateway.limits;
    let query = normalize_query(&request.query);
    if query.is_empty() {
        return Err(ApiError::EmptyQuery);
    }
    if query.len() > limits.max_query_bytes {
        return Err(ApiError::Invalid(format!(
            "`query` is {} bytes; the limit is {} (--max-query-bytes)",
            query.len(),
            limits.max_query_bytes
        )));
    }
    let collection = request.collection.unwrap_or_else(|| limits.default_collection.clone());
    validate_collection_name(&collection).map_err(ApiError::Invalid)?;
    let candidates = request.candidates.unwrap_or(DEFAULT_CANDIDATES.min(limits.max_candidates));
    if request.top_k == 0 {
        return Err(ApiError::Invalid("`top_k` must be at least 1".into()));
    }
    if candidates > limits.max_candidates {
        return Err(ApiError::Invalid(format!(
            "`candidates` is {candidates}; the limit is {} (--max-candidates)",
            limits.max_candidates
        )));
    }
    if request.top_k > candidates {
        return Err(ApiError::Invalid(format!(
            "`top_k` ({}) must not exceed `candidates` ({candidates})",
            request.top_k
        )));
    }
    let filter = request.filter.as_ref().map(SearchFilter::parse).transpose().map_err(ApiError::BadFilter)?;
    let fusion = request.fusion.unwrap_or_default();
    fusion.validate().map_err(ApiError::Invalid)?;
    if let Some(ef) = request.hnsw_ef
        && !HNSW_EF_RANGE.contains(&ef)
    {
        return Err(ApiError::Invalid(format!("`hnsw_ef` is {ef}; it must be 1-10000")));
    }
    let retrieval = request.retrieval.unwrap_or(DEFAULT_RETRIEVAL);
    if let Some(vector) = &request.vector {
        validate_vector(vector)?;
    }
    Ok(Search {
        query,
        vector: request.vector,
        collection,
        top_k: request.top_k,
        candidates,
        filter,
        rerank: request.rerank,
        retrieval,
        fusion,
        params: SearchParams { hnsw_ef: request.hnsw_ef, exact: request.exact },
        mode: request.cache,
    })
}

/// A caller's query vector: 1-65536 finite numbers (JSON numbers beyond f32 read as infinite).
/// Its length against the collection's dimension is the store's to check.
fn validate_vector(vector: &[f32]) -> Result<(), ApiError> {
    if vector.is_empty() || vector.len() > MAX_VECTOR_DIMENSIONS {
        return Err(ApiError::Invalid(format!(
            "`vector` has {} numbers; it must have 1-{MAX_VECTOR_DIMENSIONS}",
            vector.len()
        )));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(ApiError::Invalid(format!("`vector`[{i}] is not a finite 32-bit float")));
    }
    if vector.iter().all(|&x| x == 0.0) {
        return Err(ApiError::Invalid("`vector` is all zeros: it has no direction to search by cosine".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_normalized_by_whitespace_only() {
        assert_eq!(normalize_query("  Rust \t engineer\nParis "), "Rust engineer Paris");
        assert_eq!(normalize_query("Ünïcode  ok"), "Ünïcode ok");
        assert_eq!(normalize_query(" \n "), "");
    }

    #[test]
    fn a_vector_must_be_finite_non_zero_and_not_too_long() {
        assert!(validate_vector(&[0.5, -1.0]).is_ok());
        for (vector, named) in [
            (vec![], "1-65536"),
            (vec![1.0; MAX_VECTOR_DIMENSIONS + 1], "65537 numbers"),
            (vec![1.0, f32::INFINITY], "`vector`[1]"),
            (vec![f32::NAN], "`vector`[0]"),
            (vec![0.0, -0.0], "all zeros"),
        ] {
            let ApiError::Invalid(why) = validate_vector(&vector).unwrap_err() else { panic!("not Invalid") };
            assert!(why.contains(named) && why.contains("`vector`"), "{why}");
        }
    }
}
