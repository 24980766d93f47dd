//! The TypeScript client (clients/typescript) against the real services: `npm test` there checks
//! that its generated types match openapi/, type-checks, and runs its `node --test` suite against
//! a gateway and both model services started here on free ports, API keys on.

use std::process::Command;
use std::time::Duration;

use e2e::{TempDir, fixture, root, start_gateway_with_envs, start_model_service};

#[tokio::test]
async fn the_typescript_client_passes_its_tests_against_the_live_services() {
    let package = root().join("clients/typescript");
    assert!(
        package.join("node_modules/.package-lock.json").is_file(),
        "clients/typescript/node_modules is missing: run scripts/setup.sh (it runs npm ci there)"
    );
    let (embed_key, rerank_key, gateway_key) = ("ts-embed-key", "ts-rerank-key", "ts-gateway-key");
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &[], &[("API_KEY", embed_key)]);
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &[], &[("API_KEY", rerank_key)]);
    embed.wait_ready(Duration::from_secs(30)).await;
    rerank.wait_ready(Duration::from_secs(30)).await;
    let data = TempDir::new("typescript-client");
    let (embed_url, rerank_url) = (embed.url(""), rerank.url(""));
    let gateway = start_gateway_with_envs(
        &data,
        &["--embed-url", &embed_url, "--rerank-url", &rerank_url],
        &[("API_KEY", gateway_key), ("EMBED_API_KEY", embed_key), ("RERANK_API_KEY", rerank_key)],
    );
    gateway.wait_ready(Duration::from_secs(30)).await;

    let output = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(&package)
        .env("SEARCH_GATEWAY_URL", gateway.url(""))
        .env("SEARCH_GATEWAY_API_KEY", gateway_key)
        .env("EMBED_SERVICE_URL", embed.url(""))
        .env("EMBED_SERVICE_API_KEY", embed_key)
        .env("RERANK_SERVICE_URL", rerank.url(""))
        .env("RERANK_SERVICE_API_KEY", rerank_key)
        .output()
        .expect("npm (Node 20) on PATH");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "npm test failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("# fail 0") && !stdout.contains("# pass 0"), "node --test ran nothing?\n{stdout}");
}
