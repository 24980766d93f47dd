//! `POST /search` with the caller's own query vector: the embedded gateway on the tiny fixtures,
//! the vector from a real embed-service on the same model. Searching by the query's embedding
//! finds what searching by the query finds; the vector is in the cache key; a vector the
//! collection cannot search is a 422 naming `vector`.

use std::time::Duration;

use e2e::{TempDir, fixture, post_json as post, start_gateway, start_model_service};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

fn ids_and_scores(out: &Value) -> Vec<(String, f64)> {
    let hits = out["hits"].as_array().unwrap_or_else(|| panic!("no hits: {out}"));
    hits.iter().map(|h| (h["id"].as_str().unwrap().to_string(), h["vector_score"].as_f64().unwrap())).collect()
}

#[tokio::test]
async fn a_search_by_the_querys_vector_finds_what_the_query_finds() {
    let data = TempDir::new("gw-vector");
    let gw = start_gateway(&data, &[]);
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &[]);
    gw.wait_ready(READY).await;
    embed.wait_ready(READY).await;
    let client = reqwest::Client::new();
    let texts = [
        "Rust engineer in Paris building search engines",
        "Pastry chef in Lyon",
        "Data scientist in Berlin, machine learning",
        "Backend developer (Go, Rust) in Paris",
    ];
    let documents: Vec<Value> =
        texts.iter().enumerate().map(|(i, t)| json!({"id": format!("p{i}"), "text": t, "payload": {"n": i}})).collect();
    let response =
        client.put(gw.url("/collections/profiles/documents")).json(&json!({"documents": documents})).send().await;
    assert_eq!(response.unwrap().status(), 200);

    let (status, embedded) =
        post(&client, embed.url("/embed"), json!({"text": "rust engineer", "input_type": "query"})).await;
    assert_eq!(status, 200, "{embedded}");
    let vector: Vec<f32> = serde_json::from_value(embedded["embedding"].clone()).unwrap();

    let by_query =
        json!({"query": "rust engineer", "retrieval": "dense", "rerank": false, "top_k": 4, "candidates": 4});
    let (status, by_query) = post(&client, gw.url("/search"), by_query).await;
    assert_eq!(status, 200, "{by_query}");
    // Another query text: only the vector decides what dense retrieval finds.
    let by_vector = json!({"query": "something else", "vector": vector, "retrieval": "dense", "rerank": false,
        "top_k": 4, "candidates": 4});
    let (status, found) = post(&client, gw.url("/search"), by_vector.clone()).await;
    assert_eq!(status, 200, "{found}");
    let (want, got) = (ids_and_scores(&by_query), ids_and_scores(&found));
    assert_eq!(want.iter().map(|h| &h.0).collect::<Vec<_>>(), got.iter().map(|h| &h.0).collect::<Vec<_>>());
    for ((_, a), (_, b)) in want.iter().zip(&got) {
        assert!((a - b).abs() < 1e-5, "the same cosine: {want:?} vs {got:?}");
    }
    assert_eq!(found["timings_ms"]["embed"], 0.0, "nothing was embedded: {found}");

    // The vector is in the cache key: the same vector hits, another one misses.
    let (_, again) = post(&client, gw.url("/search"), by_vector.clone()).await;
    assert_eq!(again["cache"], "hit");
    let mut other = by_vector.clone();
    other["vector"][0] = json!(vector[0] + 0.5);
    let (_, other) = post(&client, gw.url("/search"), other).await;
    assert_eq!(other["cache"], "miss");
    // Hybrid and the reranker read the query's text beside the caller's vector.
    let reranked = json!({"query": "rust engineer", "vector": vector, "top_k": 2, "candidates": 4});
    let (status, reranked) = post(&client, gw.url("/search"), reranked).await;
    assert_eq!(
        (status, reranked["rerank"].as_str(), reranked["retrieval"].as_str()),
        (200, Some("applied"), Some("hybrid"))
    );

    let wrong = [
        json!({"query": "x", "vector": vec![0.5; 31]}),
        json!({"query": "x", "vector": []}),
        json!({"query": "x", "vector": vec![0.0; 32]}),
        json!({"query": "x", "vector": [1e39]}),
        json!({"query": "x", "vector": "0.5"}),
    ];
    for body in wrong {
        let (status, err) = post(&client, gw.url("/search"), body.clone()).await;
        assert_eq!((status, err["code"].as_str()), (422, Some("invalid_request")), "{body}: {err}");
        assert!(err["error"].as_str().unwrap().contains("vector"), "the field is named: {err}");
    }
}
