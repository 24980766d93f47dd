//! The raw engines' search capacity: what bare ONNX Runtime sessions, with no queue, HTTP or
//! gateway, need for one search's work (one query embedding, one 50-pair rerank).

use std::time::Instant;

use shared::ModelDir;
use shared::batcher::packing::{BatchLimits, select_batch};
use shared::session::{InferenceSession, SessionOptions};
use shared::tokenize::{Encoded, InputType, TextTokenizer};

use crate::{Rng, median, text_of_length};

/// `pairs` in the batches the batcher would form from them at its default limits.
fn packed<'a>(pairs: &[&'a Encoded]) -> Vec<Vec<&'a Encoded>> {
    let limits =
        BatchLimits { max_batch_tokens: 4096, max_batch_size: 32, max_padding_ratio: 0.2, overhead_tokens: 48 };
    let mut left: Vec<&Encoded> = pairs.to_vec();
    let mut batches = Vec::new();
    while !left.is_empty() {
        let lengths: Vec<usize> = left.iter().map(|e| e.len()).collect();
        let mut chosen = select_batch(&lengths, 0, &[], limits);
        batches.push(chosen.iter().map(|&i| left[i]).collect());
        chosen.sort_unstable_by(|a, b| b.cmp(a));
        for i in chosen {
            left.remove(i);
        }
    }
    batches
}

/// Searches/s the raw engines can do: 1 / (cheapest query embedding + best 50-pair rerank).
pub fn raw_capacity(
    embed_dir: &ModelDir,
    tokenizer: &TextTokenizer,
    rerank_dir: &ModelDir,
    rerank_tokenizer: &TextTokenizer,
    corpus: &[String],
    rng: &mut Rng,
) -> anyhow::Result<f64> {
    let threads = std::thread::available_parallelism()?.get();
    let options = SessionOptions { intra_threads: threads, spinning: true };
    let queries: Vec<String> =
        (0..16).map(|_| text_of_length(tokenizer, InputType::Query, rng.range(10, 30), rng)).collect();
    let encoded: Vec<Encoded> =
        queries.iter().map(|q| tokenizer.encode(q, InputType::Query)).collect::<Result<_, _>>()?;
    let timed = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    let mut embed = InferenceSession::load(embed_dir, tokenizer.pad_id(), options)?;
    embed.run(&[&encoded[0]])?;
    let mut one = Vec::new();
    let mut sixteen = Vec::new();
    for round in 0..3 {
        for e in &encoded[..8] {
            one.push(timed(&mut || Ok(embed.run(&[e]).map(drop)?))?);
        }
        let mut sorted = encoded.clone();
        sorted.rotate_left(round);
        let refs: Vec<&Encoded> = sorted.iter().collect();
        sixteen.push(timed(&mut || Ok(embed.run(&refs).map(drop)?))? / 16.0);
    }
    drop(embed);
    let embed_ms = median(&one).min(median(&sixteen));
    // Each chunking, with ORT's idle threads spinning (its default) and not (the embedded
    // gateway's setting); the best is the reference. A warm-up first, as the services do.
    let mut best = f64::INFINITY;
    let mut report = Vec::new();
    for spinning in [true, false] {
        let options = SessionOptions { intra_threads: threads, spinning };
        let mut rerank = InferenceSession::load(rerank_dir, rerank_tokenizer.pad_id(), options)?;
        let start = rng.range(0, corpus.len() - 50);
        let warm: Vec<Encoded> = corpus[start..start + 32]
            .iter()
            .map(|d| rerank_tokenizer.encode_pair(&queries[0], d))
            .collect::<Result<_, _>>()?;
        rerank.run(&warm.iter().collect::<Vec<_>>())?;
        // Length-sorted chunks of 4, 8, 16, and (0) the batcher's own packing at its defaults.
        for chunk in [4, 8, 16, 0] {
            let mut samples = Vec::new();
            for query in queries.iter().take(3) {
                let start = rng.range(0, corpus.len() - 50);
                let mut pairs: Vec<Encoded> = corpus[start..start + 50]
                    .iter()
                    .map(|d| rerank_tokenizer.encode_pair(query, d))
                    .collect::<Result<_, _>>()?;
                pairs.sort_by_key(Encoded::len);
                let refs: Vec<&Encoded> = pairs.iter().collect();
                let batches = if chunk == 0 { packed(&refs) } else { refs.chunks(chunk).map(<[_]>::to_vec).collect() };
                samples.push(timed(&mut || {
                    for batch in &batches {
                        rerank.run(batch)?;
                    }
                    Ok(())
                })?);
            }
            report.push(format!(
                "{}{}: {:.0}",
                if chunk == 0 { "packed".into() } else { chunk.to_string() },
                if spinning { "" } else { " (no spin)" },
                median(&samples)
            ));
            best = best.min(median(&samples));
        }
    }
    println!("raw 50-pair rerank ms by chunking: {}", report.join(", "));
    println!(
        "raw: query embedding {embed_ms:.1} ms (batch 1: {:.1}, per query in 16: {:.1}); 50-pair rerank {best:.0} ms",
        median(&one),
        median(&sixteen)
    );
    Ok(1000.0 / (embed_ms + best))
}
