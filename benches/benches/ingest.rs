//! ingest bench: `search-gateway ingest` in process (embedder + qdrant-edge) on the full-size
//! E5-large-shaped model, against the raw engine embedding the same texts at its best batch
//! shape (length-sorted, the best of several batch sizes). Prints documents/s and tokens/s and
//! the ratio ingest/raw. With `--reindex`, it then re-embeds the ingested collection into a new
//! one with `search-gateway reindex` (the upgrade path) and reports that beside it.
//!
//!     scripts/bench.sh ingest [-- --reindex]

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use benches::{Rng, open_model, text_of_length};
use clap::Parser;
use e2e::TempDir;
use serde_json::json;
use shared::session::{InferenceSession, SessionOptions};
use shared::tokenize::{Encoded, InputType};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/bench/e5-large-shaped-int8")]
    model: PathBuf,
    /// Documents to index (20-160 tokens each).
    #[arg(long, default_value_t = 1000)]
    documents: usize,
    /// Raw-engine batch sizes to try on the length-sorted texts.
    #[arg(long, value_delimiter = ',', default_value = "8,16,32,64")]
    raw_batches: Vec<usize>,
    /// The search-gateway binary to run [default: this workspace's release build].
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Extra arguments for `search-gateway ingest`, as one string.
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    ingest_args: String,
    /// Also time `reindex` of the ingested collection into a new one, with the same model.
    #[arg(long)]
    reindex: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (model, dir, tokenizer) = open_model("ingest", &args.model)?;
    let threads = std::thread::available_parallelism()?.get();
    let mut rng = Rng::new(17);
    let texts: Vec<String> = (0..args.documents)
        .map(|_| text_of_length(&tokenizer, InputType::Passage, rng.range(20, 160), &mut rng))
        .collect();
    let encoded: Vec<Encoded> =
        texts.iter().map(|t| tokenizer.encode(t, InputType::Passage)).collect::<Result<_, _>>()?;
    let tokens: usize = encoded.iter().map(Encoded::len).sum();
    println!("{} documents, 20-160 tokens each, {tokens} tokens; {threads} intra-op threads", texts.len());

    // The raw engine at its best batch shape.
    let options = SessionOptions { intra_threads: threads, spinning: true };
    let mut raw = InferenceSession::load(&dir, tokenizer.pad_id(), options)?;
    let mut sorted: Vec<&Encoded> = encoded.iter().collect();
    sorted.sort_by_key(|e| e.len());
    raw.run(&sorted[..1])?;
    let mut best = f64::INFINITY;
    for &b in &args.raw_batches {
        let t = Instant::now();
        for chunk in sorted.chunks(b) {
            raw.run(chunk)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!("raw engine, batches of {b:>2} (length-sorted): {secs:.1} s, {:.0} tokens/s", tokens as f64 / secs);
        best = best.min(secs);
    }
    drop(raw);

    // The ingest job on the same texts, in process.
    let work = TempDir::new("ingest-bench");
    let input = work.path().join("corpus.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input)?);
    for (i, text) in texts.iter().enumerate() {
        writeln!(file, "{}", json!({"id": format!("doc-{i}"), "text": text, "payload": {"n": i}}))?;
    }
    file.flush()?;
    drop(file);
    let data = work.path().join("data");
    let mut ingest = vec!["ingest", "--collection", "bench", "--input", input.to_str().unwrap()];
    ingest.extend(["--data-dir", data.to_str().unwrap(), "--embed-model-dir", model.to_str().unwrap()]);
    ingest.extend(args.ingest_args.split_whitespace());
    let binary = args.gateway_bin.clone().unwrap_or_else(|| e2e::binary("search-gateway"));
    let (secs, wall) = job(&binary, &ingest)?;
    let reindexed = if args.reindex {
        let mut reindex = vec!["reindex", "--from", "bench", "--to", "bench_v2", "--alias", "current"];
        reindex.extend(["--data-dir", data.to_str().unwrap(), "--embed-model-dir", model.to_str().unwrap()]);
        reindex.extend(args.ingest_args.split_whitespace());
        Some(job(&binary, &reindex)?.0)
    } else {
        None
    };
    let raw_rate = args.documents as f64 / best;
    let ingest_rate = args.documents as f64 / secs;
    println!("\n| | documents/s | tokens/s | seconds |");
    println!("|---|---|---|---|");
    println!("| raw engine, best batch shape | {raw_rate:.1} | {:.0} | {best:.1} |", tokens as f64 / best);
    println!(
        "| ingest (read, embed, upsert into qdrant-edge) | {ingest_rate:.1} | {:.0} | {secs:.1} |",
        tokens as f64 / secs
    );
    println!("| ratio ingest/raw | **{:.2}** | | |", ingest_rate / raw_rate);
    if let Some(secs) = reindexed {
        let rate = args.documents as f64 / secs;
        println!(
            "| reindex (page through, embed, upsert into a new collection) | {rate:.1} | {:.0} | {secs:.1} |",
            tokens as f64 / secs
        );
        println!("| ratio reindex/raw | **{:.2}** | | |", rate / raw_rate);
        println!("(reindex: {:.1} min per 10k such documents)", 10_000.0 / rate / 60.0);
    }
    println!("(ingest process wall time including model load and warm-up: {wall:.1} s)");
    Ok(())
}

/// Runs a `search-gateway` job; returns its own duration (from its summary: the clock starts
/// once the model is loaded and warm, as the raw engine's does) and the process's wall time.
fn job(binary: &std::path::Path, args: &[&str]) -> anyhow::Result<(f64, f64)> {
    let t = Instant::now();
    let ort = e2e::root().join(".ort/lib/libonnxruntime.so");
    let output =
        std::process::Command::new(binary).args(args).env("RUST_LOG", "warn").env("ORT_DYLIB_PATH", ort).output()?;
    let (status, stderr) = (output.status, String::from_utf8_lossy(&output.stderr).into_owned());
    let wall = t.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "{} failed:\n{stderr}", args[0]);
    let summary = stderr.lines().rev().find(|l| l.starts_with("ingest: done")).unwrap_or_default();
    println!("{}: {summary}", args[0]);
    let secs: f64 = summary
        .split(" in ")
        .nth(1)
        .and_then(|rest| rest.split(" s").next())
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no duration in the summary"))?;
    Ok((secs, wall))
}
