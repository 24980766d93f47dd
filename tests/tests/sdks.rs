//! The official SDKs that frameworks call, pointed at the live services (versions pinned in
//! tests/sdk/requirements.txt, installed into .venv by scripts/setup.sh): the Cohere Python SDK's
//! `Client` and `ClientV2` against rerank-service's `/v1/rerank` and `/v2/rerank`.

use std::process::Command;
use std::time::Duration;

use e2e::{fixture, post_json, root, start_model_service};
use serde_json::{Value, json};

/// The script's query and documents (tests/sdk/cohere_rerank.py).
const QUERY: &str = "who writes rust";
const DOCUMENTS: [&str; 4] = [
    "Rust engineer in Berlin, building search engines",
    "Pastry chef in Lyon",
    "Data scientist in Paris, machine learning",
    "Backend developer (Go, Rust) in Madrid",
];

#[tokio::test]
async fn the_cohere_sdk_reranks_through_v1_and_v2() {
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &[], &[]);
    rerank.wait_ready(Duration::from_secs(60)).await;
    // The service's own ranking, which every SDK call must reproduce.
    let body = json!({"query": QUERY, "documents": DOCUMENTS});
    let (status, out) = post_json(&reqwest::Client::new(), rerank.url("/rerank"), body).await;
    assert_eq!(status, 200, "{out}");
    let expected: Vec<Value> = out["results"].as_array().unwrap().iter().map(|r| r["index"].clone()).collect();

    let python = root().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/setup.sh", python.display());
    let output = Command::new(python)
        .arg(root().join("tests/sdk/cohere_rerank.py"))
        .env("RERANK_URL", rerank.url(""))
        .env("EXPECTED", Value::from(expected).to_string())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the Cohere SDK script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    println!("{}", stdout.trim());
}
