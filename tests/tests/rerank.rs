//! rerank-service end to end: the real binary on port 0, real ONNX Runtime, tiny fixtures.

use std::time::Duration;

use e2e::{Process, fixture, post_json as post, run_to_exit, start_model_service};
use serde_json::{Value, json};

fn start(model: &str, extra: &[&str]) -> Process {
    start_model_service("rerank-service", &fixture(model), &[&["--intra-op-threads", "1"], extra].concat(), &[])
}

#[tokio::test]
async fn every_route_and_error_case_over_http() {
    let service = start("tiny-reranker", &["--max-documents", "50"]);
    service.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let health: Value = client.get(service.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let info: Value = client.get(service.url("/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["model"], "tiny-reranker");

    // 50 documents of mixed lengths go through the batcher as 50 items.
    let documents: Vec<String> = (0..50).map(|i| format!("profile {i} {}", "rust engineer ".repeat(i % 17))).collect();
    let (status, out) = post(
        &client,
        service.url("/rerank"),
        json!({"query": "rust engineer", "documents": documents, "top_n": 10, "return_documents": true}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    for pair in results.windows(2) {
        assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64());
    }
    for r in results {
        assert_eq!(r["document"], json!(documents[r["index"].as_u64().unwrap() as usize]));
        let score = r["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "sigmoid scores: {score}");
    }

    let errors = [
        (json!({"query": "  ", "documents": ["a"]}), 422, "empty_query"),
        (json!({"query": "q", "documents": []}), 422, "empty_documents"),
        (json!({"query": "q", "documents": vec!["a"; 51]}), 413, "too_many_documents"),
        (json!({"query": "q", "documents": [1]}), 422, "invalid_request"),
    ];
    for (body, want_status, want_code) in errors {
        let (status, err) = post(&client, service.url("/rerank"), body.clone()).await;
        assert_eq!((status, err["code"].as_str()), (want_status, Some(want_code)), "{body}");
    }
    let response =
        client.post(service.url("/rerank")).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let metrics = client.get(service.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("rerank_sequences_total 50\n"),
        "each of the 50 pairs ran once (warm-up is not counted): {metrics}"
    );
}

#[tokio::test]
async fn a_bert_style_cross_encoder_with_token_types_serves() {
    let service = start("tiny-bert-reranker", &[]);
    service.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let (status, out) = post(
        &client,
        service.url("/rerank"),
        json!({"query": "who knows rust", "documents": ["rust engineer", "chef"], "raw_scores": true}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let mut service = start("tiny-reranker", &["--max-wait-ms", "3000", "--max-batch-size", "64"]);
    service.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), service.url("/rerank"));
        async move { post(&client, url, json!({"query": "q", "documents": ["a", "b"]})).await }
    });
    service.wait_for_metric("rerank_queue_depth", 2.0, Duration::from_secs(10)).await;
    service.signal("TERM");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(service.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn an_embedding_model_is_refused_at_start_up() {
    let model = fixture("tiny-e5");
    let (status, stderr) = run_to_exit("rerank-service", &["--model-dir", model.to_str().unwrap(), "--port", "0"], &[]);
    assert!(!status.success());
    assert!(stderr.contains(r#"this service needs kind = "reranker""#), "{stderr}");
}
