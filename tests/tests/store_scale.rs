//! The embedded store as it grows and is rewritten: the optimizer builds an HNSW index that
//! finds what a full scan finds (real MiniLM embeddings of Cranfield), and under rewrites and
//! deletes the data directory levels off, searches stay right, and a `kill -9` in the middle of
//! an optimization loses no acknowledged write.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{Process, TempDir, binary, fixture, root, start_gateway_with_envs};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// The disk a directory takes, as `du` counts it (allocated blocks).
fn disk_bytes(dir: &Path) -> u64 {
    let out = Command::new("du").args(["-s", "-B1"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().parse().unwrap()
}

/// Waits until the collection is optimized: no optimization running, twice in a row, a second
/// apart (the optimizer starts half a second after the last write).
async fn wait_optimized(client: &reqwest::Client, gateway: &Process, collection: &str) -> Value {
    let started = Instant::now();
    let mut quiet = 0;
    loop {
        let info: Value =
            client.get(gateway.url(&format!("/collections/{collection}"))).send().await.unwrap().json().await.unwrap();
        quiet = if info["optimizing"] == json!(false) { quiet + 1 } else { 0 };
        if quiet == 3 {
            return info;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "still optimizing after 5 minutes: {info}");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

async fn is_optimizing(client: &reqwest::Client, gateway: &Process) -> bool {
    let info: Value = client.get(gateway.url("/collections/level")).send().await.unwrap().json().await.unwrap();
    info["optimizing"] == json!(true)
}

async fn search(client: &reqwest::Client, gateway: &Process, body: Value) -> Vec<String> {
    let response = client.post(gateway.url("/search")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{body}");
    let found: Value = response.json().await.unwrap();
    found["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_optimization_the_hnsw_index_finds_what_an_exact_search_finds_on_real_text() {
    let minilm = root().join("models/real/all-minilm-l6-v2");
    assert!(minilm.join("model.onnx").exists(), "{} is missing: run scripts/setup.sh", minilm.display());
    let cranfield = root().join("../shared/data/ir/cranfield");
    let data = TempDir::new("store-hnsw");
    // 1,400 documents x 384 floats is 2.1 MB: a 200 KB threshold has them indexed.
    let config = data.path().join("collections.toml");
    std::fs::write(&config, "[cranfield.index]\nindexing_threshold_kb = 200\n").unwrap();
    let corpus = data.path().join("corpus.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(cranfield.join("corpus.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let doc: Value = serde_json::from_str(line).unwrap();
            json!({"id": doc["_id"], "text": format!("{} {}", doc["title"].as_str().unwrap(), doc["text"].as_str().unwrap())})
                .to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let (minilm, rerank, config_arg) = (minilm.to_str().unwrap(), fixture("tiny-reranker"), config.to_str().unwrap());
    let common = ["--data-dir", data.to_str(), "--embed-model-dir", minilm, "--collections-config", config_arg];
    let status = Command::new(binary("search-gateway"))
        .args(["ingest", "--collection", "cranfield", "--input", corpus.to_str().unwrap(), "--progress-secs", "0"])
        .args(common)
        .status()
        .unwrap();
    assert!(status.success());
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--rerank-model-dir", rerank.to_str().unwrap()];
    args.extend(common);
    let gateway = Process::start("search-gateway", &args, &[]);
    gateway.wait_ready(READY).await;
    let client = client();
    let info = wait_optimized(&client, &gateway, "cranfield").await;
    assert_eq!(info["points_count"], 1400, "{info}");
    // Qdrant's count: dense and sparse vectors in an index (documents without words have no
    // sparse vector); the comparison below is what shows the dense index at work.
    assert!(info["indexed_vectors"].as_u64().unwrap() >= 1400, "the vectors in an index: {info}");

    let queries = std::fs::read_to_string(cranfield.join("queries.jsonl")).unwrap();
    let (mut same, mut total, mut same_top) = (0, 0, 0);
    for line in queries.lines() {
        let query: Value = serde_json::from_str(line).unwrap();
        let body = |exact: bool| {
            json!({"query": query["text"], "collection": "cranfield", "top_k": 10, "candidates": 10, "rerank": false,
                   "retrieval": "dense", "exact": exact, "cache": "bypass"})
        };
        let exact = search(&client, &gateway, body(true)).await;
        let indexed = search(&client, &gateway, body(false)).await;
        assert_eq!(exact.len(), 10);
        same += indexed.iter().filter(|id| exact.contains(id)).count();
        same_top += usize::from(indexed[0] == exact[0]);
        total += exact.len();
    }
    let recall = same as f64 / total as f64;
    println!(
        "225 Cranfield queries: the index's top 10 hold {recall:.4} of the exact top 10; same first hit on {same_top}"
    );
    assert!(recall >= 0.99, "recall@10 of the index against exact search: {recall}");
    assert!(same_top >= 220, "the same first hit on {same_top} of 225 queries");
}

/// The text of document `i` as round `round` wrote it, with a word no other version has.
fn text(i: usize, round: usize) -> String {
    format!("profile {i} written in round {round} marker{i}x{round}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_and_deletes_level_the_disk_off_and_a_kill_during_optimization_loses_nothing() {
    const DOCS: usize = 2000;
    const ROUNDS: usize = 10;
    let data = TempDir::new("store-level");
    // Small WAL files so that pruning shows at this size; a 64 KiB journal bound so that
    // checkpoints (and the ones put off by optimizations) happen all along.
    // An HNSW index from 10 KB of vectors, built with a wide beam, gives the optimizer work long
    // enough to be killed in.
    let config = data.path().join("collections.toml");
    let index = "[level.index]\nindexing_threshold_kb = 10\nhnsw_m = 64\nhnsw_ef_construct = 512\n";
    std::fs::write(&config, index).unwrap();
    let args =
        ["--wal-file-kib", "64", "--journal-checkpoint-kib", "64", "--collections-config", config.to_str().unwrap()];
    let envs = [("RUST_LOG", "info,search_gateway::store=debug")];
    let mut gateway = start_gateway_with_envs(&data, &args, &envs);
    gateway.wait_ready(READY).await;
    let client = client();
    let mut sizes = Vec::new();
    let (mut killed_while_optimizing, mut kill_attempts) = (false, 0);
    for round in 0..ROUNDS {
        // Every document rewritten, and a tenth of them (another tenth each round) deleted.
        for batch in (0..DOCS).collect::<Vec<_>>().chunks(200) {
            let documents: Vec<Value> =
                batch.iter().map(|&i| json!({"id": format!("p{i}"), "text": text(i, round)})).collect();
            let response = client
                .put(gateway.url("/collections/level/documents"))
                .json(&json!({ "documents": documents }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        for i in (round % 10..DOCS).step_by(10) {
            let response =
                client.delete(gateway.url(&format!("/collections/level/documents/p{i}"))).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
        // Searches right meanwhile: the newest version by its own word, the older one gone.
        for i in [1, 7, 999] {
            let body = |round: usize| {
                json!({"query": format!("marker{i}x{round}"), "collection": "level", "retrieval": "sparse",
                       "rerank": false, "top_k": 1, "candidates": 5, "cache": "bypass"})
            };
            let deleted = i % 10 == round % 10;
            let expected = if deleted { Vec::<String>::new() } else { vec![format!("p{i}")] };
            assert_eq!(search(&client, &gateway, body(round)).await, expected, "round {round}, p{i}");
            if round > 0 {
                assert_eq!(search(&client, &gateway, body(round - 1)).await, Vec::<String>::new(), "round {round}");
            }
        }
        if round == ROUNDS / 2 {
            // The optimizer runs once the writes settle: kill it in the middle of its work, after
            // rewriting the documents to give it some (the next rounds rewrite them again).
            while !killed_while_optimizing {
                kill_attempts += 1;
                assert!(kill_attempts <= 20, "no kill landed inside an optimization; logs:\n{}", gateway.logs());
                let documents: Vec<Value> = (0..500)
                    .filter(|i| i % 10 != round % 10)
                    .map(|i| json!({"id": format!("p{i}"), "text": text(i, 100 + kill_attempts)}))
                    .collect();
                let response = client
                    .put(gateway.url("/collections/level/documents"))
                    .json(&json!({ "documents": documents }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let started = Instant::now();
                while !is_optimizing(&client, &gateway).await {
                    assert!(started.elapsed() < Duration::from_secs(30), "no optimization within 30 s");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                gateway.kill_9();
                let logs = gateway.logs();
                let started = logs.rfind("optimizing").unwrap();
                killed_while_optimizing =
                    !logs[started..].contains("optimized") && !logs[started..].contains("nothing to optimize");
                gateway = start_gateway_with_envs(&data, &args, &envs);
                gateway.wait_ready(READY).await;
            }
        }
        wait_optimized(&client, &gateway, "level").await;
        sizes.push(disk_bytes(data.path()));
    }
    // Every acknowledged write is there, every acknowledged delete is not.
    let last = ROUNDS - 1;
    for i in 0..DOCS {
        let response = client.get(gateway.url(&format!("/collections/level/documents/p{i}"))).send().await.unwrap();
        if i % 10 == last % 10 {
            assert_eq!(response.status(), 404, "p{i} was deleted");
        } else {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["text"], json!(text(i, last)), "p{i}");
        }
    }
    let info: Value = client.get(gateway.url("/collections/level")).send().await.unwrap().json().await.unwrap();
    println!(
        "data directory after each round (bytes): {sizes:?}; a kill landed inside an optimization at attempt {kill_attempts}"
    );
    println!("collection at the end: {info}");
    assert_eq!(info["points_count"], json!(DOCS - DOCS / 10), "{info}");
    // Levelled off: the last rounds take no more than the early ones (each round writes about as
    // much WAL and journal as the whole collection holds).
    let early = *sizes[1..4].iter().max().unwrap();
    let late = *sizes[ROUNDS - 4..].iter().max().unwrap();
    assert!(late <= early * 3 / 2, "the data directory keeps growing: {sizes:?}");
}
