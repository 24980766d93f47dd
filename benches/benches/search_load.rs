//! search-load bench: many concurrent searchers on the full-size int8 model shapes, in the
//! embedded mode (one gateway process) and the remote mode (gateway + embed-service +
//! rerank-service), against the raw engines' capacity; then searches during an `ingest`.
//!
//!     scripts/bench.sh search_load
//!
//! Raw capacity: one query embedding (at its cheapest per query of batch 1 and 16) plus one
//! 50-pair rerank (at its best chunking), run back to back by the raw engines, gives the
//! searches/s these cores can do. Workloads, closed-loop clients at each concurrency: all misses
//! (`"cache": "bypass"`), and a mix whose queries follow a Zipf law (most are cache hits; each
//! level has its own queries, so each starts cold). Engine busy: inference seconds (embed +
//! rerank) per second of the level.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use benches::closed_loop::{self, Run, zipf_draws};
use benches::raw_search::raw_capacity;
use benches::{Latencies, Rng, machine, metric, open_model, text_of_length};
use clap::Parser;
use e2e::{Process, TempDir, binary, start_model_service};
use serde_json::{Value, json};
use shared::ModelDir;
use shared::tokenize::{InputType, TextTokenizer};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    embed_model: PathBuf,
    #[arg(long, default_value = "models/bench/bge-reranker-base-shaped-int8")]
    rerank_model: PathBuf,
    /// Documents indexed (20-120 tokens each).
    #[arg(long, default_value_t = 2000)]
    documents: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,32")]
    concurrency: Vec<usize>,
    /// All-miss searches per client at each level (at least 12 per level).
    #[arg(long, default_value_t = 2)]
    misses_per_client: usize,
    /// Searches per client of the Zipf mix at each level (at least 48 per level).
    #[arg(long, default_value_t = 8)]
    mix_per_client: usize,
    /// Distinct queries the mix draws from, and the Zipf exponent of their popularity.
    #[arg(long, default_value_t = 400)]
    zipf_pool: usize,
    #[arg(long, default_value_t = 1.1)]
    zipf_exponent: f64,
    /// Modes to run: embedded; remote (one embed-service and one rerank-service, each with all
    /// cores' threads); replicas (two of each, one thread each).
    #[arg(long, value_delimiter = ',', default_value = "embedded,remote")]
    modes: Vec<String>,
    /// Documents per `ingest` run of the search-during-ingest part (0 skips it).
    #[arg(long, default_value_t = 300)]
    ingest_documents: usize,
    /// Extra arguments for every service, as one string.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    service_args: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Stack {
    gateway: Process,
    /// Where the engines' metrics are: the gateway itself, or the two model services.
    engines: Vec<Process>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (embed_path, embed_dir, tokenizer) = open_model("search_load", &args.embed_model)?;
    let rerank_path = e2e::root().join(&args.rerank_model);
    let rerank_dir = ModelDir::open(&rerank_path)?;
    let rerank_tokenizer = TextTokenizer::load(&rerank_dir.tokenizer_path(), &rerank_dir.config)?;
    println!("{}; models {} + {}", machine(), embed_dir.name(), rerank_dir.name());

    let mut rng = Rng::new(11);
    let passages = |n: usize, rng: &mut Rng| -> Vec<String> {
        (0..n).map(|_| text_of_length(&tokenizer, InputType::Passage, rng.range(20, 120), rng)).collect()
    };
    let corpus = passages(args.documents, &mut rng);
    let ingest_sets = [passages(args.ingest_documents, &mut rng), passages(args.ingest_documents, &mut rng)];
    // A query of few tokens can come out as the prefix alone, an empty query (422): draw again.
    let query = |rng: &mut Rng| loop {
        let text = text_of_length(&tokenizer, InputType::Query, rng.range(10, 30), rng);
        if !text.trim().is_empty() {
            break text;
        }
    };

    let capacity = raw_capacity(&embed_dir, &tokenizer, &rerank_dir, &rerank_tokenizer, &corpus, &mut rng)?;
    println!("raw capacity: {capacity:.3} searches/s (one query embedding + one 50-pair rerank, back to back)");

    let runtime = tokio::runtime::Runtime::new()?;
    let data = TempDir::new("search-load");
    let extra: Vec<String> = args.service_args.split_whitespace().map(String::from).collect();
    let t = Instant::now();
    {
        let stack = start("embedded", &runtime, &data, &embed_path, &rerank_path, &extra);
        runtime.block_on(index(&stack.gateway, &corpus))?;
    }
    println!("indexed {} documents in {:.0} s", corpus.len(), t.elapsed().as_secs_f64());

    for mode in &args.modes {
        let stack = start(mode, &runtime, &data, &embed_path, &rerank_path, &extra);
        println!("\n## {mode} mode\n");
        println!(
            "| workload | c | searches | misses/s | / raw | hits/s | miss p50 / p90 / p99 ms | hit p50 / p90 / p99 ms | errors | rerank fallbacks | engine busy |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for (level, &c) in args.concurrency.iter().enumerate() {
            let misses: Vec<Value> = (0..(c * args.misses_per_client).max(12))
                .map(|_| json!({"query": query(&mut rng), "collection": "bench", "cache": "bypass"}))
                .collect();
            report(&runtime, &stack, "all misses", c, &misses, capacity);
            let pool: Vec<String> = (0..args.zipf_pool).map(|i| format!("{} {level}-{i}", query(&mut rng))).collect();
            let mix: Vec<Value> =
                zipf_draws((c * args.mix_per_client).max(48), pool.len(), args.zipf_exponent, &mut rng)
                    .into_iter()
                    .map(|i| json!({"query": pool[i], "collection": "bench"}))
                    .collect();
            report(&runtime, &stack, "Zipf mix", c, &mix, capacity);
        }
        if args.ingest_documents > 0 {
            during_ingest(&runtime, &stack, mode, &ingest_sets, &mut || query(&mut rng))?;
        }
    }
    Ok(())
}

