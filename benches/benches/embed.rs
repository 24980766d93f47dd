//! embed bench: the raw engine (one ONNX session: no tokenizer, queue or HTTP) against the
//! embed-service under concurrent HTTP load, on a full-size model of the E5-large shape.
//!
//!     scripts/bench.sh embed -- --model models/bench/e5-large-shaped-int8
//!
//! The raw engine and the service take turns for `--rounds` rounds so that both see the same
//! machine; medians are reported. Prints raw throughput per batch shape, one raw inference's
//! latency, service throughput (at full concurrency: after the first response and before the
//! first client runs out of requests) and latency per concurrency with the ratio service/raw, and, on a
//! mixed-length workload, the padding ratio and RSS growth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use benches::pool::Reference;
use benches::raw_engine::RawEngine;
use benches::{Latencies, Rng, load, median, metric, open_model, rss_mib, start_service, text_of_length};
use clap::Parser;
use e2e::Process;
use serde_json::{Value, json};
use shared::session::{InferenceSession, SessionOptions};
use shared::tokenize::{Encoded, InputType, TextTokenizer};

#[derive(Parser)]
struct Args {
    /// Model directory to bench.
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    model: PathBuf,
    /// Concurrency levels of the HTTP load.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    concurrency: Vec<usize>,
    /// Requests per concurrency level and round (short queries, 10-30 tokens); at least 8 per
    /// client, so that throughput is measured while every client is busy.
    #[arg(long, default_value_t = 128)]
    requests: usize,
    /// Raw-engine batch sizes to try.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16,32")]
    raw_batches: Vec<usize>,
    /// The reference pools, as SESSIONSxTHREADS (sessions each with that many intra-op threads,
    /// one sequence per run) [default: one single-threaded session per core, and as many
    /// sessions with every core each, not spinning]; "none" to skip.
    #[arg(long, value_delimiter = ',')]
    pool: Vec<String>,
    /// Rounds of raw engine then service.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests of the mixed-length workload (5-400 tokens), 0 to skip.
    #[arg(long, default_value_t = 300)]
    mixed_requests: usize,
    /// Concurrency of the mixed-length workload.
    #[arg(long, default_value_t = 32)]
    mixed_concurrency: usize,
    /// Skip the raw engine (e.g. for an RSS-only run).
    #[arg(long)]
    skip_raw: bool,
    /// Extra arguments for embed-service, as one string: --service-args "--max-padding-ratio 0.1"
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    service_args: String,
    /// Only replay batch shapes logged by the service (`RUST_LOG=shared::batcher=debug`, lines
    /// reduced to "size longest real ms") on the raw engine and compare the times.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (model, dir, tokenizer) = open_model("embed", &args.model)?;
    let threads = std::thread::available_parallelism()?.get();

    let mut rng = Rng::new(42);
    let short: Vec<String> =
        (0..256).map(|_| text_of_length(&tokenizer, InputType::Query, rng.range(10, 30), &mut rng)).collect();
    let encoded: Vec<Encoded> = short.iter().map(|t| tokenizer.encode(t, InputType::Query).unwrap()).collect();
    let mean_tokens = encoded.iter().map(Encoded::len).sum::<usize>() as f64 / encoded.len() as f64;
    println!(
        "short queries: 10-30 tokens, mean {mean_tokens:.1}; intra-op threads {threads}; {} rounds; service args: {}",
        args.rounds, args.service_args
    );

    if let Some(path) = &args.replay {
        let options = SessionOptions { intra_threads: threads, spinning: true };
        return replay(InferenceSession::load(&dir, tokenizer.pad_id(), options)?, path);
    }

    let mut raw = if args.skip_raw {
        None
    } else {
        let options = SessionOptions { intra_threads: threads, spinning: true };
        let raw = RawEngine::new(InferenceSession::load(&dir, tokenizer.pad_id(), options)?, &encoded);
        // One single-threaded session per core, as the service's side-by-side sessions run.
        let one = SessionOptions { intra_threads: 1, spinning: true };
        let narrow = if threads > 1 {
            (0..threads).map(|_| InferenceSession::load(&dir, tokenizer.pad_id(), one)).collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        Some(raw.with_side_by_side(narrow))
    };

    let shapes = pool_shapes(&args.pool, threads)?;
    let mut reference = if args.skip_raw || shapes.is_empty() {
        None
    } else {
        let pad = tokenizer.pad_id();
        Some(Reference::new(&shapes, |intra| {
            let options = SessionOptions { intra_threads: intra, spinning: intra == 1 };
            Ok(InferenceSession::load(&dir, pad, options)?)
        })?)
    };

    let runtime = tokio::runtime::Runtime::new()?;
    let service = start_service(&runtime, "embed-service", &model, &args.service_args);
    let url = service.url("/embed");
    let bodies: Vec<Value> = short.iter().map(|t| json!({"text": t})).collect();
    let lengths: Vec<usize> = encoded.iter().map(Encoded::len).collect();
    runtime.block_on(load(&url, &bodies[..8], 2));
    std::thread::sleep(Duration::from_secs(3));
    let rss_warm = rss_mib(service.pid());
    let info: Value = runtime.block_on(async { reqwest::get(service.url("/info")).await?.json().await })?;
    println!("service's batch policy: {}", info["batching"]);

    let mut levels: BTreeMap<usize, Vec<Level>> = BTreeMap::new();
    let mut paired_ms = Vec::new();
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        if let Some(raw) = raw.as_mut() {
            raw.round(&args.raw_batches)?;
            // Concurrency 1, paired: each text once on the raw engine, then once through the
            // service, back to back, so the machine's drift cancels out of the difference.
            for (text, encoded) in short.iter().zip(&encoded).step_by(16) {
                let t = Instant::now();
                raw.session.run(&[encoded])?;
                let raw_ms = t.elapsed().as_secs_f64() * 1e3;
                let r = runtime.block_on(load(&url, &[json!({"text": text})], 1));
                paired_ms.push(r.latencies.median() - raw_ms);
            }
        }
        if let Some(reference) = reference.as_mut() {
            let clients: Vec<usize> = args.concurrency.iter().copied().filter(|&c| c > 1).collect();
            reference.round(&encoded[..args.requests.min(encoded.len())], &clients)?;
        }
        for &c in &args.concurrency {
            let requests = args.requests.max(8 * c);
            let level = runtime.block_on(Level::measure(&service, &bodies, &lengths, requests, c))?;
            levels.entry(c).or_default().push(level);
        }
    }

