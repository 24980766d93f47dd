//! `POST /search` latencies as a client sees them, beside the gateway's own account of its
//! search stage (`timings_ms.search`), at a fixed concurrency on keep-alive connections.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::Latencies;

/// What a round of searches took: the client's round trips and the gateway's search stage.
pub struct SearchTimes {
    pub round_trip: Latencies,
    pub search_stage: Latencies,
}

/// Sends every body once, `concurrency` at a time (each worker its own connection, the bodies
/// dealt out in turn), and times each answer. Any answer but a 200 with hits ends the bench.
pub async fn post_searches(url: &str, bodies: Arc<Vec<Value>>, concurrency: usize) -> SearchTimes {
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (url, bodies) = (url.to_string(), bodies.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
                let mut times = Vec::new();
                for body in bodies.iter().skip(w).step_by(concurrency.max(1)) {
                    let started = Instant::now();
                    let response = client.post(&url).json(body).send().await.expect("POST /search");
                    let status = response.status();
                    let answer: Value = response.json().await.expect("a JSON answer");
                    let round_trip = started.elapsed().as_secs_f64() * 1e3;
                    assert!(status == 200 && answer["hits"].as_array().is_some_and(|h| !h.is_empty()), "{answer}");
                    times.push((round_trip, answer["timings_ms"]["search"].as_f64().unwrap_or(f64::NAN)));
                }
                times
            })
        })
        .collect();
    let (mut round_trip, mut search_stage) = (Vec::new(), Vec::new());
    for worker in workers {
        for (trip, stage) in worker.await.expect("a search worker") {
            round_trip.push(trip);
            search_stage.push(stage);
        }
    }
    SearchTimes { round_trip: Latencies::new(round_trip), search_stage: Latencies::new(search_stage) }
}
