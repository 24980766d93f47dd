//! What batching is worth on this machine, for this model, measured at warm-up.
//!
//! Whether a batch of short sequences runs faster per sequence than one at a time depends on the
//! CPU far more than on the model: with AVX-512 a batch of 16 queries of e5-large ran 2.4x the
//! throughput of single queries, on an AVX2 EPYC it ran 0.95x (BENCHMARKS.md, "The batch policy").
//! So the inference thread times one short sequence in batches of 1, 2, 4, ... up to the cap, in
//! interleaved rounds (the machine's speed drifts), and the batcher then batches only where that
//! pays: if no batch runs at least [`MIN_GAIN`] faster per sequence than one at a time, every
//! sequence runs alone (a real batch of mixed lengths carries padding that a smaller gain does not
//! pay for); otherwise batches may grow to the size that measured fastest (the cap binds only at
//! saturation, where the most throughput is also the shortest wait; below it the batcher forms
//! smaller batches anyway). A straight-line fit of run time against padded tokens gives the run's
//! fixed cost in tokens' worth of time, which the packer weighs against padding (`packing`).
//! Flags given explicitly are kept as they are.

use std::time::Duration;

use serde::Serialize;

use super::median;
use crate::tokenize::Encoded;

/// Batching pays when the best batch runs at least this much faster per sequence than one at a
/// time: the service's batches of mixed lengths carried 10-16% padding (BENCHMARKS.md).
pub const MIN_GAIN: f64 = 0.10;

/// Tokens of the sequence the calibration times: a short query's length, where batching pays
/// most (a run's fixed cost is the largest share of it), so no longer sequence pays more.
pub const SEQUENCE_TOKENS: usize = 24;

/// Rounds over the batch sizes; each size's time is the median of its rounds.
const ROUNDS: usize = 3;

/// What to measure and which of the batcher's settings the result may set.
#[derive(Debug, Clone)]
pub struct CalibrationSpec {
    /// The sequence to time (cut to [`SEQUENCE_TOKENS`] by [`CalibrationSpec::new`]).
    pub sequence: Encoded,
    /// The largest batch to try and to allow (`--max-batch-size`, or its default cap).
    pub cap: usize,
    /// Whether the batch size is the calibration's to choose (not given as a flag).
    pub choose_size: bool,
    /// Whether the fixed cost per run is the calibration's to set (not given as a flag).
    pub choose_overhead: bool,
}

impl CalibrationSpec {
    /// Calibrates on `sequence` cut to [`SEQUENCE_TOKENS`] (its last, closing token kept).
    pub fn new(sequence: &Encoded, cap: usize, choose_size: bool, choose_overhead: bool) -> Self {
        let sequence = cut(sequence, SEQUENCE_TOKENS);
        Self { sequence, cap: cap.max(1), choose_size, choose_overhead }
    }

    /// Batch sizes to time: powers of two up to the cap, and the cap.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> =
            std::iter::successors(Some(1), |&s| Some(s * 2)).take_while(|&s| s < self.cap).collect();
        sizes.push(self.cap);
        sizes
    }
}

/// One measured batch size.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    pub batch_size: usize,
    /// Sequences a second at this batch size (median of the rounds).
    pub sequences_per_sec: f64,
}

/// What the calibration measured and what it set; in `/info` and the log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Calibration {
    /// Tokens of the timed sequence.
    pub sequence_tokens: usize,
    pub points: Vec<Point>,
    /// The batch size cap it chose (None: `--max-batch-size` was given).
    pub max_batch_size: Option<usize>,
    /// The fixed cost of a run, in tokens' worth of time (None: `--batch-overhead-tokens` was given).
    pub overhead_tokens: Option<usize>,
    /// Why, in words.
    pub reason: String,
    /// Single-threaded sessions side by side against one session, and whether they serve
    /// (`in_flight`); None where they were not tried.
    pub in_flight: Option<super::in_flight::InFlight>,
}

/// Times `spec`'s sequence in each batch size for [`ROUNDS`] interleaved rounds with `run`
/// (which runs a batch and says how long it took), then decides.
pub fn calibrate(
    spec: &CalibrationSpec,
    mut run: impl FnMut(&[&Encoded]) -> Result<Duration, String>,
) -> Result<Calibration, String> {
    let sizes = spec.sizes();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sizes.len()];
    let batch: Vec<&Encoded> = vec![&spec.sequence; spec.cap];
    run(&batch[..1])?; // this length's first run allocates; it is not timed
    for _ in 0..ROUNDS {
        for (size, times) in sizes.iter().zip(&mut times) {
            times.push(run(&batch[..*size])?);
        }
    }
    let measured: Vec<(usize, Duration)> = sizes.iter().zip(times).map(|(&s, mut t)| (s, median(&mut t))).collect();
    Ok(decide(spec, &measured))
}

