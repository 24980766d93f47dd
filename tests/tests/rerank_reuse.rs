//! The reranker's work is never thrown away, end to end: real binaries, the int8 fixture
//! cross-encoder (whose scores would move with their batch-mates if the engine let them), the
//! in-process cache and a real redis-server, in-process and remote reranking. A reused answer
//! must be the fresh one to the bit; a changed text is rescored and nothing else is; a budget
//! that runs out keeps a rerank window and the background finishes the rest.

use std::collections::HashSet;
use std::time::Duration;

use e2e::{Process, Redis, TempDir, fixture, post_json as post, start_model_service};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
const QUERY: &str = "rust engineer who builds search";
const CANDIDATES: usize = 30;

/// A gateway on the int8 reranker fixture, with `extra` arguments (remote URLs win over it).
fn gateway(data: &TempDir, extra: &[&str]) -> Process {
    let (embed, rerank) = (fixture("tiny-e5"), fixture("tiny-reranker-int8"));
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str(), "--intra-op-threads", "1"];
    args.extend(["--embed-model-dir", embed.to_str().unwrap(), "--rerank-model-dir", rerank.to_str().unwrap()]);
    args.extend_from_slice(extra);
    Process::start("search-gateway", &args, &[])
}

fn profile(i: usize) -> (String, String) {
    let roles = ["Rust engineer", "Pastry chef", "Data scientist", "Search engineer", "Product designer"];
    let cities = ["Paris", "Lyon", "Berlin", "Lisbon", "Tokyo", "Madrid"];
    let skills = ["distributed systems", "sourdough", "ranking models", "Kubernetes", "typography", "ONNX"];
    let text = format!("{} in {}, {} and {}", roles[i % 5], cities[i % 6], skills[i % 6], skills[(i / 6) % 6]);
    (format!("p{i}"), text)
}

