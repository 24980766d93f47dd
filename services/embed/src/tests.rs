//! Router tests: the real app on the tiny fixture model, driven with `oneshot` (no sockets).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use clap::Parser;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::batcher::Readiness;
use tokio::sync::watch;
use tower::ServiceExt;

use super::*;

fn fixture() -> std::path::PathBuf {
    shared::runtime::project_root().join("models/fixtures/tiny-e5")
}

async fn router_with(args: &[&str]) -> (Router, watch::Sender<bool>) {
    let mut argv = vec!["embed-service"];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).unwrap();
    let dir = shared::ModelDir::open(fixture()).unwrap();
    let (draining_tx, draining_rx) = watch::channel(false);
    let service = Service::start(config, &dir, draining_rx).unwrap();
    let mut ready = service.embedder().batcher().readiness();
    ready.wait_for(|r| *r == Readiness::Ready).await.unwrap();
    (app(service), draining_tx)
}

async fn router() -> Router {
    router_with(&["--intra-op-threads", "1"]).await.0
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, value)
}

async fn send_raw(app: &Router, uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> (StatusCode, Value) {
    let mut request = Request::builder().method("POST").uri(uri);
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    let response = app.clone().oneshot(request.body(body.into()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn golden_query_vector() -> Vec<f32> {
    let path = shared::runtime::project_root().join("models/fixtures/goldens/tiny-e5.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = &golden["cases"][0];
    assert_eq!((case["text"].as_str(), case["input_type"].as_str()), (Some("Rust engineer in Berlin"), Some("query")));
    vector(&case["mean_normalized"])
}

fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-5, "max abs difference {worst}");
}

#[tokio::test]
async fn health_ready_and_info() {
    let (app, draining) = router_with(&["--intra-op-threads", "1"]).await;
    assert_eq!(send(&app, "GET", "/health", None).await.2, json!({"status": "ok"}));
    assert_eq!(send(&app, "GET", "/ready", None).await.0, StatusCode::OK);
    let (status, _, info) = send(&app, "GET", "/info", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["dimension"], 32);
    assert_eq!(info["max_length"], 128);
    assert_eq!(info["pooling"], "mean");
    assert_eq!(info["query_prefix"], "query: ");
    assert_eq!(info["limits"]["max_client_batch"], 256);

    // The batch policy the warm-up measured on this machine, its figures, and what it set.
    let batching = &info["batching"];
    let calibration = &batching["calibration"];
    let sizes: Vec<u64> =
        calibration["points"].as_array().unwrap().iter().map(|p| p["batch_size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [1, 2, 4, 8, 16, 32], "{info}");
    assert_eq!(calibration["max_batch_size"], batching["max_batch_size"], "{info}");
    assert_eq!(info["limits"]["max_batch_size"], batching["max_batch_size"], "{info}");
    assert!(calibration["overhead_tokens"].is_u64(), "{info}");
    assert!(batching["reason"].as_str().unwrap().contains("calibrated: 24-token sequences"), "{info}");

    // Flags win: given both, nothing is measured.
    let (fixed, _) =
        router_with(&["--intra-op-threads", "1", "--max-batch-size", "8", "--batch-overhead-tokens", "20"]).await;
    let info = send(&fixed, "GET", "/info", None).await.2;
    assert_eq!(
        (info["batching"]["max_batch_size"].as_u64(), info["batching"]["calibration"].is_null()),
        (Some(8), true),
        "{info}"
    );

    draining.send_replace(true);
    let (status, _, body) = send(&app, "GET", "/ready", None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready")));
}

#[tokio::test]
async fn embed_matches_the_golden_reference_and_defaults_to_query() {
    let app = router().await;
    let (status, _, body) = send(&app, "POST", "/embed", Some(json!({"text": "Rust engineer in Berlin"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_close(&vector(&body["embedding"]), &golden_query_vector());
    let (_, _, raw) =
        send(&app, "POST", "/embed", Some(json!({"text": "Rust engineer in Berlin", "input_type": "raw"}))).await;
    assert_ne!(vector(&raw["embedding"]), vector(&body["embedding"]), "raw adds no prefix");
}

/// Sequences alone (`--max-batch-size 1`) and the threads left to the engine: the warm-up times
/// one single-threaded session per core side by side against one session, on the real engine,
/// and the plan says which serves; either way the vectors are the reference's.
#[tokio::test]
async fn sequences_alone_try_single_threaded_sessions_side_by_side() {
    let (app, _) = router_with(&["--max-batch-size", "1"]).await;
    let info = send(&app, "GET", "/info", None).await.2;
    let batching = &info["batching"];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("SKIPPED: side by side needs 2 cores, this machine has 1");
        return;
    }
    let tried = &batching["calibration"]["in_flight"];
    assert_eq!(tried["sessions"].as_u64(), Some(cores as u64), "{info}");
    assert!(tried["one_session_sequences_per_sec"].as_f64().unwrap() > 0.0, "{info}");
    let (workers, threads) = if tried["chosen"] == true { (cores, 1) } else { (1, cores) };
    assert_eq!(
        (batching["workers"].as_u64(), batching["intra_op_threads"].as_u64()),
        (Some(workers as u64), Some(threads as u64)),
        "{info}"
    );
    assert_eq!(batching["max_batch_size"], 1, "{info}");
    for _ in 0..4 {
        let (_, _, body) = send(&app, "POST", "/embed", Some(json!({"text": "Rust engineer in Berlin"}))).await;
        assert_close(&vector(&body["embedding"]), &golden_query_vector());
    }
}

#[tokio::test]
async fn default_input_type_is_configurable() {
    let (app, _) = router_with(&["--intra-op-threads", "1", "--default-input-type", "raw"]).await;
    let (_, _, default) = send(&app, "POST", "/embed", Some(json!({"text": "query: Rust engineer in Berlin"}))).await;
    assert_close(&vector(&default["embedding"]), &golden_query_vector());
}

#[tokio::test]
async fn batch_keeps_input_order_and_equals_single_calls() {
    let app = router().await;
    let texts = ["short", "", "Инженер-программист из Москвы", &"long text ".repeat(100)];
    let (status, _, body) =
        send(&app, "POST", "/embed/batch", Some(json!({"texts": texts, "input_type": "passage"}))).await;
    assert_eq!(status, StatusCode::OK);
    let batch = body["embeddings"].as_array().unwrap();
    assert_eq!(batch.len(), texts.len());
    for (text, got) in texts.iter().zip(batch) {
        let (_, _, single) = send(&app, "POST", "/embed", Some(json!({"text": text, "input_type": "passage"}))).await;
        assert_close(&vector(got), &vector(&single["embedding"]));
    }
}

#[tokio::test]
async fn openai_embeddings_float_and_base64() {
    let app = router().await;
    let (status, _, body) =
        send(&app, "POST", "/v1/embeddings", Some(json!({"input": "Rust engineer in Berlin", "model": "x"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "tiny-e5");
    assert_eq!(body["data"][0]["index"], 0);
    assert_close(&vector(&body["data"][0]["embedding"]), &golden_query_vector());
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 2);

    let (_, _, floats) = send(&app, "POST", "/v1/embeddings", Some(json!({"input": ["a", "b"]}))).await;
    let (_, _, b64) =
        send(&app, "POST", "/v1/embeddings", Some(json!({"input": ["a", "b"], "encoding_format": "base64"}))).await;
    assert_eq!(b64["data"].as_array().unwrap().len(), 2);
    let encoded = b64["data"][1]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), 172, "32 floats = 128 bytes = 172 base64 characters");
    assert_eq!(encoded, routes::openai::encode_base64_f32(&vector(&floats["data"][1]["embedding"])));

    let (status, _, err) = send(&app, "POST", "/v1/embeddings", Some(json!({"input": "x", "dimensions": 1024}))).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));
    let (status, _, err) = send(&app, "POST", "/v1/embeddings", Some(json!({"input": [1, 2, 3]}))).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));
}

#[tokio::test]
async fn bad_input_gets_json_errors() {
    let (app, _) = router_with(&["--intra-op-threads", "1", "--max-body-bytes", "4096"]).await;
    let cases = [
        (json!({"texts": []}), "/embed/batch", StatusCode::UNPROCESSABLE_ENTITY, "empty_batch"),
        (json!({"texts": vec!["x"; 257]}), "/embed/batch", StatusCode::PAYLOAD_TOO_LARGE, "too_many_texts"),
        (json!({"texts": "x"}), "/embed/batch", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"text": 5}), "/embed", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({}), "/embed", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"text": "x", "input_type": "document"}), "/embed", StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"input": []}), "/v1/embeddings", StatusCode::UNPROCESSABLE_ENTITY, "empty_batch"),
        (json!({"text": "x".repeat(5000)}), "/embed", StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ];
    for (body, uri, status, code) in cases {
        let (got, _, err) = send(&app, "POST", uri, Some(body.clone())).await;
        assert_eq!((got, err["code"].as_str()), (status, Some(code)), "{uri} {body}");
        assert!(err["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, err) = send_raw(&app, "/embed", Some("application/json"), "{\"text\": ").await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    let (status, err) = send_raw(&app, "/embed", None, "{\"text\": \"x\"}").await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));
    let (status, _, err) = send(&app, "GET", "/embed", None).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
    let (status, _, err) = send(&app, "GET", "/nothing-here", None).await;
    assert_eq!((status, err["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route() {
    let app = router().await;
    send(&app, "POST", "/embed", Some(json!({"text": "x"}))).await;
    send(&app, "POST", "/embed/batch", Some(json!({"texts": []}))).await;
    let (status, headers, body) = send(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
    let text = body.as_str().unwrap();
    for needle in [
        r#"embed_http_requests_total{route="/embed",method="POST",status="200"} 1"#,
        r#"embed_http_requests_total{route="/embed/batch",method="POST",status="422"} 1"#,
        "embed_queue_depth",
        "embed_batch_size_bucket",
        "embed_batch_tokens_bucket",
        "embed_batch_padding_ratio_bucket",
        "embed_queue_duration_seconds_bucket",
        "embed_inference_duration_seconds_bucket",
        "embed_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[tokio::test]
async fn engine_failures_map_to_429_503_and_an_opaque_500() {
    use shared::BatcherError;
    let engine = |e: BatcherError| error::ApiError::Engine(e.into());
    for error in [engine(BatcherError::Overloaded), engine(BatcherError::Unavailable("loading".into()))] {
        let response = error.into_response();
        assert!(matches!(response.status(), StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
    let response = engine(BatcherError::Inference("secret detail".into())).into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(r#""code":"internal""#) && !body.contains("secret detail"), "{body}");
}

#[tokio::test]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let app = router().await;
    let (status, headers, spec) = send(&app, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(spec["openapi"], "3.1.0");
    for path in ["/embed", "/embed/batch", "/v1/embeddings", "/info", "/health", "/ready", "/metrics"] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(spec, serde_json::to_value(openapi()).unwrap(), "served as built");
    shared::http::openapi::check_checked_in(&openapi(), "embed-service.json");
}