/// The policy from measured (batch size, run time) pairs: one at a time unless the best batch
/// gains [`MIN_GAIN`], else up to the fastest size; and the fixed cost from a least-squares line.
pub fn decide(spec: &CalibrationSpec, measured: &[(usize, Duration)]) -> Calibration {
    let tokens = spec.sequence.len();
    let points: Vec<Point> = measured
        .iter()
        .map(|&(size, time)| Point { batch_size: size, sequences_per_sec: size as f64 / time.as_secs_f64().max(1e-9) })
        .collect();
    let best = points.iter().map(|p| p.sequences_per_sec).fold(0.0, f64::max);
    let single = points.first().map_or(best, |p| p.sequences_per_sec);
    let fastest = points.iter().find(|p| p.sequences_per_sec == best).map_or(1, |p| p.batch_size);
    let gain = best / single;
    let (chosen, verdict) = if gain >= 1.0 + MIN_GAIN {
        (fastest, "batches up to that size")
    } else {
        (1, "less than the padding of a mixed batch costs: each sequence runs alone")
    };
    let overhead = fixed_cost_tokens(tokens, measured);
    let mut reason = format!(
        "{tokens}-token sequences: a batch of {fastest} runs {gain:.2}x the throughput of one at a time, {verdict}"
    );
    let max_batch_size = spec.choose_size.then_some(chosen);
    if !spec.choose_size {
        reason.push_str("; --max-batch-size kept");
    }
    if !spec.choose_overhead {
        reason.push_str("; --batch-overhead-tokens kept");
    }
    Calibration {
        sequence_tokens: tokens,
        points,
        max_batch_size,
        overhead_tokens: spec.choose_overhead.then_some(overhead),
        reason,
        in_flight: None,
    }
}

