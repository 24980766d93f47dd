//! sync bench: a collection following a PostgreSQL table (a real server, a cluster made here).
//! 1. The backfill of N rows against `search-gateway ingest` of the same rows as JSONL (both in
//!    process, the same models, from the process's start to every document stored), rounds
//!    interleaved.
//! 2. Lag from commit to searchable at a steady write rate: a writer commits a new text every
//!    1/rate s; a poller reads the document until the new text is there.
//! 3. What the trigger adds to the app's own single-row INSERT and UPDATE, p50 with and without
//!    it, in interleaved blocks.
//!
//!     scripts/bench.sh sync -- --documents 500
//!
//! `--phases trigger --durable` measures the trigger alone, on a cluster whose commits reach the disk.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use benches::{Latencies, machine};
use clap::Parser;
use e2e::{Postgres, Process, TempDir};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    embed_model: PathBuf,
    #[arg(long, default_value = "models/bench/bge-reranker-base-shaped-int8")]
    rerank_model: PathBuf,
    /// The rows: the first N documents of this BEIR corpus (profile-sized texts).
    #[arg(long, default_value = "../shared/data/ir/cranfield/corpus.jsonl")]
    corpus: PathBuf,
    #[arg(long, default_value_t = 500)]
    documents: usize,
    /// Rounds of backfill vs ingest.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Commits a second for the lag, and how many.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    #[arg(long, default_value_t = 60)]
    lag_writes: usize,
    /// Statements per block and blocks per arm for the trigger's cost.
    #[arg(long, default_value_t = 1000)]
    statements: usize,
    #[arg(long, default_value_t = 3)]
    blocks: usize,
    /// Extra arguments for search-gateway (the server that backfills), as one string.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    gateway_args: String,
    /// Which parts to run: backfill (against ingest), lag, trigger (its cost to the app's writes).
    #[arg(long, value_delimiter = ',', default_value = "backfill,lag,trigger")]
    phases: Vec<String>,
    /// A cluster that syncs commits to disk (production's setting) rather than `fsync=off`.
    #[arg(long)]
    durable: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS profiles (id bigint PRIMARY KEY, name text, bio text, city text)";
