//! The store under rewrites: rounds that each rewrite a tenth of the documents with new vectors
//! and texts, and what the disk and the searches pay for them.
//!
//! Two ways to write a round:
//! - **At once** (`--rewrite-rate 0`): as fast as the store takes the writes, then the searches
//!   while the optimizer folds them in. A burst that outruns the index build, so the searches
//!   scan whatever has not been indexed yet: the worst case.
//! - **At a rate** (`--rewrite-rate N`, documents a second): a writer paces the round while one
//!   client searches without pause from its first write until the maintenance thread is idle
//!   again. Each search counts as "during an optimization" if one was running when it started or
//!   ended. The app's own writes come at the embedding's pace (about 8 documents a second with
//!   E5-large on these two cores, BENCHMARKS.md), far below what the index builds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::Latencies;
use benches::clustered::Vectors;
use search_gateway::store::{EdgeStore, Point, VectorStore};

use crate::{Args, disk_mib, latencies, points, search, settle};

/// Rewrites a tenth of the `size` documents `args.rewrite_rounds` times and prints the disk
/// after each round and the searches' latencies during and after it; `disk` is the size before.
pub(crate) async fn rounds(
    args: &Args,
    store: &EdgeStore,
    vectors: &mut Vectors,
    queries: &Arc<Vec<Vec<f32>>>,
    (size, variant): (usize, &str),
    data: &Path,
    disk: f64,
) {
    let (mut disks, mut during, mut after) = (vec![format!("{disk:.0}")], Vec::new(), Vec::new());
    for round in 1..=args.rewrite_rounds {
        let tenth = size / 10;
        let from = (round * tenth) % size;
        let batch = match args.rewrite_rate {
            0 => 500,
            rate => (rate / 10).clamp(1, 500),
        };
        let batches: Vec<Vec<Point>> = (from..from + tenth)
            .step_by(batch)
            .map(|start| points(vectors, start..(start + batch).min(from + tenth), round, args.text_bytes))
            .collect();
        match args.rewrite_rate {
            0 => during.push(at_once(args, store, queries, batches).await),
            rate => {
                let idle = latencies(store, queries, args.limit, 1).await;
                during.push(at_rate(args, store, queries, batches, rate, &idle).await);
            }
        }
        settle(store).await;
        disks.push(format!("{:.0}", disk_mib(data)));
        // Twice, to tell a slow first pass (a cold shard after a WAL prune's reopen, say) from a
        // lasting slowdown.
        let (first, second) =
            (latencies(store, queries, args.limit, 1).await, latencies(store, queries, args.limit, 1).await);
        after.push(format!(
            "{:.2}/{:.2} then {:.2}/{:.2}",
            first.median(),
            first.percentile(99.0),
            second.median(),
            second.percentile(99.0)
        ));
    }
    println!("disk (MiB) at {size} {variant} after each rewrite of 10%: {}", disks.join(" → "));
    match args.rewrite_rate {
        0 => println!("c=1 p50/p99 ms while each rewrite is optimized: {}", during.join(", ")),
        rate => {
            println!("rewrites at {rate} documents/s, per round:");
            for line in &during {
                println!("  {line}");
            }
        }
    }
    println!("c=1 p50/p99 ms once it is (two passes): {}", after.join(", "));
}

/// Writes a round as fast as the store takes it, then measures the searches while the optimizer
/// folds it in (it starts half a second after the last write).
async fn at_once(args: &Args, store: &EdgeStore, queries: &Arc<Vec<Vec<f32>>>, batches: Vec<Vec<Point>>) -> String {
    for batch in batches {
        store.upsert("bench", batch).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    match store.is_optimizing("bench") {
        true => {
            let l = latencies(store, queries, args.limit, 1).await;
            format!("{:.2}/{:.2}", l.median(), l.percentile(99.0))
        }
        false => "-".to_string(),
    }
}

/// Writes a round at `rate` documents a second while one client searches until the writes are
/// optimized; `idle` is the same client's latencies just before.
async fn at_rate(
    args: &Args,
    store: &EdgeStore,
    queries: &Arc<Vec<Vec<f32>>>,
    batches: Vec<Vec<Point>>,
    rate: usize,
    idle: &Latencies,
) -> String {
    let started = Instant::now();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut sent = 0;
            for batch in batches {
                let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                sent += batch.len();
                store.upsert("bench", batch).await.unwrap();
            }
            let written = started.elapsed();
            settle(&store).await;
            (written, started.elapsed())
        })
    };
    let (mut optimizing, mut otherwise) = (Vec::new(), Vec::new());
    let mut next = queries.iter().cycle();
    while !writer.is_finished() {
        let was = store.is_optimizing("bench");
        let ms = search(store, next.next().unwrap(), args.limit, false).await.1;
        match was || store.is_optimizing("bench") {
            true => optimizing.push(ms),
            false => otherwise.push(ms),
        }
    }
    let (written, settled) = writer.await.unwrap();
    let (idle_p50, idle_p99) = (idle.median(), idle.percentile(99.0));
    let stats = |ms: Vec<f64>| match ms.is_empty() {
        true => "none".to_string(),
        false => {
            let (n, l) = (ms.len(), Latencies::new(ms));
            let (p50, p99, max) = (l.median(), l.percentile(99.0), l.percentile(100.0));
            let (r50, r99) = (p50 / idle_p50, p99 / idle_p99);
            format!("{n} searches, p50/p99 {p50:.2}/{p99:.2} ms ({r50:.2}x/{r99:.2}x idle), max {max:.1} ms")
        }
    };
    format!(
        "written in {:.1} s, optimized {:.1} s after; idle before p50/p99 {idle_p50:.2}/{idle_p99:.2} ms; during an optimization: {}; otherwise: {}",
        written.as_secs_f64(),
        (settled - written).as_secs_f64(),
        stats(optimizing),
        stats(otherwise),
    )
}
