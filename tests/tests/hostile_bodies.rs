//! One way of reading JSON bodies on every JSON route of the three services: a key given twice
//! (at the top level and inside the free-form fields) is a 422 `duplicate_key` naming it; 10,000
//! levels of nesting, in a known or an unknown field, a 422 `too_deep`; and no error message,
//! whatever the body, is longer than 300 characters.

use std::time::Duration;

use e2e::{Process, TempDir, fixture, start_gateway, start_model_service};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
/// `shared::http::body::MAX_MESSAGE_CHARS`.
const MAX_MESSAGE_CHARS: usize = 300;

struct Route {
    path: &'static str,
    put: bool,
    body: Value,
    /// Objects inside the body (JSON pointers) where a duplicate key must be refused too.
    objects: Vec<&'static str>,
}

async fn send(process: &Process, route: &Route, body: String) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = process.url(route.path);
    let request = if route.put { client.put(url) } else { client.post(url) };
    let response = request.header("content-type", "application/json").body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let out: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: not JSON: {text:.300}", route.path));
    if status >= 400 {
        let message = out["error"].as_str().unwrap_or_else(|| panic!("{}: no message: {out}", route.path));
        assert!(
            message.chars().count() <= MAX_MESSAGE_CHARS,
            "{}: a {}-character message: {message:.400}",
            route.path,
            message.chars().count()
        );
    }
    (status, out)
}

/// The body's text with the object at `pointer` given its first key twice.
fn with_duplicate(body: &Value, pointer: &str) -> (String, String) {
    let mut marked = body.clone();
    let object = marked.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} in {body}"));
    let original = std::mem::replace(object, json!("\u{1}duplicate\u{1}"));
    let (key, value) = original.as_object().unwrap().iter().next().expect("an object with a key");
    let inner = original.to_string();
    let doubled = format!("{{{}:{},{}", Value::from(key.as_str()), value, &inner[1..]);
    (marked.to_string().replace("\"\\u0001duplicate\\u0001\"", &doubled), key.clone())
}

/// `{"a":{"a":...1...}}`, 10,000 objects deep.
fn deep() -> String {
    format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000))
}

async fn check(process: &Process, routes: &[Route]) -> usize {
    let mut cases = 0;
    for route in routes {
        let (status, out) = send(process, route, route.body.to_string()).await;
        assert!((200..300).contains(&status), "{} with its valid body: {status} {out}", route.path);
        for pointer in std::iter::once("").chain(route.objects.iter().copied()) {
            let (body, key) = with_duplicate(&route.body, pointer);
            let (status, out) = send(process, route, body.clone()).await;
            assert_eq!((status, out["code"].as_str()), (422, Some("duplicate_key")), "{}: {body}: {out}", route.path);
            let message = out["error"].as_str().unwrap();
            assert!(message.contains(&format!("`{key}`")), "{}: names the key: {message}", route.path);
            cases += 1;
        }
        let first = route.body.as_object().unwrap().keys().next().unwrap().clone();
        for field in [first.as_str(), "zzz"] {
            // In place of a known field's own value, or beside the others in an unknown one.
            let mut rest = route.body.clone();
            rest.as_object_mut().unwrap().remove(field);
            let rest = rest.to_string();
            let separator = if rest == "{}" { "" } else { "," };
            let text = format!("{{{}:{}{separator}{}", Value::from(field), deep(), &rest[1..]);
            let (status, out) = send(process, route, text).await;
            assert_eq!((status, out["code"].as_str()), (422, Some("too_deep")), "{} `{field}`: {out}", route.path);
            cases += 1;
        }
    }
    cases
}

#[tokio::test]
async fn duplicate_keys_and_deep_nesting_get_one_short_answer_on_every_json_route() {
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &[]);
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &[], &[]);
    let data = TempDir::new("hostile-bodies");
    let gateway = start_gateway(&data, &[]);
    for process in [&embed, &rerank, &gateway] {
        process.wait_ready(READY).await;
    }
    let route = |path, put, body, objects| Route { path, put, body, objects };
    let embed_routes = [
        route("/embed", false, json!({"text": "hello", "input_type": "query"}), vec![]),
        route("/embed/batch", false, json!({"texts": ["a", "b"], "input_type": "passage"}), vec![]),
        route("/v1/embeddings", false, json!({"input": ["hello"], "model": "e5", "encoding_format": "float"}), vec![]),
    ];
    let cohere = json!({"model": "m", "query": "q", "documents": [{"text": "a", "title": "t"}, "b"], "top_n": 1});
    let rerank_routes = [
        route("/rerank", false, json!({"query": "q", "documents": ["a", "b"], "top_n": 1}), vec![]),
        route("/v1/rerank", false, cohere.clone(), vec!["/documents/0"]),
        route("/v2/rerank", false, cohere, vec!["/documents/0"]),
    ];
    let document = json!({"id": "p1", "text": "a profile", "payload": {"city": "Paris", "tags": {"lang": "rust"}}});
    let filter = json!({"must": [{"key": "city", "match": {"value": "Paris"}}]});
    let gateway_routes = [
        route(
            "/collections/profiles/documents",
            true,
            json!({"documents": [document]}),
            vec!["/documents/0", "/documents/0/payload", "/documents/0/payload/tags"],
        ),
        route(
            "/search",
            false,
            json!({"query": "profile", "collection": "profiles", "filter": filter}),
            vec!["/filter", "/filter/must/0", "/filter/must/0/match"],
        ),
        route("/aliases/people", true, json!({"collection": "profiles"}), vec![]),
        route(
            "/v1/rerank",
            false,
            json!({"query": "q", "documents": [{"text": "a", "x": 1}, "b"]}),
            vec!["/documents/0"],
        ),
        route("/v2/rerank", false, json!({"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 1}), vec![]),
    ];
    let cases = check(&embed, &embed_routes).await
        + check(&rerank, &rerank_routes).await
        + check(&gateway, &gateway_routes).await;
    println!("{cases} hostile bodies, each refused with a short 422");
}

#[test]
fn the_duplicate_is_where_it_was_asked_for() {
    let body = json!({"a": 1, "b": {"c": 2, "d": 3}});
    assert_eq!(with_duplicate(&body, ""), (r#"{"a":1,"a":1,"b":{"c":2,"d":3}}"#.to_string(), "a".to_string()));
    assert_eq!(with_duplicate(&body, "/b"), (r#"{"a":1,"b":{"c":2,"c":2,"d":3}}"#.to_string(), "c".to_string()));
}