    let (raw_best, raw_single, raw_ceiling) = match &raw {
        Some(raw) => raw.report(),
        None => (f64::NAN, f64::NAN, f64::NAN),
    };
    let (reference_best, reference_p99) = match &reference {
        Some(reference) => reference.report(),
        None => (f64::NAN, BTreeMap::new()),
    };
    let goal = raw_best.max(reference_best);
    println!("\n## embed-service under HTTP load (POST /embed, one short query per request)");
    println!(
        "| concurrency | requests | tokens/s (steady) | ratio to raw best | ratio to the best of raw and pool | whole run: tokens/s, ratio | p50 ms | p99 ms | p99 / pool's | errors | mean batch | padding | model busy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (c, runs) in &levels {
        let m = |f: fn(&Level) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let (tps, whole) = (m(|l| l.tokens_per_s), m(|l| l.whole_run_tokens_per_s));
        let pool_p99 = reference_p99.get(c).copied().unwrap_or(f64::NAN);
        println!(
            "| {c} | {} | {tps:.0} | {:.2} | {:.2} | {whole:.0}, {:.2} | {:.1} | {:.1} | {:.2} | {} | {:.1} | {:.1}% | {:.0}% |",
            runs.iter().map(|l| l.ok).sum::<usize>(),
            tps / raw_best,
            tps / goal,
            whole / raw_best,
            m(|l| l.p50),
            m(|l| l.p99),
            m(|l| l.p99) / pool_p99,
            runs.iter().map(|l| l.errors).sum::<usize>(),
            m(|l| l.engine.mean_batch()),
            m(|l| l.engine.padding_percent()),
            m(|l| l.busy_percent),
        );
        if *c == 1 {
            println!("(concurrency 1: p50 minus the median raw inference = {:.1} ms)", m(|l| l.p50) - raw_single);
        }
    }
    if let Some((c, best)) = levels
        .iter()
        .map(|(c, runs)| (c, median(&runs.iter().map(|l| l.tokens_per_s).collect::<Vec<_>>())))
        .max_by(|a, b| a.1.total_cmp(&b.1))
    {
        println!(
            "the service's best level (c={c}, {best:.0} tokens/s) is {:.2} of the most the raw engine did in any way timed ({raw_ceiling:.0}, sorted batches, one session or side by side)",
            best / raw_ceiling
        );
    }

    if !paired_ms.is_empty() {
        let paired = Latencies::new(paired_ms.clone());
        println!(
            "\nconcurrency 1, paired ({} texts: raw inference then HTTP request, back to back): service minus raw p50 {:.1} ms, p90 {:.1} ms",
            paired_ms.len(),
            paired.median(),
            paired.percentile(90.0)
        );
    }

    if args.mixed_requests > 0 {
        runtime.block_on(mixed(&args, &service, &tokenizer, rss_warm))?;
    }
    Ok(())
}

/// One concurrency level of one round.
struct Level {
    ok: usize,
    errors: usize,
    tokens_per_s: f64,
    /// Over the whole run, start and tail included.
    whole_run_tokens_per_s: f64,
    p50: f64,
    p99: f64,
    busy_percent: f64,
    engine: EngineDelta,
}

impl Level {
    /// `requests` requests cycling through `bodies`, whose token counts are `lengths`.
    async fn measure(
        service: &Process,
        bodies: &[Value],
        lengths: &[usize],
        requests: usize,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let sent: Vec<Value> = bodies.iter().cycle().take(requests).cloned().collect();
        let before = scrape(service).await?;
        let r = load(&service.url("/embed"), &sent, concurrency).await;
        let engine = EngineDelta::between(&before, &scrape(service).await?);
        let secs = r.elapsed.as_secs_f64();
        let tokens = |body: usize| lengths[body % lengths.len()] as f64;
        Ok(Self {
            ok: r.ok,
            errors: r.errors.len(),
            tokens_per_s: r.steady_rate(tokens),
            whole_run_tokens_per_s: r.whole_run_rate(tokens),
            p50: r.latencies.median(),
            p99: r.latencies.percentile(99.0),
            busy_percent: 100.0 * engine.busy_seconds / secs,
            engine,
        })
    }
}