fn report(runtime: &tokio::runtime::Runtime, stack: &Stack, workload: &str, c: usize, bodies: &[Value], capacity: f64) {
    let busy_before = engine_seconds(runtime, stack);
    let run = runtime.block_on(closed_loop::run(&stack.gateway.url("/search"), bodies, c));
    let busy = (engine_seconds(runtime, stack) - busy_before) / run.elapsed.as_secs_f64();
    let tails = |l: Latencies| match l.len() {
        0 => "-".to_string(),
        _ => format!("{:.0} / {:.0} / {:.0}", l.median(), l.percentile(90.0), l.percentile(99.0)),
    };
    let hit_tails = |l: Latencies| match l.len() {
        0 => "-".to_string(),
        _ => format!("{:.2} / {:.2} / {:.2}", l.median(), l.percentile(90.0), l.percentile(99.0)),
    };
    let misses = |run: &Run| run.steady_rate("miss") + run.steady_rate("bypass");
    println!(
        "| {workload} | {c} | {} | {:.3} | {:.2} | {:.1} | {} | {} | {} | {} | {busy:.2} |",
        run.answers.len(),
        misses(&run),
        misses(&run) / capacity,
        run.steady_rate("hit"),
        tails(Latencies::new([run.latencies("miss").values(), run.latencies("bypass").values()].concat())),
        hit_tails(run.latencies("hit")),
        run.errors(),
        run.reranked().1,
    );
    if let Some(error) = run.first_error() {
        println!("first error: {error}");
    }
}

/// Search latency alone, then an ingest alone, then the two together.
fn during_ingest(
    runtime: &tokio::runtime::Runtime,
    stack: &Stack,
    mode: &str,
    sets: &[Vec<String>; 2],
    query: &mut dyn FnMut() -> String,
) -> anyhow::Result<()> {
    let searches = |n: usize, query: &mut dyn FnMut() -> String| -> Vec<Value> {
        (0..n).map(|_| json!({"query": query(), "collection": "bench", "cache": "bypass"})).collect()
    };
    let url = stack.gateway.url("/search");
    let idle = runtime.block_on(closed_loop::run(&url, &searches(15, query), 1)).latencies("bypass");
    let dir = TempDir::new("search-load-ingest");
    let alone = ingest(&dir, &stack.gateway, &sets[0], &format!("{mode}-a"))?.wait_docs_per_s()?;
    let job = ingest(&dir, &stack.gateway, &sets[1], &format!("{mode}-b"))?;
    let mut during = Vec::new();
    while !job.finished() {
        let run = runtime.block_on(closed_loop::run(&url, &searches(1, query), 1));
        during.extend(run.latencies("bypass").values());
    }
    let beside = job.wait_docs_per_s()?;
    let during = Latencies::new(during);
    println!("\nsearch (c=1, misses) during an ingest through the gateway ({} documents per run):\n", sets[0].len());
    println!("| | search p50 ms | search p99 ms | searches | ingest documents/s |");
    println!("|---|---|---|---|---|");
    println!(
        "| idle / ingest alone | {:.0} | {:.0} | {} | {alone:.1} |",
        idle.median(),
        idle.percentile(99.0),
        idle.len()
    );
    println!(
        "| during the ingest | {:.0} | {:.0} | {} | {beside:.1} |",
        during.median(),
        during.percentile(99.0),
        during.len()
    );
    println!(
        "| ratio | {:.2} | {:.2} | | {:.2} |",
        during.median() / idle.median(),
        during.percentile(99.0) / idle.percentile(99.0),
        beside / alone
    );
    Ok(())
}