/// The intercept over the slope of run time against padded tokens (size x length), in tokens:
/// what a run costs beyond its tokens. 0 when the line does not rise or starts below zero.
fn fixed_cost_tokens(tokens: usize, measured: &[(usize, Duration)]) -> usize {
    let n = measured.len() as f64;
    if measured.len() < 2 {
        return 0;
    }
    let xs: Vec<f64> = measured.iter().map(|&(s, _)| (s * tokens) as f64).collect();
    let ys: Vec<f64> = measured.iter().map(|&(_, t)| t.as_secs_f64()).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 0.0 || sxy <= 0.0 {
        return 0;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    (intercept / slope).clamp(0.0, 4096.0).round() as usize
}

/// `sequence` cut to `len` tokens, its last (closing special) token kept.
fn cut(sequence: &Encoded, len: usize) -> Encoded {
    if sequence.len() <= len || len < 2 {
        return sequence.clone();
    }
    let mut ids = sequence.ids[..len - 1].to_vec();
    ids.push(*sequence.ids.last().expect("a sequence longer than len"));
    let mut type_ids = sequence.type_ids[..len - 1].to_vec();
    type_ids.push(*sequence.type_ids.last().expect("as long as ids"));
    Encoded { ids, type_ids }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(len: usize) -> Encoded {
        Encoded { ids: (0..len as i64).collect(), type_ids: vec![0; len] }
    }

    /// Calibrates against a fake engine whose run time is `cost(batch size, longest)`.
    fn calibrated(cap: usize, cost: impl Fn(usize, usize) -> Duration) -> Calibration {
        let spec = CalibrationSpec::new(&sequence(100), cap, true, true);
        calibrate(&spec, |batch| Ok(cost(batch.len(), batch[0].len()))).unwrap()
    }

    fn micros(us: f64) -> Duration {
        Duration::from_secs_f64(us / 1e6)
    }

    #[test]
    fn a_flat_cost_per_token_runs_one_at_a_time() {
        let c = calibrated(32, |size, len| micros(50.0 * (size * len) as f64));
        assert_eq!(c.max_batch_size, Some(1), "{c:?}");
        assert_eq!(c.overhead_tokens, Some(0));
        assert_eq!(c.sequence_tokens, SEQUENCE_TOKENS);
        let sizes: Vec<usize> = c.points.iter().map(|p| p.batch_size).collect();
        assert_eq!(sizes, [1, 2, 4, 8, 16, 32]);
    }

    #[test]
    fn a_cost_per_token_that_grows_with_the_batch_runs_one_at_a_time() {
        // What the AVX2 machine showed: sorted batches of 16 at 0.95x the throughput of one.
        let c = calibrated(32, |size, len| micros(50.0 * (size * len) as f64 * (1.0 + 0.004 * size as f64)));
        assert_eq!(c.max_batch_size, Some(1), "{c:?}");
        assert_eq!(c.overhead_tokens, Some(0), "the line starts below zero: no fixed cost");
    }

    #[test]
    fn a_large_fixed_cost_per_run_batches_and_is_measured_in_tokens() {
        // 40 tokens' worth per run: a batch of s runs s x 24 / (40 + s x 24) as efficiently as it
        // could, so the biggest is the fastest.
        let c = calibrated(32, |size, len| micros(50.0 * (40 + size * len) as f64));
        assert_eq!(c.max_batch_size, Some(32), "{c:?}");
        assert_eq!(c.overhead_tokens, Some(40));
        let gain = c.points[5].sequences_per_sec / c.points[0].sequences_per_sec;
        assert!((gain - 32.0 * 64.0 / (40.0 + 32.0 * 24.0)).abs() < 1e-6, "{gain}");
        assert!(c.reason.contains("a batch of 32 runs 2.53x"), "{}", c.reason);
    }

    /// Calibrates on measured throughputs (sequences a second at 1, 2, 4, ... 32).
    fn from_curve(rates: [f64; 6]) -> Calibration {
        let spec = CalibrationSpec::new(&sequence(100), 32, true, true);
        let measured: Vec<(usize, Duration)> =
            spec.sizes().into_iter().zip(rates).map(|(s, r)| (s, Duration::from_secs_f64(s as f64 / r))).collect();
        decide(&spec, &measured)
    }

    #[test]
    fn the_machines_the_policy_was_made_for() {
        // The AVX2 EPYC (sorted batches of e5-large int8, ~21 tokens; 32 extrapolated):
        // the best batch gains 6%, less than a mixed batch's padding costs.
        let avx2 = from_curve([19.1, 20.0, 20.3, 19.6, 18.1, 17.0]);
        assert_eq!(avx2.max_batch_size, Some(1), "{avx2:?}");
        assert!(avx2.reason.contains("a batch of 4 runs 1.06x") && avx2.reason.contains("alone"), "{}", avx2.reason);
        // This session's AVX-512 Xeon (the warm-up's own figures): up to the fastest, 16.
        let avx512 = from_curve([35.3, 46.9, 57.3, 69.7, 72.3, 71.0]);
        assert_eq!(avx512.max_batch_size, Some(16), "{avx512:?}");
        assert!(avx512.reason.contains("a batch of 16 runs 2.05x"), "{}", avx512.reason);
    }

    #[test]
    fn a_batch_that_still_pays_at_the_cap_is_the_cap() {
        let c = calibrated(12, |size, len| micros(50.0 * (400 + size * len) as f64));
        assert_eq!(c.points.iter().map(|p| p.batch_size).collect::<Vec<_>>(), [1, 2, 4, 8, 12]);
        assert_eq!(c.max_batch_size, Some(12));
    }

    #[test]
    fn settings_given_as_flags_are_kept() {
        let spec = CalibrationSpec::new(&sequence(100), 8, false, true);
        let c = calibrate(&spec, |batch| Ok(micros(10.0 * batch.len() as f64))).unwrap();
        assert_eq!((c.max_batch_size, c.overhead_tokens), (None, Some(0)));
        assert!(c.reason.ends_with("--max-batch-size kept"), "{}", c.reason);
        let spec = CalibrationSpec::new(&sequence(100), 1, true, false);
        let c = calibrate(&spec, |_| Ok(micros(10.0))).unwrap();
        assert_eq!((c.max_batch_size, c.overhead_tokens), (Some(1), None));
    }

    #[test]
    fn the_timed_sequence_keeps_its_closing_token_and_an_engine_error_is_returned() {
        let cut = CalibrationSpec::new(&sequence(100), 4, true, true).sequence;
        assert_eq!(cut.len(), SEQUENCE_TOKENS);
        assert_eq!((cut.ids[0], cut.ids[22], cut.ids[23]), (0, 22, 99));
        assert_eq!(CalibrationSpec::new(&sequence(5), 4, true, true).sequence.len(), 5, "short ones as they are");
        let spec = CalibrationSpec::new(&sequence(30), 4, true, true);
        assert_eq!(calibrate(&spec, |_| Err("boom".to_string())), Err("boom".to_string()));
    }
}
