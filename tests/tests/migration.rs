//! Migration from the old stack: a collection built the old way (CLS pooling, raw input, the
//! app's payload with the text under its own key) is served as it is, on qdrant-edge and on a
//! Qdrant server; then `reindex` re-embeds it into a new collection with the default model while
//! searches by an alias run on, is killed midway and resumed, and switches the alias.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use e2e::{Process, QDRANT_API_KEY, Qdrant, TempDir, fixture, post_json, start_gateway_with_envs};
use serde_json::{Value, json};

const DOCUMENTS: usize = 300;
const CITIES: [&str; 3] = ["Berlin", "Paris", "Lyon"];

/// The E5 fixture as fastembed 0.5.1 ran it: CLS pooling (the old stack's queries and documents
/// both went in raw, which the collection config says).
fn cls_model(dir: &TempDir) -> PathBuf {
    let model = dir.path().join("tiny-e5-cls");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["model.onnx", "tokenizer.json"] {
        std::fs::copy(fixture("tiny-e5").join(file), model.join(file)).unwrap();
    }
    let toml = std::fs::read_to_string(fixture("tiny-e5").join("model.toml")).unwrap();
    std::fs::write(model.join("model.toml"), toml.replace("pooling = \"mean\"", "pooling = \"cls\"")).unwrap();
    model
}

/// The collection config for the old collection `profiles_v1`.
fn collections_config(dir: &TempDir, model: &Path, text_key: &str, vector: Option<&str>, writable: bool) -> String {
    let path = dir.path().join(format!("collections-{writable}.toml"));
    let vector = vector.map(|v| format!("vector = \"{v}\"\n")).unwrap_or_default();
    let config = format!(
        "[profiles_v1]\ntext_key = \"{text_key}\"\nid_key = \"profile_id\"\n{vector}embed_model_dir = \"{}\"\n\
         input_type = \"raw\"\nwritable = {writable}\n",
        model.display()
    );
    std::fs::write(&path, config).unwrap();
    path.to_str().unwrap().to_string()
}

fn profile(i: usize) -> (String, String, Value) {
    let city = CITIES[i % 3];
    let text = format!("profile {i}: {} engineer in {city}", ["rust", "search", "data", "ml"][i % 4]);
    (format!("p-{i}"), text, json!({"city": city, "years": i % 12}))
}

async fn search(client: &reqwest::Client, gateway: &Process, collection: &str, query: &str) -> (u16, Value) {
    let body = json!({"query": query, "collection": collection, "top_k": 5, "cache": "bypass"});
    post_json(client, gateway.url("/search"), body).await
}

/// The old collection served as it is: hits carry the app's ids and payloads, reranking reads the
/// text from its own key, filters work, and writes are refused.
async fn served_as_is(client: &reqwest::Client, gateway: &Process, text_key: &str) {
    let (status, found) = search(client, gateway, "profiles_v1", "rust engineer").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["rerank"], "applied", "{found}");
    let hit = &found["hits"][0];
    assert!(hit["id"].as_str().unwrap().starts_with("p-"), "the app's id: {hit}");
    assert_eq!(hit["payload"]["profile_id"], hit["id"], "{hit}");
    assert!(hit["payload"][text_key].as_str().unwrap().starts_with("profile "), "the app's payload: {hit}");
    let filter = json!({"must": [{"key": "city", "match": {"value": "Lyon"}}]});
    let body = json!({"query": "engineer", "collection": "profiles_v1", "filter": filter, "top_k": 10});
    let (status, lyon) = post_json(client, gateway.url("/search"), body).await;
    assert_eq!(status, 200, "{lyon}");
    assert!(lyon["hits"].as_array().unwrap().iter().all(|h| h["payload"]["city"] == "Lyon"), "{lyon}");
    let document: Value =
        client.get(gateway.url("/collections/profiles_v1/documents/p-7")).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["text"], profile(7).1, "{document}");
    let write = json!({"documents": [{"id": "x", "text": "new"}]});
    let refused = client.put(gateway.url("/collections/profiles_v1/documents")).json(&write).send().await.unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "read_only_collection");
}

