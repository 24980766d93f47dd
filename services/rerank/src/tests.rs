//! Router tests: the real app on the tiny fixture cross-encoders, driven with `oneshot`.

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

fn project(path: &str) -> std::path::PathBuf {
    shared::runtime::project_root().join(path)
}

async fn router_with(fixture: &str, args: &[&str]) -> (Router, watch::Sender<bool>) {
    let mut argv = vec!["rerank-service", "--intra-op-threads", "1"];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).unwrap();
    let dir = shared::ModelDir::open(project("models/fixtures").join(fixture)).unwrap();
    let (draining_tx, draining_rx) = watch::channel(false);
    let service = Service::start(config, &dir, draining_rx).unwrap();
    let mut ready = service.reranker().batcher().readiness();
    ready.wait_for(|r| *r == Readiness::Ready).await.unwrap();
    (app(service), draining_tx)
}

async fn router() -> Router {
    router_with("tiny-reranker", &[]).await.0
}

async fn send(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

fn golden(fixture: &str) -> Value {
    let path = project("models/fixtures/goldens").join(format!("{fixture}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `/rerank` with raw scores reproduces the reference logits, best first.
async fn check_golden(fixture: &str) {
    let (app, _) = router_with(fixture, &[]).await;
    let golden = golden(fixture);
    let documents: Vec<&str> =
        golden["cases"].as_array().unwrap().iter().map(|c| c["document"].as_str().unwrap()).collect();
    let want: Vec<f64> = golden["cases"].as_array().unwrap().iter().map(|c| c["logit"].as_f64().unwrap()).collect();
    let body = json!({"query": golden["query"], "documents": documents, "raw_scores": true});
    let (status, out) = send(&app, "POST", "/rerank", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), documents.len());
    let mut previous = f64::INFINITY;
    for r in results {
        let (index, score) = (r["index"].as_u64().unwrap() as usize, r["score"].as_f64().unwrap());
        assert!((score - want[index]).abs() <= 1e-5, "{fixture}: document {index}: {score} vs {}", want[index]);
        assert!(score <= previous, "sorted by score, descending");
        previous = score;
        assert!(r.get("document").is_none(), "documents only when asked");
    }
}

#[tokio::test]
async fn xlmr_cross_encoder_matches_the_golden_logits() {
    check_golden("tiny-reranker").await;
}

#[tokio::test]
async fn bert_cross_encoder_with_token_types_matches_the_golden_logits() {
    check_golden("tiny-bert-reranker").await;
}

#[tokio::test]
async fn scores_are_sigmoids_and_top_n_and_documents_apply() {
    let app = router().await;
    let documents = ["Rust engineer in Berlin", "Chef in Lisbon", "", "Rust engineer in Berlin"];
    let (_, raw) =
        send(&app, "POST", "/rerank", Some(json!({"query": "rust", "documents": documents, "raw_scores": true}))).await;
    let (_, out) = send(
        &app,
        "POST",
        "/rerank",
        Some(json!({"query": "rust", "documents": documents, "top_n": 2, "return_documents": true})),
    )
    .await;
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, raw) in results.iter().zip(raw["results"].as_array().unwrap()) {
        assert_eq!(r["index"], raw["index"]);
        let logit = raw["score"].as_f64().unwrap();
        assert!((r["score"].as_f64().unwrap() - 1.0 / (1.0 + (-logit).exp())).abs() < 1e-6);
        assert_eq!(r["document"], json!(documents[r["index"].as_u64().unwrap() as usize]));
    }
    // Documents 0 and 3 are identical, so they tie and keep their input order.
    let order: Vec<u64> = raw["results"].as_array().unwrap().iter().map(|r| r["index"].as_u64().unwrap()).collect();
    let (first, last) = (order.iter().position(|&i| i == 0).unwrap(), order.iter().position(|&i| i == 3).unwrap());
    assert_eq!(last, first + 1, "equal scores keep input order: {order:?}");
    let (status, all) =
        send(&app, "POST", "/rerank", Some(json!({"query": "rust", "documents": documents, "top_n": 50}))).await;
    assert_eq!(
        (status, all["results"].as_array().unwrap().len()),
        (StatusCode::OK, 4),
        "top_n beyond the list is fine"
    );
}

#[tokio::test]
async fn a_huge_document_is_truncated_not_rejected() {
    let app = router().await;
    let huge = "distributed systems engineer ".repeat(2000);
    let (status, out) =
        send(&app, "POST", "/rerank", Some(json!({"query": "rust", "documents": [huge, "chef"]}))).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_input_gets_json_errors() {
    let (app, _) = router_with("tiny-reranker", &["--max-documents", "3"]).await;
    let cases = [
        (json!({"query": "", "documents": ["a"]}), StatusCode::UNPROCESSABLE_ENTITY, "empty_query"),
        (json!({"query": " \n\t", "documents": ["a"]}), StatusCode::UNPROCESSABLE_ENTITY, "empty_query"),
        (json!({"query": "q", "documents": []}), StatusCode::UNPROCESSABLE_ENTITY, "empty_documents"),
        (json!({"query": "q", "documents": ["a", "b", "c", "d"]}), StatusCode::PAYLOAD_TOO_LARGE, "too_many_documents"),
        (json!({"query": "q", "documents": ["a"], "top_n": 0}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"query": "q", "documents": ["a"], "top_n": -1}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"query": "q", "documents": "a"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"query": 1, "documents": ["a"]}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({"documents": ["a"]}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let (got, err) = send(&app, "POST", "/rerank", Some(body.clone())).await;
        assert_eq!((got, err["code"].as_str()), (status, Some(code)), "{body}");
    }
    let request = Request::post("/rerank")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"query\""))
        .unwrap();
    assert_eq!(app.clone().oneshot(request).await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ops_routes_and_metrics() {
    let (app, draining) = router_with("tiny-reranker", &[]).await;
    assert_eq!(send(&app, "GET", "/health", None).await, (StatusCode::OK, json!({"status": "ok"})));
    assert_eq!(send(&app, "GET", "/ready", None).await.0, StatusCode::OK);
    let (_, info) = send(&app, "GET", "/info", None).await;
    assert_eq!((info["model"].as_str(), info["limits"]["max_documents"].as_u64()), (Some("tiny-reranker"), Some(1000)));
    send(&app, "POST", "/rerank", Some(json!({"query": "q", "documents": ["a", "bb", "ccc"]}))).await;
    let (_, metrics) = send(&app, "GET", "/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"rerank_http_requests_total{route="/rerank",method="POST",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("rerank_sequences_total"), "{metrics}");
    draining.send_replace(true);
    assert_eq!(send(&app, "GET", "/ready", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn overload_carries_retry_after() {
    let response = error::ApiError::Engine(shared::BatcherError::Overloaded.into()).into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let app = router().await;
    let (status, spec) = send(&app, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec["openapi"], "3.1.0");
    for path in ["/rerank", "/info", "/health", "/ready", "/metrics"] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(spec, serde_json::to_value(openapi()).unwrap(), "served as built");
    shared::http::openapi::check_checked_in(&openapi(), "rerank-service.json");
}

#[tokio::test]
async fn cohere_routes_rank_as_rerank_does_with_cohere_shapes() {
    let app = router().await;
    let documents = ["rust engineer in berlin", "pastry chef", "rust and go developer"];
    let (_, native) = send(&app, "POST", "/rerank", Some(json!({"query": "rust", "documents": documents}))).await;
    let order: Vec<&Value> = native["results"].as_array().unwrap().iter().map(|r| &r["index"]).collect();
    for (route, version) in [("/v1/rerank", "1"), ("/v2/rerank", "2")] {
        let objects: Vec<Value> = documents.iter().map(|d| json!({"text": d, "title": "ignored"})).collect();
        let body = json!({"model": "any", "query": "rust", "documents": objects, "top_n": 2, "return_documents": true});
        let (status, out) = send(&app, "POST", route, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{route}: {out}");
        let results = out["results"].as_array().unwrap();
        assert_eq!(results.iter().map(|r| &r["index"]).collect::<Vec<_>>(), order[..2], "{route}");
        let first = results[0]["index"].as_u64().unwrap() as usize;
        assert_eq!(results[0]["document"], json!({"text": documents[first]}), "{route}");
        assert_eq!(out["meta"]["api_version"]["version"], version);
        assert!(out["id"].as_str().is_some_and(|id| id.len() == 36), "{route}: a UUID: {out}");
        let scores: Vec<f64> = results.iter().map(|r| r["relevance_score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]) && scores.iter().all(|s| (0.0..=1.0).contains(s)));
        let refused = |body: Value| send(&app, "POST", route, Some(body));
        let (status, out) = refused(json!({"query": "rust", "documents": documents, "max_tokens_per_doc": 0})).await;
        assert_eq!((status, out["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));
        let (status, out) = refused(json!({"query": "rust", "documents": [{"title": "no text"}]})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{route}: {out}");
        assert!(out["error"].as_str().unwrap().contains("documents"), "{route}: names the field: {out}");
        let (status, out) = refused(json!({"query": "", "documents": documents})).await;
        assert_eq!((status, out["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_query")));
    }
}

#[tokio::test]
async fn max_tokens_per_doc_cuts_documents_before_scoring() {
    let app = router().await;
    // Two documents with the same first tokens and different ends: cut short, they are one text.
    let start = "rust engineer in berlin ".repeat(4);
    let documents = [format!("{start}bakes bread and pastry"), format!("{start}builds search engines")];
    let scores = |max_tokens: Option<u64>| {
        let body = json!({"query": "rust", "documents": documents, "max_tokens_per_doc": max_tokens});
        let app = app.clone();
        async move {
            let (status, out) = send(&app, "POST", "/v2/rerank", Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{out}");
            let mut results = out["results"].as_array().unwrap().clone();
            results.sort_by_key(|r| r["index"].as_u64());
            results.iter().map(|r| r["relevance_score"].as_f64().unwrap()).collect::<Vec<_>>()
        }
    };
    let cut = scores(Some(4)).await;
    assert_eq!(cut[0], cut[1], "cut to their common first tokens, both score alike");
    let whole = scores(None).await;
    assert_ne!(whole[0], whole[1], "whole, their different ends count");
}

/// Raw logits of `documents` in input order, from one `/rerank` request.
async fn logits(app: &Router, query: &str, documents: &[&str]) -> Vec<f32> {
    let body = json!({"query": query, "documents": documents, "raw_scores": true});
    let (status, out) = send(app, "POST", "/rerank", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let mut scores = vec![f32::NAN; documents.len()];
    for r in out["results"].as_array().unwrap() {
        scores[r["index"].as_u64().unwrap() as usize] = r["score"].as_f64().unwrap() as f32;
    }
    scores
}

const SIMILAR_LENGTHS: [&str; 4] =
    ["rust engineer in berlin", "pastry chef in lisbon", "search engineer in paris", "data scientist in rome"];

#[tokio::test]
async fn an_int8_cross_encoder_scores_a_pair_alike_whatever_it_shares_a_request_with() {
    let (app, _) = router_with("tiny-reranker-int8", &[]).await;
    let (_, info) = send(&app, "GET", "/info", None).await;
    assert_eq!(info["batching"]["max_batch_size"], 1, "{info}");
    assert!(info["batching"]["reason"].as_str().unwrap().contains("DynamicQuantizeLinear"), "{info}");
    let together = logits(&app, "rust", &SIMILAR_LENGTHS).await;
    for (document, score) in SIMILAR_LENGTHS.iter().zip(&together) {
        let alone = logits(&app, "rust", &[document]).await;
        assert_eq!(alone[0].to_bits(), score.to_bits(), "{document}: {} alone, {score} together", alone[0]);
    }

    // The reason: batched anyway, the same pairs score otherwise.
    let (batched, _) =
        router_with("tiny-reranker-int8", &["--batch-invariant", "false", "--max-batch-size", "32"]).await;
    let (_, info) = send(&batched, "GET", "/info", None).await;
    assert_eq!(info["batching"]["max_batch_size"], 32, "{info}");
    let shared_batch = logits(&batched, "rust", &SIMILAR_LENGTHS).await;
    assert!(
        shared_batch.iter().zip(&together).any(|(a, b)| a.to_bits() != b.to_bits()),
        "batch-mates move int8 scores: {shared_batch:?} vs {together:?}"
    );
}

#[tokio::test]
async fn an_fp32_cross_encoder_batches_and_still_scores_a_pair_alike() {
    let (app, _) = router_with("tiny-reranker", &["--max-batch-size", "32"]).await;
    let (_, info) = send(&app, "GET", "/info", None).await;
    assert_eq!(info["batching"]["max_batch_size"], 32, "{info}");
    assert_eq!(info["fingerprint"].as_str().map(str::len), Some(8), "{info}");
    let together = logits(&app, "rust", &SIMILAR_LENGTHS).await;
    for (document, score) in SIMILAR_LENGTHS.iter().zip(&together) {
        assert_eq!(logits(&app, "rust", &[document]).await[0].to_bits(), score.to_bits(), "{document}");
    }
}
