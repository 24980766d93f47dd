//! embed-service end to end: the real binary on port 0, real ONNX Runtime, the tiny fixture.

use std::time::Duration;

use e2e::{Process, fixture, post_json as post, run_to_exit, start_model_service};
use serde_json::{Value, json};

fn start(extra: &[&str]) -> Process {
    start_model_service("embed-service", &fixture("tiny-e5"), &[&["--intra-op-threads", "1"], extra].concat(), &[])
}

#[tokio::test]
async fn every_route_and_error_case_over_http() {
    let service = start(&["--max-body-bytes", "65536"]);
    service.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();

    let health: Value = client.get(service.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let info: Value = client.get(service.url("/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!((info["model"].as_str(), info["dimension"].as_u64()), (Some("tiny-e5"), Some(32)));

    let (status, one) = post(&client, service.url("/embed"), json!({"text": "Rust engineer in Berlin"})).await;
    assert_eq!(status, 200);
    assert_eq!(one["embedding"].as_array().unwrap().len(), 32);
    let (status, batch) =
        post(&client, service.url("/embed/batch"), json!({"texts": ["Rust engineer in Berlin", "東京"]})).await;
    assert_eq!(status, 200);
    assert_eq!(batch["embeddings"][0], one["embedding"]);
    let (status, openai) =
        post(&client, service.url("/v1/embeddings"), json!({"input": "Rust engineer in Berlin"})).await;
    assert_eq!(status, 200);
    assert_eq!(openai["data"][0]["embedding"], one["embedding"]);

    let errors = [
        ("/embed/batch", json!({"texts": []}), 422, "empty_batch"),
        ("/embed/batch", json!({"texts": vec!["x"; 257]}), 413, "too_many_texts"),
        ("/embed/batch", json!({"texts": [1, 2]}), 422, "invalid_request"),
        ("/embed", json!({"text": null}), 422, "invalid_request"),
        ("/embed", json!({"text": "x".repeat(70_000)}), 413, "payload_too_large"),
        ("/v1/embeddings", json!({"input": []}), 422, "empty_batch"),
    ];
    for (path, body, want_status, want_code) in errors {
        let (status, err) = post(&client, service.url(path), body).await;
        assert_eq!((status, err["code"].as_str()), (want_status, Some(want_code)), "{path}");
    }
    let response = client
        .post(service.url("/embed"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["code"], "invalid_json");

    let metrics = client.get(service.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"embed_http_requests_total{route="/embed",method="POST",status="200"}"#), "{metrics}");
    assert!(metrics.contains("embed_padded_tokens_total"), "{metrics}");
}

#[tokio::test]
async fn overload_is_refused_with_429_and_the_service_recovers() {
    // The first request's 40 texts cannot fill a batch of 64, so they wait --max-wait-ms in the
    // queue; the second request's 40 would overflow the queue of 64 and must be refused.
    let service = start(&[
        "--queue-capacity",
        "64",
        "--max-client-batch",
        "64",
        "--max-batch-size",
        "64",
        "--max-wait-ms",
        "1500",
    ]);
    service.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let texts: Vec<String> = (0..40).map(|i| format!("profile number {i}")).collect();
    let first = tokio::spawn({
        let (client, url, texts) = (client.clone(), service.url("/embed/batch"), texts.clone());
        async move { post(&client, url, json!({"texts": texts})).await }
    });
    service.wait_for_metric("embed_queue_depth", 40.0, Duration::from_secs(10)).await;
    let response = client.post(service.url("/embed/batch")).json(&json!({"texts": texts})).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["code"], "overloaded");

    let (status, body) = first.await.unwrap();
    assert_eq!(status, 200, "the admitted request is unaffected");
    assert_eq!(body["embeddings"].as_array().unwrap().len(), 40);
    let (status, _) = post(&client, service.url("/embed/batch"), json!({"texts": texts})).await;
    assert_eq!(status, 200, "admitted again once the queue has drained");
    let metrics = client.get(service.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("embed_rejected_sequences_total 40"), "{metrics}");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    // A lone request waits --max-wait-ms for company, which keeps it in flight long enough.
    let mut service = start(&["--max-wait-ms", "3000"]);
    service.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), service.url("/embed"));
        async move { post(&client, url, json!({"text": "in flight"})).await }
    });
    service.wait_for_metric("embed_queue_depth", 1.0, Duration::from_secs(10)).await;
    service.signal("TERM");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "the in-flight request completes: {body}");
    assert_eq!(body["embedding"].as_array().unwrap().len(), 32);
    let exit = service.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "clean exit after draining: {exit:?}");
    assert!(client.get(service.url("/health")).send().await.is_err(), "no longer accepting");
}