/// Searches `alias` in a loop until stopped; returns (searches, non-2xx answers).
fn search_loop(gateway: &Process, alias: &str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<(usize, Vec<String>)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (url, alias, flag) = (gateway.url("/search"), alias.to_string(), stop.clone());
    let task = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let (mut count, mut failures) = (0, Vec::new());
        while !flag.load(Ordering::SeqCst) {
            let body = json!({"query": format!("engineer {}", count % 7), "collection": alias, "top_k": 3});
            let response = client.post(&url).json(&body).send().await.unwrap();
            if !response.status().is_success() {
                failures.push(format!("{}: {}", response.status(), response.text().await.unwrap_or_default()));
            }
            count += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (count, failures)
    });
    (stop, task)
}

/// Runs `reindex` in small batches until it reports `kill_after` upserted documents, then kills
/// it (-9); returns how many it had reported.
fn reindex_and_kill(args: &[&str], kill_after: usize) -> usize {
    let args = [args, &["--batch-size", "2", "--concurrency", "1", "--progress-secs", "0"]].concat();
    e2e::run_job_and_kill(&args, kill_after).0
}

/// Runs `reindex` to the end, in small batches (so the searches beside it overlap); returns its
/// stderr.
fn reindex(args: &[&str]) -> String {
    let args = [args, &["--batch-size", "2", "--concurrency", "1"]].concat();
    let (status, stderr) = e2e::run_to_exit("search-gateway", &args, &[("RUST_LOG", "warn")]);
    assert!(status.success(), "{stderr}");
    let done = stderr.lines().find(|l| l.starts_with("ingest: done")).expect(&stderr);
    let number =
        |key: &str| -> usize { done.split(key).nth(1).unwrap().split([',', ' ']).nth(1).unwrap().parse().unwrap() };
    let (read, upserted, unchanged) = (number("read"), number("upserted"), number("(skipped)"));
    assert_eq!((read, upserted + unchanged), (DOCUMENTS, DOCUMENTS), "{done}");
    assert!(unchanged > 0, "the re-run resumed: what the killed run wrote was skipped: {done}");
    stderr
}

