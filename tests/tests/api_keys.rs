//! API keys on all three services, with the real binaries: every route class without a key, with
//! a wrong one and with a right one; the gateway sending its own keys to the model services; the
//! healthcheck subcommand with keys on; and no key in any log line.

use std::time::Duration;

use e2e::{Process, TempDir, fixture, start_gateway_with_envs, start_model_service};
use serde_json::json;

const EMBED_KEY: &str = "embed-key-0123456789";
const RERANK_KEY: &str = "rerank-key-0123456789";
const GATEWAY_KEYS: [&str; 2] = ["gateway-old-key-0123", "gateway-new-key-4567"];

/// (method, path, JSON body) of one route of each class a service has.
type Route = (&'static str, &'static str, Option<serde_json::Value>);

async fn status(client: &reqwest::Client, process: &Process, route: &Route, key: Option<&str>) -> u16 {
    let (method, path, body) = route;
    let mut request = client.request(method.parse().unwrap(), process.url(path));
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized", "{path}: {body}");
    }
    status
}

/// Protected routes answer 401 without a key and with a wrong one, and succeed with each right
/// key; open routes answer without one.
async fn check(client: &reqwest::Client, process: &Process, keys: &[&str], protected: &[Route], open: &[Route]) {
    for route in protected {
        assert_eq!(status(client, process, route, None).await, 401, "{} without a key", route.1);
        assert_eq!(status(client, process, route, Some("wrong")).await, 401, "{} with a wrong key", route.1);
        assert_eq!(status(client, process, route, Some(&format!("{}x", keys[0]))).await, 401, "{} key+x", route.1);
        for key in keys {
            let got = status(client, process, route, Some(key)).await;
            assert!((200..300).contains(&got), "{} with a right key answered {got}", route.1);
        }
    }
    for route in open {
        let got = status(client, process, route, None).await;
        assert!((200..300).contains(&got), "{} is open but answered {got}", route.1);
    }
}

fn healthcheck(binary: &str, process: &Process, envs: &[(&str, &str)]) -> bool {
    let url = process.url("/ready");
    let (status, _) = e2e::run_to_exit(binary, &["healthcheck", "--url", &url], envs);
    status.success()
}

