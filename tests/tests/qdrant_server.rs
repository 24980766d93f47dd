//! The gateway against a real Qdrant server (the binary `QDRANT_BIN` names): everything it does
//! with qdrant-edge, with the same answers; faults; and a 3-node cluster losing a node. Without
//! `QDRANT_BIN` these tests are ignored with `e2e::NO_QDRANT_SERVER` as the reason (tests/build.rs).

use std::time::{Duration, Instant};

use e2e::{
    NO_QDRANT_SERVER, Process, QDRANT_API_KEY, Qdrant, TempDir, fixture, post_json, root, run_to_exit, start_gateway,
};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

fn server_gateway(data: &TempDir, qdrant: &Qdrant, extra: &[&str]) -> Process {
    let url = qdrant.grpc_url();
    let mut args = vec!["--qdrant-url", url.as_str(), "--qdrant-api-key", QDRANT_API_KEY];
    args.extend_from_slice(extra);
    start_gateway(data, &args)
}

fn people() -> Value {
    let rows = [
        ("p1", "Rust engineer in Paris building search engines", "Paris", 34, 2.35, 48.85, "2021-03-01T00:00:00Z"),
        ("p2", "Pastry chef in Lyon", "Lyon", 41, 4.83, 45.76, "2023-06-15T12:00:00Z"),
        ("p3", "Data scientist in Berlin, machine learning", "Berlin", 29, 13.40, 52.52, "2024-01-10T08:30:00Z"),
        ("p4", "Backend developer (Go, Rust) in Paris", "Paris", 25, 2.29, 48.86, "2022-11-20T00:00:00Z"),
        ("p5", "Инженер-программист в Москве", "Moscow", 38, 37.62, 55.75, "2020-05-05T00:00:00Z"),
        ("p6", "東京のソフトウェアエンジニア", "Tokyo", 31, 139.69, 35.69, "2025-02-01T00:00:00Z"),
    ];
    let documents: Vec<Value> = rows
        .iter()
        .map(|(id, text, city, age, lon, lat, joined)| {
            let payload = json!({"city": city, "age": age, "location": {"lon": lon, "lat": lat}, "joined": joined});
            json!({"id": id, "text": text, "payload": payload})
        })
        .collect();
    json!({ "documents": documents })
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn ids(out: &Value) -> Vec<String> {
    out["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

/// Every write and read the gateway offers, on one backend; returns the ids of a set of
/// searches (filters of every kind included) to compare across backends.
async fn exercise(gateway: &Process, backend: &str) -> Vec<Vec<String>> {
    let client = reqwest::Client::new();
    let docs = gateway.url("/collections/people/documents");
    let (status, out) = send(client.put(&docs).json(&people())).await;
    assert_eq!((status, &out["upserted"]), (200, &json!(6)), "created on first upsert: {out}");
    let (_, info) = send(client.get(gateway.url("/collections/people"))).await;
    assert_eq!((info["points_count"].as_u64(), info["backend"].as_str()), (Some(6), Some(backend)), "{info}");
    let (_, out) = send(client.put(&docs).json(&people())).await;
    assert_eq!((&out["upserted"], &out["unchanged"]), (&json!(0), &json!(6)), "unchanged are skipped: {out}");

    // Generations: a hit, then a write makes the same search a miss.
    let query = json!({"query": "software engineer", "collection": "people", "top_k": 3});
    let (_, first) = post_json(&client, gateway.url("/search"), query.clone()).await;
    let (_, second) = post_json(&client, gateway.url("/search"), query.clone()).await;
    assert_eq!((first["cache"].as_str(), second["cache"].as_str()), (Some("miss"), Some("hit")));
    let changed = json!({"documents": [{"id": "p2", "text": "Pastry chef in Lyon and Paris",
                                        "payload": people()["documents"][1]["payload"]}]});
    let (_, out) = send(client.put(&docs).json(&changed)).await;
    assert_eq!(out["upserted"], 1, "a replaced document: {out}");
    let (_, third) = post_json(&client, gateway.url("/search"), query.clone()).await;
    assert_eq!(third["cache"], "miss", "the write bumped the generation");
    let (_, p2) = send(client.get(format!("{docs}/p2"))).await;
    assert_eq!(p2["text"], "Pastry chef in Lyon and Paris");

    // Delete (idempotent), then the document is gone.
    for _ in 0..2 {
        let (status, _) = send(client.delete(format!("{docs}/p6"))).await;
        assert_eq!(status, 200);
    }
    let (status, gone) = send(client.get(format!("{docs}/p6"))).await;
    assert_eq!((status, gone["code"].as_str()), (404, Some("unknown_document")));
    let (_, info) = send(client.get(gateway.url("/collections/people"))).await;
    assert_eq!(info["points_count"], 5);

    let filters = [
        json!({"must": [{"key": "city", "match": {"value": "Paris"}}]}),
        json!({"must": [{"key": "age", "range": {"gte": 30}}]}),
        json!({"must": [{"key": "location", "geo_radius": {"center": {"lon": 2.35, "lat": 48.85}, "radius": 50000.0}}]}),
        json!({"must": [{"key": "location", "geo_bounding_box":
            {"top_left": {"lon": 0.0, "lat": 56.0}, "bottom_right": {"lon": 15.0, "lat": 45.0}}}]}),
        json!({"must": [{"key": "joined", "range": {"gte": "2022-01-01T00:00:00Z"}}]}),
        json!({"must": [{"key": "city", "match": {"any": ["Paris", "Berlin"]}}], "must_not": [{"key": "age", "range": {"lt": 26}}]}),
    ];
    let mut found = Vec::new();
    for text in ["rust engineer", "machine learning", "chef"] {
        let out = post_json(&client, gateway.url("/search"), json!({"query": text, "collection": "people"})).await.1;
        found.push(ids(&out));
        for filter in &filters {
            let body = json!({"query": text, "collection": "people", "filter": filter, "cache": "bypass"});
            let (status, out) = post_json(&client, gateway.url("/search"), body).await;
            assert_eq!(status, 200, "{filter}: {out}");
            found.push(ids(&out));
        }
    }
    let mut paris = found[1].clone();
    paris.sort();
    assert_eq!(paris, ["p1", "p4"], "keyword filter on {backend}");
    let mut near_paris = found[3].clone();
    near_paris.sort();
    assert_eq!(near_paris, ["p1", "p4"], "geo radius on {backend}");
    let mut recent = found[5].clone();
    recent.sort();
    assert_eq!(recent, ["p2", "p3", "p4"], "datetime range on {backend}");
    found
}

#[cfg_attr(not(qdrant_server), ignore = "skipped: no Qdrant server (set QDRANT_BIN=/path/to/qdrant)")]
#[tokio::test]
async fn the_server_backend_does_what_qdrant_edge_does_with_the_same_results() {
    let qdrant = Qdrant::start();
    let (server_data, edge_data) = (TempDir::new("qdrant-server"), TempDir::new("qdrant-edge-twin"));
    let server = server_gateway(&server_data, &qdrant, &[]);
    let edge = start_gateway(&edge_data, &[]);
    server.wait_ready(READY).await;
    edge.wait_ready(READY).await;
    let from_server = exercise(&server, "qdrant").await;
    let from_edge = exercise(&edge, "qdrant-edge").await;
    assert_eq!(from_server, from_edge, "the same ids in the same order from both backends");
    println!("{} searches, the same ids in the same order on both backends", from_server.len());

    // A collection of another dimension: 409.
    let client = reqwest::Client::new();
    let create = client
        .put(qdrant.http_url("/collections/eight"))
        .header("api-key", QDRANT_API_KEY)
        .json(&json!({"vectors": {"size": 8, "distance": "Cosine"}}));
    assert_eq!(create.send().await.unwrap().status(), 200);
    let (status, out) = send(
        client.put(server.url("/collections/eight/documents")).json(&json!({"documents": [{"id": "a", "text": "x"}]})),
    )
    .await;
    assert_eq!((status, out["code"].as_str()), (409, Some("dimension_mismatch")), "{out}");

    // ingest, in process against the server and through the gateway.
    let work = TempDir::new("qdrant-ingest");
    let input = work.path().join("corpus.jsonl");
    let lines: Vec<String> =
        (0..150).map(|i| json!({"id": format!("d{i}"), "text": format!("document number {i}")}).to_string()).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (embed, url, path) = (fixture("tiny-e5"), qdrant.grpc_url(), input.to_str().unwrap().to_string());
    let local =
        ["ingest", "--collection", "bulk", "--input", &path, "--qdrant-url", &url, "--qdrant-api-key", QDRANT_API_KEY];
    let args: Vec<&str> = local.into_iter().chain(["--embed-model-dir", embed.to_str().unwrap()]).collect();
    let (status, stderr) = run_to_exit("search-gateway", &args, &[("RUST_LOG", "warn")]);
    assert!(status.success() && stderr.contains("embedded and upserted 150"), "{stderr}");
    let through = server.url("");
    let remote = ["ingest", "--collection", "bulk2", "--input", &path, "--gateway-url", &through];
    let (status, stderr) = run_to_exit("search-gateway", &remote, &[("RUST_LOG", "warn")]);
    assert!(status.success() && stderr.contains("embedded and upserted 150"), "{stderr}");
    for collection in ["bulk", "bulk2"] {
        let (_, info) = send(client.get(server.url(&format!("/collections/{collection}")))).await;
        assert_eq!(info["points_count"], 150, "{collection}: {info}");
    }
}

#[cfg_attr(not(qdrant_server), ignore = "skipped: no Qdrant server (set QDRANT_BIN=/path/to/qdrant)")]
#[tokio::test]
async fn a_refused_key_a_killed_server_and_a_restart() {
    let mut qdrant = Qdrant::start();
    // A wrong key: one clear line at start-up, non-zero exit.
    let (embed, rerank) = (fixture("tiny-e5"), fixture("tiny-reranker"));
    let url = qdrant.grpc_url();
    let args = ["--port", "0", "--qdrant-url", &url, "--qdrant-api-key", "not-the-key"];
    let args: Vec<&str> = args
        .into_iter()
        .chain(["--embed-model-dir", embed.to_str().unwrap(), "--rerank-model-dir", rerank.to_str().unwrap()])
        .collect();
    let (status, stderr) = run_to_exit("search-gateway", &args, &[("RUST_LOG", "warn")]);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("refused the API key (QDRANT_API_KEY)"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.contains("search-gateway:")).count(), 1, "{stderr}");

    let data = TempDir::new("qdrant-faults");
    let gateway = server_gateway(&data, &qdrant, &["--qdrant-timeout-ms", "2000"]);
    gateway.wait_ready(READY).await;
    let client = reqwest::Client::new();
    let (status, _) = send(client.put(gateway.url("/collections/people/documents")).json(&people())).await;
    assert_eq!(status, 200);

    // Killed mid-traffic: 503 vector_store_unavailable, nothing else; back without a gateway restart.
    let search = |i: usize| json!({"query": format!("engineer {i}"), "collection": "people", "cache": "bypass"});
    let mut codes = Vec::new();
    for i in 0..40 {
        if i == 10 {
            qdrant.kill();
        }
        if i == 30 {
            qdrant.restart();
        }
        let (status, out) = post_json(&client, gateway.url("/search"), search(i)).await;
        codes.push(status);
        if status != 200 {
            assert_eq!((status, out["code"].as_str()), (503, Some("vector_store_unavailable")), "{out}");
        }
    }
    assert!(codes[..10].iter().all(|&c| c == 200) && codes[10..30].iter().all(|&c| c == 503), "{codes:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, out) = post_json(&client, gateway.url("/search"), search(99)).await;
        if status == 200 {
            assert_eq!(out["hits"].as_array().unwrap().len(), 6, "Qdrant kept the data across its restart");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {status} {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg_attr(not(qdrant_server), ignore = "skipped: no Qdrant server (set QDRANT_BIN=/path/to/qdrant)")]
#[tokio::test]
async fn a_three_node_cluster_keeps_answering_when_a_node_dies() {
    let mut nodes = Qdrant::start_cluster(3);
    let data = TempDir::new("qdrant-cluster");
    let layout = ["--qdrant-shards", "3", "--qdrant-replication-factor", "2", "--qdrant-write-consistency", "1"];
    let gateway = server_gateway(&data, &nodes[0], &layout);
    gateway.wait_ready(READY).await;
    let client = reqwest::Client::new();
    let documents: Vec<Value> = (0..60)
        .map(|i| json!({"id": format!("m{i}"), "text": format!("member {i} works on topic {}", i % 7)}))
        .collect();
    let put = client.put(gateway.url("/collections/members/documents")).json(&json!({"documents": documents}));
    let (status, out) = send(put).await;
    assert_eq!(status, 200, "{out}");

    let cluster: Value = client
        .get(nodes[0].http_url("/collections/members/cluster"))
        .header("api-key", QDRANT_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = &cluster["result"];
    let replicas = result["local_shards"].as_array().unwrap().len() + result["remote_shards"].as_array().unwrap().len();
    assert_eq!((result["shard_count"].as_u64(), replicas), (Some(3), 6), "3 shards x 2 copies: {cluster}");

    let queries: Vec<Value> = (0..7)
        .map(|t| json!({"query": format!("topic {t}"), "collection": "members", "top_k": 5, "cache": "bypass"}))
        .collect();
    let mut before = Vec::new();
    for query in &queries {
        let (status, out) = post_json(&client, gateway.url("/search"), query.clone()).await;
        assert_eq!(status, 200, "{out}");
        before.push(ids(&out));
    }
    nodes[2].kill();
    let (mut answered, started) = (0, Instant::now());
    for round in 0..3 {
        for (query, expected) in queries.iter().zip(&before) {
            let (status, out) = post_json(&client, gateway.url("/search"), query.clone()).await;
            assert_eq!(status, 200, "round {round} with a node down: {out}");
            assert_eq!(&ids(&out), expected, "the same results with a node down");
            answered += 1;
        }
    }
    println!("{answered} searches answered identically with 1 of 3 nodes killed ({:?})", started.elapsed());
    // Writes go on too (one acknowledging copy is enough).
    let put = client
        .put(gateway.url("/collections/members/documents"))
        .json(&json!({"documents": [{"id": "late", "text": "joined while a node was down"}]}));
    assert_eq!(send(put).await.0, 200);
}

/// Runs with or without a server: every test that starts one is ignored without it, with the
/// reason `scripts/test.sh` counts (an `ignore` attribute takes a literal, not the constant).
#[test]
fn every_qdrant_server_test_is_skipped_by_name_without_a_server() {
    let attribute = format!("#[cfg_attr(not(qdrant_server), ignore = \"{NO_QDRANT_SERVER}\")]");
    let mut guarded = 0;
    // Test files, and the modules of tests that are a folder (tests/tests/sync/).
    let mut files = vec![root().join("tests/tests")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        // Each test function: the line above its `#[tokio::test]`, and its body.
        for (at, _) in source.match_indices("\n#[tokio::test") {
            let above = source[..at].lines().last().unwrap_or_default();
            let body = source[at + 1..].split("\n}\n").next().unwrap();
            if body.contains("Qdrant::start") {
                assert_eq!(above, attribute, "{}: a test that starts a Qdrant server", path.display());
                guarded += 1;
            }
        }
    }
    assert_eq!(guarded, 4, "the Qdrant-server tests (README and scripts/test.sh say how many)");
}
