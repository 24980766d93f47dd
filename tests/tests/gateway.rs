//! search-gateway end to end: the real binaries on port 0, real ONNX Runtime on the tiny fixtures,
//! real qdrant-edge on a temp dir, a real redis-server, and real embed/rerank services.

use std::time::Duration;

use e2e::{Process, Redis, TempDir, fixture, free_port, post_json as post, run_to_exit, start_model_service};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

fn gateway(data: &TempDir, extra: &[&str]) -> Process {
    e2e::start_gateway(data, extra)
}

fn profiles() -> Value {
    let rows = [
        ("p1", "Rust engineer in Paris building search engines", "Paris", 34),
        ("p2", "Pastry chef in Lyon", "Lyon", 41),
        ("p3", "Data scientist in Berlin, machine learning", "Berlin", 29),
        ("p4", "Backend developer (Go, Rust) in Paris", "Paris", 25),
        ("p5", "Инженер-программист в Москве", "Moscow", 38),
        ("p6", "東京のソフトウェアエンジニア", "Tokyo", 31),
    ];
    let documents: Vec<Value> = rows
        .iter()
        .map(|(id, text, city, age)| json!({"id": id, "text": text, "payload": {"city": city, "age": age}}))
        .collect();
    json!({ "documents": documents })
}

async fn upsert(client: &reqwest::Client, gateway: &Process, collection: &str, body: Value) -> Value {
    let (status, out) = put(client, gateway.url(&format!("/collections/{collection}/documents")), body).await;
    assert_eq!(status, 200, "{out}");
    out
}

