//! gateway bench: search-gateway in its embedded mode on the full-size model shapes. Measures
//! cache-miss searches stage by stage (embed, vector search, rerank of 50 candidates) against
//! the raw engines doing the same work, the gateway's own overhead (its total minus the stages),
//! and cache-hit latency with the in-process cache and with Redis.
//!
//!     scripts/bench.sh gateway

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benches::{Latencies, Rng, median, open_model, text_of_length};
use clap::Parser;
use e2e::{Process, Redis, TempDir};
use serde_json::{Value, json};
use shared::ModelDir;
use shared::session::{InferenceSession, SessionOptions};
use shared::tokenize::{Encoded, InputType, TextTokenizer};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    embed_model: PathBuf,
    #[arg(long, default_value = "models/bench/bge-reranker-base-shaped-int8")]
    rerank_model: PathBuf,
    /// Documents indexed (20-120 tokens each).
    #[arg(long, default_value_t = 200)]
    documents: usize,
    /// Distinct cache-miss searches (10-30 token queries).
    #[arg(long, default_value_t = 20)]
    misses: usize,
    /// Cache-hit searches per cache backend.
    #[arg(long, default_value_t = 500)]
    hits: usize,
    /// Extra arguments for search-gateway, as one string.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    gateway_args: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (embed_path, embed_dir, tokenizer) = open_model("gateway", &args.embed_model)?;
    let rerank_path = e2e::root().join(&args.rerank_model);
    let rerank_dir = ModelDir::open(&rerank_path)?;
    let rerank_tokenizer = TextTokenizer::load(&rerank_dir.tokenizer_path(), &rerank_dir.config)?;
    let threads = std::thread::available_parallelism()?.get();
    println!("models: {} + {}; {threads} intra-op threads", embed_dir.name(), rerank_dir.name());

    let mut rng = Rng::new(5);
    let documents: Vec<String> = (0..args.documents)
        .map(|_| text_of_length(&tokenizer, InputType::Passage, rng.range(20, 120), &mut rng))
        .collect();
    let queries: Vec<String> =
        (0..args.misses).map(|_| text_of_length(&tokenizer, InputType::Query, rng.range(10, 30), &mut rng)).collect();

    // The raw engines doing one miss's work: embed one query; score 50 (query, document) pairs.
    let options = SessionOptions { intra_threads: threads, spinning: true };
    let (raw_embed_ms, raw_rerank_ms) = {
        let mut embed = InferenceSession::load(&embed_dir, tokenizer.pad_id(), options)?;
        let encoded: Vec<Encoded> =
            queries.iter().map(|q| tokenizer.encode(q, InputType::Query)).collect::<Result<_, _>>()?;
        embed.run(&[&encoded[0]])?;
        let embed_ms: Vec<f64> = encoded
            .iter()
            .map(|e| {
                let t = Instant::now();
                embed.run(&[e]).map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        drop(embed);
        let mut rerank = InferenceSession::load(&rerank_dir, rerank_tokenizer.pad_id(), options)?;
        let mut rerank_ms = Vec::new();
        for query in queries.iter().take(5) {
            let mut pairs: Vec<Encoded> =
                documents.iter().take(50).map(|d| rerank_tokenizer.encode_pair(query, d)).collect::<Result<_, _>>()?;
            pairs.sort_by_key(Encoded::len);
            let refs: Vec<&Encoded> = pairs.iter().collect();
            let t = Instant::now();
            for chunk in refs.chunks(16) {
                rerank.run(chunk)?;
            }
            rerank_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        (median(&embed_ms), median(&rerank_ms))
    };

    let runtime = tokio::runtime::Runtime::new()?;
    let data = TempDir::new("gateway-bench");
    let client = reqwest::Client::new();

    // Embedded mode, in-process cache: index, then misses, then hits.
    let extra: Vec<&str> = args.gateway_args.split_whitespace().collect();
    let gateway = start_gateway(&runtime, &data, &embed_path, &rerank_path, None, &extra);
    let t = Instant::now();
    for (i, chunk) in documents.chunks(50).enumerate() {
        let docs: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(j, text)| json!({"id": format!("d{}", i * 50 + j), "text": text, "payload": {"n": i * 50 + j}}))
            .collect();
        let response = runtime.block_on(
            client.put(gateway.url("/collections/bench/documents")).json(&json!({"documents": docs})).send(),
        )?;
        anyhow::ensure!(response.status() == 200, "upsert failed: {}", response.status());
    }
    println!("indexed {} documents in {:.1} s", documents.len(), t.elapsed().as_secs_f64());

    let mut stages: Vec<[f64; 6]> = Vec::new();
    for query in &queries {
        let body = json!({"query": query, "collection": "bench", "cache": "bypass"});
        let (client_ms, out) = runtime.block_on(post(&client, &gateway.url("/search"), &body))?;
        let t = &out["timings_ms"];
        let get = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
        stages.push([get("cache"), get("embed"), get("search"), get("rerank"), get("total"), client_ms]);
    }
    let column = |i: usize| Latencies::new(stages.iter().map(|s| s[i]).collect());
    let overhead = Latencies::new(stages.iter().map(|s| s[4] - s[0] - s[1] - s[2] - s[3]).collect());
    let http = Latencies::new(stages.iter().map(|s| s[5] - s[4]).collect());
    println!("\ncache-miss search (candidates 50, top_k 10), {} queries of 10-30 tokens:", queries.len());
    println!("| stage | p50 ms | p90 ms | raw engine p50 ms | stage / raw |");
    println!("|---|---|---|---|---|");
    let raw = [None, Some(raw_embed_ms), None, Some(raw_rerank_ms), None, None];
    for (i, name) in
        ["cache", "embed", "vector search", "rerank (50)", "gateway total", "client-observed"].iter().enumerate()
    {
        let l = column(i);
        match raw[i] {
            Some(r) => {
                println!("| {name} | {:.2} | {:.2} | {r:.2} | {:.2} |", l.median(), l.percentile(90.0), l.median() / r)
            }
            None => println!("| {name} | {:.2} | {:.2} | | |", l.median(), l.percentile(90.0)),
        }
    }
    println!(
        "| gateway's own overhead (total - stages) | {:.3} | {:.3} | | |",
        overhead.median(),
        overhead.percentile(90.0)
    );
    println!("| HTTP + JSON (client-observed - total) | {:.3} | {:.3} | | |", http.median(), http.percentile(90.0));

    let memory_hits = hits(&runtime, &client, &gateway, &queries[0], args.hits)?;
    gateway.signal("TERM");
    drop(gateway);

    let redis = Redis::start();
    let gateway = start_gateway(&runtime, &data, &embed_path, &rerank_path, Some(&redis.url()), &extra);
    let redis_hits = hits(&runtime, &client, &gateway, &queries[0], args.hits)?;
    println!("\ncache-hit search, {} sequential requests (one keep-alive client):", args.hits);
    println!("| cache | client p50 ms | client p99 ms | gateway total p50 ms |");
    println!("|---|---|---|---|");
    for (name, (client_ms, server_ms)) in [("in-process (moka)", memory_hits), ("Redis 7 on localhost", redis_hits)] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} |",
            client_ms.median(),
            client_ms.percentile(99.0),
            server_ms.median()
        );
    }
    Ok(())
}