async fn upsert(client: &reqwest::Client, gw: &Process, documents: Vec<Value>) {
    let response = client.put(gw.url("/collections/profiles/documents")).json(&json!({"documents": documents}));
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

fn document(id: &str, text: &str, payload: Value) -> Value {
    json!({"id": id, "text": text, "payload": payload})
}

async fn search(client: &reqwest::Client, gw: &Process, cache: &str, candidates: usize) -> Value {
    let body =
        json!({"query": QUERY, "candidates": candidates, "top_k": candidates, "retrieval": "dense", "cache": cache});
    let (status, out) = post(client, gw.url("/search"), body.clone()).await;
    assert_eq!(status, 200, "{body} -> {out}");
    out
}

fn ids(out: &Value) -> Vec<String> {
    out["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

/// The hits with everything that ranks them: ids, order, and every score as JSON prints it (the
/// shortest text that reads back as the same f32, so equal text is equal bits).
fn ranking(out: &Value) -> Vec<Value> {
    out["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json!([h["id"], h["score"], h["vector_score"], h["rerank_score"]]))
        .collect()
}

fn assert_fresh(reused: &Value, fresh: &Value, what: &str) {
    assert_eq!(fresh["cache"], "bypass");
    assert_eq!(ranking(reused), ranking(fresh), "{what}: a reused answer differs from a fresh one");
}

/// Every (id, text) the reranker has scored for QUERY, to predict what the next search scores.
struct Scored(HashSet<(String, String)>);

impl Scored {
    /// The pairs of `out`'s candidates not scored before, given each id's current text.
    fn new_in(&mut self, out: &Value, text_of: &dyn Fn(&str) -> String) -> usize {
        ids(out).into_iter().filter(|id| self.0.insert((id.clone(), text_of(id)))).count()
    }
}

/// A write that leaves every candidate's text alone costs the reranker nothing; a changed text
/// is rescored and no other; every reused answer is a fresh one to the bit.
async fn reuse_across_writes(gw: &Process) {
    let client = reqwest::Client::new();
    let mut texts: Vec<(String, String)> = (0..60).map(profile).collect();
    upsert(&client, gw, texts.iter().map(|(id, t)| document(id, t, json!({"v": 1}))).collect()).await;
    let text_of = |texts: &[(String, String)]| {
        let texts = texts.to_vec();
        move |id: &str| texts.iter().find(|(i, _)| i == id).map(|(_, t)| t.clone()).unwrap()
    };
    let mut scored = Scored(HashSet::new());

    let first = search(&client, gw, "use", CANDIDATES).await;
    assert_eq!((first["rerank"].as_str(), first["cache"].as_str()), (Some("applied"), Some("miss")));
    assert_eq!(first["reranked"], json!({"window": CANDIDATES, "reused": 0, "scored": CANDIDATES}));
    scored.new_in(&first, &text_of(&texts));
    assert_fresh(&first, &search(&client, gw, "bypass", CANDIDATES).await, "first");

    // A payload-only write of a candidate: results are invalidated, its score is not.
    let top = ids(&first)[0].clone();
    let top_text = text_of(&texts)(&top);
    upsert(&client, gw, vec![document(&top, &top_text, json!({"v": 2}))]).await;
    let after_payload = search(&client, gw, "use", CANDIDATES).await;
    assert_eq!(after_payload["cache"], "miss", "the write invalidated the result");
    assert_eq!(after_payload["reranked"], json!({"window": CANDIDATES, "reused": CANDIDATES, "scored": 0}));
    assert_eq!(after_payload["hits"][0]["payload"], json!({"v": 2}));
    assert_fresh(&after_payload, &search(&client, gw, "bypass", CANDIDATES).await, "after a payload write");

    // New documents and a changed text: exactly the new (id, text) pairs among the candidates are scored.
    let changed = ids(&first)[1].clone();
    let position = texts.iter().position(|(id, _)| *id == changed).unwrap();
    texts[position].1 = format!("{}, now leading a Rust search team", texts[position].1);
    let mut writes = vec![document(&changed, &texts[position].1, json!({"v": 1}))];
    for i in 60..64 {
        let (id, text) = profile(i);
        writes.push(document(&id, &text, json!({"v": 1})));
        texts.push((id, text));
    }
    upsert(&client, gw, writes).await;
    let after_text = search(&client, gw, "use", CANDIDATES).await;
    let expected = scored.new_in(&after_text, &text_of(&texts));
    assert_eq!(after_text["reranked"]["scored"], expected, "{}", after_text["reranked"]);
    assert_eq!(after_text["reranked"]["reused"], CANDIDATES - expected);
    assert_fresh(&after_text, &search(&client, gw, "bypass", CANDIDATES).await, "after a text write");

    // "refresh" rescores every pair and keeps the result; a hit does no work.
    let refreshed = search(&client, gw, "refresh", CANDIDATES).await;
    assert_eq!(refreshed["reranked"], json!({"window": CANDIDATES, "reused": 0, "scored": CANDIDATES}));
    assert_eq!(ranking(&refreshed), ranking(&after_text));
    let hit = search(&client, gw, "use", CANDIDATES).await;
    assert_eq!(hit["cache"], "hit");
    assert_eq!(hit["reranked"], json!({"window": CANDIDATES, "reused": 0, "scored": 0}));

    // Cohere's route reuses the same scores (and adds its own).
    let documents: Vec<String> = (0..5).map(|i| profile(i).1).collect();
    let body = json!({"query": "pastry chef in Lyon", "documents": documents});
    let mut reused = Vec::new();
    for _ in 0..2 {
        let before = reused_pairs(gw).await;
        let (status, out) = post(&client, gw.url("/v2/rerank"), body.clone()).await;
        assert_eq!(status, 200, "{out}");
        reused.push(reused_pairs(gw).await - before);
    }
    assert_eq!(reused, vec![0.0, 5.0], "the second call reused all five");
}

async fn reused_pairs(gw: &Process) -> f64 {
    let text = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("gateway_rerank_pairs_total{kind=\"reused\"} ")?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn in_process_with_the_in_process_cache() {
    let data = TempDir::new("reuse-embedded");
    let gw = gateway(&data, &[]);
    gw.wait_ready(READY).await;
    reuse_across_writes(&gw).await;
}

#[tokio::test]
async fn with_rerank_service_and_redis() {
    let rerank =
        start_model_service("rerank-service", &fixture("tiny-reranker-int8"), &["--intra-op-threads", "1"], &[]);
    rerank.wait_ready(READY).await;
    let redis = Redis::start();
    let data = TempDir::new("reuse-remote");
    let (rerank_url, redis_url) = (rerank.url(""), redis.url());
    let gw = gateway(&data, &["--rerank-url", &rerank_url, "--redis-url", &redis_url]);
    gw.wait_ready(READY).await;
    // The score cache is keyed by the service's identity, learned from /info.
    let deadline = std::time::Instant::now() + READY;
    while !gw.logs().contains("remote engine identified") {
        assert!(std::time::Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reuse_across_writes(&gw).await;
    let keys = redis.cli(&["--scan", "--pattern", "sg:v1:score:*"]);
    assert!(keys.lines().count() >= CANDIDATES, "the scores are in Redis: {keys}");
}

/// A budget that runs out keeps the scored prefix as a rerank window; the rest is finished in the
/// background, and the next identical search is complete, and fresh to the bit.
#[tokio::test]
async fn a_budget_keeps_a_window_and_the_background_completes_it() {
    let rerank =
        start_model_service("rerank-service", &fixture("tiny-reranker-int8"), &["--intra-op-threads", "1"], &[]);
    rerank.wait_ready(READY).await;
    let redis = Redis::start();
    let data = TempDir::new("reuse-budget");
    let (rerank_url, redis_url) = (rerank.url(""), redis.url());
    let gw = gateway(&data, &["--rerank-url", &rerank_url, "--redis-url", &redis_url, "--rerank-budget-ms", "500"]);
    gw.wait_ready(READY).await;
    while !gw.logs().contains("remote engine identified") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = reqwest::Client::new();
    upsert(&client, &gw, (0..60).map(profile).map(|(id, t)| document(&id, &t, json!({}))).collect()).await;
    // The first 10 candidates' scores are known; then the reranker freezes.
    let ten = search(&client, &gw, "use", 10).await;
    assert_eq!(ten["rerank"], "applied");
    rerank.signal("STOP");

    let partial = search(&client, &gw, "use", CANDIDATES).await;
    assert_eq!(partial["rerank"], "partial", "{partial}");
    assert_eq!(partial["reranked"], json!({"window": 10, "reused": 10, "scored": 0}));
    let hits = partial["hits"].as_array().unwrap();
    assert_eq!(ranking(&json!({"hits": hits[..10].to_vec()})), ranking(&ten), "the window reranks its 10 candidates");
    let rest = hits[10..].to_vec();
    assert!(rest.iter().all(|h| h.get("rerank_score").is_none() && h["score"] == h["vector_score"]), "{partial}");
    assert!(rest.windows(2).all(|w| w[0]["vector_score"].as_f64() >= w[1]["vector_score"].as_f64()));
    let vector: Vec<String> = ids(&search_without_rerank(&client, &gw).await);
    assert_eq!(ids(&json!({"hits": rest})), vector[10..], "after the window, retrieval order");
    assert_eq!(search(&client, &gw, "use", CANDIDATES).await["cache"], "miss", "a partial answer is not cached");

    rerank.signal("CONT");
    // The chunks the partial searches had in flight land, and the background scores the rest.
    let deadline = std::time::Instant::now() + READY;
    while redis.cli(&["--scan", "--pattern", "sg:v1:score:*"]).lines().count() < CANDIDATES {
        assert!(std::time::Instant::now() < deadline, "the background did not finish: {}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let complete = search(&client, &gw, "use", CANDIDATES).await;
    assert_eq!(complete["rerank"], "applied");
    assert_eq!(complete["reranked"], json!({"window": CANDIDATES, "reused": CANDIDATES, "scored": 0}));
    assert_fresh(&complete, &search(&client, &gw, "bypass", CANDIDATES).await, "after the background");
}

async fn search_without_rerank(client: &reqwest::Client, gw: &Process) -> Value {
    let body =
        json!({"query": QUERY, "candidates": CANDIDATES, "top_k": CANDIDATES, "retrieval": "dense", "rerank": false});
    post(client, gw.url("/search"), body).await.1
}
