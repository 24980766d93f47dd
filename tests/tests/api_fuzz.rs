//! The API contract against the real binaries: each service serves exactly its checked-in
//! OpenAPI document, and schemathesis (installed into .venv by scripts/setup.sh) fuzzes every
//! route of all three, API keys on, with every check: no 5xx, no undocumented status, no
//! answer that breaks its schema, schema-invalid requests refused (tests/api/schemathesis.toml
//! says where schema-valid requests may still be refused, and why).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e::{Process, TempDir, fixture, root, start_gateway_with_envs, start_model_service};
use serde_json::json;

const KEY: &str = "fuzz-key";
/// Generated cases per operation and phase; `SCHEMATHESIS_MAX_EXAMPLES` overrides it.
const MAX_EXAMPLES: &str = "200";
/// A fixed seed, so CI runs the same cases; `SCHEMATHESIS_SEED` explores others.
const SEED: &str = "20261124";

fn schemathesis() -> PathBuf {
    let path = root().join(".venv/bin/schemathesis");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (it installs tests/api/requirements.txt)",
        path.display()
    );
    path
}

async fn served_document(process: &Process) -> String {
    reqwest::get(process.url("/openapi.json")).await.unwrap().text().await.unwrap()
}

/// Runs schemathesis against `process`; panics with its report unless every check passed.
fn fuzz(name: &str, process: &Process) {
    let reports = TempDir::new(&format!("schemathesis-{name}"));
    let examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.into());
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.into());
    let output = Command::new(schemathesis())
        .arg("--config-file")
        .arg(root().join("tests/api/schemathesis.toml"))
        .args(["run", &process.url("/openapi.json"), "--max-examples", &examples, "--seed", &seed])
        .args(["--header", &format!("Authorization: Bearer {KEY}"), "--generation-database", "none"])
        .args(["--no-color", "--report-dir", reports.to_str()])
        // Its caches go to the working directory: keep them out of the tree.
        .current_dir(reports.path())
        .output()
        .expect("running schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    // The summary goes to the test's output, for the record (cargo test --nocapture shows it).
    let summary = report.lines().skip_while(|l| !l.contains("SUMMARY")).collect::<Vec<_>>().join("\n");
    println!("schemathesis against {name}:\n{summary}");
    assert!(
        output.status.success(),
        "schemathesis found failures in {name}:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(" passed"), "schemathesis ran no case against {name}:\n{report}");
}

#[tokio::test]
async fn the_services_keep_their_documented_contract() {
    let keys = [("API_KEY", KEY)];
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &keys);
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &[], &keys);
    embed.wait_ready(Duration::from_secs(30)).await;
    rerank.wait_ready(Duration::from_secs(30)).await;
    // The gateway on the remote services, so its fuzzing also crosses the model services' APIs.
    let data = TempDir::new("api-fuzz");
    let (embed_url, rerank_url) = (embed.url(""), rerank.url(""));
    let gateway = start_gateway_with_envs(
        &data,
        &["--embed-url", &embed_url, "--rerank-url", &rerank_url, "--default-collection", "fuzz"],
        &[("API_KEY", KEY), ("EMBED_API_KEY", KEY), ("RERANK_API_KEY", KEY)],
    );
    gateway.wait_ready(Duration::from_secs(30)).await;

    for (process, file) in
        [(&embed, "embed-service.json"), (&rerank, "rerank-service.json"), (&gateway, "search-gateway.json")]
    {
        let checked_in = std::fs::read_to_string(root().join("openapi").join(file)).unwrap();
        assert_eq!(served_document(process).await.trim_end(), checked_in.trim_end(), "openapi/{file} is stale");
    }

    // A collection for the fuzzed routes to find (schemathesis.toml names it as the path's `name`).
    let documents: Vec<_> = (0..8)
        .map(|i| json!({"id": format!("doc-{i}"), "text": format!("profile {i}: engineer"), "payload": {"n": i, "city": "Berlin"}}))
        .collect();
    let response = reqwest::Client::new()
        .put(gateway.url("/collections/fuzz/documents"))
        .bearer_auth(KEY)
        .json(&json!({"documents": documents}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // One at a time: the fixture engines are small, but two cores are all there is.
    fuzz("embed-service", &embed);
    fuzz("rerank-service", &rerank);
    fuzz("search-gateway", &gateway);

    for (name, process) in [("embed", &embed), ("rerank", &rerank), ("gateway", &gateway)] {
        assert!(!process.logs().contains("panicked"), "{name} panicked under fuzzing:\n{}", process.logs());
    }
}