#[test]
fn start_up_failures_are_one_clear_line() {
    let model = fixture("tiny-e5");
    let model = model.to_str().unwrap();
    let (status, stderr) = run_to_exit(
        "embed-service",
        &["--model-dir", model, "--port", "0"],
        &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")],
    );
    assert!(!status.success());
    assert!(stderr.contains("scripts/setup.sh") && stderr.contains("/nonexistent"), "{stderr}");

    let (status, stderr) = run_to_exit("embed-service", &["--model-dir", "/nonexistent-model", "--port", "0"], &[]);
    assert!(!status.success());
    assert!(stderr.contains("/nonexistent-model") && stderr.contains("does not exist"), "{stderr}");

    let (status, stderr) = run_to_exit("embed-service", &["--model-dir", model, "--queue-capacity", "3"], &[]);
    assert_eq!(status.code(), Some(64), "EX_USAGE for impossible settings");
    assert!(stderr.contains("--queue-capacity"), "{stderr}");

    let (status, stdout_help) = {
        let output = std::process::Command::new(e2e::binary("embed-service")).arg("--help").output().unwrap();
        (output.status, String::from_utf8_lossy(&output.stdout).into_owned())
    };
    assert!(status.success());
    for flag in [
        "--model-dir",
        "--default-input-type",
        "--max-client-batch",
        "--max-batch-tokens",
        "--max-wait-ms",
        "[env: PORT=]",
    ] {
        assert!(stdout_help.contains(flag), "--help mentions {flag}");
    }
}

#[tokio::test]
async fn a_model_directory_of_the_wrong_kind_fails_start_up() {
    let model = fixture("tiny-reranker");
    let (status, stderr) = run_to_exit("embed-service", &["--model-dir", model.to_str().unwrap(), "--port", "0"], &[]);
    assert!(!status.success());
    assert!(stderr.contains(r#"this service needs kind = "embedding""#), "{stderr}");
}

/// The service on real weights (multilingual-e5-small, converted by scripts/setup.sh) against an
/// independent onnxruntime + numpy run of the same model directory (tests/eval/embed_agreement.py):
/// 144 queries and passages in English, German, Spanish, Chinese, Russian and Cranfield's English,
/// batched as the service batches them, agree to 1e-4 in every component.
#[tokio::test]
async fn real_weights_agree_with_an_independent_onnxruntime_run() {
    let model = e2e::root().join("models/real/multilingual-e5-small");
    assert!(model.join("model.onnx").exists(), "{} is missing: run scripts/setup.sh", model.display());
    let service = start_model_service("embed-service", &model, &["--intra-op-threads", "2"], &[]);
    service.wait_ready(Duration::from_secs(60)).await;
    let output = std::process::Command::new(e2e::root().join(".venv/bin/python"))
        .arg(e2e::root().join("tests/eval/embed_agreement.py"))
        .arg(&model)
        .arg(service.url(""))
        .output()
        .expect("the .venv of scripts/setup.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["texts"], 144);
    assert!(report["min_cosine"].as_f64().unwrap() > 0.99999, "{report}");
}
