//! Each request the Qdrant store sends, compared whole with the protobuf message written out by
//! hand from Qdrant's gRPC schema: a field the builders set (or leave out) that the schema does not
//! expect shows up here, without a server.

use std::collections::HashMap;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vectors::VectorsOptions;
use qdrant_client::qdrant::with_payload_selector::SelectorOptions;
use qdrant_client::qdrant::{
    self as grpc, DenseVector, NamedVectors, PointsSelector, Vector, VectorInput, VectorParams, VectorParamsMap,
    Vectors, VectorsConfig, WithPayloadSelector, query, vector, vector_input, vectors_config,
};
use serde_json::json;

use super::*;
use crate::retrieval::{Fusion, FusionMethod, SparseVector};
use crate::store::{HASH_KEY, ID_KEY, SearchFilter, TEXT_KEY, content_hash};

fn uuid(text: &str) -> grpc::PointId {
    grpc::PointId { point_id_options: Some(PointIdOptions::Uuid(text.to_string())) }
}

fn whole_payload() -> Option<WithPayloadSelector> {
    Some(WithPayloadSelector { selector_options: Some(SelectorOptions::Enable(true)) })
}

fn text(value: &str) -> grpc::Value {
    grpc::Value { kind: Some(Kind::StringValue(value.to_string())) }
}

fn dense(data: Vec<f32>) -> Vector {
    Vector { vector: Some(vector::Vector::Dense(DenseVector { data })), ..Default::default() }
}

fn cosine(size: u64) -> VectorParams {
    VectorParams { size, distance: grpc::Distance::Cosine as i32, ..Default::default() }
}

#[test]
fn a_collection_with_one_unnamed_vector_and_the_servers_layout() {
    let expected = CreateCollection {
        collection_name: "profiles".into(),
        vectors_config: Some(VectorsConfig { config: Some(vectors_config::Config::Params(cosine(1024))) }),
        ..Default::default()
    };
    assert_eq!(
        create_collection("profiles", 1024, None, false, Layout::default(), &IndexSettings::default()),
        expected
    );
}

#[test]
fn a_collection_with_a_named_vector_shards_copies_and_write_consistency() {
    let layout = Layout { shards: Some(6), replication_factor: Some(2), write_consistency: Some(1) };
    let named = VectorParamsMap { map: HashMap::from([("fast-multilingual-e5-large".to_string(), cosine(384))]) };
    let expected = CreateCollection {
        collection_name: "people".into(),
        vectors_config: Some(VectorsConfig { config: Some(vectors_config::Config::ParamsMap(named)) }),
        shard_number: Some(6),
        replication_factor: Some(2),
        write_consistency_factor: Some(1),
        ..Default::default()
    };
    assert_eq!(
        create_collection("people", 384, Some("fast-multilingual-e5-large"), false, layout, &IndexSettings::default()),
        expected
    );
}

#[test]
fn each_layout_setting_alone_sets_only_its_own_field() {
    let shards = create_collection(
        "c",
        8,
        None,
        false,
        Layout { shards: Some(3), ..Layout::default() },
        &IndexSettings::default(),
    );
    assert_eq!(
        (shards.shard_number, shards.replication_factor, shards.write_consistency_factor),
        (Some(3), None, None)
    );
    let copies = create_collection(
        "c",
        8,
        None,
        false,
        Layout { replication_factor: Some(3), ..Layout::default() },
        &IndexSettings::default(),
    );
    assert_eq!(
        (copies.shard_number, copies.replication_factor, copies.write_consistency_factor),
        (None, Some(3), None)
    );
}

#[test]
fn a_nearest_search_of_the_unnamed_vector_with_whole_payloads() {
    let expected = QueryPoints {
        collection_name: "profiles".into(),
        query: Some(grpc::Query {
            variant: Some(query::Variant::Nearest(VectorInput {
                variant: Some(vector_input::Variant::Dense(DenseVector { data: vec![0.5, -0.5] })),
            })),
        }),
        limit: Some(50),
        with_payload: whole_payload(),
        params: dense_params(None, None),
        ..Default::default()
    };
    assert_eq!(query("profiles", StoreQuery::dense(vec![0.5, -0.5], 50), Retrieval::Dense, None, None), expected);
}

