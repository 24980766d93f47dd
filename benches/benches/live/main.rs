//! live bench: search on a corpus that changes while it is searched. Profile-sized documents
//! (Cranfield abstracts), a Zipf stream over a fixed set of queries each searched once before,
//! paced by one searcher, while a writer rewrites random profiles at each of --writes a second.
//! Two embedded gateways on copies of one data directory: score reuse on, and off
//! (`--score-cache-ttl-secs 0`, the stack before it), their cells interleaved round by round. Per
//! cell: the share of result-cache hits, the client's p50/p99, and the pairs the model scored per
//! search, against a cold search (nothing cached). Then the rerank budget (`budget`).
//!
//!     scripts/bench.sh live -- --rounds 2

mod budget;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benches::{Latencies, Rng, machine};
use clap::Parser;
use e2e::{Process, TempDir};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    embed_model: PathBuf,
    #[arg(long, default_value = "models/bench/bge-reranker-base-shaped-int8")]
    rerank_model: PathBuf,
    /// A BEIR collection whose documents are the profiles and whose queries are searched.
    #[arg(long, default_value = "../shared/data/ir/cranfield")]
    collection: PathBuf,
    /// Profiles indexed (the collection's first ones).
    #[arg(long, default_value_t = 600)]
    documents: usize,
    /// Distinct queries in the stream (the collection's first ones).
    #[arg(long, default_value_t = 40)]
    queries: usize,
    /// Zipf exponent of the stream: query k of n is asked with weight 1 / k^s.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// Searches a second the searcher starts (one at a time: later when one takes longer).
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Profile rewrites a second, one cell each, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,1,5")]
    writes: Vec<f64>,
    /// Seconds per cell.
    #[arg(long, default_value_t = 60)]
    cell_secs: u64,
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Rerank budgets to measure cold searches under, in ms, comma-separated (none: skip).
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000")]
    budgets: Vec<u64>,
    /// Cold searches per budget (queries after the stream's).
    #[arg(long, default_value_t = 4)]
    budget_queries: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The models and the data directory a gateway serves.
pub(crate) struct Setup {
    embed: PathBuf,
    rerank: PathBuf,
}

impl Setup {
    /// An embedded gateway on `data` with `extra` flags, ready.
    pub(crate) fn start(&self, data: &Path, extra: &[&str]) -> Process {
        let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str().unwrap()];
        args.extend(["--embed-model-dir", self.embed.to_str().unwrap()]);
        args.extend(["--rerank-model-dir", self.rerank.to_str().unwrap()]);
        args.extend(["--max-upsert-documents", "100", "--embed-timeout-ms", "600000"]);
        args.extend_from_slice(extra);
        let gateway = Process::start("search-gateway", &args, &[("RUST_LOG", "warn,search_gateway::http::serve=info")]);
        tokio::runtime::Runtime::new().unwrap().block_on(gateway.wait_ready(Duration::from_secs(900)));
        gateway
    }
}

/// What one search answered, seen from the client.
pub(crate) struct Answer {
    pub ms: f64,
    pub out: Value,
}

pub(crate) async fn search(client: &reqwest::Client, gateway: &Process, query: &str) -> anyhow::Result<Answer> {
    let t = Instant::now();
    let response = client.post(gateway.url("/search")).json(&json!({"query": query})).send().await?;
    let status = response.status();
    let out: Value = response.json().await?;
    anyhow::ensure!(status == 200, "search failed: {status} {out}");
    Ok(Answer { ms: t.elapsed().as_secs_f64() * 1e3, out })
}

