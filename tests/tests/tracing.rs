//! Traces across the three services: one search through the gateway (remote engines) is one trace
//! with spans from all three processes, its stages nested under the gateway's request span, the
//! app's `traceparent` continued, and the model services' queue wait and batch in it. Checked
//! with our own OTLP receiver, which decodes the protobuf exports.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use e2e::otlp::{OtlpReceiver, ReceivedSpan};
use e2e::{TempDir, fixture, start_gateway_with_envs, start_model_service};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
/// The app's trace, as a Next.js server would send it (sampled).
const APP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const APP_SPAN: &str = "00f067aa0ba902b7";

fn exporting_to(receiver: &OtlpReceiver) -> [(&'static str, String); 2] {
    // Exports every 100 ms instead of 5 s, so the test does not wait.
    [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()), ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string())]
}

fn envs<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn documents() -> Value {
    let texts = ["Rust engineer in Paris", "Pastry chef in Lyon", "Data scientist in Berlin", "Go developer in Paris"];
    let documents: Vec<Value> =
        texts.iter().enumerate().map(|(i, text)| json!({"id": format!("p{i}"), "text": text})).collect();
    json!({ "documents": documents })
}

/// Waits until the trace has spans named `needed` from each service, and returns all its spans.
async fn trace(receiver: &OtlpReceiver, trace_id: &str, needed: &[(&str, &str)]) -> Vec<ReceivedSpan> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans: Vec<ReceivedSpan> = receiver.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();
        let complete =
            needed.iter().all(|(service, name)| spans.iter().any(|s| s.service == *service && s.name == *name));
        if complete {
            return spans;
        }
        assert!(Instant::now() < deadline, "trace {trace_id} incomplete, wanted {needed:?}, got {spans:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn one<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.service == service && s.name == name).collect();
    assert_eq!(found.len(), 1, "one {service} span {name:?}: {spans:#?}");
    found[0]
}

/// Whether `ancestor` is `span`'s parent, grandparent, ...
fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
    let by_id: HashMap<&str, &ReceivedSpan> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut parent = span.parent.as_str();
    while let Some(next) = by_id.get(parent) {
        if next.span_id == ancestor.span_id {
            return true;
        }
        parent = next.parent.as_str();
    }
    false
}

