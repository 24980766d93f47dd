//! The raw engine of the embed bench: one ONNX session, no tokenizer, queue or HTTP, timed on
//! batches of sorted (equal-ish length) sequences and on as many of sequences in arrival order.
//! With single-threaded sessions beside it, the same sorted batches are also timed on them side
//! by side (a thread each): the most this engine does on this machine, however it is scheduled.

use std::collections::BTreeMap;
use std::time::Instant;

use shared::session::InferenceSession;
use shared::tokenize::Encoded;

use crate::median;

/// The raw engine: one session, batches of sorted (equal-ish length) sequences, and as many
/// batches of sequences in arrival order (mixed lengths, so padded).
pub struct RawEngine {
    pub session: InferenceSession,
    sorted: Vec<Encoded>,
    arrival: Vec<Encoded>,
    /// tokens/s per batch size, one figure per round: sorted, and in arrival order.
    rates: BTreeMap<usize, Vec<f64>>,
    unsorted: BTreeMap<usize, Vec<f64>>,
    singles_ms: Vec<f64>,
    /// Single-threaded sessions, one per core, and their sorted batches' tokens/s side by side.
    narrow: Vec<InferenceSession>,
    side_by_side: BTreeMap<usize, Vec<f64>>,
}

impl RawEngine {
    pub fn new(session: InferenceSession, encoded: &[Encoded]) -> Self {
        let mut sorted = encoded.to_vec();
        sorted.sort_by_key(Encoded::len);
        let (rates, unsorted) = (BTreeMap::new(), BTreeMap::new());
        let (narrow, side_by_side) = (Vec::new(), BTreeMap::new());
        Self {
            session,
            sorted,
            arrival: encoded.to_vec(),
            rates,
            unsorted,
            singles_ms: Vec::new(),
            narrow,
            side_by_side,
        }
    }

    /// Also times the sorted batches on `sessions` (single-threaded ones) side by side.
    pub fn with_side_by_side(mut self, sessions: Vec<InferenceSession>) -> Self {
        self.narrow = sessions;
        self
    }

    pub fn round(&mut self, batches: &[usize]) -> anyhow::Result<()> {
        self.session.run(&[&self.sorted[0]])?;
        for e in self.sorted.iter().step_by(self.sorted.len() / 8) {
            let t = Instant::now();
            self.session.run(&[e])?;
            self.singles_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        for &b in batches {
            // Chunks of neighbouring lengths, spread evenly over the whole length range.
            let chunks: Vec<Vec<&Encoded>> = self.sorted.chunks_exact(b).map(|c| c.iter().collect()).collect();
            let n = (64 / b).clamp(2, 8).min(chunks.len());
            let step = chunks.len() / n;
            let (t, mut tokens) = (Instant::now(), 0);
            for chunk in chunks.iter().step_by(step).take(n) {
                self.session.run(chunk)?;
                tokens += chunk.iter().map(|e| e.len()).sum::<usize>();
            }
            self.rates.entry(b).or_default().push(tokens as f64 / t.elapsed().as_secs_f64());
            if !self.narrow.is_empty() {
                let chosen: Vec<&Vec<&Encoded>> = chunks.iter().step_by(step).take(n).collect();
                let rate = side_by_side(&mut self.narrow, &chosen)?;
                self.side_by_side.entry(b).or_default().push(rate);
            }
            // The same number of batches, of sequences as they arrive (lengths mixed).
            let (t, mut tokens) = (Instant::now(), 0);
            for chunk in self.arrival.chunks_exact(b).take(n) {
                let chunk: Vec<&Encoded> = chunk.iter().collect();
                self.session.run(&chunk)?;
                tokens += chunk.iter().map(|e| e.len()).sum::<usize>();
            }
            self.unsorted.entry(b).or_default().push(tokens as f64 / t.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Prints the raw figures; returns (best median tokens/s of one session's sequential
    /// batches, median single-query ms, best median tokens/s of any way timed, side by side too).
    pub fn report(&self) -> (f64, f64, f64) {
        let single = median(&self.singles_ms);
        let side = format!("{} x 1 thread side by side, sorted", self.narrow.len());
        println!("\n## raw engine\none short query alone: median {single:.1} ms");
        println!(
            "| batch | sorted: tokens/s (median) | per round | unsorted: tokens/s (median) | sorted / unsorted | {side} | / one session sorted |"
        );
        println!("|---|---|---|---|---|---|---|");
        let (mut best, mut ceiling) = (0f64, 0f64);
        for (b, rates) in &self.rates {
            let m = median(rates);
            best = best.max(m);
            let each: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
            let unsorted = self.unsorted.get(b).map_or(f64::NAN, |u| median(u));
            let beside = self.side_by_side.get(b).map_or(f64::NAN, |s| median(s));
            ceiling = ceiling.max(m).max(if beside.is_nan() { 0.0 } else { beside });
            println!(
                "| {b} | {m:.0} | {} | {unsorted:.0} | {:.2} | {beside:.0} | {:.2} |",
                each.join(", "),
                m / unsorted,
                beside / m
            );
        }
        println!(
            "raw best (one session, sequential batches): {best:.0} tokens/s; with sessions side by side too: {ceiling:.0}"
        );
        (best, single, ceiling)
    }
}

/// Tokens/s of `batches` shared out round-robin between `sessions`, a thread each, all at once.
fn side_by_side(sessions: &mut [InferenceSession], batches: &[&Vec<&Encoded>]) -> anyhow::Result<f64> {
    let count = sessions.len();
    let tokens: usize = batches.iter().flat_map(|b| b.iter()).map(|e| e.len()).sum();
    let t = Instant::now();
    std::thread::scope(|scope| {
        let runs: Vec<_> = sessions
            .iter_mut()
            .enumerate()
            .map(|(k, session)| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for batch in batches.iter().skip(k).step_by(count) {
                        session.run(batch)?;
                    }
                    Ok(())
                })
            })
            .collect();
        runs.into_iter().try_for_each(|r| r.join().expect("a side-by-side session panicked"))
    })?;
    Ok(tokens as f64 / t.elapsed().as_secs_f64())
}
