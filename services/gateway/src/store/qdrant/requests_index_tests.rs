//! The index settings as a Qdrant server's collection creation parameters, compared whole with
//! the protobuf message (as in `requests_tests.rs`).

use qdrant_client::qdrant::{self as grpc, VectorParams, VectorsConfig, vectors_config};

use super::*;

fn cosine(size: u64) -> VectorParams {
    VectorParams { size, distance: grpc::Distance::Cosine as i32, ..Default::default() }
}

#[test]
// `always_ram` and `on_disk` are deprecated since Qdrant 1.19 in favour of `memory`, which older
// servers would ignore; every server still honours the old fields.
#[allow(deprecated)]
fn index_settings_become_the_collections_creation_parameters() {
    let index = IndexSettings {
        hnsw_m: Some(32),
        hnsw_ef_construct: Some(200),
        indexing_threshold_kb: Some(500),
        quantization: Some(crate::store::index::Quantization::Int8),
        vectors_on_disk: Some(true),
        default_segment_number: Some(2),
        max_segment_size_kb: Some(4_000_000),
    };
    let int8 = grpc::ScalarQuantization {
        r#type: grpc::QuantizationType::Int8 as i32,
        always_ram: Some(true),
        ..Default::default()
    };
    let params = VectorParams {
        on_disk: Some(true),
        quantization_config: Some(grpc::QuantizationConfig {
            quantization: Some(grpc::quantization_config::Quantization::Scalar(int8)),
        }),
        ..cosine(1024)
    };
    let expected = CreateCollection {
        collection_name: "profiles".into(),
        vectors_config: Some(VectorsConfig { config: Some(vectors_config::Config::Params(params)) }),
        hnsw_config: Some(grpc::HnswConfigDiff { m: Some(32), ef_construct: Some(200), ..Default::default() }),
        optimizers_config: Some(grpc::OptimizersConfigDiff {
            indexing_threshold: Some(500),
            default_segment_number: Some(2),
            max_segment_size: Some(4_000_000),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(create_collection("profiles", 1024, None, false, Layout::default(), &index), expected);
    let only_m = create_collection(
        "c",
        8,
        None,
        false,
        Layout::default(),
        &IndexSettings { hnsw_m: Some(0), ..Default::default() },
    );
    assert_eq!(only_m.hnsw_config, Some(grpc::HnswConfigDiff { m: Some(0), ..Default::default() }), "0: no HNSW");
    assert_eq!(only_m.optimizers_config, None);
}