async fn scrape(service: &Process) -> anyhow::Result<String> {
    Ok(reqwest::get(service.url("/metrics")).await?.text().await?)
}

/// Mixed lengths (5-400 tokens): the padding the batcher leaves, and RSS growth.
async fn mixed(args: &Args, service: &Process, tokenizer: &TextTokenizer, rss_warm: f64) -> anyhow::Result<()> {
    let mut rng = Rng::new(7);
    let longest = 400.min(tokenizer.max_length());
    let mixed: Vec<Value> = (0..args.mixed_requests.min(512))
        .map(|_| {
            let text = text_of_length(tokenizer, InputType::Passage, rng.range(5, longest), &mut rng);
            json!({"text": text, "input_type": "passage"})
        })
        .collect();
    let bodies: Vec<Value> = mixed.iter().cycle().take(args.mixed_requests).cloned().collect();
    let before = scrape(service).await?;
    let r = load(&service.url("/embed"), &bodies, args.mixed_concurrency).await;
    let engine = EngineDelta::between(&before, &scrape(service).await?);
    let secs = r.elapsed.as_secs_f64();
    println!("\n## mixed lengths (5-{longest} tokens, passages), concurrency {}", args.mixed_concurrency);
    println!(
        "requests {} ok, {} errors, {secs:.1} s; real tokens/s {:.0}; {} batches, mean batch {:.1}; model busy {:.0}%",
        r.ok,
        r.errors.len(),
        engine.real_tokens / secs,
        engine.batches,
        engine.mean_batch(),
        100.0 * engine.busy_seconds / secs
    );
    println!("padding ratio (1 - real/padded tokens): {:.1}%", engine.padding_percent());
    // At rest: give the service the couple of idle seconds in which it trims its heap.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_mib(service.pid());
    println!(
        "RSS at rest: after warm-up {rss_warm:.0} MiB; after all the load above {rss_after:.0} MiB ({:+.1}%)",
        100.0 * (rss_after / rss_warm - 1.0)
    );
    Ok(())
}

/// The engine's own counters over one load run, from two `/metrics` snapshots.
struct EngineDelta {
    batches: f64,
    sequences: f64,
    real_tokens: f64,
    padded_tokens: f64,
    busy_seconds: f64,
}

impl EngineDelta {
    fn between(before: &str, after: &str) -> Self {
        let delta = |name: &str| metric(after, name) - metric(before, name);
        Self {
            batches: delta("embed_batch_size_count"),
            sequences: delta("embed_sequences_total"),
            real_tokens: delta("embed_real_tokens_total"),
            padded_tokens: delta("embed_padded_tokens_total"),
            busy_seconds: delta("embed_inference_duration_seconds_sum"),
        }
    }

    fn mean_batch(&self) -> f64 {
        self.sequences / self.batches
    }

    fn padding_percent(&self) -> f64 {
        100.0 * (1.0 - self.real_tokens / self.padded_tokens)
    }
}

/// Runs each logged batch shape on the raw engine and compares total time with the service's.
fn replay(mut session: InferenceSession, path: &std::path::Path) -> anyhow::Result<()> {
    let shapes: Vec<(usize, usize, f64)> = std::fs::read_to_string(path)?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect();
    let (mut raw_ms, mut service_ms) = (0.0, 0.0);
    for &(size, longest, ms) in &shapes {
        let seq = Encoded { ids: vec![5; longest], type_ids: vec![0; longest] };
        let batch: Vec<&Encoded> = (0..size).map(|_| &seq).collect();
        let t = Instant::now();
        session.run(&batch)?;
        raw_ms += t.elapsed().as_secs_f64() * 1e3;
        service_ms += ms;
    }
    println!(
        "{} batches: service {service_ms:.0} ms, raw engine on the same shapes {raw_ms:.0} ms, ratio {:.2}",
        shapes.len(),
        service_ms / raw_ms
    );
    Ok(())
}

/// `--pool` as (sessions, intra-op threads) pairs.
fn pool_shapes(given: &[String], cores: usize) -> anyhow::Result<Vec<(usize, usize)>> {
    if given.is_empty() {
        return Ok(vec![(cores, 1), (cores, cores)]);
    }
    if given == ["none"] {
        return Ok(Vec::new());
    }
    given
        .iter()
        .map(|shape| {
            let parsed = shape.split_once('x').and_then(|(s, t)| Some((s.parse().ok()?, t.parse().ok()?)));
            parsed
                .filter(|&(s, t)| s > 0 && t > 0)
                .ok_or_else(|| anyhow::anyhow!("--pool {shape}: want SESSIONSxTHREADS, e.g. 2x1"))
        })
        .collect()
}