const SOURCE: &str =
    "[profiles.source]\ntable = \"public.profiles\"\nkey = \"id\"\ntext = [\"name\", \"bio\"]\npayload = [\"city\"]\n";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = e2e::root();
    println!("# sync bench on {}", machine());
    println!("PostgreSQL: {}", if args.durable { "fsync on (commits reach the disk)" } else { "fsync=off" });
    let rows: Vec<(String, String)> = std::fs::read_to_string(root.join(&args.corpus))?
        .lines()
        .take(args.documents)
        .map(|l| {
            let d: Value = serde_json::from_str(l).unwrap_or_default();
            (d["title"].as_str().unwrap_or_default().to_string(), d["text"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new()?;
    let pg = if args.durable { Postgres::start_durable() } else { Postgres::start() };
    let phase = |name: &str| args.phases.iter().any(|p| p == name);
    let db = runtime.block_on(pg.client());
    runtime.block_on(db.batch_execute(TABLE))?;
    for (i, (name, bio)) in rows.iter().enumerate() {
        runtime.block_on(db.execute(
            "INSERT INTO profiles (id, name, bio, city) VALUES ($1, $2, $3, 'Paris')",
            &[&(i as i64), name, bio],
        ))?;
    }
    let config = TempDir::new("sync-bench-config");
    std::fs::write(config.path().join("collections.toml"), SOURCE)?;
    let jsonl = config.path().join("rows.jsonl");
    let lines: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (name, bio))| {
            json!({"id": i.to_string(), "text": format!("{name}\n{bio}"), "payload": {"city": "Paris"}}).to_string()
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n") + "\n")?;
    let engine = [
        "--embed-model-dir".to_string(),
        root.join(&args.embed_model).display().to_string(),
        "--rerank-model-dir".to_string(),
        root.join(&args.rerank_model).display().to_string(),
    ];
    let server: Vec<String> =
        engine.iter().cloned().chain(args.gateway_args.split_whitespace().map(String::from)).collect();

    // 1. Backfill against ingest.
    if phase("backfill") {
        println!(
            "\n{} rows ({} docs of {}), both from the process's start to every document stored:",
            rows.len(),
            rows.len(),
            args.corpus.display()
        );
        println!("| round | ingest s | backfill s | backfill / ingest rate |\n|---|---|---|---|");
        let mut ratios = Vec::new();
        for round in 1..=args.rounds {
            let data = TempDir::new("sync-bench-ingest");
            let t = Instant::now();
            let mut ingest = vec!["ingest", "--collection", "profiles", "--input", jsonl.to_str().unwrap()];
            ingest.extend(["--data-dir", data.to_str(), "--progress-secs", "600"]);
            ingest.extend(engine.iter().map(String::as_str));
            let status = std::process::Command::new(e2e::binary("search-gateway"))
                .args(&ingest)
                .env("RUST_LOG", "warn")
                .status()?;
            anyhow::ensure!(status.success(), "ingest failed");
            let ingest_s = t.elapsed().as_secs_f64();

            let data = TempDir::new("sync-bench-backfill");
            let t = Instant::now();
            let gateway = start(&runtime, &data, &config, &pg, &server);
            wait_done(&runtime, &gateway, rows.len() as u64)?;
            let backfill_s = t.elapsed().as_secs_f64();
            drop(gateway);
            // Another consumer each round: forget this one.
            runtime.block_on(
                db.batch_execute("DELETE FROM semsearch.sync_consumers; DELETE FROM semsearch.sync_queue;"),
            )?;
            ratios.push(ingest_s / backfill_s);
            println!("| {round} | {ingest_s:.1} | {backfill_s:.1} | {:.2} |", ingest_s / backfill_s);
        }
        println!("median backfill / ingest: {:.2}", Latencies::new(ratios).median());
    }

    // 2. Lag from commit to searchable.
    if phase("lag") {
        let data = TempDir::new("sync-bench-lag");
        let gateway = start(&runtime, &data, &config, &pg, &server);
        wait_done(&runtime, &gateway, rows.len() as u64)?;
        let lags = runtime.block_on(lag(&pg, &gateway, &rows, args.rate, args.lag_writes))?;
        println!(
            "\nlag from commit to searchable, {} writes at {}/s (a row's bio rewritten): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            lags.len(),
            args.rate,
            lags.median(),
            lags.percentile(99.0),
            lags.percentile(100.0)
        );
        drop(gateway);
    }

    // 3. The trigger's cost to the app's writes.
    if phase("trigger") {
        runtime.block_on(trigger_cost(&pg, &args, &config))?;
    }
    Ok(())
}

fn start(
    runtime: &tokio::runtime::Runtime,
    data: &TempDir,
    config: &TempDir,
    pg: &Postgres,
    engine: &[String],
) -> Process {
    let config = config.path().join("collections.toml");
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str()];
    args.extend(["--collections-config", config.to_str().unwrap(), "--default-collection", "profiles"]);
    args.extend(engine.iter().map(String::as_str));
    let gateway = Process::start(
        "search-gateway",
        &args,
        &[("DATABASE_URL", &pg.url()), ("RUST_LOG", "warn,search_gateway::http::serve=info")],
    );
    runtime.block_on(gateway.wait_ready(Duration::from_secs(900)));
    gateway
}

/// Waits until the sync has brought `n` keys up to date and the queue is empty.
fn wait_done(runtime: &tokio::runtime::Runtime, gateway: &Process, n: u64) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let status: Value =
            runtime.block_on(async { reqwest::get(gateway.url("/collections/profiles/sync")).await?.json().await })?;
        if status["done"].as_u64() >= Some(n) && status["queued"] == 0 && status["backfill"]["state"] == "done" {
            return Ok(());
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(3600), "the backfill did not finish: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rewrites a row's bio every 1/rate s; each write's lag is the time until the gateway serves the
/// new text.
async fn lag(
    pg: &Postgres,
    gateway: &Process,
    rows: &[(String, String)],
    rate: f64,
    writes: usize,
) -> anyhow::Result<Latencies> {
    let db = pg.client().await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut pollers = Vec::new();
    for n in 0..writes {
        tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / rate)).into()).await;
        let id = (n * 7 % rows.len()) as i64;
        let bio = format!("{} (revision {n})", rows[id as usize].1);
        db.execute("UPDATE profiles SET bio = $2 WHERE id = $1", &[&id, &bio]).await?;
        let committed = Instant::now();
        let want = format!("{}\n{bio}", rows[id as usize].0);
        let (client, url) = (client.clone(), gateway.url(&format!("/collections/profiles/documents/{id}")));
        pollers.push(tokio::spawn(async move {
            loop {
                let document: Value = client.get(&url).send().await?.json().await?;
                if document["text"].as_str() == Some(want.as_str()) {
                    return anyhow::Ok(committed.elapsed().as_secs_f64() * 1e3);
                }
                anyhow::ensure!(committed.elapsed() < Duration::from_secs(120), "never searchable");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let mut lags = Vec::new();
    for poller in pollers {
        lags.push(poller.await??);
    }
    Ok(Latencies::new(lags))
}

/// Single-row INSERT and UPDATE latencies with the sync triggers enabled and disabled, blocks
/// interleaved; prints p50s and their ratio.
async fn trigger_cost(pg: &Postgres, args: &Args, config: &TempDir) -> anyhow::Result<()> {
    let db = pg.client().await;
    // The trigger as a DBA installs it (safe to apply again after a gateway did), so that this
    // part measures the trigger also when it runs alone.
    let config = config.path().join("collections.toml");
    let sql = std::process::Command::new(e2e::binary("search-gateway"))
        .args(["sync", "sql", "--collections-config", config.to_str().unwrap()])
        .output()?;
    anyhow::ensure!(sql.status.success(), "sync sql: {}", String::from_utf8_lossy(&sql.stderr));
    db.batch_execute(&String::from_utf8(sql.stdout)?).await?;
    let triggers: i64 = db
        .query_one("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'profiles'::regclass AND NOT tgisinternal", &[])
        .await?
        .get(0);
    anyhow::ensure!(triggers > 0, "no trigger on profiles: the arms would measure the same thing");
    let bio = "Writes Rust and Python, builds search and ranking systems, leads a small team in Paris. ".repeat(12);
    let mut next_id: i64 = 1_000_000;
    let (mut with, mut without) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for block in 0..args.blocks * 2 {
        let enabled = block % 2 == 0;
        db.batch_execute(if enabled {
            "ALTER TABLE profiles ENABLE TRIGGER USER"
        } else {
            "ALTER TABLE profiles DISABLE TRIGGER USER"
        })
        .await?;
        let into = if enabled { &mut with } else { &mut without };
        for _ in 0..args.statements {
            next_id += 1;
            let t = Instant::now();
            db.execute(
                "INSERT INTO profiles (id, name, bio, city) VALUES ($1, 'someone', $2, 'Paris')",
                &[&next_id, &bio],
            )
            .await?;
            into[0].push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            db.execute("UPDATE profiles SET city = 'Lyon' WHERE id = $1", &[&next_id]).await?;
            into[1].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    db.batch_execute("ALTER TABLE profiles ENABLE TRIGGER USER").await?;
    println!(
        "\nthe app's own writes, {} single-row statements per arm ({} interleaved blocks, {triggers} user triggers on the table):",
        args.statements * args.blocks,
        args.blocks * 2
    );
    println!(
        "| statement | p50 ms without the trigger | p50 ms with it | ratio | p99 without / with |\n|---|---|---|---|---|"
    );
    for (i, name) in ["INSERT (1.1 KB bio)", "UPDATE (one column)"].iter().enumerate() {
        let (a, b) = (Latencies::new(without[i].clone()), Latencies::new(with[i].clone()));
        println!(
            "| {name} | {:.3} | {:.3} | {:.2} | {:.3} / {:.3} |",
            a.median(),
            b.median(),
            b.median() / a.median(),
            a.percentile(99.0),
            b.percentile(99.0)
        );
    }
    Ok(())
}
