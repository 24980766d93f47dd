//! store bench: the embedded store (qdrant-edge with the gateway's journal and maintenance) at
//! growing sizes, the store alone (no model): ingest rate, index build time, search latency at
//! c=1 and c=8, idle and during an optimization, recall@10 and @50 against exact search, RSS and
//! disk; as a full scan (no index, today's baseline), with HNSW, and with HNSW + int8.
//!
//! The vectors are clustered with a low intrinsic dimension (`Vectors`), not uniform random:
//! uniform vectors are the worst case of any ANN index and unlike real embeddings. Each size and
//! variant runs in a process of its own, so RSS is its own.
//!
//!     scripts/bench.sh store -- --sizes 10000,100000 --dimension 1024

mod rewrite;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use benches::clustered::Vectors;
use benches::search_http::post_searches;
use benches::{Latencies, rss_mib};
use clap::Parser;
use e2e::TempDir;
use search_gateway::retrieval::SearchParams;
use search_gateway::retrieval::StoreQuery;
use search_gateway::store::index::{IndexSettings, Quantization};
use search_gateway::store::{EdgeOptions, EdgeStore, Point, PointLayouts, VectorStore};

#[derive(Parser)]
struct Args {
    /// Collection sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 1024)]
    dimension: usize,
    /// Centres the vectors cluster around.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Queries per measurement (their exact top 50 is the reference).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Candidates per search (the gateway's default).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// The HNSW search beam (unset: the gateway's default).
    #[arg(long)]
    hnsw_ef: Option<usize>,
    /// Variants to run, comma-separated: scan (no index), hnsw, int8, int8-disk.
    #[arg(long, value_delimiter = ',', default_value = "scan,hnsw,int8,int8-disk")]
    variants: Vec<String>,
    /// Rounds that rewrite 10% of the documents, for the disk under rewrites.
    #[arg(long, default_value_t = 5)]
    rewrite_rounds: usize,
    /// The variant whose disk is measured under rewrites.
    #[arg(long, default_value = "hnsw")]
    rewrite_variant: String,
    /// Documents a second each rewrite is written at, searched meanwhile (0: all at once).
    #[arg(long, default_value_t = 0)]
    rewrite_rate: usize,
    /// Bytes of each document's text (a profile's words), beside a payload of five keys.
    #[arg(long, default_value_t = 1000)]
    text_bytes: usize,
    /// Beams to measure recall and c=1 latency at too, on the same index, comma-separated.
    #[arg(long, value_delimiter = ',')]
    sweep_ef: Vec<usize>,
    /// Every variant's `default_segment_number` (unset: Qdrant's, by the CPUs).
    #[arg(long)]
    segments: Option<usize>,
    /// Every variant's `max_segment_size_kb` (unset: Qdrant's, 256,000 per indexing thread).
    #[arg(long)]
    max_segment_size_kb: Option<usize>,
    /// Skip the searches through `POST /search` (a release search-gateway on the same data).
    #[arg(long)]
    no_http: bool,
    /// Run one size and variant (scan, hnsw, int8) in this process; set by the bench itself.
    #[arg(long, hide = true)]
    one: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The beam of every indexed search of this process: `--hnsw-ef` (0: the gateway's default), or
/// each of `--sweep-ef` in turn.
static HNSW_EF: AtomicUsize = AtomicUsize::new(0);

const VARIANTS: [&str; 4] = ["scan", "hnsw", "int8", "int8-disk"];

fn settings(variant: &str, args: &Args) -> IndexSettings {
    let segments = IndexSettings {
        default_segment_number: args.segments,
        max_segment_size_kb: args.max_segment_size_kb,
        ..IndexSettings::default()
    };
    match variant {
        // Qdrant's indexing threshold 0: never indexed, every search a scan (as before).
        "scan" => IndexSettings { indexing_threshold_kb: Some(0), ..segments },
        "hnsw" => segments,
        "int8" => IndexSettings { quantization: Some(Quantization::Int8), ..segments },
        // The originals memory-mapped: only the int8 copies are kept in RAM.
        _ => IndexSettings { quantization: Some(Quantization::Int8), vectors_on_disk: Some(true), ..segments },
    }
}

/// Documents `ids` as the app writes profiles: a text of `text_bytes` and five payload keys.
fn points(vectors: &mut Vectors, ids: std::ops::Range<usize>, round: usize, text_bytes: usize) -> Vec<Point> {
    const WORDS: [&str; 12] =
        ["senior", "engineer", "search", "rust", "berlin", "product", "data", "team", "lead", "ml", "paris", "remote"];
    ids.map(|i| {
        let mut text = format!("document {i} round {round}:");
        let mut k = i;
        while text.len() < text_bytes {
            text.push(' ');
            text.push_str(WORDS[k % WORDS.len()]);
            k = k.wrapping_mul(31).wrapping_add(7);
        }
        let payload = serde_json::json!({"name": format!("Person {i}"), "title": "Senior Engineer", "city": "Berlin",
            "tags": ["rust", "search", "ml"], "url": format!("https://example.com/profiles/{i}")});
        Point {
            id: format!("d{i}"),
            text,
            payload: payload.as_object().cloned().unwrap_or_default(),
            vector: vectors.next(i),
            sparse: None,
        }
    })
    .collect()
}

async fn search(store: &EdgeStore, query: &[f32], limit: usize, exact: bool) -> (Vec<String>, f64) {
    let params = SearchParams { hnsw_ef: Some(HNSW_EF.load(Ordering::Relaxed)).filter(|&ef| ef > 0), exact };
    let query = StoreQuery { params, ..StoreQuery::dense(query.to_vec(), limit) };
    let started = Instant::now();
    let found = store.search("bench", query, None).await.expect("search");
    (found.found.into_iter().map(|f| f.id).collect(), started.elapsed().as_secs_f64() * 1e3)
}

/// Recall@10 and @`limit` of the indexed searches against `exact`, the exact top `limit` of each query.
async fn recall(store: &EdgeStore, queries: &[Vec<f32>], exact: &[Vec<String>], limit: usize) -> (f64, f64) {
    let (mut hit10, mut hit_all) = (0, 0);
    for (q, truth) in queries.iter().zip(exact) {
        let found = search(store, q, limit, false).await.0;
        hit10 += found.iter().take(10).filter(|id| truth[..10].contains(id)).count();
        hit_all += found.iter().filter(|id| truth.contains(id)).count();
    }
    let n = queries.len() as f64;
    (hit10 as f64 / (10.0 * n), hit_all as f64 / (limit as f64 * n))
}

/// Latencies of every query at `concurrency`, each query once per worker.
async fn latencies(store: &EdgeStore, queries: &Arc<Vec<Vec<f32>>>, limit: usize, concurrency: usize) -> Latencies {
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (store, queries) = (store.clone(), queries.clone());
            tokio::spawn(async move {
                let mut ms = Vec::new();
                for q in queries.iter().skip(w).step_by(concurrency.max(1)).chain(queries.iter().take(w)) {
                    ms.push(search(&store, q, limit, false).await.1);
                }
                ms
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    Latencies::new(all)
}

/// Waits, off the runtime's threads, until the maintenance thread has optimized every write so far.
async fn settle(store: &EdgeStore) {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.settle()).await.unwrap();
}

/// The anonymous part of a process's RSS: what it holds beyond mapped files (which the kernel
/// can drop and read again, as it does the memory-mapped vectors).
fn anon_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("RssAnon:")).and_then(|v| v.split_whitespace().next());
    kib.and_then(|k| k.parse::<f64>().ok()).map_or(f64::NAN, |k| k / 1024.0)
}

fn disk_mib(dir: &std::path::Path) -> f64 {
    let out = std::process::Command::new("du").args(["-s", "-B1"]).arg(dir).output().unwrap();
    let bytes: f64 = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().parse().unwrap();
    bytes / (1 << 20) as f64
}

async fn one(args: &Args, size: usize, variant: &str) {
    let data = TempDir::new("bench-store");
    let layouts = PointLayouts::default().with_indexes([("bench".to_string(), settings(variant, args))].into());
    let store = EdgeStore::open(data.path(), EdgeOptions::default(), Arc::new(layouts.clone())).unwrap();
    let mut vectors = Vectors::new(args.clusters, args.dimension);
    let started = Instant::now();
    for start in (0..size).step_by(500) {
        let batch = points(&mut vectors, start..(start + 500).min(size), 0, args.text_bytes);
        store.upsert("bench", batch).await.unwrap();
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let queries: Arc<Vec<Vec<f32>>> = Arc::new((0..args.queries).map(|i| vectors.next(i * 7919)).collect());
    // Searches while the optimizer builds the index (if it still does), then the build's end.
    let build_started = Instant::now();
    let during = match store.is_optimizing("bench") {
        true => Some(latencies(&store, &queries, args.limit, 1).await),
        false => None,
    };
    settle(&store).await;
    let build_s = build_started.elapsed().as_secs_f64();
    let info = store.info("bench").await.unwrap();
    // The reference: exact top-`limit` of each query.
    let mut exact = Vec::new();
    for q in queries.iter() {
        exact.push(search(&store, q, args.limit, true).await.0);
    }
    let (recall10, recall50) = recall(&store, &queries, &exact, args.limit).await;
    let c1 = latencies(&store, &queries, args.limit, 1).await;
    let c8 = latencies(&store, &queries, args.limit, 8).await;
    let (rss, anon) = (rss_mib(std::process::id()), anon_mib(std::process::id()));
    let disk = disk_mib(data.path());
    let during = during.map_or("-".to_string(), |l| format!("{:.2}/{:.2}", l.median(), l.percentile(99.0)));
    println!(
        "| {size} | {variant} | {:.0} | {build_s:.1} | {:.2}/{:.2} | {:.2}/{:.2} | {during} | {:.3} | {:.3} | {rss:.0}/{anon:.0} | {disk:.0} | {}/{} |",
        size as f64 / ingest_s,
        c1.median(),
        c1.percentile(99.0),
        c8.median(),
        c8.percentile(99.0),
        recall10,
        recall50,
        info.segments,
        info.indexed_vectors,
    );
    for &ef in &args.sweep_ef {
        HNSW_EF.store(ef, Ordering::Relaxed);
        let (recall10, recall50) = recall(&store, &queries, &exact, args.limit).await;
        let c1 = latencies(&store, &queries, args.limit, 1).await;
        let (p50, p99) = (c1.median(), c1.percentile(99.0));
        println!(
            "hnsw_ef {ef} | {size} | {variant} | c=1 {p50:.2}/{p99:.2} ms | recall@10 {recall10:.3} | recall@{} {recall50:.3} |",
            args.limit
        );
    }
    HNSW_EF.store(args.hnsw_ef.unwrap_or(0), Ordering::Relaxed);
    let store = match args.no_http {
        true => store,
        false => {
            // The gateway takes the data directory's lock: the store closes first, and opens again after.
            store.flush();
            drop(store);
            through_the_gateway(args, size, variant, &data, &queries).await;
            EdgeStore::open(data.path(), EdgeOptions::default(), Arc::new(layouts)).unwrap()
        }
    };
    if variant == args.rewrite_variant && args.rewrite_rounds > 0 {
        rewrite::rounds(args, &store, &mut vectors, &queries, (size, variant), data.path(), disk).await;
    }
    store.flush();
}

/// The same searches through `POST /search` of a release search-gateway on the same data: the
/// query's vector given (so no model runs), dense retrieval, no rerank, no cache. The tiny
/// fixture models only make the gateway start; nothing is embedded or reranked.
async fn through_the_gateway(args: &Args, size: usize, variant: &str, data: &TempDir, queries: &[Vec<f32>]) {
    let mut gateway = e2e::start_gateway_with_envs(data, &[], &[("RUST_LOG", "warn,search_gateway::http=info")]);
    gateway.wait_ready(std::time::Duration::from_secs(120)).await;
    let body = |q: &Vec<f32>| {
        let mut body = serde_json::json!({"query": "a profile", "vector": q, "collection": "bench",
            "retrieval": "dense", "rerank": false, "cache": "bypass", "top_k": 10, "candidates": args.limit});
        if let Some(ef) = args.hnsw_ef {
            body["hnsw_ef"] = ef.into();
        }
        body
    };
    let bodies = Arc::new(queries.iter().map(body).collect::<Vec<_>>());
    let url = gateway.url("/search");
    post_searches(&url, bodies.clone(), 1).await; // warm-up
    let c1 = post_searches(&url, bodies.clone(), 1).await;
    let c8 = post_searches(&url, bodies, 8).await;
    // What serving takes: a fresh process that ran no exact scans over the originals.
    let (rss, anon) = (rss_mib(gateway.pid()), anon_mib(gateway.pid()));
    println!(
        "POST /search | {size} | {variant} | {:.2}/{:.2} | {:.2}/{:.2} | {:.2} | {rss:.0}/{anon:.0} |",
        c1.round_trip.median(),
        c1.round_trip.percentile(99.0),
        c8.round_trip.median(),
        c8.round_trip.percentile(99.0),
        c1.search_stage.median(),
    );
    gateway.signal("TERM");
    gateway.wait_exit(std::time::Duration::from_secs(60));
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    HNSW_EF.store(args.hnsw_ef.unwrap_or(0), Ordering::Relaxed);
    if let Some(one_run) = &args.one {
        let (size, variant) = one_run.split_once(':').expect("--one SIZE:VARIANT");
        return one(&args, size.parse().expect("size"), variant).await;
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpu.lines().find_map(|l| l.strip_prefix("model name")).unwrap_or(": ?").trim_start_matches([' ', ':', '\t']);
    println!(
        "store bench: {} dimensions, {} clusters, {} queries, limit {}, segments {:?}, max segment {:?} KB; {model}, {} cores",
        args.dimension,
        args.clusters,
        args.queries,
        args.limit,
        args.segments,
        args.max_segment_size_kb,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| documents | variant | ingest docs/s | index build s | c=1 p50/p99 ms | c=8 p50/p99 ms | during optimization c=1 p50/p99 ms | recall@10 | recall@{} | RSS/anonymous MiB | disk MiB | segments/indexed |",
        args.limit
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let me = std::env::current_exe().unwrap();

    for &size in &args.sizes {
        for variant in &args.variants {
            assert!(VARIANTS.contains(&variant.as_str()), "unknown variant {variant}: one of {VARIANTS:?}");
            let status = std::process::Command::new(&me)
                .args(["--one", &format!("{size}:{variant}"), "--dimension", &args.dimension.to_string()])
                .args(["--rewrite-variant", &args.rewrite_variant, "--text-bytes", &args.text_bytes.to_string()])
                .args(args.no_http.then_some("--no-http"))
                .args(["--clusters", &args.clusters.to_string(), "--queries", &args.queries.to_string()])
                .args(["--limit", &args.limit.to_string(), "--rewrite-rounds", &args.rewrite_rounds.to_string()])
                .args(["--rewrite-rate", &args.rewrite_rate.to_string()])
                .args(optional("--hnsw-ef", args.hnsw_ef))
                .args(list("--sweep-ef", &args.sweep_ef))
                .args(optional("--segments", args.segments))
                .args(optional("--max-segment-size-kb", args.max_segment_size_kb))
                .status()
                .unwrap();
            assert!(status.success(), "{size} {variant} failed");
        }
    }
}

fn optional(flag: &str, value: Option<usize>) -> Vec<String> {
    value.map(|v| vec![flag.to_string(), v.to_string()]).unwrap_or_default()
}

fn list(flag: &str, values: &[usize]) -> Vec<String> {
    let joined = values.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    if values.is_empty() { Vec::new() } else { vec![flag.to_string(), joined] }
}