fn read_jsonl(path: &Path, n: usize) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    text.lines().take(n).map(|l| Ok(serde_json::from_str(l)?)).collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = e2e::root();
    let setup = Setup { embed: root.join(&args.embed_model), rerank: root.join(&args.rerank_model) };
    println!("# live bench on {}", machine());
    println!("models: {} + {}", args.embed_model.display(), args.rerank_model.display());
    let collection = root.join(&args.collection);
    let profiles: Vec<String> = read_jsonl(&collection.join("corpus.jsonl"), args.documents)?
        .iter()
        .map(|d| d["text"].as_str().unwrap_or_default().to_string())
        .collect();
    let all_queries: Vec<String> = read_jsonl(&collection.join("queries.jsonl"), args.queries + 100)?
        .iter()
        .map(|q| q["text"].as_str().unwrap_or_default().to_string())
        .collect();
    let (queries, fresh) = all_queries.split_at(args.queries.min(all_queries.len()));
    let runtime = tokio::runtime::Runtime::new()?;
    let client = reqwest::Client::new();

    // One index, copied: the two gateways start from the same corpus.
    let (data_on, data_off) = (TempDir::new("live-on"), TempDir::new("live-off"));
    let gateway = setup.start(data_on.path(), &[]);
    let t = Instant::now();
    for (i, chunk) in profiles.chunks(50).enumerate() {
        let docs: Vec<Value> =
            chunk.iter().enumerate().map(|(j, text)| json!({"id": format!("p{}", i * 50 + j), "text": text})).collect();
        let response = runtime.block_on(
            client.put(gateway.url("/collections/profiles/documents")).json(&json!({"documents": docs})).send(),
        )?;
        anyhow::ensure!(response.status() == 200, "upsert failed: {}", response.status());
    }
    println!("indexed {} profiles in {:.0} s", profiles.len(), t.elapsed().as_secs_f64());
    stop(gateway);
    copy_dir(data_on.path(), data_off.path())?;

    // Budgets long enough that every search in the stream is fully reranked.
    let patient = ["--rerank-budget-ms", "600000"];
    let on = setup.start(data_on.path(), &patient);
    let off = setup.start(data_off.path(), &[&patient[..], &["--score-cache-ttl-secs", "0"]].concat());
    let mut cold = Vec::new();
    for (name, gateway) in [("reuse on", &on), ("reuse off", &off)] {
        let t = Instant::now();
        for query in queries {
            let answer = runtime.block_on(search(&client, gateway, query))?;
            anyhow::ensure!(answer.out["cache"] == "miss", "a cold search was not a miss: {}", answer.out);
            cold.push(answer.ms);
        }
        println!("{name}: {} cold searches in {:.0} s", queries.len(), t.elapsed().as_secs_f64());
    }
    let cold = Latencies::new(cold);
    println!(
        "cold search (nothing cached, 50 candidates reranked): p50 {:.0} ms, p99 {:.0} ms",
        cold.median(),
        cold.percentile(99.0)
    );

    let mut cells: Vec<Cell> = Vec::new();
    let mut rng = Rng::new(7);
    for round in 0..args.rounds {
        for &writes in &args.writes {
            let mut arms = [(true, &on), (false, &off)];
            if round % 2 == 1 {
                arms.reverse();
            }
            for (reuse, gateway) in arms {
                let stream = Stream { queries, zipf: args.zipf, rate: args.rate, seconds: args.cell_secs };
                let cell = runtime.block_on(stream.run(&client, gateway, &profiles, writes, &mut rng))?;
                cells.push(Cell { round, writes, reuse, ..cell });
            }
        }
    }
    report(&cells, &cold, &args);
    drop((on, off));
    if !args.budgets.is_empty() {
        budget::run(&setup, data_on.path(), &args.budgets, &fresh[..args.budget_queries.min(fresh.len())])?;
    }
    Ok(())
}

pub(crate) fn stop(mut gateway: Process) {
    gateway.signal("TERM");
    gateway.wait_exit(Duration::from_secs(120));
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to).status()?;
    anyhow::ensure!(status.success(), "cp -a failed");
    Ok(())
}

/// One cell's searches.
#[derive(Default)]
struct Cell {
    round: usize,
    writes: f64,
    reuse: bool,
    latencies: Vec<f64>,
    hits: usize,
    /// Pairs the model scored, per search.
    scored: Vec<usize>,
    writes_done: usize,
    /// Stage timings (cache, embed, search, rerank, total) and the client's latency of each
    /// result-cache miss that scored nothing: what is left of a repeated search.
    reused: Vec<[f64; 6]>,
}

struct Stream<'a> {
    queries: &'a [String],
    zipf: f64,
    rate: f64,
    seconds: u64,
}