fn start_gateway(
    runtime: &tokio::runtime::Runtime,
    data: &TempDir,
    embed: &Path,
    rerank: &Path,
    redis: Option<&str>,
    extra: &[&str],
) -> Process {
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str()];
    args.extend(["--embed-model-dir", embed.to_str().unwrap(), "--rerank-model-dir", rerank.to_str().unwrap()]);
    // The bench compares whole reranks with the raw engine's: no budget cuts them short.
    args.extend(["--rerank-budget-ms", "600000"]);
    if let Some(url) = redis {
        args.extend(["--redis-url", url]);
    }
    args.extend_from_slice(extra);
    let gateway = Process::start("search-gateway", &args, &[("RUST_LOG", "warn,search_gateway::http::serve=info")]);
    runtime.block_on(gateway.wait_ready(Duration::from_secs(900)));
    gateway
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<(f64, Value)> {
    let t = Instant::now();
    let response = client.post(url).json(body).send().await?;
    let status = response.status();
    let out: Value = response.json().await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(status == 200, "search failed: {status} {out}");
    Ok((ms, out))
}

/// Client-observed and gateway-reported latencies of `n` cache hits of `query`.
fn hits(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    gateway: &Process,
    query: &str,
    n: usize,
) -> anyhow::Result<(Latencies, Latencies)> {
    let body = json!({"query": query, "collection": "bench"});
    let url = gateway.url("/search");
    runtime.block_on(post(client, &url, &body))?;
    let (mut client_ms, mut server_ms) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (ms, out) = runtime.block_on(post(client, &url, &body))?;
        anyhow::ensure!(out["cache"] == "hit", "expected a cache hit: {out}");
        client_ms.push(ms);
        server_ms.push(out["timings_ms"]["total"].as_f64().unwrap_or(f64::NAN));
    }
    Ok((Latencies::new(client_ms), Latencies::new(server_ms)))
}
