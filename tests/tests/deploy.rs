//! What can be checked of the deployment without a Docker engine: compose.yaml's invariants,
//! .env.example, the Dockerfile's use of the project's own scripts, and the `healthcheck`
//! subcommands the images rely on, against the running binaries.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{fixture, root, run_to_exit, start_model_service};
use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let text = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// A service's key, looking through `<<: *anchor` merges.
fn key<'a>(service: &'a Yaml, name: &str) -> &'a Yaml {
    let direct = &service[name];
    if direct.is_badvalue() { &service["<<"][name] } else { direct }
}

fn services(doc: &Yaml) -> Vec<(String, &Yaml)> {
    doc["services"].as_hash().unwrap().iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v)).collect()
}

const INTERNAL: [&str; 5] = ["embed-service", "rerank-service", "search-gateway", "redis", "qdrant"];

#[test]
fn compose_keeps_everything_internal_healthy_and_limited() {
    let doc = compose();
    let names: BTreeSet<String> = services(&doc).into_iter().map(|(n, _)| n).collect();
    for name in INTERNAL {
        assert!(names.contains(name), "{name} is in compose.yaml");
    }
    assert_eq!(doc["networks"]["weavink-internal"]["name"].as_str(), Some("weavink-internal"));
    for (name, service) in services(&doc) {
        let networks = service["networks"].as_vec().unwrap_or_else(|| panic!("{name} has networks"));
        assert!(networks.iter().any(|n| n.as_str() == Some("weavink-internal")), "{name} on weavink-internal");
        assert!(key(service, "restart").as_str().is_some(), "{name} has a restart policy");
        let profiles: Vec<&str> =
            service["profiles"].as_vec().map(|p| p.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default();
        if INTERNAL.contains(&name.as_str()) {
            assert!(service["ports"].is_badvalue(), "{name} publishes no port");
            assert!(profiles.is_empty(), "{name} runs in every profile");
            let test = service["healthcheck"]["test"].as_vec().unwrap_or_else(|| panic!("{name} has a healthcheck"));
            assert!(!test.is_empty());
            assert!(!service["deploy"]["resources"]["limits"]["cpus"].is_badvalue(), "{name} has a CPU limit");
            assert!(!service["deploy"]["resources"]["limits"]["memory"].is_badvalue(), "{name} has a memory limit");
        } else {
            // Anything else is opt-in and publishes on loopback only.
            assert_eq!(profiles, ["local"], "{name} is opt-in");
            for port in service["ports"].as_vec().into_iter().flatten() {
                assert!(port.as_str().unwrap().starts_with("127.0.0.1:"), "{name} publishes on loopback only");
            }
        }
    }
    let limits = |name: &str| {
        let l = &doc["services"][name]["deploy"]["resources"]["limits"];
        (l["cpus"].as_str().unwrap().to_string(), l["memory"].as_str().unwrap().to_string())
    };
    assert_eq!(limits("embed-service"), ("6".into(), "6G".into()));
    assert_eq!(limits("rerank-service"), ("4".into(), "4G".into()));

    let start = |name: &str| doc["services"][name]["healthcheck"]["start_period"].as_str().unwrap().to_string();
    assert_eq!((start("embed-service"), start("rerank-service")), ("180s".into(), "120s".into()));
    for (name, test) in
        [("embed-service", "embed-service"), ("rerank-service", "rerank-service"), ("search-gateway", "search-gateway")]
    {
        let cmd: Vec<&str> =
            doc["services"][name]["healthcheck"]["test"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
        assert_eq!(cmd, ["CMD", test, "healthcheck"], "{name} checks itself without curl");
    }
    let gateway = &doc["services"]["search-gateway"];
    for dependency in ["embed-service", "rerank-service", "redis", "qdrant"] {
        assert_eq!(gateway["depends_on"][dependency]["condition"].as_str(), Some("service_healthy"), "{dependency}");
    }
    let env = &gateway["environment"];
    assert_eq!(env["EMBED_URL"].as_str(), Some("http://embed-service:5555"), "by service name");
    assert_eq!(env["RERANK_URL"].as_str(), Some("http://rerank-service:5556"));
    assert_eq!(env["QDRANT_URL"].as_str(), Some("http://qdrant:6334"));

    let redis = &doc["services"]["redis"];
    assert!(redis["image"].as_str().unwrap().starts_with("redis:7.2"));
    let command: Vec<&str> = redis["command"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    let flag = |name: &str| command.iter().position(|a| *a == name).map(|i| command[i + 1]);
    assert_eq!(flag("--maxmemory"), Some("4gb"));
    assert_eq!(flag("--maxmemory-policy"), Some("allkeys-lru"));
    assert_eq!(flag("--appendonly"), Some("yes"));
    assert!(flag("--requirepass").unwrap().starts_with("${REDIS_PASSWORD"), "password from the environment");
    assert!(!redis["volumes"].is_badvalue());
    let qdrant = &doc["services"]["qdrant"];
    let image = qdrant["image"].as_str().unwrap();
    assert!(image.starts_with("qdrant/qdrant:v1.") && !image.ends_with("latest"), "pinned: {image}");
    assert!(qdrant["environment"]["QDRANT__SERVICE__API_KEY"].as_str().unwrap().starts_with("${QDRANT_API_KEY"));
    assert!(!qdrant["volumes"].is_badvalue());
}

/// Every `${VAR...}` compose.yaml uses.
fn variables(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect()
}

#[test]
fn no_secret_is_committed_and_env_example_lists_every_variable() {
    let text = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    let example = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let listed: BTreeSet<String> = example
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, _)| k.trim().to_string())
        .collect();
    for variable in variables(&text) {
        assert!(listed.contains(&variable), "{variable} is missing from .env.example");
    }
    for secret in ["REDIS_PASSWORD", "QDRANT_API_KEY"] {
        let line = example.lines().find(|l| l.starts_with(&format!("{secret}="))).unwrap();
        assert_eq!(line, format!("{secret}="), "no value for {secret} in .env.example");
    }
    // Secrets only ever come from variables: every password or key value is a ${...} reference.
    for line in text.lines().map(str::trim) {
        let lower = line.to_lowercase();
        if (lower.contains("password") || lower.contains("api_key")) && line.contains(':') && !line.starts_with('#') {
            let value = line.split_once(':').unwrap().1.trim();
            assert!(value.is_empty() || line.contains("${"), "a literal secret? {line}");
        }
    }
    let requirepass = text.lines().skip_while(|l| !l.contains("--requirepass")).nth(1).unwrap().trim();
    assert!(requirepass.starts_with("- ${REDIS_PASSWORD"), "{requirepass}");
    let ignored = std::fs::read_to_string(root().join(".gitignore")).unwrap();
    assert!(ignored.lines().any(|l| l.trim() == ".env" || l.trim() == "/.env"), ".env is never committed");
}

#[test]
fn images_use_the_scripts_ci_runs_and_no_compilers_at_run_time() {
    let dockerfile = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let setup = std::fs::read_to_string(root().join("scripts/setup.sh")).unwrap();
    assert!(dockerfile.contains("scripts/install-ort.sh python3 /opt/onnxruntime/lib"));
    assert!(setup.contains("scripts/install-ort.sh .venv/bin/python .ort/lib"), "CI's set-up runs the same script");
    // Stages from the runtime base on install nothing but the runtime libraries.
    let runtime = &dockerfile[dockerfile.find("AS runtime").unwrap()..];
    for compiler in ["gcc", "g++", "cargo ", "rustc", "clang"] {
        assert!(!runtime.contains(compiler), "{compiler} in a runtime stage");
    }
    assert!(runtime.contains("USER app") && runtime.contains("--uid 10001"), "non-root");
    for (target, start) in [("embed-service", "180s"), ("rerank-service", "120s"), ("search-gateway", "180s")] {
        let stage = &dockerfile[dockerfile.find(&format!("AS {target}")).unwrap()..];
        let healthcheck = stage.lines().find(|l| l.starts_with("HEALTHCHECK")).unwrap();
        assert!(healthcheck.contains(&format!("--start-period={start}")), "{healthcheck}");
        assert!(healthcheck.contains(&format!("CMD [\"{target}\", \"healthcheck\"]")), "{healthcheck}");
    }
    assert!(dockerfile.contains("cargo chef cook --release --locked"), "dependency layers cached apart");
}

#[tokio::test]
async fn healthcheck_subcommands_answer_for_the_running_binaries() {
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &["--intra-op-threads", "1"], &[]);
    let rerank = start_model_service("rerank-service", &fixture("tiny-reranker"), &["--intra-op-threads", "1"], &[]);
    let data = e2e::TempDir::new("deploy-health");
    let (embed_url, rerank_url) = (embed.url(""), rerank.url(""));
    let gateway = e2e::start_gateway(&data, &["--embed-url", &embed_url, "--rerank-url", &rerank_url]);
    for (binary, process) in [("embed-service", &embed), ("rerank-service", &rerank), ("search-gateway", &gateway)] {
        process.wait_ready(Duration::from_secs(60)).await;
        // As in the images: the port comes from PORT, the rest is the default.
        let port = process.addr.port().to_string();
        let (status, stderr) = run_to_exit(binary, &["healthcheck"], &[("PORT", &port)]);
        assert!(status.success(), "{binary}: {stderr}");
        let url = process.url("/ready");
        let (status, _) = run_to_exit(binary, &["healthcheck", "--url", &url], &[]);
        assert!(status.success(), "{binary} --url");
    }
    let port = embed.addr.port().to_string();
    drop(embed);
    let (status, stderr) = run_to_exit("embed-service", &["healthcheck"], &[("PORT", &port)]);
    assert_eq!(status.code(), Some(1), "a stopped service is unhealthy");
    assert!(stderr.contains("not ready"), "{stderr}");
    drop(gateway);
    drop(rerank);
}