struct Job {
    child: std::process::Child,
    started: Instant,
    documents: usize,
}

impl Job {
    fn finished(&self) -> bool {
        // A zombie until waited for: check /proc for its state instead of reaping it here.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        stat.split(") ").nth(1).is_none_or(|rest| rest.starts_with('Z'))
    }

    fn wait_docs_per_s(mut self) -> anyhow::Result<f64> {
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "ingest failed: {status}");
        Ok(self.documents as f64 / self.started.elapsed().as_secs_f64())
    }
}

fn ingest(dir: &TempDir, gateway: &Process, texts: &[String], tag: &str) -> anyhow::Result<Job> {
    let path = dir.path().join(format!("{tag}.jsonl"));
    let lines: Vec<String> =
        texts.iter().enumerate().map(|(i, t)| json!({"id": format!("{tag}-{i}"), "text": t}).to_string()).collect();
    std::fs::write(&path, lines.join("\n"))?;
    let args =
        ["ingest", "--collection", "bench", "--input", path.to_str().unwrap(), "--gateway-url", &gateway.url("")];
    let child = Command::new(binary("search-gateway"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Job { child, started: Instant::now(), documents: texts.len() })
}

fn start(
    mode: &str,
    runtime: &tokio::runtime::Runtime,
    data: &TempDir,
    embed: &Path,
    rerank: &Path,
    extra: &[String],
) -> Stack {
    let quiet = [("RUST_LOG", "warn,search_gateway::http::serve=info,shared::http=info")];
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str()];
    let mut engines = Vec::new();
    let urls: [String; 2];
    if mode == "embedded" {
        args.extend(["--embed-model-dir", embed.to_str().unwrap(), "--rerank-model-dir", rerank.to_str().unwrap()]);
    } else {
        // One box: the services share the cores, so their idle threads must not spin. "remote":
        // one of each with all cores' threads; "replicas": two of each with one thread each.
        let (replicas, threads) = if mode == "replicas" { (2, "1") } else { (1, "0") };
        let mut service_args = vec!["--intra-op-spinning", "false"];
        if threads != "0" {
            service_args.extend(["--intra-op-threads", threads]);
        }
        service_args.extend_from_slice(&extra);
        for model in [embed, rerank] {
            for _ in 0..replicas {
                let binary = if model == embed { "embed-service" } else { "rerank-service" };
                engines.push(start_model_service(binary, model, &service_args, &quiet));
            }
        }
        for engine in &engines {
            runtime.block_on(engine.wait_ready(Duration::from_secs(900)));
        }
        let list = |services: &[Process]| services.iter().map(|p| p.url("")).collect::<Vec<_>>().join(",");
        urls = [list(&engines[..replicas]), list(&engines[replicas..])];
        args.extend(["--embed-url", &urls[0], "--rerank-url", &urls[1]]);
    }
    // Budgets long enough for the deepest queue here (32 searches of ~1 s of engine time each):
    // the bench measures capacity, so a miss is always fully reranked.
    args.extend(["--embed-timeout-ms", "300000", "--rerank-timeout-ms", "300000", "--rerank-budget-ms", "300000"]);
    args.extend_from_slice(&extra);
    let gateway = Process::start("search-gateway", &args, &quiet);
    runtime.block_on(gateway.wait_ready(Duration::from_secs(900)));
    Stack { gateway, engines }
}

async fn index(gateway: &Process, corpus: &[String]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for (i, chunk) in corpus.chunks(64).enumerate() {
        let docs: Vec<Value> =
            chunk.iter().enumerate().map(|(j, t)| json!({"id": format!("d{}", i * 64 + j), "text": t})).collect();
        let url = gateway.url("/collections/bench/documents");
        let response = client.put(url).json(&json!({"documents": docs})).send().await?;
        anyhow::ensure!(response.status() == 200, "upsert failed: {}", response.status());
    }
    Ok(())
}

/// Inference seconds so far, embed and rerank, wherever the engines run.
fn engine_seconds(runtime: &tokio::runtime::Runtime, stack: &Stack) -> f64 {
    let processes: Vec<&Process> =
        if stack.engines.is_empty() { vec![&stack.gateway] } else { stack.engines.iter().collect() };
    processes
        .iter()
        .map(|p| {
            let text =
                runtime.block_on(async { reqwest::get(p.url("/metrics")).await?.text().await }).unwrap_or_default();
            ["embed", "rerank"]
                .iter()
                .flat_map(|e| {
                    [
                        format!("{e}_inference_duration_seconds_sum"),
                        format!("gateway_{e}_inference_duration_seconds_sum"),
                    ]
                })
                .map(|name| metric(&text, &name))
                .filter(|v| v.is_finite())
                .sum::<f64>()
        })
        .sum()
}
