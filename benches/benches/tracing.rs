//! tracing bench: what exporting traces costs search-gateway, in its embedded mode on the same
//! models as the gateway bench. Three gateways on the same data, measured in interleaved rounds:
//! tracing off, on with a collector that takes the spans (our OTLP receiver, in this process), and
//! on with a collector that is down (nothing listens). Each round: cache-miss searches and cache
//! hits one at a time (p50), and a closed loop of cache-bypassing searches (throughput).
//!
//!     scripts/bench.sh tracing
//!     scripts/bench.sh tracing -- --embed-model models/fixtures/tiny-e5 --rerank-model models/fixtures/tiny-reranker

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benches::{Latencies, Rng, closed_loop, median, open_model, text_of_length};
use clap::Parser;
use e2e::otlp::OtlpReceiver;
use e2e::{Process, TempDir};
use serde_json::{Value, json};
use shared::tokenize::InputType;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    embed_model: PathBuf,
    #[arg(long, default_value = "models/bench/bge-reranker-base-shaped-int8")]
    rerank_model: PathBuf,
    /// Documents indexed (20-120 tokens each).
    #[arg(long, default_value_t = 200)]
    documents: usize,
    /// Cache-miss searches per mode and round (10-30 token queries).
    #[arg(long, default_value_t = 12)]
    misses: usize,
    /// Cache hits per mode and round.
    #[arg(long, default_value_t = 300)]
    hits: usize,
    /// Cache-bypassing searches of the closed loop, per mode and round.
    #[arg(long, default_value_t = 32)]
    loop_searches: usize,
    /// Clients of the closed loop.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Rounds; each measures every mode once, in a rotating order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const MODES: [&str; 3] = ["off", "on, collector up", "on, collector down"];

/// One round's figures for one mode: miss p50, hit p50 (ms), closed-loop searches per second.
type Figures = [f64; 3];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (embed_path, _, tokenizer) = open_model("tracing", &args.embed_model)?;
    let rerank_path = e2e::root().join(&args.rerank_model);
    let mut rng = Rng::new(11);
    let documents: Vec<String> = (0..args.documents)
        .map(|_| text_of_length(&tokenizer, InputType::Passage, rng.range(20, 120), &mut rng))
        .collect();
    let queries = args.misses * args.rounds + args.loop_searches * args.rounds + 1;
    // Numbered, so that no two are the same and none is empty (the tiny fixture's vocabulary can
    // yield an empty text).
    let queries: Vec<String> = (0..queries)
        .map(|i| format!("{i} {}", text_of_length(&tokenizer, InputType::Query, rng.range(10, 30), &mut rng)))
        .collect();

    let runtime = tokio::runtime::Runtime::new()?;
    let receiver = runtime.block_on(OtlpReceiver::start());
    let down = format!("http://127.0.0.1:{}", e2e::free_port());
    let client = reqwest::Client::new();
    let dirs: Vec<TempDir> = MODES.iter().map(|_| TempDir::new("tracing-bench")).collect();
    let endpoints = [None, Some(receiver.endpoint()), Some(down)];
    let gateways: Vec<Process> = dirs
        .iter()
        .zip(&endpoints)
        .map(|(dir, endpoint)| start_gateway(&runtime, dir, &embed_path, &rerank_path, endpoint.as_deref()))
        .collect();
    for gateway in &gateways {
        index(&runtime, &client, gateway, &documents)?;
    }
    println!("{} documents indexed in each of {} gateways", documents.len(), gateways.len());

    let mut figures: Vec<Vec<Figures>> = vec![Vec::new(); MODES.len()];
    let mut queries = queries.into_iter();
    for round in 0..args.rounds {
        let misses: Vec<String> = queries.by_ref().take(args.misses).collect();
        let looped: Vec<Value> = queries
            .by_ref()
            .take(args.loop_searches)
            .map(|q| json!({"query": q, "collection": "bench", "cache": "bypass"}))
            .collect();
        for k in 0..MODES.len() {
            let mode = (round + k) % MODES.len();
            let measured = measure(&runtime, &client, &gateways[mode], &misses, &looped, &args)?;
            figures[mode].push(measured);
        }
        println!("round {} of {} done", round + 1, args.rounds);
    }

    let spans = receiver.spans();
    println!("\nspans the collector received: {} (from the gateway traced to it)", spans.len());
    println!(
        "\n{} rounds; per round: {} cache misses and {} cache hits one at a time, a closed loop of {} cache-bypassing searches at c={}",
        args.rounds, args.misses, args.hits, args.loop_searches, args.concurrency
    );
    println!("median over rounds [min-max]; ratio = mode / off, of the medians\n");
    println!("| tracing | miss p50 ms | ratio | hit p50 ms | ratio | searches/s (c={}) | ratio |", args.concurrency);
    println!("|---|---|---|---|---|---|---|");
    let summary = |mode: usize, i: usize| {
        let values: Vec<f64> = figures[mode].iter().map(|f| f[i]).collect();
        let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        (median(&values), lo, hi)
    };
    for (mode, name) in MODES.iter().enumerate() {
        let mut row = format!("| {name} |");
        for (i, digits) in [(0, 2), (1, 3), (2, 2)] {
            let (m, lo, hi) = summary(mode, i);
            let ratio = m / summary(0, i).0;
            row += &format!(" {m:.digits$} [{lo:.digits$}-{hi:.digits$}] | {ratio:.3} |");
        }
        println!("{row}");
    }
    Ok(())
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    gateway: &Process,
    misses: &[String],
    looped: &[Value],
    args: &Args,
) -> anyhow::Result<Figures> {
    let url = gateway.url("/search");
    let mut miss_ms = Vec::new();
    for query in misses {
        let body = json!({"query": query, "collection": "bench", "cache": "bypass"});
        miss_ms.push(runtime.block_on(post(client, &url, &body))?);
    }
    let hit = json!({"query": misses[0], "collection": "bench"});
    runtime.block_on(post(client, &url, &hit))?;
    let mut hit_ms = Vec::new();
    for _ in 0..args.hits {
        hit_ms.push(runtime.block_on(post(client, &url, &hit))?);
    }
    let run = runtime.block_on(closed_loop::run(&url, looped, args.concurrency));
    anyhow::ensure!(run.errors() == 0, "closed loop failed: {:?}", run.first_error());
    Ok([Latencies::new(miss_ms).median(), Latencies::new(hit_ms).median(), run.steady_rate("bypass")])
}