impl Stream<'_> {
    /// Searches at `rate` (one at a time) for `seconds` while a writer rewrites a random
    /// profile `writes` times a second.
    async fn run(
        &self,
        client: &reqwest::Client,
        gateway: &Process,
        profiles: &[String],
        writes: f64,
        rng: &mut Rng,
    ) -> anyhow::Result<Cell> {
        let started = Instant::now();
        let end = started + Duration::from_secs(self.seconds);
        let writer = (writes > 0.0).then(|| {
            let (client, url, profiles, seed) =
                (client.clone(), gateway.url("/collections/profiles/documents"), profiles.to_vec(), rng.next_u64());
            tokio::spawn(rewrite(client, url, profiles, writes, end, seed))
        });
        let weights: Vec<f64> = (1..=self.queries.len()).map(|k| 1.0 / (k as f64).powf(self.zipf)).collect();
        let total: f64 = weights.iter().sum();
        let mut cell = Cell::default();
        let mut n = 0u32;
        while Instant::now() < end {
            let due = started + Duration::from_secs_f64(f64::from(n) / self.rate);
            tokio::time::sleep_until(due.into()).await;
            n += 1;
            let mut pick = (rng.next_u64() % 1_000_000) as f64 / 1e6 * total;
            let k = weights.iter().position(|w| {
                pick -= w;
                pick < 0.0
            });
            let answer = search(client, gateway, &self.queries[k.unwrap_or(0)]).await?;
            cell.latencies.push(answer.ms);
            cell.hits += usize::from(answer.out["cache"] == "hit");
            let scored = answer.out["reranked"]["scored"].as_u64().unwrap_or(0) as usize;
            cell.scored.push(scored);
            if answer.out["cache"] == "miss" && scored == 0 {
                let t = &answer.out["timings_ms"];
                let stage = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
                let stages = [stage("cache"), stage("embed"), stage("search"), stage("rerank"), stage("total")];
                cell.reused.push([stages[0], stages[1], stages[2], stages[3], stages[4], answer.ms]);
            }
        }
        if let Some(writer) = writer {
            cell.writes_done = writer.await??;
        }
        Ok(cell)
    }
}

/// Rewrites a random profile (a new sentence at its end) `rate` times a second until `end`.
async fn rewrite(
    client: reqwest::Client,
    url: String,
    profiles: Vec<String>,
    rate: f64,
    end: Instant,
    seed: u64,
) -> anyhow::Result<usize> {
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut done = 0;
    while Instant::now() < end {
        tokio::time::sleep_until((started + Duration::from_secs_f64(done as f64 / rate)).into()).await;
        let i = rng.range(0, profiles.len() - 1);
        let text = format!("{} updated profile, revision {}.", profiles[i], rng.next_u64() % 100_000);
        let body = json!({"documents": [{"id": format!("p{i}"), "text": text}]});
        let response = client.put(&url).json(&body).send().await?;
        anyhow::ensure!(response.status() == 200, "rewrite failed: {}", response.status());
        done += 1;
    }
    Ok(done)
}

fn report(cells: &[Cell], cold: &Latencies, args: &Args) {
    println!(
        "\n| round | writes/s | score reuse | searches | writes | result-cache hits | p50 ms | p99 ms | pairs scored per search | searches scoring 0 pairs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for c in cells {
        let l = Latencies::new(c.latencies.clone());
        let n = c.latencies.len().max(1) as f64;
        let mean_scored = c.scored.iter().sum::<usize>() as f64 / n;
        let zero = c.scored.iter().filter(|&&s| s == 0).count() as f64 / n;
        println!(
            "| {} | {} | {} | {} | {} | {:.0}% | {:.1} | {:.1} | {:.2} | {:.0}% |",
            c.round + 1,
            c.writes,
            if c.reuse { "on" } else { "off" },
            c.latencies.len(),
            c.writes_done,
            c.hits as f64 / n * 100.0,
            l.median(),
            l.percentile(99.0),
            mean_scored,
            zero * 100.0
        );
    }
    let reused: Vec<[f64; 6]> = cells.iter().filter(|c| c.reuse).flat_map(|c| c.reused.clone()).collect();
    println!(
        "\nwhere a repeated search's time goes: {} result-cache misses that scored no pair (reuse on):",
        reused.len()
    );
    println!("| stage | p50 ms | p90 ms |\n|---|---|---|");
    for (i, stage) in
        ["cache (lookup + write)", "embed", "vector search", "rerank", "gateway total", "client"].iter().enumerate()
    {
        let l = Latencies::new(reused.iter().map(|r| r[i]).collect());
        println!("| {stage} | {:.2} | {:.2} |", l.median(), l.percentile(90.0));
    }
    println!("\nagainst a cold search (p50 {:.0} ms), each round:", cold.median());
    println!("| writes/s | score reuse | p50 / cold p50 | p99 / cold p50 |");
    println!("|---|---|---|---|");
    for &writes in &args.writes {
        for reuse in [true, false] {
            let ratios: Vec<String> = cells
                .iter()
                .filter(|c| c.writes == writes && c.reuse == reuse)
                .map(|c| {
                    let l = Latencies::new(c.latencies.clone());
                    format!("{:.3} / {:.3}", l.median() / cold.median(), l.percentile(99.0) / cold.median())
                })
                .collect();
            let (p50, p99): (Vec<&str>, Vec<&str>) = ratios.iter().map(|r| r.split_once(" / ").unwrap()).unzip();
            println!("| {writes} | {} | {} | {} |", if reuse { "on" } else { "off" }, p50.join(", "), p99.join(", "));
        }
    }
}