/// PUTs `body` as JSON; returns the status and the JSON answer.
async fn put(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.put(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn search(client: &reqwest::Client, gateway: &Process, body: Value) -> Value {
    let (status, out) = post(client, gateway.url("/search"), body.clone()).await;
    assert_eq!(status, 200, "{body} -> {out}");
    out
}

fn ids(out: &Value) -> Vec<String> {
    out["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok()).unwrap_or(0.0)
}

/// Vector order: no rerank scores, scores are the vector scores, best first.
fn assert_vector_order(out: &Value) {
    let hits = out["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    for hit in hits {
        assert!(hit.get("rerank_score").is_none(), "{hit}");
        assert_eq!(hit["score"], hit["vector_score"]);
    }
    for pair in hits.windows(2) {
        assert!(pair[0]["vector_score"].as_f64() >= pair[1]["vector_score"].as_f64());
    }
}

#[tokio::test]
async fn embedded_mode_searches_caches_and_invalidates() {
    let data = TempDir::new("gateway-embedded");
    let gw = gateway(&data, &["--max-candidates", "20", "--max-upsert-documents", "10"]);
    gw.wait_ready(READY).await;
    let client = reqwest::Client::new();
    let out = upsert(&client, &gw, "profiles", profiles()).await;
    assert_eq!(out, json!({"collection": "profiles", "upserted": 6, "unchanged": 0}));
    let again = upsert(&client, &gw, "profiles", profiles()).await;
    assert_eq!(
        (again["upserted"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(6)),
        "unchanged documents are skipped"
    );
    let info: Value = client.get(gw.url("/collections/profiles")).send().await.unwrap().json().await.unwrap();
    let described = ["name", "points_count", "dimension", "distance", "backend", "sparse"].map(|k| info[k].clone());
    let expected = json!(["profiles", 6, 32, "cosine", "qdrant-edge", true]);
    assert_eq!(json!(described), expected, "{info}");
    // Six points stay in one plain segment (below the indexing threshold); 6 x 32 floats in RAM.
    assert_eq!((info["segments"].as_u64(), info["ram_bytes"].as_u64()), (Some(1), Some(6 * 32 * 4)), "{info}");
    assert!(info["disk_bytes"].as_u64().unwrap() > 0 && info["optimizing"].is_boolean(), "{info}");
    // BM25 finds the words, whatever the (random-weight) embedder thinks; hybrid fuses both.
    let sparse = search(&client, &gw, json!({"query": "pastry LYON", "retrieval": "sparse", "rerank": false})).await;
    assert_eq!(sparse["retrieval"], "sparse");
    assert_eq!(ids(&sparse), ["p2"], "only the document with the words");
    let russian = search(&client, &gw, json!({"query": "москве", "retrieval": "sparse", "rerank": false})).await;
    assert_eq!(russian["hits"][0]["id"], "p5", "Cyrillic words, case-folded");
    let hybrid = search(&client, &gw, json!({"query": "pastry chef", "retrieval": "hybrid", "rerank": false})).await;
    assert_eq!((hybrid["retrieval"].as_str(), hybrid["hits"].as_array().map(Vec::len)), (Some("hybrid"), Some(6)));
    let default = search(&client, &gw, json!({"query": "pastry chef", "rerank": false})).await;
    assert_eq!((default["retrieval"].as_str(), &default["hits"]), (Some("hybrid"), &hybrid["hits"]), "the default");
    let dense = search(&client, &gw, json!({"query": "pastry chef", "retrieval": "dense", "rerank": false})).await;
    assert_eq!(dense["retrieval"], "dense");

    // Miss, then hit with the same hits; whitespace does not make another query.
    let query = json!({"query": "rust engineer", "top_k": 3, "candidates": 6});
    let first = search(&client, &gw, query.clone()).await;
    assert_eq!((first["cache"].as_str(), first["rerank"].as_str()), (Some("miss"), Some("applied")));
    let hits = first["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    for pair in hits.windows(2) {
        assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64(), "sorted by rerank score");
    }
    for hit in hits {
        assert_eq!(hit["score"], hit["rerank_score"]);
        assert!(hit["payload"]["city"].is_string() && hit["payload"].get("_text").is_none(), "{hit}");
    }
    let timings = &first["timings_ms"];
    for stage in ["cache", "embed", "search", "rerank", "total"] {
        assert!(timings[stage].as_f64().unwrap() >= 0.0, "{timings}");
    }
    let second = search(&client, &gw, json!({"query": "  rust   engineer ", "top_k": 3, "candidates": 6})).await;
    assert_eq!(second["cache"], "hit");
    assert_eq!(second["hits"], first["hits"]);
    let bypass =
        search(&client, &gw, json!({"query": "rust engineer", "top_k": 3, "candidates": 6, "cache": "bypass"})).await;
    assert_eq!((bypass["cache"].as_str(), &bypass["hits"]), (Some("bypass"), &first["hits"]));
    let refresh =
        search(&client, &gw, json!({"query": "rust engineer", "top_k": 3, "candidates": 6, "cache": "refresh"})).await;
    assert_eq!(refresh["cache"], "miss");
    assert_eq!(search(&client, &gw, query.clone()).await["cache"], "hit");

    // Every parameter that changes the result is in the key.
    let no_rerank =
        search(&client, &gw, json!({"query": "rust engineer", "top_k": 3, "candidates": 6, "rerank": false})).await;
    assert_eq!((no_rerank["cache"].as_str(), no_rerank["rerank"].as_str()), (Some("miss"), Some("skipped")));
    assert_vector_order(&no_rerank);
    let paris = json!({"must": [{"key": "city", "match": {"value": "Paris"}}]});
    let filtered = search(&client, &gw, json!({"query": "rust engineer", "filter": paris})).await;
    assert_eq!(filtered["cache"], "miss");
    let mut found = ids(&filtered);
    found.sort();
    assert_eq!(found, ["p1", "p4"]);
    let range = json!({"must": [{"key": "age", "range": {"lt": 30}}]});
    let mut young = ids(&search(&client, &gw, json!({"query": "developer", "filter": range})).await);
    young.sort();
    assert_eq!(young, ["p3", "p4"]);

    // An upsert invalidates the collection's results; the new document is found.
    let everything = json!({"query": "rust engineer", "top_k": 10, "candidates": 10});
    assert_eq!(ids(&search(&client, &gw, everything.clone()).await).len(), 6);
    assert_eq!(search(&client, &gw, everything.clone()).await["cache"], "hit");
    let p7 = json!({"documents": [{"id": "p7", "text": "rust engineer", "payload": {"city": "Nice"}}]});
    upsert(&client, &gw, "profiles", p7).await;
    let after_upsert = search(&client, &gw, everything.clone()).await;
    assert_eq!(after_upsert["cache"], "miss");
    assert!(ids(&after_upsert).contains(&"p7".to_string()), "{after_upsert}");
    assert_eq!(search(&client, &gw, query.clone()).await["cache"], "miss", "every result of the collection");
    assert_eq!(search(&client, &gw, everything.clone()).await["cache"], "hit");
    // So does a delete.
    let response = client.delete(gw.url("/collections/profiles/documents/p7")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let after_delete = search(&client, &gw, everything.clone()).await;
    assert_eq!(after_delete["cache"], "miss");
    assert_eq!(ids(&after_delete).len(), 6);
    assert!(!ids(&after_delete).contains(&"p7".to_string()), "{after_delete}");
    let info: Value = client.get(gw.url("/collections/profiles")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["points_count"], 6);

    // Bad input.
    let errors = [
        (json!({"query": " "}), 422, "empty_query"),
        (json!({"query": "x", "top_k": 7, "candidates": 6}), 422, "invalid_request"),
        (json!({"query": "x", "top_k": 0}), 422, "invalid_request"),
        (json!({"query": "x", "candidates": 21}), 422, "invalid_request"),
        (json!({"query": "x", "filter": {"must": [{"key": "city", "match": {"nope": 1}}]}}), 422, "invalid_filter"),
        (json!({"query": "x", "collection": "unknown"}), 404, "unknown_collection"),
        (json!({"query": "x", "collection": "../etc"}), 422, "invalid_request"),
        (json!({"query": "x", "cache": "sometimes"}), 422, "invalid_request"),
        (json!({"query": 5}), 422, "invalid_request"),
        (json!({"query": "x", "hnsw_ef": 0}), 422, "invalid_request"),
        (json!({"query": "x", "hnsw_ef": 10001}), 422, "invalid_request"),
        (json!({"query": "x", "exact": "yes"}), 422, "invalid_request"),
    ];
    for (body, want_status, want_code) in errors {
        let (status, err) = post(&client, gw.url("/search"), body.clone()).await;
        assert_eq!((status, err["code"].as_str()), (want_status, Some(want_code)), "{body}: {err}");
        if body.get("hnsw_ef").is_some() {
            assert!(err["error"].as_str().unwrap().contains("hnsw_ef"), "the field is named: {err}");
        }
    }
    // The index's knobs answer, exact or not, and the collection says how it is indexed.
    for knobs in [json!({"exact": true}), json!({"hnsw_ef": 256})] {
        let mut body = json!({"query": "Rust engineer", "rerank": false, "cache": "bypass"});
        body.as_object_mut().unwrap().extend(knobs.as_object().unwrap().clone());
        assert_eq!(ids(&search(&client, &gw, body.clone()).await).len(), 6, "{body}");
    }
    let info: Value = client.get(gw.url("/collections/profiles")).send().await.unwrap().json().await.unwrap();
    for field in ["segments", "indexed_vectors", "optimizing", "disk_bytes", "ram_bytes"] {
        assert!(info.get(field).is_some(), "{field} in {info}");
    }
    let response =
        client.post(gw.url("/search")).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let huge = json!({"query": "x".repeat(3 * 1024 * 1024)});
    let response = client.post(gw.url("/search")).json(&huge).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["connection"], "close", "the unread body ends the connection");
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "payload_too_large");
    let upsert_errors = [
        (json!({"documents": []}), 422, "invalid_request"),
        (json!({"documents": vec![json!({"id": "x", "text": "t"}); 11]}), 413, "too_many_documents"),
        (json!({"documents": [{"id": "", "text": "t"}]}), 422, "invalid_request"),
        (json!({"documents": [{"id": "x", "text": "t", "payload": {"_text": 1}}]}), 422, "invalid_request"),
        (json!({"documents": [{"id": "x"}]}), 422, "invalid_request"),
    ];
    for (body, want_status, want_code) in upsert_errors {
        let (status, err) = put(&client, gw.url("/collections/profiles/documents"), body.clone()).await;
        assert_eq!((status, err["code"].as_str()), (want_status, Some(want_code)), "{body}: {err}");
    }
    let response = client.get(gw.url("/collections/unknown")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let response = client.delete(gw.url("/collections/unknown/documents/x")).send().await.unwrap();
    assert_eq!(response.status(), 404);

    let metrics = client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric(&metrics, "gateway_searches_total{kind=\"hit\"}") >= 4.0, "{metrics}");
    assert!(metric(&metrics, "gateway_reranks_total{kind=\"applied\"}") >= 3.0, "{metrics}");
    assert!(metrics.contains("gateway_embed_batch_size"), "in-process engine metrics: {metrics}");
}

#[tokio::test]
async fn qdrant_edge_persists_across_restarts_and_owns_its_directory() {
    let data = TempDir::new("gateway-restart");
    let mut gw = gateway(&data, &[]);
    gw.wait_ready(READY).await;
    let client = reqwest::Client::new();
    upsert(&client, &gw, "people", profiles()).await;
    let before = search(&client, &gw, json!({"query": "chef", "collection": "people", "cache": "bypass"})).await;

    // A second process may not open the same data directory.
    let embed = fixture("tiny-e5");
    let (status, stderr) = run_to_exit(
        "search-gateway",
        &["--port", "0", "--data-dir", data.to_str(), "--embed-model-dir", embed.to_str().unwrap()],
        &[],
    );
    assert!(!status.success());
    assert!(stderr.contains("in use by another process"), "{stderr}");

    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(30)).success(), "{}", gw.logs());
    let gw = gateway(&data, &[]);
    gw.wait_ready(READY).await;
    let info: Value = client.get(gw.url("/collections/people")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["points_count"], 6);
    let after = search(&client, &gw, json!({"query": "chef", "collection": "people", "cache": "bypass"})).await;
    assert_eq!(after["hits"], before["hits"]);
}

