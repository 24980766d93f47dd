//! Replicas of the model services behind the gateway: two embed-services and two
//! rerank-services in comma-separated URLs, one of each killed (-9) mid-load (no search may fail,
//! and every one stays reranked), then started again on its port (it gets traffic again).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{Process, TempDir, fixture, free_port, start_gateway};
use serde_json::{Value, json};

fn replica(binary: &str, model: &str, port: u16) -> Process {
    let (model, port) = (fixture(model), port.to_string());
    let args =
        ["--host", "127.0.0.1", "--port", &port, "--model-dir", model.to_str().unwrap(), "--intra-op-threads", "1"];
    Process::start(binary, &args, &[])
}

/// Requests a replica has answered on `route`, from its own metrics.
async fn served(process: &Process, prefix: &str, route: &str) -> f64 {
    let metrics = reqwest::get(process.url("/metrics")).await.unwrap().text().await.unwrap();
    let series = format!(r#"{prefix}_http_requests_total{{route="{route}",method="POST",status="200"}} "#);
    metrics.lines().filter_map(|l| l.strip_prefix(&series)).filter_map(|v| v.trim().parse::<f64>().ok()).sum()
}

/// `count` searches from 4 concurrent clients; panics on any non-2xx or unreranked answer.
async fn searches(url: String, count: usize, done: Arc<AtomicUsize>) {
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (url, done) = (url.clone(), done.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..count / 4 {
                    let body =
                        json!({"query": format!("engineer {client} {i}"), "collection": "people", "cache": "bypass"});
                    let response = http.post(&url).json(&body).send().await.unwrap();
                    let status = response.status();
                    let answer: Value = response.json().await.unwrap();
                    assert_eq!(status, 200, "search {i} of client {client}: {answer}");
                    assert_eq!(answer["rerank"], "applied", "search {i} of client {client}: {answer}");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_fails_no_search_and_gets_traffic_again_when_back() {
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let mut embeds = [replica("embed-service", "tiny-e5", ports[0]), replica("embed-service", "tiny-e5", ports[1])];
    let mut reranks =
        [replica("rerank-service", "tiny-reranker", ports[2]), replica("rerank-service", "tiny-reranker", ports[3])];
    for process in embeds.iter().chain(&reranks) {
        process.wait_ready(Duration::from_secs(30)).await;
    }
    let list = |a: &Process, b: &Process| format!("{},{}", a.url(""), b.url(""));
    let (embed_urls, rerank_urls) = (list(&embeds[0], &embeds[1]), list(&reranks[0], &reranks[1]));
    let data = TempDir::new("replicas");
    let gateway = start_gateway(&data, &["--embed-url", &embed_urls, "--rerank-url", &rerank_urls]);
    gateway.wait_ready(Duration::from_secs(30)).await;
    let documents: Vec<Value> =
        (0..30).map(|i| json!({"id": format!("p{i}"), "text": format!("profile {i}: engineer number {i}")})).collect();
    let response =
        reqwest::Client::new().put(gateway.url("/collections/people/documents")).json(&json!({"documents": documents}));
    assert_eq!(response.send().await.unwrap().status(), 200);

    // Both replicas of each service take traffic.
    searches(gateway.url("/search"), 40, Arc::default()).await;
    for (process, prefix, route) in [
        (&embeds[0], "embed", "/embed/batch"),
        (&embeds[1], "embed", "/embed/batch"),
        (&reranks[0], "rerank", "/rerank"),
        (&reranks[1], "rerank", "/rerank"),
    ] {
        assert!(served(process, prefix, route).await > 0.0, "{prefix} replica {} took no traffic", process.url(""));
    }

    // Kill one of each mid-load: every search still answers, reranked.
    let done = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(searches(gateway.url("/search"), 400, done.clone()));
    while done.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    embeds[0].kill_9();
    reranks[1].kill_9();
    let killed_at = done.load(Ordering::SeqCst);
    load.await.unwrap();
    println!("400 searches, replicas killed after {killed_at}: all 200 and reranked");
    assert!(killed_at < 400, "the kills came after the load");

    // Back on their ports: they get traffic again.
    embeds[0] = replica("embed-service", "tiny-e5", ports[0]);
    reranks[1] = replica("rerank-service", "tiny-reranker", ports[3]);
    embeds[0].wait_ready(Duration::from_secs(30)).await;
    reranks[1].wait_ready(Duration::from_secs(30)).await;
    // The balancer tries a replica that failed again after its cool-down (1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    searches(gateway.url("/search"), 80, Arc::default()).await;
    assert!(served(&embeds[0], "embed", "/embed/batch").await > 0.0, "the restarted embed-service took no traffic");
    assert!(served(&reranks[1], "rerank", "/rerank").await > 0.0, "the restarted rerank-service took no traffic");
}

#[tokio::test]
async fn a_replica_name_that_does_not_resolve_is_unavailable_not_a_hang() {
    let data = TempDir::new("replicas-unresolved");
    let gateway =
        start_gateway(&data, &["--embed-url", "http://no-such-host.invalid:5555", "--embed-timeout-ms", "20000"]);
    gateway.wait_ready(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let (status, body) = e2e::post_json(&client, gateway.url("/search"), json!({"query": "x"})).await;
    // 504 would mean the call waited out its budget for a replica to appear.
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "embedder_unavailable", "{body}");
}
