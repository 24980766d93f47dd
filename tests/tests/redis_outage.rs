//! A frozen Redis (SIGSTOP) costs a search nothing: the cache's circuit breaker stops asking it,
//! searches answer `cache: "bypass"` at about the latency of searches that skip the cache, and
//! caching resumes once Redis answers again (SIGCONT).

use std::time::{Duration, Instant};

use e2e::{Process, Redis, TempDir, post_json, start_gateway};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

/// Runs `count` searches for distinct queries; returns their cache states and median latency.
async fn searches(
    client: &reqwest::Client,
    gateway: &Process,
    label: &str,
    cache: &str,
    count: usize,
) -> (Vec<String>, Duration) {
    let mut states = Vec::new();
    let mut latencies = Vec::new();
    for i in 0..count {
        let body = json!({"query": format!("{label} query number {i}"), "top_k": 3, "cache": cache});
        let started = Instant::now();
        let (status, out) = post_json(client, gateway.url("/search"), body).await;
        latencies.push(started.elapsed());
        assert_eq!(status, 200, "{out}");
        states.push(out["cache"].as_str().unwrap().to_string());
    }
    latencies.sort();
    (states, latencies[count / 2])
}

#[tokio::test]
async fn a_frozen_redis_costs_searches_nothing_and_caching_resumes() {
    let redis = Redis::start();
    let data = TempDir::new("redis-outage");
    let gateway = start_gateway(&data, &["--redis-url", &redis.url(), "--redis-timeout-ms", "100"]);
    gateway.wait_ready(READY).await;
    let client = reqwest::Client::new();
    let documents: Vec<Value> =
        (0..20).map(|i| json!({"id": format!("p{i}"), "text": format!("profile {i} of a person")})).collect();
    let put = client.put(gateway.url("/collections/profiles/documents")).json(&json!({"documents": documents}));
    assert_eq!(put.send().await.unwrap().status(), 200);

    searches(&client, &gateway, "warm-up", "bypass", 10).await;
    let (_, no_cache) = searches(&client, &gateway, "uncached", "bypass", 30).await;
    redis.signal("STOP");
    let (states, frozen) = searches(&client, &gateway, "frozen", "use", 30).await;
    redis.signal("CONT");
    println!("median search latency: {no_cache:?} skipping the cache, {frozen:?} with Redis frozen");
    assert!(states.iter().all(|s| s == "bypass"), "{states:?}");
    // Without the breaker each search waited out three 100 ms commands (~300 ms more).
    assert!(frozen < no_cache + Duration::from_millis(60), "{frozen:?} vs {no_cache:?} with no cache");

    // Caching is back once a search repeated at once is a hit (while the breaker is open, both
    // are `bypass`; the first may already be a hit when an earlier round cached it).
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = json!({"query": "after the outage", "top_k": 3});
    loop {
        let (_, first) = post_json(&client, gateway.url("/search"), body.clone()).await;
        let (_, second) = post_json(&client, gateway.url("/search"), body.clone()).await;
        if second["cache"] == "hit" {
            break;
        }
        assert!(["bypass", "miss"].contains(&first["cache"].as_str().unwrap()), "{first}");
        assert!(Instant::now() < deadline, "caching never resumed: {first} {second}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gateway.logs().contains("caching resumes"), "{}", gateway.logs());
}