#[tokio::test]
async fn a_reranker_over_its_time_budget_falls_back_to_vector_order() {
    // A frozen rerank-service (SIGSTOP) never answers: the budget always runs out, whatever the
    // machine's speed (a 1 ms budget on the in-process fixture was sometimes met).
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &["--intra-op-threads", "1"], &[]);
    rerank.wait_ready(READY).await;
    let data = TempDir::new("gateway-budget");
    let rerank_url = rerank.url("");
    let gw = gateway(&data, &["--rerank-url", &rerank_url, "--rerank-budget-ms", "300"]);
    gw.wait_ready(READY).await;
    let client = reqwest::Client::new();
    upsert(&client, &gw, "profiles", profiles()).await;
    rerank.signal("STOP");
    let body = json!({"query": "rust engineer", "candidates": 6, "top_k": 6});
    let out = search(&client, &gw, body.clone()).await;
    assert_eq!(out["rerank"], "fallback");
    assert_vector_order(&out);
    assert_eq!(search(&client, &gw, body).await["cache"], "miss", "a fallback is not cached");
    rerank.signal("CONT");
    let metrics = client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "gateway_reranks_total{kind=\"fallback\"}"), 2.0, "{metrics}");
    assert_eq!(metric(&metrics, "gateway_dependency_errors_total{kind=\"reranker\"}"), 2.0, "{metrics}");
}