/// After the switch: the alias finds the new collection (mean pooling, query prefix), whose
/// documents kept their ids and payloads.
async fn alias_names_the_new_collection(client: &reqwest::Client, gateway: &Process, text_key: &str) {
    let aliases: Value = client.get(gateway.url("/aliases")).send().await.unwrap().json().await.unwrap();
    assert_eq!(aliases["aliases"]["profiles"], "profiles_v2", "{aliases}");
    let info: Value = client.get(gateway.url("/collections/profiles")).send().await.unwrap().json().await.unwrap();
    assert_eq!((info["name"].as_str(), info["points_count"].as_u64()), (Some("profiles_v2"), Some(DOCUMENTS as u64)));
    let by_alias = search(client, gateway, "profiles", "search engineer in Paris").await.1;
    let direct = search(client, gateway, "profiles_v2", "search engineer in Paris").await.1;
    assert_eq!(by_alias["hits"], direct["hits"], "the alias searches profiles_v2");
    let old = search(client, gateway, "profiles_v1", "search engineer in Paris").await.1;
    assert_ne!(by_alias["hits"], old["hits"], "not the old collection's vectors any more");
    let hit = &by_alias["hits"][0];
    let id = hit["id"].as_str().unwrap();
    let (_, text, payload) = profile(id.trim_start_matches("p-").parse().unwrap());
    assert_eq!(hit["payload"]["city"], payload["city"]);
    assert_eq!(hit["payload"]["profile_id"], id, "the same payload, id key included");
    assert_eq!(hit["payload"][text_key], text);
    let document: Value = client
        .get(gateway.url(&format!("/collections/profiles/documents/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["text"], text, "stored under the gateway's own keys too: {document}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_stack_collection_on_qdrant_edge_is_served_then_reindexed_behind_an_alias() {
    let (work, data) = (TempDir::new("migration-edge"), TempDir::new("migration-edge-data"));
    let model = cls_model(&work);
    let client = reqwest::Client::new();
    // The old stack's collection, written the old way (a writable profile stands in for it:
    // qdrant-edge has no other writer).
    {
        let config = collections_config(&work, &model, "text", None, true);
        let builder = start_gateway_with_envs(&data, &["--collections-config", &config], &[]);
        builder.wait_ready(Duration::from_secs(30)).await;
        let documents: Vec<Value> = (0..DOCUMENTS)
            .map(profile)
            .map(|(id, text, payload)| json!({"id": id, "text": text, "payload": payload}))
            .collect();
        for chunk in documents.chunks(100) {
            let body = json!({"documents": chunk});
            let response =
                client.put(builder.url("/collections/profiles_v1/documents")).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
        let stored: Value = client
            .get(builder.url("/collections/profiles_v1/documents?limit=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let payload = &stored["documents"][0]["payload"];
        let app_style =
            payload.get("_text").is_none() && payload["text"].is_string() && payload["profile_id"].is_string();
        assert!(app_style, "stored the old stack's way: {stored}");
    }
    let config = collections_config(&work, &model, "text", None, false);
    let gateway = start_gateway_with_envs(&data, &["--collections-config", &config], &[]);
    gateway.wait_ready(Duration::from_secs(30)).await;
    served_as_is(&client, &gateway, "text").await;

    let alias = client.put(gateway.url("/aliases/profiles")).json(&json!({"collection": "profiles_v1"})).send().await;
    assert_eq!(alias.unwrap().status(), 200);
    let (stop, searches) = search_loop(&gateway, "profiles");
    let url = gateway.url("");
    let args =
        ["reindex", "--from", "profiles_v1", "--to", "profiles_v2", "--alias", "profiles", "--gateway-url", &url];
    let reported = reindex_and_kill(&args, 20);
    let aliases: Value = client.get(gateway.url("/aliases")).send().await.unwrap().json().await.unwrap();
    assert_eq!(aliases["aliases"]["profiles"], "profiles_v1", "a killed reindex leaves the alias: {aliases}");
    let stderr = reindex(&args);
    assert!(stderr.contains("reindex: alias profiles -> profiles_v2"), "{stderr}");
    let done = stderr.lines().find(|l| l.starts_with("ingest: done")).unwrap();
    println!("killed after {reported} upserted; the re-run: {done}");
    stop.store(true, Ordering::SeqCst);
    let (count, failures) = searches.await.unwrap();
    assert!(failures.is_empty(), "{} of {count} searches failed: {failures:?}", failures.len());
    assert!(count >= 10, "only {count} searches ran beside the reindex");
    println!("{count} searches by alias during the reindex, all 2xx");
    alias_names_the_new_collection(&client, &gateway, "text").await;

    // The old collection stays until deleted; deleting it leaves the alias working.
    let alias_delete = client.delete(gateway.url("/collections/profiles")).send().await.unwrap();
    assert_eq!(alias_delete.status(), 409, "an alias is not deleted as a collection");
    let deleted = client.delete(gateway.url("/collections/profiles_v1")).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(search(&client, &gateway, "profiles_v1", "engineer").await.0, 404);
    assert_eq!(search(&client, &gateway, "profiles", "engineer").await.0, 200);
    drop(gateway);
    // And after a restart: the deleted collection stays deleted, the alias stays.
    let gateway = start_gateway_with_envs(&data, &["--collections-config", &config], &[]);
    gateway.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(search(&client, &gateway, "profiles_v1", "engineer").await.0, 404);
    assert_eq!(search(&client, &gateway, "profiles", "engineer").await.0, 200);
}

#[cfg_attr(not(qdrant_server), ignore = "skipped: no Qdrant server (set QDRANT_BIN=/path/to/qdrant)")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_stack_collection_on_a_qdrant_server_is_served_then_reindexed_behind_an_alias() {
    let qdrant = Qdrant::start();
    let work = TempDir::new("migration-qdrant");
    let model = cls_model(&work);
    let client = reqwest::Client::new();
    // Built the way the Python service did: CLS embeddings of the raw texts, a named vector,
    // random point ids, the text under "document" beside the app's fields.
    let embed = e2e::start_model_service("embed-service", &model, &["--default-input-type", "raw"], &[]);
    embed.wait_ready(Duration::from_secs(30)).await;
    let vector = "fast-multilingual-e5-large";
    let create = json!({"vectors": {vector: {"size": 32, "distance": "Cosine"}}});
    let response =
        client.put(qdrant.http_url("/collections/profiles_v1")).header("api-key", QDRANT_API_KEY).json(&create);
    assert!(response.send().await.unwrap().status().is_success());
    let texts: Vec<String> = (0..DOCUMENTS).map(|i| profile(i).1).collect();
    let mut embeddings = Vec::new();
    for chunk in texts.chunks(100) {
        let (status, embedded) = post_json(&client, embed.url("/embed/batch"), json!({"texts": chunk})).await;
        assert_eq!(status, 200);
        embeddings.extend(embedded["embeddings"].as_array().unwrap().iter().cloned());
    }
    let points: Vec<Value> = (0..DOCUMENTS)
        .map(|i| {
            let (id, text, mut payload) = profile(i);
            payload["profile_id"] = json!(id);
            payload["document"] = json!(text);
            let point_id = format!("00000000-0000-4000-8000-{:012}", i * 7919 % 1_000_003);
            json!({"id": point_id, "vector": {vector: embeddings[i]}, "payload": payload})
        })
        .collect();
    let upsert = client
        .put(qdrant.http_url("/collections/profiles_v1/points?wait=true"))
        .header("api-key", QDRANT_API_KEY)
        .json(&json!({"points": points}));
    assert!(upsert.send().await.unwrap().status().is_success());

    let config = collections_config(&work, &model, "document", Some(vector), false);
    let url = qdrant.grpc_url();
    let store = ["--qdrant-url", url.as_str(), "--qdrant-api-key", QDRANT_API_KEY];
    let data = TempDir::new("migration-qdrant-data");
    let gateway = start_gateway_with_envs(&data, &[&store[..], &["--collections-config", &config]].concat(), &[]);
    gateway.wait_ready(Duration::from_secs(30)).await;
    served_as_is(&client, &gateway, "document").await;

    let alias = client.put(gateway.url("/aliases/profiles")).json(&json!({"collection": "profiles_v1"})).send().await;
    assert_eq!(alias.unwrap().status(), 200);
    let (stop, searches) = search_loop(&gateway, "profiles");
    // In process this time, against the server (the gateway keeps serving meanwhile).
    let embed_dir = fixture("tiny-e5");
    let mut args = vec!["reindex", "--from", "profiles_v1", "--to", "profiles_v2", "--alias", "profiles"];
    args.extend(store);
    args.extend(["--collections-config", &config, "--intra-op-threads", "1"]);
    args.extend(["--embed-model-dir", embed_dir.to_str().unwrap()]);
    let reported = reindex_and_kill(&args, 20);
    let stderr = reindex(&args);
    assert!(stderr.contains("reindex: alias profiles -> profiles_v2"), "{stderr}");
    println!(
        "killed after {reported} upserted; resumed: {}",
        stderr.lines().find(|l| l.starts_with("ingest: done")).unwrap()
    );
    // The gateway re-reads the server's aliases within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let (count, failures) = searches.await.unwrap();
    assert!(failures.is_empty(), "{} of {count} searches failed: {failures:?}", failures.len());
    assert!(count >= 10, "only {count} searches ran beside the reindex");
    println!("{count} searches by alias during the reindex, all 2xx");
    alias_names_the_new_collection(&client, &gateway, "document").await;
    let deleted = client.delete(gateway.url("/collections/profiles_v1")).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(search(&client, &gateway, "profiles", "engineer").await.0, 200);
}