fn start_gateway(
    runtime: &tokio::runtime::Runtime,
    data: &TempDir,
    embed: &Path,
    rerank: &Path,
    otlp: Option<&str>,
) -> Process {
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str()];
    args.extend(["--embed-model-dir", embed.to_str().unwrap(), "--rerank-model-dir", rerank.to_str().unwrap()]);
    args.extend(["--rerank-budget-ms", "600000"]);
    let mut envs = vec![("RUST_LOG", "warn,search_gateway::http::serve=info")];
    if let Some(url) = otlp {
        envs.push(("OTEL_EXPORTER_OTLP_ENDPOINT", url));
    }
    let gateway = Process::start("search-gateway", &args, &envs);
    runtime.block_on(gateway.wait_ready(Duration::from_secs(900)));
    gateway
}

fn index(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    gateway: &Process,
    documents: &[String],
) -> anyhow::Result<()> {
    for (i, chunk) in documents.chunks(50).enumerate() {
        let docs: Vec<Value> =
            chunk.iter().enumerate().map(|(j, text)| json!({"id": format!("d{}", i * 50 + j), "text": text})).collect();
        let put = client.put(gateway.url("/collections/bench/documents")).json(&json!({"documents": docs}));
        let response = runtime.block_on(put.send())?;
        anyhow::ensure!(response.status() == 200, "upsert failed: {}", response.status());
    }
    Ok(())
}

/// One search; its client-observed latency in ms.
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<f64> {
    let t = Instant::now();
    let response = client.post(url).json(body).send().await?;
    let status = response.status();
    let out: Value = response.json().await?;
    anyhow::ensure!(status == 200, "search failed: {status} {out}");
    Ok(t.elapsed().as_secs_f64() * 1e3)
}
