//! The rerank budget: cold searches (nothing cached) under each budget B. How long the rerank
//! stage took against B (the goal: by B plus one batch's inference, here one pair's, since the
//! int8 reranker scores pairs alone), the window it kept, and whether the next identical search
//! is complete, scoring nothing, once the background has scored the pairs left.

use std::path::Path;
use std::time::{Duration, Instant};

use benches::{Latencies, metric};
use e2e::Process;

use super::{Setup, search, stop};

pub(crate) fn run(setup: &Setup, data: &Path, budgets: &[u64], queries: &[String]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let client = reqwest::Client::new();
    println!("\ncold searches under a rerank budget (50 candidates), {} queries each:", queries.len());
    println!(
        "| budget ms | rerank stage ms (each) | over budget ms, max | window (each) | background s (each) | next search: rerank, pairs scored |"
    );
    println!("|---|---|---|---|---|---|");
    let mut pair_ms = Vec::new();
    for &budget in budgets {
        // A fresh process: nothing cached.
        let gateway = setup.start(data, &["--rerank-budget-ms", &budget.to_string()]);
        let (mut stage, mut windows, mut waits, mut next) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for query in queries {
            let before = background_pairs(&runtime, &gateway)?;
            let first = runtime.block_on(search(&client, &gateway, query))?;
            let out = &first.out;
            stage.push(out["timings_ms"]["rerank"].as_f64().unwrap_or(f64::NAN));
            windows.push(format!("{} {}", out["reranked"]["window"], out["rerank"].as_str().unwrap_or("?")));
            // The pairs this search did not score are the background's.
            let left = 50 - out["reranked"]["scored"].as_u64().unwrap_or(0) as usize;
            let t = Instant::now();
            while background_pairs(&runtime, &gateway)? < before + left as f64 {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "the background did not finish");
                std::thread::sleep(Duration::from_millis(20));
            }
            waits.push(t.elapsed().as_secs_f64());
            let again = runtime.block_on(search(&client, &gateway, query))?;
            next.push(format!("{} {}", again.out["rerank"].as_str().unwrap_or("?"), again.out["reranked"]["scored"]));
        }
        let text = runtime.block_on(async { reqwest::get(gateway.url("/metrics")).await?.text().await })?;
        let (sum, count) = (
            metric(&text, "gateway_rerank_inference_duration_seconds_sum"),
            metric(&text, "gateway_rerank_inference_duration_seconds_count"),
        );
        pair_ms.push(sum / count * 1e3);
        let over = stage.iter().map(|ms| ms - budget as f64).fold(f64::NEG_INFINITY, f64::max);
        let list = |v: &[f64], digits: usize| v.iter().map(|x| format!("{x:.digits$}")).collect::<Vec<_>>().join(", ");
        println!(
            "| {budget} | {} | {over:.1} | {} | {} | {} |",
            list(&stage, 0),
            windows.join(", "),
            list(&waits, 1),
            next.join(", ")
        );
        stop(gateway);
    }
    let pair = Latencies::new(pair_ms);
    println!(
        "one batch (one pair alone) took {:.0} ms on average (per budget run: {:?})",
        pair.median(),
        pair.values()
    );
    Ok(())
}

fn background_pairs(runtime: &tokio::runtime::Runtime, gateway: &Process) -> anyhow::Result<f64> {
    let text = runtime.block_on(async { reqwest::get(gateway.url("/metrics")).await?.text().await })?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("gateway_rerank_pairs_total{kind=\"background\"} ")?.parse().ok())
        .unwrap_or(0.0);
    Ok(value)
}
