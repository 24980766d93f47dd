//! A closed-loop search load: `concurrency` clients, each sending its next search when the last
//! one is answered, recording every answer's latency and whether the gateway's cache had it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Latencies;

/// One answered (or failed) search.
#[derive(Debug, Clone)]
pub struct Answer {
    pub client: usize,
    pub ms: f64,
    /// HTTP status; 0 when no answer came.
    pub status: u16,
    /// The response's `cache` field: `hit`, `miss` or `bypass`.
    pub cache: String,
    /// The response's `rerank` field (`applied`, `fallback`, ...), or the error body.
    pub rerank: String,
    /// When it completed, from the start of the run.
    pub done_at: Duration,
}

pub struct Run {
    pub answers: Vec<Answer>,
    pub elapsed: Duration,
}

impl Run {
    pub fn latencies(&self, cache: &str) -> Latencies {
        Latencies::new(self.answers.iter().filter(|a| a.status == 200 && a.cache == cache).map(|a| a.ms).collect())
    }

    pub fn errors(&self) -> usize {
        self.answers.iter().filter(|a| a.status != 200).count()
    }

    /// Answers per second (those with this `cache` status) while the load is steady: between
    /// the 10th and the 90th percentile of completion times, so that neither the start (the
    /// first batches forming) nor the tail (fewer clients left than the concurrency) counts.
    pub fn steady_rate(&self, cache: &str) -> f64 {
        let mut times: Vec<Duration> = self.answers.iter().map(|a| a.done_at).collect();
        times.sort_unstable();
        let (from, to) = (times[times.len() / 10], times[times.len() * 9 / 10]);
        let count = |from: Duration, to: Duration| {
            let ok = |a: &&Answer| a.status == 200 && a.cache == cache && a.done_at > from && a.done_at <= to;
            self.answers.iter().filter(ok).count() as f64
        };
        if to > from {
            count(from, to) / (to - from).as_secs_f64()
        } else {
            count(Duration::ZERO, self.elapsed) / self.elapsed.as_secs_f64()
        }
    }

    /// How many answers were reranked (`applied`) and how many fell back to vector order.
    pub fn reranked(&self) -> (usize, usize) {
        let count = |r: &str| self.answers.iter().filter(|a| a.status == 200 && a.rerank == r).count();
        (count("applied"), count("fallback"))
    }

    /// The first failed answer's status and body.
    pub fn first_error(&self) -> Option<String> {
        self.answers.iter().find(|a| a.status != 200).map(|a| format!("{} {}", a.status, a.rerank))
    }
}

/// Sends `bodies` to `url`: client k sends bodies k, k + concurrency, ... one at a time.
pub async fn run(url: &str, bodies: &[Value], concurrency: usize) -> Run {
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|k| {
            let mine: Vec<Value> = bodies.iter().skip(k).step_by(concurrency).cloned().collect();
            let url = url.to_string();
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
                let mut answers = Vec::with_capacity(mine.len());
                for body in mine {
                    let t = Instant::now();
                    let (status, out) = match client.post(&url).json(&body).send().await {
                        Ok(response) => (response.status().as_u16(), response.json().await.unwrap_or_default()),
                        Err(e) => (0, Value::String(e.to_string())),
                    };
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let field = |k: &str| out[k].as_str().unwrap_or_default().to_string();
                    let rerank = if status == 200 { field("rerank") } else { out.to_string() };
                    answers.push(Answer {
                        client: k,
                        ms,
                        status,
                        cache: field("cache"),
                        rerank,
                        done_at: started.elapsed(),
                    });
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    Run { answers, elapsed: started.elapsed() }
}

/// `n` draws from a Zipf(`exponent`) distribution over ranks `0..pool`, from `rng`.
pub fn zipf_draws(n: usize, pool: usize, exponent: f64, rng: &mut crate::Rng) -> Vec<usize> {
    let weights: Vec<f64> = (1..=pool).map(|rank| 1.0 / (rank as f64).powf(exponent)).collect();
    let total: f64 = weights.iter().sum();
    (0..n)
        .map(|_| {
            let mut target = (rng.next_u64() as f64 / u64::MAX as f64) * total;
            weights
                .iter()
                .position(|w| {
                    target -= w;
                    target <= 0.0
                })
                .unwrap_or(pool - 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_the_first_ranks() {
        let draws = zipf_draws(10_000, 100, 1.1, &mut crate::Rng::new(1));
        let count = |rank| draws.iter().filter(|&&d| d == rank).count();
        assert!(count(0) > 2 * count(1) - 300 && count(1) > count(9) && draws.iter().all(|&d| d < 100));
    }
}
