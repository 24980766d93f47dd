//! The old stack's way of serving, without its HTTP: a pool of sessions, and `clients` threads
//! that each run one sequence at a time on whichever session is free (fastembed behind uvicorn's
//! thread pool overlaps one request's work with another's inference the same way). It is the
//! reference a batching service has to beat: throughput, and latency with the queueing included.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use shared::session::InferenceSession;
use shared::tokenize::Encoded;

use crate::Latencies;

/// Sessions lent out one at a time; a client waits for a free one.
pub struct Pool {
    free: Mutex<Vec<InferenceSession>>,
    returned: Condvar,
}

/// What one run of the pool measured.
pub struct PoolRun {
    pub tokens_per_s: f64,
    pub sequences_per_s: f64,
    /// Per sequence, waiting for a session included.
    pub latencies: Latencies,
}

impl Pool {
    pub fn new(sessions: Vec<InferenceSession>) -> Self {
        Self { free: Mutex::new(sessions), returned: Condvar::new() }
    }

    pub fn size(&self) -> usize {
        self.free.lock().unwrap().len()
    }

    /// `clients` threads run `sequences` between them, each sequence alone, in a closed loop.
    pub fn run(&self, sequences: &[Encoded], clients: usize) -> anyhow::Result<PoolRun> {
        let next = Mutex::new(0usize);
        let started = Instant::now();
        let results: Vec<anyhow::Result<Vec<f64>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..clients.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let mut ms = Vec::new();
                        loop {
                            let i = {
                                let mut next = next.lock().unwrap();
                                *next += 1;
                                *next - 1
                            };
                            let Some(sequence) = sequences.get(i) else { return Ok(ms) };
                            let t = Instant::now();
                            let mut session = self.take();
                            let outcome = session.run(&[sequence]);
                            self.give_back(session);
                            outcome?;
                            ms.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a pool client panicked")).collect()
        });
        let elapsed = started.elapsed().as_secs_f64();
        let mut all = Vec::new();
        for result in results {
            all.extend(result?);
        }
        let tokens: usize = sequences.iter().map(Encoded::len).sum();
        Ok(PoolRun {
            tokens_per_s: tokens as f64 / elapsed,
            sequences_per_s: sequences.len() as f64 / elapsed,
            latencies: Latencies::new(all),
        })
    }

    fn take(&self) -> InferenceSession {
        let mut free = self.free.lock().unwrap();
        loop {
            if let Some(session) = free.pop() {
                return session;
            }
            free = self.returned.wait(free).unwrap();
        }
    }

    fn give_back(&self, session: InferenceSession) {
        self.free.lock().unwrap().push(session);
        self.returned.notify_one();
    }
}

/// Pools of `sessions x intra-op threads`, measured round after round at each client count.
pub struct Reference {
    pools: Vec<(String, Pool)>,
    /// (pool, clients) -> one run per round.
    runs: std::collections::BTreeMap<(String, usize), Vec<PoolRun>>,
}

impl Reference {
    /// Loads each pool: `shapes` are (sessions, intra-op threads); `load` makes one session.
    pub fn new(
        shapes: &[(usize, usize)],
        mut load: impl FnMut(usize) -> anyhow::Result<InferenceSession>,
    ) -> anyhow::Result<Self> {
        let mut pools = Vec::new();
        for &(sessions, intra) in shapes {
            let loaded = (0..sessions).map(|_| load(intra)).collect::<anyhow::Result<Vec<_>>>()?;
            pools.push((format!("{sessions} sessions x {intra} threads"), Pool::new(loaded)));
        }
        Ok(Self { pools, runs: Default::default() })
    }

    /// One round: every pool at each client count (and at as many clients as it has sessions).
    pub fn round(&mut self, sequences: &[Encoded], clients: &[usize]) -> anyhow::Result<()> {
        for (name, pool) in &self.pools {
            let mut counts = vec![pool.size()];
            counts.extend(clients.iter().filter(|&&c| c != pool.size()));
            for c in counts {
                let run = pool.run(sequences, c)?;
                self.runs.entry((name.clone(), c)).or_default().push(run);
            }
        }
        Ok(())
    }

    /// Prints the table; returns the best median tokens/s and, per client count, the best
    /// pool's median p99 there.
    pub fn report(&self) -> (f64, std::collections::BTreeMap<usize, f64>) {
        println!(
            "\n## reference: a pool of sessions, each sequence run alone by whichever client gets one (the old stack's way)"
        );
        println!("| pool | clients | tokens/s (median) | seq/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|");
        let mut best = 0f64;
        let mut p99s: std::collections::BTreeMap<usize, (f64, f64)> = Default::default();
        for ((name, clients), runs) in &self.runs {
            let m = |f: &dyn Fn(&PoolRun) -> f64| crate::median(&runs.iter().map(f).collect::<Vec<_>>());
            let (tps, p99) = (m(&|r| r.tokens_per_s), m(&|r| r.latencies.percentile(99.0)));
            println!(
                "| {name} | {clients} | {tps:.0} | {:.1} | {:.1} | {p99:.1} |",
                m(&|r| r.sequences_per_s),
                m(&|r| r.latencies.median())
            );
            best = best.max(tps);
            let entry = p99s.entry(*clients).or_insert((0.0, f64::INFINITY));
            if tps > entry.0 {
                *entry = (tps, p99);
            }
        }
        println!("reference best: {best:.0} tokens/s");
        (best, p99s.into_iter().map(|(c, (_, p99))| (c, p99)).collect())
    }
}
