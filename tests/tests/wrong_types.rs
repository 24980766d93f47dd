//! One answer for wrong types, on every JSON route of every service: well-formed JSON with a
//! field of the wrong type is 422 with a JSON body naming the field; malformed JSON is 400.

use std::time::Duration;

use e2e::{Process, TempDir, fixture, start_gateway, start_model_service};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);

/// A field's JSON type, and values of every other type.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Boolean,
    /// A string from a fixed set (`input_type`, `encoding_format`, `cache`).
    Choice,
    Texts,
    /// `input` of /v1/embeddings: a string or a list of strings.
    TextOrTexts,
    Object,
    /// A list of objects.
    Objects,
}

fn wrong_values(kind: Kind) -> Vec<Value> {
    match kind {
        Kind::Text => vec![json!(5), json!(true), json!(["a"]), json!({"a": 1})],
        Kind::Integer => vec![json!("5"), json!(true), json!([5]), json!({"n": 5}), json!(1.5), json!(-1)],
        Kind::Boolean => vec![json!("true"), json!(1), json!([true]), json!({})],
        Kind::Choice => vec![json!(5), json!(true), json!(["query"]), json!({}), json!(1.5)],
        Kind::Texts => vec![json!("x"), json!(5), json!([5]), json!([true]), json!({})],
        Kind::TextOrTexts => vec![json!(5), json!(true), json!([5]), json!({"a": "b"})],
        Kind::Object => vec![json!("x"), json!(5), json!([]), json!(true)],
        Kind::Objects => vec![json!("x"), json!(5), json!(true), json!({"id": "a"}), json!(["x"])],
    }
}

/// A route, a valid body for it, and the fields to break (a dotted path into the body).
struct Route {
    route: &'static str,
    put: bool,
    body: Value,
    fields: Vec<(&'static str, Kind)>,
}

fn set(body: &mut Value, path: &str, value: Value) {
    let mut target = body;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        target = match part.parse::<usize>() {
            Ok(i) => &mut target[i],
            Err(_) => &mut target[*part],
        };
    }
    target[parts[parts.len() - 1]] = value;
}

async fn send(client: &reqwest::Client, process: &Process, route: &Route, body: String) -> (u16, Value) {
    let url = process.url(route.route);
    let request = if route.put { client.put(url) } else { client.post(url) };
    let response = request.header("content-type", "application/json").body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let out: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let message = out["error"].as_str().unwrap_or_default();
    assert!(message.chars().count() <= 300, "{}: a {}-character message: {message}", route.route, message.len());
    (status, out)
}

async fn check(process: &Process, routes: Vec<Route>) -> usize {
    let client = reqwest::Client::new();
    let mut cases = 0;
    for route in &routes {
        let (status, out) = send(&client, process, route, route.body.to_string()).await;
        assert_eq!(status, 200, "{} with its valid body: {out}", route.route);
        let broken = route.body.to_string();
        let (status, out) = send(&client, process, route, broken[..broken.len() - 1].to_string()).await;
        assert_eq!((status, out["code"].as_str()), (400, Some("invalid_json")), "{}: {out}", route.route);
        for &(field, kind) in &route.fields {
            for value in wrong_values(kind) {
                let mut body = route.body.clone();
                set(&mut body, field, value.clone());
                let (status, out) = send(&client, process, route, body.to_string()).await;
                let name = field.rsplit('.').next().unwrap();
                let message = out["error"].as_str().unwrap_or_default();
                assert_eq!(status, 422, "{} {field} = {value}: {out}", route.route);
                assert!(out["code"].is_string() && message.contains(name), "{} {field} = {value}: {out}", route.route);
                cases += 1;
            }
        }
    }
    cases
}

#[tokio::test]
async fn every_wrong_type_on_every_route_is_a_422_naming_the_field() {
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &[]);
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &[], &[]);
    let data = TempDir::new("wrong-types");
    let gateway = start_gateway(&data, &[]);
    for process in [&embed, &rerank, &gateway] {
        process.wait_ready(READY).await;
    }
    let mut cases = check(
        &embed,
        vec![
            Route {
                route: "/embed",
                put: false,
                body: json!({"text": "hello", "input_type": "query"}),
                fields: vec![("text", Kind::Text), ("input_type", Kind::Choice)],
            },
            Route {
                route: "/embed/batch",
                put: false,
                body: json!({"texts": ["a", "b"], "input_type": "passage"}),
                fields: vec![("texts", Kind::Texts), ("input_type", Kind::Choice)],
            },
            Route {
                route: "/v1/embeddings",
                put: false,
                body: json!({"input": "hello", "model": "e5", "encoding_format": "float", "dimensions": 32, "input_type": "raw"}),
                fields: vec![
                    ("input", Kind::TextOrTexts),
                    ("model", Kind::Text),
                    ("encoding_format", Kind::Choice),
                    ("dimensions", Kind::Integer),
                    ("input_type", Kind::Choice),
                ],
            },
        ],
    )
    .await;
    let cohere = |route| Route {
        route,
        put: false,
        body: json!({"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 1, "return_documents": true,
                     "max_tokens_per_doc": 16}),
        fields: vec![
            ("model", Kind::Text),
            ("query", Kind::Text),
            ("documents", Kind::Texts),
            ("top_n", Kind::Integer),
            ("return_documents", Kind::Boolean),
            ("max_tokens_per_doc", Kind::Integer),
        ],
    };
    cases += check(
        &rerank,
        vec![
            Route {
                route: "/rerank",
                put: false,
                body: json!({"query": "q", "documents": ["a", "b"], "top_n": 1, "return_documents": true, "raw_scores": false}),
                fields: vec![
                    ("query", Kind::Text),
                    ("documents", Kind::Texts),
                    ("top_n", Kind::Integer),
                    ("return_documents", Kind::Boolean),
                    ("raw_scores", Kind::Boolean),
                ],
            },
            cohere("/v1/rerank"),
            cohere("/v2/rerank"),
        ],
    )
    .await;
    cases += check(
        &gateway,
        vec![
            cohere("/v1/rerank"),
            cohere("/v2/rerank"),
            Route {
                route: "/collections/profiles/documents",
                put: true,
                body: json!({"documents": [{"id": "p1", "text": "a profile", "payload": {"city": "Paris"}}]}),
                fields: vec![
                    ("documents", Kind::Objects),
                    ("documents.0.id", Kind::Text),
                    ("documents.0.text", Kind::Text),
                    ("documents.0.payload", Kind::Object),
                ],
            },
            Route {
                route: "/search",
                put: false,
                body: json!({"query": "profile", "collection": "profiles", "top_k": 2, "candidates": 5,
                             "filter": {"must": [{"key": "city", "match": {"value": "Paris"}}]},
                             "rerank": true, "cache": "use"}),
                fields: vec![
                    ("query", Kind::Text),
                    ("collection", Kind::Text),
                    ("top_k", Kind::Integer),
                    ("candidates", Kind::Integer),
                    ("filter", Kind::Object),
                    ("rerank", Kind::Boolean),
                    ("cache", Kind::Choice),
                ],
            },
        ],
    )
    .await;
    println!("{cases} wrong-type cases, each a 422 naming its field");
}