#[test]
fn a_nearest_search_of_a_named_vector_with_a_filter() {
    let filter = SearchFilter::parse(&json!({"must": [{"key": "city", "match": {"value": "Paris"}}]})).unwrap();
    let grpc_filter = grpc::Filter {
        must: vec![grpc::Condition {
            condition_one_of: Some(grpc::condition::ConditionOneOf::Field(grpc::FieldCondition {
                key: "city".into(),
                r#match: Some(grpc::Match { match_value: Some(grpc::r#match::MatchValue::Keyword("Paris".into())) }),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    let dense = StoreQuery::dense(vec![1.0], 10);
    let request =
        query("people", dense, Retrieval::Dense, Some("fast-multilingual-e5-large"), Some(filter.to_grpc().unwrap()));
    assert_eq!(request.using.as_deref(), Some("fast-multilingual-e5-large"));
    assert_eq!(request.filter, Some(grpc_filter));
    assert_eq!(
        (request.limit, request.offset, request.score_threshold, request.params),
        (Some(10), None, None, dense_params(None, None))
    );
}

#[test]
fn an_upsert_of_a_gateway_document_waits_and_carries_the_reserved_keys() {
    let point = Point {
        id: "p1".into(),
        text: "Rust engineer".into(),
        payload: json!({"city": "Paris"}).as_object().unwrap().clone(),
        vector: vec![0.25, 0.75],
        sparse: Some(SparseVector { indices: vec![7], values: vec![1.5] }),
    };
    let hash = content_hash(&point.text, &point.payload);
    let payload = HashMap::from([
        ("city".to_string(), text("Paris")),
        (ID_KEY.to_string(), text("p1")),
        (TEXT_KEY.to_string(), text("Rust engineer")),
        (HASH_KEY.to_string(), text(&hash)),
    ]);
    let expected = UpsertPoints {
        collection_name: "profiles".into(),
        wait: Some(true),
        points: vec![PointStruct {
            id: Some(uuid(&point_id("p1").to_string())),
            payload,
            vectors: Some(Vectors { vectors_options: Some(VectorsOptions::Vector(dense(vec![0.25, 0.75]))) }),
        }],
        ..Default::default()
    };
    assert_eq!(
        upsert("profiles", &[point], &PointKeys::gateway(), false),
        expected,
        "no sparse vector where the collection has none"
    );
}

#[test]
fn an_upsert_into_a_configured_collection_uses_its_keys_and_named_vector() {
    let keys = PointKeys {
        text: "document".into(),
        id: Some("profile_id".into()),
        hash: false,
        vector: Some("fast-multilingual-e5-large".into()),
    };
    let point =
        Point { id: "42".into(), text: "Chef".into(), payload: Default::default(), vector: vec![1.0], sparse: None };
    let request = upsert("old", &[point], &keys, false);
    let named = NamedVectors { vectors: HashMap::from([("fast-multilingual-e5-large".to_string(), dense(vec![1.0]))]) };
    let expected = PointStruct {
        id: Some(uuid(&point_id("42").to_string())),
        payload: HashMap::from([("document".to_string(), text("Chef")), ("profile_id".to_string(), text("42"))]),
        vectors: Some(Vectors { vectors_options: Some(VectorsOptions::Vectors(named)) }),
    };
    assert_eq!(request.points, vec![expected]);
    assert_eq!(request.wait, Some(true));
}

#[test]
fn a_delete_names_the_derived_point_id_and_waits() {
    let expected = DeletePoints {
        collection_name: "profiles".into(),
        wait: Some(true),
        points: Some(PointsSelector {
            points_selector_one_of: Some(PointsSelectorOneOf::Points(PointsIdsList {
                ids: vec![uuid(&point_id("p1").to_string())],
            })),
        }),
        ..Default::default()
    };
    assert_eq!(delete("profiles", "p1"), expected);
}

#[test]
fn pages_start_at_the_cursor_a_number_or_a_uuid() {
    let first = ScrollPoints {
        collection_name: "c".into(),
        limit: Some(100),
        with_payload: whole_payload(),
        ..Default::default()
    };
    assert_eq!(page("c", None, 100), first);
    assert_eq!(page("c", None, 0).limit, Some(1), "a zero limit would ask for the server's default");
    let numbered = grpc::PointId { point_id_options: Some(PointIdOptions::Num(17)) };
    assert_eq!(page("c", Some("17"), 100), ScrollPoints { offset: Some(numbered), ..first.clone() });
    let id = "5f0e8a4e-2a4b-4b53-9c0e-5ab41f3e2c77";
    assert_eq!(page("c", Some(id), 100), ScrollPoints { offset: Some(uuid(id)), ..first });
}

#[test]
fn a_document_by_its_id_key_is_the_first_match_of_a_keyword_filter() {
    let filter = crate::store::id_filter("profile_id", "42").unwrap().to_grpc().unwrap();
    let expected = ScrollPoints {
        collection_name: "old".into(),
        filter: Some(filter.clone()),
        limit: Some(1),
        with_payload: whole_payload(),
        ..Default::default()
    };
    assert_eq!(first_match("old", filter), expected);
}

#[test]
fn points_by_id_with_payloads() {
    let expected = GetPoints {
        collection_name: "c".into(),
        ids: vec![uuid(&point_id("a").to_string()), uuid(&point_id("b").to_string())],
        with_payload: whole_payload(),
        ..Default::default()
    };
    assert_eq!(get("c", ids(&["a".to_string(), "b".to_string()])), expected);
}

#[test]
fn an_alias_names_its_collection() {
    let expected = CreateAlias { collection_name: "profiles_v2".into(), alias_name: "profiles".into() };
    assert_eq!(set_alias("profiles", "profiles_v2"), expected);
}

fn sparse_input(indices: Vec<u32>, values: Vec<f32>) -> grpc::Query {
    let sparse = grpc::SparseVector { indices, values };
    grpc::Query {
        variant: Some(query::Variant::Nearest(VectorInput { variant: Some(vector_input::Variant::Sparse(sparse)) })),
    }
}

fn hybrid(fusion: Fusion) -> StoreQuery {
    StoreQuery {
        dense: Some(vec![0.5]),
        sparse: Some(SparseVector { indices: vec![3, 9], values: vec![1.0, 1.0] }),
        fusion,
        limit: 40,
        params: IndexUse::default(),
    }
}

/// The search parameters every dense search sends: the index's beam and exactness if asked,
/// and rescoring of quantized candidates from the original vectors.
fn dense_params(hnsw_ef: Option<u64>, exact: Option<bool>) -> Option<grpc::SearchParams> {
    let rescore = grpc::QuantizationSearchParams { rescore: Some(true), ..Default::default() };
    Some(grpc::SearchParams { hnsw_ef, exact, quantization: Some(rescore), ..Default::default() })
}

#[test]
fn a_dense_search_sends_its_beam_and_exactness() {
    let asked =
        StoreQuery { sparse: None, params: IndexUse { hnsw_ef: Some(256), exact: false }, ..hybrid(Fusion::default()) };
    assert_eq!(query("c", asked.clone(), Retrieval::Dense, None, None).params, dense_params(Some(256), None));
    let exact = StoreQuery { params: IndexUse { hnsw_ef: None, exact: true }, ..asked };
    assert_eq!(query("c", exact.clone(), Retrieval::Dense, None, None).params, dense_params(None, Some(true)));
    let hybrid =
        query("c", StoreQuery { sparse: hybrid(Fusion::default()).sparse, ..exact }, Retrieval::Hybrid, None, None);
    assert_eq!(hybrid.params, None, "the fusion itself searches nothing");
    assert_eq!(
        (hybrid.prefetch[0].params.clone(), hybrid.prefetch[1].params.clone()),
        (dense_params(None, Some(true)), None)
    );
}

#[test]
fn a_collection_with_the_bm25_sparse_vector_weighted_by_the_servers_idf() {
    let params = grpc::SparseVectorParams { modifier: Some(grpc::Modifier::Idf as i32), index: None };
    let expected = CreateCollection {
        collection_name: "profiles".into(),
        vectors_config: Some(VectorsConfig { config: Some(vectors_config::Config::Params(cosine(1024))) }),
        sparse_vectors_config: Some(grpc::SparseVectorConfig { map: HashMap::from([("bm25".to_string(), params)]) }),
        ..Default::default()
    };
    assert_eq!(create_collection("profiles", 1024, None, true, Layout::default(), &IndexSettings::default()), expected);
}

#[test]
fn an_upsert_with_sparse_vectors_names_the_dense_one_too() {
    let point = Point {
        id: "p1".into(),
        text: "Rust".into(),
        payload: Default::default(),
        vector: vec![0.25],
        sparse: Some(SparseVector { indices: vec![7, 11], values: vec![1.5, 0.5] }),
    };
    let sparse = Vector {
        vector: Some(vector::Vector::Sparse(grpc::SparseVector { indices: vec![7, 11], values: vec![1.5, 0.5] })),
        ..Default::default()
    };
    let named = |dense_name: &str| NamedVectors {
        vectors: HashMap::from([(dense_name.to_string(), dense(vec![0.25])), ("bm25".to_string(), sparse.clone())]),
    };
    let request = upsert("profiles", std::slice::from_ref(&point), &PointKeys::gateway(), true);
    assert_eq!(request.points[0].vectors, Some(Vectors { vectors_options: Some(VectorsOptions::Vectors(named(""))) }));
    let keys = PointKeys { vector: Some("e5".into()), ..PointKeys::gateway() };
    let request = upsert("profiles", &[point], &keys, true);
    assert_eq!(
        request.points[0].vectors,
        Some(Vectors { vectors_options: Some(VectorsOptions::Vectors(named("e5"))) })
    );
}

#[test]
fn a_sparse_search_uses_the_bm25_vector() {
    let sparse_only = StoreQuery { dense: None, ..hybrid(Fusion::default()) };
    let expected = QueryPoints {
        collection_name: "c".into(),
        query: Some(sparse_input(vec![3, 9], vec![1.0, 1.0])),
        using: Some("bm25".into()),
        limit: Some(40),
        with_payload: whole_payload(),
        ..Default::default()
    };
    assert_eq!(query("c", sparse_only, Retrieval::Sparse, None, None), expected);
}

#[test]
fn a_hybrid_search_prefetches_both_vectors_and_fuses_them_on_the_server() {
    let filter = SearchFilter::parse(&json!({"must": [{"key": "city", "match": {"value": "Paris"}}]})).unwrap();
    let grpc_filter = filter.to_grpc().unwrap();
    let fusion = Fusion { method: FusionMethod::Rrf, k: 30, sparse_weight: 0.25 };
    let request = query("c", hybrid(fusion), Retrieval::Hybrid, Some("e5"), Some(grpc_filter.clone()));
    let dense_query = grpc::Query {
        variant: Some(query::Variant::Nearest(VectorInput {
            variant: Some(vector_input::Variant::Dense(DenseVector { data: vec![0.5] })),
        })),
    };
    let prefetch = |query, using: &str| grpc::PrefetchQuery {
        query: Some(query),
        using: Some(using.into()),
        limit: Some(40),
        params: (using != "bm25").then(|| dense_params(None, None)).flatten(),
        ..Default::default()
    };
    let rrf = grpc::Rrf { k: Some(30), weights: vec![1.0, 0.25] };
    let expected = QueryPoints {
        collection_name: "c".into(),
        prefetch: vec![prefetch(dense_query, "e5"), prefetch(sparse_input(vec![3, 9], vec![1.0, 1.0]), "bm25")],
        query: Some(grpc::Query { variant: Some(query::Variant::Rrf(rrf)) }),
        filter: Some(grpc_filter),
        limit: Some(80), // the whole union of the prefetches: the gateway cuts it, ties broken by id
        with_payload: whole_payload(),
        ..Default::default()
    };
    assert_eq!(request, expected, "the root filter is applied to every prefetch by the server");
    let dbsf = query("c", hybrid(Fusion { method: FusionMethod::Dbsf, ..fusion }), Retrieval::Hybrid, None, None);
    assert_eq!(dbsf.query, Some(grpc::Query { variant: Some(query::Variant::Fusion(grpc::Fusion::Dbsf as i32)) }));
    assert_eq!(dbsf.prefetch[0].using, None, "the unnamed dense vector");
    let dense_only = query("c", hybrid(fusion), Retrieval::Dense, None, None);
    assert_eq!((dense_only.prefetch.len(), dense_only.using), (0, None), "a collection without sparse vectors");
}
