//! upsert bench: latency of `PUT /collections/{name}/documents` with 1 and with 64 new documents
//! on the embedded gateway (in-process embedder, qdrant-edge), one client, sequential requests.
//! With `--baseline PATH` it alternates that binary (e.g. a build of an earlier commit) with this
//! workspace's release build, each on a fresh data directory, and prints the ratios.
//!
//!     scripts/bench.sh upsert -- --baseline /tmp/search-gateway-before

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benches::{Latencies, Rng, open_model, text_of_length};
use clap::Parser;
use e2e::{Process, TempDir, fixture};
use serde_json::{Value, json};
use shared::tokenize::InputType;

#[derive(Parser)]
struct Args {
    /// The embedding model the gateway serves in process.
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    model: PathBuf,
    /// Another search-gateway binary to compare with, run alternately with this build.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Requests of 1 document, and of 64 documents, per run.
    #[arg(long, default_value_t = 60)]
    single: usize,
    #[arg(long, default_value_t = 12)]
    batches: usize,
    /// Tokens per document.
    #[arg(long, default_value_t = 24)]
    tokens: usize,
    /// Runs of each binary (alternated).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Extra arguments for the gateway, as one string.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    gateway_args: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Latencies (ms) of one run: 1-document requests, 64-document requests.
struct Run {
    single: Vec<f64>,
    batch: Vec<f64>,
}

fn run(binary: &Path, args: &Args, texts: &mut impl FnMut() -> String, runtime: &tokio::runtime::Runtime) -> Run {
    let data = TempDir::new("upsert-bench");
    let (model, reranker) = (e2e::root().join(&args.model), fixture("tiny-reranker"));
    let mut argv = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str()];
    argv.extend(["--embed-model-dir", model.to_str().unwrap(), "--rerank-model-dir", reranker.to_str().unwrap()]);
    argv.extend(args.gateway_args.split_whitespace());
    // Named explicitly: a binary built elsewhere looks for the library under its own tree.
    let ort = e2e::root().join(".ort/lib/libonnxruntime.so");
    let envs = [("RUST_LOG", "warn,search_gateway=info"), ("ORT_DYLIB_PATH", ort.to_str().unwrap())];
    let gateway = Process::start_binary(binary, &argv, &envs);
    runtime.block_on(gateway.wait_ready(Duration::from_secs(600)));
    let client = reqwest::Client::new();
    let url = gateway.url("/collections/bench/documents");
    let mut next_id = 0;
    let mut send = |count: usize| -> f64 {
        let documents: Vec<Value> = (0..count)
            .map(|_| {
                next_id += 1;
                json!({"id": format!("doc-{next_id}"), "text": texts(), "payload": {"n": next_id}})
            })
            .collect();
        let body = json!({ "documents": documents });
        let started = Instant::now();
        let response = runtime.block_on(client.put(&url).json(&body).send()).unwrap();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(response.status(), 200);
        ms
    };
    send(1); // creates the collection
    let single = (0..args.single).map(|_| send(1)).collect();
    let batch = (0..args.batches).map(|_| send(64)).collect();
    Run { single, batch }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (_, _, tokenizer) = open_model("upsert", &args.model)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let current = e2e::binary("search-gateway");
    let mut binaries = vec![("this build", current)];
    if let Some(baseline) = &args.baseline {
        binaries.insert(0, ("baseline", baseline.clone()));
    }
    let mut rng = Rng::new(29);
    let mut texts = || text_of_length(&tokenizer, InputType::Passage, args.tokens, &mut rng);
    let mut runs: Vec<Vec<Run>> = binaries.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for (i, (name, binary)) in binaries.iter().enumerate() {
            let run = run(binary, &args, &mut texts, &runtime);
            let (s, b) = (Latencies::new(run.single.clone()), Latencies::new(run.batch.clone()));
            println!(
                "round {round}, {name}: 1 doc p50 {:.1} ms p99 {:.1} ms | 64 docs p50 {:.0} ms p99 {:.0} ms",
                s.median(),
                s.percentile(99.0),
                b.median(),
                b.percentile(99.0)
            );
            runs[i].push(run);
        }
    }
    println!("\n| {} tokens per document | 1 doc p50 | 1 doc p99 | 64 docs p50 | 64 docs p99 |", args.tokens);
    println!("|---|---|---|---|---|");
    let mut summary = Vec::new();
    for ((name, _), runs) in binaries.iter().zip(&runs) {
        let single = Latencies::new(runs.iter().flat_map(|r| r.single.clone()).collect());
        let batch = Latencies::new(runs.iter().flat_map(|r| r.batch.clone()).collect());
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.0} ms | {:.0} ms |",
            single.median(),
            single.percentile(99.0),
            batch.median(),
            batch.percentile(99.0)
        );
        summary.push((single, batch));
    }
    if let [(s0, b0), (s1, b1)] = summary.as_slice() {
        println!(
            "| ratio this build / baseline | {:.2} | {:.2} | {:.2} | {:.2} |",
            s1.median() / s0.median(),
            s1.percentile(99.0) / s0.percentile(99.0),
            b1.median() / b0.median(),
            b1.percentile(99.0) / b0.percentile(99.0)
        );
    }
    Ok(())
}
