//! rerank bench: one request of 50 documents of mixed lengths (20-200 tokens per pair) through
//! the rerank-service, against the raw engine scoring the same 50 pairs at its best batching;
//! then throughput under 8 concurrent such requests. The raw engine and the service take turns
//! for `--rounds` rounds; medians are reported.
//!
//!     scripts/bench.sh rerank -- --model models/bench/bge-reranker-base-shaped-int8

use std::path::PathBuf;
use std::time::Instant;

use benches::{Rng, document_of_pair_length, load, median, open_model, rss_mib, start_service};
use clap::Parser;
use serde_json::json;
use shared::session::{InferenceSession, SessionOptions};
use shared::tokenize::Encoded;

#[derive(Parser)]
struct Args {
    /// Model directory to bench.
    #[arg(long, default_value = "models/bench/bge-reranker-base-shaped-int8")]
    model: PathBuf,
    /// Rounds of raw engine then service.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Sequential single requests per round (latency).
    #[arg(long, default_value_t = 5)]
    requests: usize,
    /// Requests per round at concurrency 8 (throughput).
    #[arg(long, default_value_t = 16)]
    concurrent_requests: usize,
    /// Raw-engine batch sizes to try on the sorted pairs.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16,25,50")]
    raw_batches: Vec<usize>,
    /// Extra arguments for rerank-service, as one string.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    service_args: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const QUERY: &str = "senior rust engineer in berlin with search experience";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (model, dir, tokenizer) = open_model("rerank", &args.model)?;
    let threads = std::thread::available_parallelism()?.get();

    let mut rng = Rng::new(11);
    let documents: Vec<String> =
        (0..50).map(|_| document_of_pair_length(&tokenizer, QUERY, rng.range(20, 200), &mut rng)).collect();
    let pairs: Vec<Encoded> = documents.iter().map(|d| tokenizer.encode_pair(QUERY, d).unwrap()).collect();
    let tokens: usize = pairs.iter().map(Encoded::len).sum();
    println!(
        "50 pairs, 20-200 tokens each, {tokens} tokens in all; intra-op threads {threads}; {} rounds",
        args.rounds
    );

    let options = SessionOptions { intra_threads: threads, spinning: true };
    let mut raw = InferenceSession::load(&dir, tokenizer.pad_id(), options)?;
    let mut sorted: Vec<&Encoded> = pairs.iter().collect();
    sorted.sort_by_key(|e| e.len());
    raw.run(&sorted[..1])?;

    let runtime = tokio::runtime::Runtime::new()?;
    let service = start_service(&runtime, "rerank-service", &model, &args.service_args);
    let url = service.url("/rerank");
    let body = json!({"query": QUERY, "documents": documents});
    runtime.block_on(load(&url, std::slice::from_ref(&body), 1));
    let info: serde_json::Value = runtime.block_on(async { reqwest::get(service.url("/info")).await?.json().await })?;
    println!("service's batch policy: {}", info["batching"]);

    let mut raw_ms: Vec<(usize, Vec<f64>)> = args.raw_batches.iter().map(|&b| (b, Vec::new())).collect();
    let (mut single_ms, mut concurrent_rps) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        for (b, times) in raw_ms.iter_mut() {
            let t = Instant::now();
            for chunk in sorted.chunks(*b) {
                raw.run(chunk)?;
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let bodies = vec![body.clone(); args.requests];
        let r = runtime.block_on(load(&url, &bodies, 1));
        anyhow::ensure!(r.errors.is_empty(), "errors: {:?}", r.errors);
        single_ms.push(r.latencies.median());
        let bodies = vec![body.clone(); args.concurrent_requests];
        let r = runtime.block_on(load(&url, &bodies, 8));
        anyhow::ensure!(r.errors.is_empty(), "errors: {:?}", r.errors);
        concurrent_rps.push(r.ok as f64 / r.elapsed.as_secs_f64());
    }

    println!("\n## raw engine: the 50 pairs sorted by length, in chunks of `batch`");
    println!("| batch | ms for 50 pairs (median) | per round |\n|---|---|---|");
    let mut best = f64::INFINITY;
    for (b, times) in &raw_ms {
        let m = median(times);
        best = best.min(m);
        let each: Vec<String> = times.iter().map(|t| format!("{t:.0}")).collect();
        println!("| {b} | {m:.0} | {} |", each.join(", "));
    }
    let service_ms = median(&single_ms);
    let rps = median(&concurrent_rps);
    let raw_rps = 1000.0 / best;
    println!("\n## rerank-service (POST /rerank, 50 documents)");
    println!("| measure | service | raw best | ratio |\n|---|---|---|---|");
    println!(
        "| one request, latency (ms, median) | {service_ms:.0} | {best:.0} | {:.2} (service/raw) |",
        service_ms / best
    );
    println!("| 8 concurrent, requests/s | {rps:.2} | {raw_rps:.2} | {:.2} (service/raw) |", rps / raw_rps);
    println!("| 8 concurrent, pairs/s | {:.0} | {:.0} | |", rps * 50.0, raw_rps * 50.0);
    println!("service RSS after the run: {:.0} MiB", rss_mib(service.pid()));
    Ok(())
}