#[tokio::test]
async fn every_service_needs_its_key_except_on_open_routes() {
    let client = reqwest::Client::new();
    let ops_open: Vec<Route> = vec![("GET", "/health", None), ("GET", "/openapi.json", None), ("GET", "/ready", None)];

    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &[("API_KEY", EMBED_KEY)]);
    embed.wait_ready(Duration::from_secs(30)).await;
    let embed_routes: Vec<Route> = vec![
        ("POST", "/embed", Some(json!({"text": "hello"}))),
        ("POST", "/embed/batch", Some(json!({"texts": ["a", "b"]}))),
        ("POST", "/v1/embeddings", Some(json!({"input": "hello"}))),
        ("GET", "/info", None),
        ("GET", "/no-such-route", None),
    ];
    // An unknown route is protected too: 401, not 404, so routes cannot be probed without a key.
    let (known, unknown) = embed_routes.split_at(4);
    check(&client, &embed, &[EMBED_KEY], known, &ops_open).await;
    assert_eq!(status(&client, &embed, &unknown[0], None).await, 401);
    assert_eq!(status(&client, &embed, &unknown[0], Some(EMBED_KEY)).await, 404);
    assert_eq!(status(&client, &embed, &("GET", "/metrics", None), None).await, 200);
    assert!(healthcheck("embed-service", &embed, &[]), "/ready is open: the healthcheck needs no key");

    // Rerank with --protect-ops and its key in a file (Docker secrets).
    let secrets = TempDir::new("api-keys");
    let key_file = secrets.path().join("rerank-keys");
    std::fs::write(&key_file, format!("{RERANK_KEY}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    let rerank = start_model_service(
        "rerank-service",
        &fixture("tiny-reranker"),
        &["--protect-ops"],
        &[("API_KEY_FILE", key_file)],
    );
    let rerank_routes: Vec<Route> = vec![
        ("POST", "/rerank", Some(json!({"query": "q", "documents": ["a", "b"]}))),
        ("GET", "/info", None),
        ("GET", "/ready", None),
        ("GET", "/metrics", None),
    ];
    let open: Vec<Route> = vec![("GET", "/health", None), ("GET", "/openapi.json", None)];
    tokio::time::timeout(Duration::from_secs(30), async {
        while status(&client, &rerank, &("GET", "/ready", None), Some(RERANK_KEY)).await != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("rerank-service ready");
    check(&client, &rerank, &[RERANK_KEY], &rerank_routes, &open).await;
    assert!(!healthcheck("rerank-service", &rerank, &[]), "a protected /ready refuses a keyless healthcheck");
    assert!(healthcheck("rerank-service", &rerank, &[("API_KEY_FILE", key_file)]), "the service's own key");

    // The gateway: two keys (rotation), and its own keys for the model services.
    let data = TempDir::new("api-keys-gateway");
    let (embed_url, rerank_url) = (embed.url(""), rerank.url(""));
    let gateway_keys = GATEWAY_KEYS.join(",");
    let gateway = start_gateway_with_envs(
        &data,
        &["--embed-url", &embed_url, "--rerank-url", &rerank_url],
        &[("API_KEY", &gateway_keys), ("EMBED_API_KEY", EMBED_KEY), ("RERANK_API_KEY", RERANK_KEY)],
    );
    gateway.wait_ready(Duration::from_secs(30)).await;
    let upsert = json!({"documents": [{"id": "a", "text": "rust engineer"}, {"id": "b", "text": "baker"}]});
    let gateway_routes: Vec<Route> = vec![
        ("PUT", "/collections/keys/documents", Some(upsert)),
        ("POST", "/search", Some(json!({"query": "engineer", "collection": "keys", "cache": "bypass"}))),
        ("GET", "/collections/keys", None),
        ("GET", "/collections/keys/documents/a", None),
        ("DELETE", "/collections/keys/documents/b", None),
    ];
    check(&client, &gateway, &GATEWAY_KEYS, &gateway_routes, &ops_open).await;
    // The search really went through both model services with the gateway's keys.
    let response = client
        .post(gateway.url("/search"))
        .bearer_auth(GATEWAY_KEYS[1])
        .json(&json!({"query": "engineer", "collection": "keys", "cache": "bypass"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["rerank"], "applied", "{body}");
    assert!(healthcheck("search-gateway", &gateway, &[]));

    // A gateway with a wrong key for the embedder says so, without the key.
    let data_wrong = TempDir::new("api-keys-wrong");
    let wrong = start_gateway_with_envs(&data_wrong, &["--embed-url", &embed_url], &[("EMBED_API_KEY", "not-the-key")]);
    wrong.wait_ready(Duration::from_secs(30)).await;
    let (status, body) =
        e2e::post_json(&client, wrong.url("/search"), json!({"query": "engineer", "collection": "keys"})).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("API key"), "{body}");
    assert!(!body.to_string().contains("not-the-key"));

    for (name, process) in [("embed", &embed), ("rerank", &rerank), ("gateway", &gateway), ("wrong", &wrong)] {
        let logs = process.logs();
        for key in [EMBED_KEY, RERANK_KEY, GATEWAY_KEYS[0], GATEWAY_KEYS[1], "not-the-key"] {
            assert!(!logs.contains(key), "the {name} log shows a key:\n{logs}");
        }
    }
}

#[test]
fn bad_key_settings_stop_the_service_with_one_line() {
    let missing = e2e::run_to_exit("embed-service", &["--api-key-file", "/nonexistent/keys"], &[]);
    assert_eq!(missing.0.code(), Some(64), "{}", missing.1);
    assert!(missing.1.contains("--api-key-file /nonexistent/keys"), "{}", missing.1);
    let stray_comma = e2e::run_to_exit("search-gateway", &["--api-key", "a,,b"], &[]);
    assert_eq!(stray_comma.0.code(), Some(64), "{}", stray_comma.1);
    assert!(stray_comma.1.contains("empty"), "{}", stray_comma.1);
    let help = std::process::Command::new(e2e::binary("rerank-service"))
        .arg("--help")
        .env("API_KEY", "visible-in-help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--api-key") && !help.contains("visible-in-help"), "{help}");
}