#[tokio::test]
async fn over_http_with_redis_and_every_dependency_failing() {
    let mut embed = start_model_service("embed-service", &fixture("tiny-e5"), &["--intra-op-threads", "1"], &[]);
    let mut rerank =
        start_model_service("rerank-service", &fixture("tiny-reranker"), &["--intra-op-threads", "1"], &[]);
    embed.wait_ready(READY).await;
    rerank.wait_ready(READY).await;
    let mut redis = Redis::start();
    let data = TempDir::new("gateway-remote");
    let (embed_url, rerank_url, redis_url) = (embed.url(""), rerank.url(""), redis.url());
    let remote = ["--embed-url", &embed_url, "--rerank-url", &rerank_url, "--redis-url", &redis_url];
    let gw = gateway(&data, &remote);
    gw.wait_ready(READY).await;
    assert!(!gw.logs().contains("in-process"), "no engine in process: {}", gw.logs());
    let client = reqwest::Client::new();
    upsert(&client, &gw, "profiles", profiles()).await;

    let query = json!({"query": "machine learning", "top_k": 3, "candidates": 6});
    let first = search(&client, &gw, query.clone()).await;
    assert_eq!((first["cache"].as_str(), first["rerank"].as_str()), (Some("miss"), Some("applied")));
    assert_eq!(search(&client, &gw, query.clone()).await["cache"], "hit");
    // The result and the query embedding live in Redis, under the collection's generation.
    assert_eq!(redis.cli(&["GET", "sg:v1:gen:profiles"]), "1");
    let keys = redis.cli(&["KEYS", "sg:v1:*"]);
    assert!(keys.contains("sg:v1:search:profiles:") && keys.contains("sg:v1:qemb:"), "{keys}");
    let ttl: i64 = redis.cli(&["TTL", keys.lines().find(|k| k.contains(":search:")).unwrap()]).parse().unwrap();
    assert!((3500..=3600).contains(&ttl), "one hour by default: {ttl}");

    // The same numbers as in process: the remote services run the same fixtures.
    let local_data = TempDir::new("gateway-local");
    let local = gateway(&local_data, &[]);
    local.wait_ready(READY).await;
    upsert(&client, &local, "profiles", profiles()).await;
    let local_out = search(&client, &local, query.clone()).await;
    assert_eq!(ids(&local_out), ids(&first));
    for (a, b) in local_out["hits"].as_array().unwrap().iter().zip(first["hits"].as_array().unwrap()) {
        assert!((a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() < 1e-5);
    }
    drop(local);

    // Reranker down: vector order, marked, counted, not cached.
    rerank.signal("KILL");
    rerank.wait_exit(Duration::from_secs(10));
    let down = json!({"query": "pastry", "top_k": 3, "candidates": 6});
    let out = search(&client, &gw, down.clone()).await;
    assert_eq!(out["rerank"], "fallback");
    assert_vector_order(&out);
    assert_eq!(search(&client, &gw, down.clone()).await["cache"], "miss", "fallback results are not cached");
    assert_eq!(search(&client, &gw, query.clone()).await["cache"], "hit", "earlier results still are");

    // Redis down: served uncached, logged once, counted (the breaker then stops asking); back
    // when Redis is.
    redis.stop();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let out = search(&client, &gw, json!({"query": "engineer", "rerank": false})).await;
        assert_eq!(out["cache"], "bypass", "{out}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "a down Redis does not stall searches");
    assert_eq!(gw.logs().matches("cache unavailable").count(), 1, "logged once per interval:\n{}", gw.logs());
    let metrics = client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric(&metrics, "gateway_cache_errors_total{kind=\"generation\"}") >= 1.0, "{metrics}");
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let body = json!({"query": "engineer", "rerank": false});
    loop {
        let a = search(&client, &gw, body.clone()).await;
        if a["cache"] == "miss" && search(&client, &gw, body.clone()).await["cache"] == "hit" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cache never came back: {a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Redis slow (blocked for 2 s): each command gives up after --redis-timeout-ms; served uncached.
    let blocker = {
        let mut cli = redis.cli_command(&["DEBUG", "SLEEP", "2"]);
        std::thread::spawn(move || cli.status())
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let slow = search(&client, &gw, json!({"query": "slow redis", "rerank": false})).await;
    assert_eq!(slow["cache"], "bypass", "{slow}");
    assert!(started.elapsed() < Duration::from_millis(1500), "not held up by a slow Redis: {:?}", started.elapsed());
    assert!(blocker.join().unwrap().unwrap().success(), "DEBUG SLEEP ran");

    // Embedder down: 503 with a clear error, nothing cached.
    embed.signal("KILL");
    embed.wait_exit(Duration::from_secs(10));
    let (status, err) = post(&client, gw.url("/search"), json!({"query": "never embedded"})).await;
    assert_eq!((status, err["code"].as_str()), (503, Some("embedder_unavailable")), "{err}");
    assert!(err["error"].as_str().unwrap().contains("embedder"), "{err}");
    assert!(!redis.cli(&["KEYS", "sg:v1:search:*"]).is_empty());
    // Writing what is already stored needs no embedding; writing anything new does.
    let unchanged = upsert(&client, &gw, "profiles", profiles()).await;
    assert_eq!((unchanged["upserted"].as_u64(), unchanged["unchanged"].as_u64()), (Some(0), Some(6)), "{unchanged}");
    let changed = json!({"documents": [{"id": "p2", "text": "Pastry chef in Lyon and Paris"}]});
    let (status, err) = put(&client, gw.url("/collections/profiles/documents"), changed).await;
    assert_eq!((status, err["code"].as_str()), (503, Some("embedder_unavailable")), "{err}");
}

#[tokio::test]
async fn a_qdrant_server_that_is_down_is_a_503() {
    let data = TempDir::new("gateway-qdrant-down");
    let url = format!("http://127.0.0.1:{}", free_port());
    let gw = gateway(&data, &["--qdrant-url", &url, "--qdrant-timeout-ms", "2000"]);
    gw.wait_ready(READY).await;
    let client = reqwest::Client::new();
    let (status, err) = post(&client, gw.url("/search"), json!({"query": "x"})).await;
    assert_eq!((status, err["code"].as_str()), (503, Some("vector_store_unavailable")), "{err}");
    let (status, err) = put(&client, gw.url("/collections/profiles/documents"), profiles()).await;
    assert_eq!((status, err["code"].as_str()), (503, Some("vector_store_unavailable")), "{err}");
    let (status, _) = post(&client, gw.url("/search"), json!({"query": "x"})).await;
    assert_eq!(status, 503, "nothing was cached");
}