#[tokio::test]
async fn one_search_is_one_trace_across_the_three_services() {
    let receiver = OtlpReceiver::start().await;
    let exporting = exporting_to(&receiver);
    let one_thread = ["--intra-op-threads", "1"];
    // The reranker's batch size is given: left to the warm-up it follows this machine's timings,
    // and where batching does not pay the 4 candidates below would run one at a time.
    let batching = ["--intra-op-threads", "1", "--max-batch-size", "32"];
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &one_thread, &envs(&exporting));
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &batching, &envs(&exporting));
    embed.wait_ready(READY).await;
    rerank.wait_ready(READY).await;
    let data = TempDir::new("tracing");
    let (embed_url, rerank_url) = (embed.url(""), rerank.url(""));
    let remote = ["--embed-url", embed_url.as_str(), "--rerank-url", rerank_url.as_str()];
    let gateway = start_gateway_with_envs(&data, &remote, &envs(&exporting));
    gateway.wait_ready(READY).await;
    let client = reqwest::Client::new();
    let put = client.put(gateway.url("/collections/profiles/documents")).json(&documents()).send().await.unwrap();
    assert_eq!(put.status(), 200);

    let traceparent = format!("00-{APP_TRACE}-{APP_SPAN}-01");
    let query = json!({"query": "rust in paris", "top_k": 2, "candidates": 4});
    let response = client.post(gateway.url("/search")).header("traceparent", traceparent).json(&query).send();
    let answer: Value = response.await.unwrap().json().await.unwrap();
    assert_eq!((answer["cache"].as_str(), answer["rerank"].as_str()), (Some("miss"), Some("applied")), "{answer}");

    let needed = [
        ("search-gateway", "POST /search"),
        ("search-gateway", "cache_write"),
        ("embed-service", "inference"),
        ("rerank-service", "inference"),
    ];
    let spans = trace(&receiver, APP_TRACE, &needed).await;
    let services: std::collections::BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(services.into_iter().collect::<Vec<_>>(), ["embed-service", "rerank-service", "search-gateway"]);

    // The app's span is the gateway request's parent; the stages are the request's children.
    let request = one(&spans, "search-gateway", "POST /search");
    assert_eq!(request.parent, APP_SPAN, "the incoming traceparent is continued");
    assert_eq!(request.attributes.get("http.response.status_code").map(String::as_str), Some("200"));
    for stage in ["cache_lookup", "embed_query", "vector_search", "rerank", "cache_write"] {
        assert_eq!(one(&spans, "search-gateway", stage).parent, request.span_id, "{stage} under the request");
    }
    assert_eq!(one(&spans, "search-gateway", "rerank").attributes["status"], "applied");

    // Each model service's request is a child of the gateway stage that called it, and its queue
    // wait and batch are under it, with what the batch was.
    for (service, stage) in [("embed-service", "embed_query"), ("rerank-service", "rerank")] {
        let stage = one(&spans, "search-gateway", stage);
        let served: Vec<&ReceivedSpan> =
            spans.iter().filter(|s| s.service == service && s.attributes.contains_key("http.route")).collect();
        assert_eq!(served.len(), 1, "one {service} request in the trace: {spans:#?}");
        assert_eq!(served[0].parent, stage.span_id, "{service} called from the gateway's {}", stage.name);
        for name in ["queue_wait", "inference"] {
            let span = one(&spans, service, name);
            assert!(descends_from(&spans, span, served[0]), "{service} {name} under its request: {spans:#?}");
        }
        let inference = one(&spans, service, "inference");
        let size: usize = inference.attributes["batch_size"].parse().unwrap();
        let tokens: usize = inference.attributes["tokens"].parse().unwrap();
        assert!(size >= 1 && tokens >= 1, "{inference:?}");
    }
    let rerank_batch = one(&spans, "rerank-service", "inference");
    assert_eq!(rerank_batch.attributes["sequences"], "4", "the 4 candidates, scored in one batch");

    // Without an incoming traceparent the gateway starts a trace of its own, with the same reach.
    let fresh = client.post(gateway.url("/search")).json(&json!({"query": "pastry", "cache": "bypass"}));
    assert_eq!(fresh.send().await.unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let root = loop {
        let roots: Vec<ReceivedSpan> = receiver
            .spans()
            .into_iter()
            .filter(|s| s.name == "POST /search" && s.trace_id != APP_TRACE && s.parent.is_empty())
            .collect();
        if let Some(root) = roots.first() {
            break root.clone();
        }
        assert!(Instant::now() < deadline, "no root span for the second search");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    trace(&receiver, &root.trace_id, &[("embed-service", "inference"), ("rerank-service", "inference")]).await;
    // Health checks are polled, not used: they make no spans.
    assert!(receiver.spans().iter().all(|s| s.attributes.get("http.route").map(String::as_str) != Some("/ready")));
}

/// A collector that is down (nothing listens) or stalled (accepts, never answers) costs the
/// requests nothing: every search is answered, the spans are dropped. (The latency cost is
/// measured in `scripts/bench.sh tracing`, not asserted here.)
#[tokio::test]
async fn a_dead_or_stalled_collector_fails_no_request() {
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_url = format!("http://{}", stalled.local_addr().unwrap());
    let dead_url = format!("http://127.0.0.1:{}", e2e::free_port());
    for url in [dead_url, stalled_url] {
        let data = TempDir::new("tracing-dead");
        let exporting = [("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
        let gateway = start_gateway_with_envs(&data, &[], &exporting);
        gateway.wait_ready(READY).await;
        let client = reqwest::Client::new();
        let put = client.put(gateway.url("/collections/profiles/documents")).json(&documents()).send().await.unwrap();
        assert_eq!(put.status(), 200);
        for i in 0..40 {
            let query = json!({"query": format!("query {i}"), "cache": "bypass"});
            let response = client.post(gateway.url("/search")).json(&query).send().await.unwrap();
            assert_eq!(response.status(), 200, "collector at {url}");
        }
        assert!(gateway.logs().contains("exporting traces"), "{}", gateway.logs());
    }
}
