//! Interactive work before bulk work, through the real binaries: a query sent to an embed-service
//! whose queue is deep with bulk work runs next (after at most the bulk batch already running),
//! and every bulk text is still embedded; an `ingest` through a gateway reaches the embed-service
//! as bulk work while the gateway's searches stay interactive.

use std::time::Duration;

use e2e::{Process, TempDir, fixture, run_to_exit, start_gateway, start_model_service};
use serde_json::{Value, json};

/// The value of the unlabelled metric `name` in `process`'s `/metrics`.
async fn metric(process: &Process, name: &str) -> f64 {
    let text = reqwest::get(process.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_goes_before_the_queued_bulk_work_and_no_bulk_text_is_lost() {
    // One inference thread; bulk batches of 2 texts of 128 tokens (the default --bulk-batch-tokens 256).
    let args = ["--workers", "1", "--intra-op-threads", "1", "--bulk-max-delay-ms", "60000"];
    let service = start_model_service("embed-service", &fixture("tiny-e5"), &args, &[]);
    service.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();

    // 40 bulk requests of 32 long texts: 640 bulk batches, seconds of work for this model.
    let long_text = "profile ".repeat(200);
    let bulk: Vec<_> = (0..40)
        .map(|_| {
            let (client, url) = (client.clone(), service.url("/embed/batch"));
            let body = json!({"texts": vec![long_text.clone(); 32], "input_type": "passage", "priority": "bulk"});
            tokio::spawn(async move {
                let response = client.post(url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()["embeddings"].as_array().unwrap().len()
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(&service, "embed_queue_depth").await < 600.0 {
        assert!(tokio::time::Instant::now() < deadline, "the bulk work never queued up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let bulk_before = metric(&service, "embed_bulk_sequences_total").await;
    let query = json!({"text": "rust engineer", "input_type": "query"});
    let response = client.post(service.url("/embed")).json(&query).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bulk_meanwhile = metric(&service, "embed_bulk_sequences_total").await - bulk_before;
    let queued_after = metric(&service, "embed_queue_depth").await;
    // Round-robin alone would have run a batch of each of the ~40 queued requests first (~160
    // texts); the query waits for the running batch and whatever ran while it was parsed.
    assert!(bulk_meanwhile <= 40.0, "{bulk_meanwhile} bulk texts ran before the query");
    assert!(queued_after > 0.0, "the bulk work was still queued when the query was answered");

    let mut embedded = 0;
    for request in bulk {
        embedded += request.await.unwrap();
    }
    assert_eq!(embedded, 40 * 32, "every bulk text embedded");
    assert_eq!(metric(&service, "embed_bulk_sequences_total").await, 1280.0);
    assert_eq!(metric(&service, "embed_sequences_total").await - 1280.0, 1.0, "and the query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_through_the_gateway_is_bulk_work_and_searches_are_not() {
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &["--intra-op-threads", "1"], &[]);
    embed.wait_ready(Duration::from_secs(30)).await;
    let data = TempDir::new("priority-gateway");
    let gateway = start_gateway(&data, &["--embed-url", &embed.url("")]);
    gateway.wait_ready(Duration::from_secs(30)).await;

    let input = data.path().join("corpus.jsonl");
    let lines: Vec<String> =
        (0..150).map(|i| json!({"id": format!("p{i}"), "text": format!("profile {i} engineer")}).to_string()).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let args =
        ["ingest", "--collection", "people", "--input", input.to_str().unwrap(), "--gateway-url", &gateway.url("")];
    let (status, stderr) = run_to_exit("search-gateway", &args, &[("RUST_LOG", "warn")]);
    assert!(status.success(), "{stderr}");
    let all_before = metric(&embed, "embed_sequences_total").await;
    assert_eq!(metric(&embed, "embed_bulk_sequences_total").await, 150.0, "every document embedded as bulk work");

    let search = json!({"query": "engineer", "collection": "people", "cache": "bypass"});
    let response = reqwest::Client::new().post(gateway.url("/search")).json(&search).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(metric(&embed, "embed_sequences_total").await - all_before, 1.0);
    assert_eq!(metric(&embed, "embed_bulk_sequences_total").await, 150.0, "the search's query was interactive");
}
