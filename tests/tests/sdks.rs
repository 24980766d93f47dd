//! The official SDKs that frameworks call, pointed at the live services (versions pinned in
//! tests/sdk/requirements.txt, installed into .venv by scripts/setup.sh): the Cohere Python SDK's
//! `Client` and `ClientV2` against rerank-service's `/v1/rerank` and `/v2/rerank`, and the OpenAI
//! Python SDK against embed-service's `/v1/embeddings`; and the npm `openai` and `cohere-ai` SDKs
//! (tests/sdk/package.json, installed by setup), as a Next.js app would call them.

use std::process::Command;
use std::time::Duration;

use e2e::{TempDir, fixture, post_json, root, start_gateway, start_model_service};
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
    let expected = rerank_order(&rerank).await;
    run_script("cohere_rerank.py", &[("RERANK_URL", rerank.url("")), ("EXPECTED", expected)]);
}

/// The gateway's Cohere routes, through its reranker in process and through a remote
/// rerank-service (which `max_tokens_per_doc` reaches by its /v2/rerank): the same engine, so the
/// same order as rerank-service's own /rerank.
#[tokio::test]
async fn the_cohere_sdk_reranks_through_the_gateway_in_process_and_remote() {
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &[], &[]);
    rerank.wait_ready(Duration::from_secs(60)).await;
    let expected = rerank_order(&rerank).await;
    let (in_process, remote) = (TempDir::new("sdk-gateway"), TempDir::new("sdk-gateway-remote"));
    let rerank_url = rerank.url("");
    for (data, extra) in [(&in_process, vec![]), (&remote, vec!["--rerank-url", rerank_url.as_str()])] {
        let gateway = start_gateway(data, &extra);
        gateway.wait_ready(Duration::from_secs(60)).await;
        run_script("cohere_rerank.py", &[("RERANK_URL", gateway.url("")), ("EXPECTED", expected.clone())]);
    }
}

#[tokio::test]
async fn the_openai_sdk_embeds_through_v1_embeddings() {
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &[]);
    embed.wait_ready(Duration::from_secs(60)).await;
    run_script("openai_embeddings.py", &[("EMBED_URL", embed.url(""))]);
}

#[tokio::test]
async fn the_npm_sdks_embed_and_rerank() {
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &[]);
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &[], &[]);
    embed.wait_ready(Duration::from_secs(60)).await;
    rerank.wait_ready(Duration::from_secs(60)).await;
    let expected = rerank_order(&rerank).await;
    let envs = [("EMBED_URL", embed.url("")), ("RERANK_URL", rerank.url("")), ("EXPECTED", expected)];
    assert!(root().join("tests/sdk/node_modules").is_dir(), "tests/sdk/node_modules is missing: run scripts/setup.sh");
    run("node", "sdks.mjs", &envs);
}

/// The service's own `/rerank` order for QUERY over DOCUMENTS, as JSON.
async fn rerank_order(rerank: &e2e::Process) -> String {
    let body = json!({"query": QUERY, "documents": DOCUMENTS});
    let (status, out) = post_json(&reqwest::Client::new(), rerank.url("/rerank"), body).await;
    assert_eq!(status, 200, "{out}");
    let order: Vec<Value> = out["results"].as_array().unwrap().iter().map(|r| r["index"].clone()).collect();
    Value::from(order).to_string()
}

/// Runs tests/sdk/<script> with the project's Python and `envs`.
fn run_script(script: &str, envs: &[(&str, String)]) {
    let python = root().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/setup.sh", python.display());
    run(python.to_str().unwrap(), script, envs);
}

/// Runs tests/sdk/<script> with `program` in tests/sdk and `envs`; it must end "N passed, 0 failed".
fn run(program: &str, script: &str, envs: &[(&str, String)]) {
    let mut command = Command::new(program);
    command.current_dir(root().join("tests/sdk")).arg(script);
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    println!("{}", stdout.trim());
}
