//! Runs in flight side by side: one session whose intra-op threads share every batch leaves
//! cores waiting on each other (ONNX Runtime's intra-op parallelism does little for a batch of a
//! few short sequences), while one single-threaded session per core, each running its own batch,
//! keeps every core busy. On this project's AVX-512 machine two 1-thread sessions ran single
//! e5-large queries 1.25-1.30x faster than one 2-thread session (BENCHMARKS.md, "The batch
//! policy"). But a lone request then runs on one core, and each session holds the weights, so it
//! is measured, not assumed: the sessions are loaded, timed side by side against the first
//! session alone on batches of the size they would serve under load (interleaved rounds), and
//! they serve, after the full warm-up, only if they run at least [`MIN_GAIN`] faster; otherwise
//! they are dropped. When they serve, the first session stays for a batch that has the machine to
//! itself (`owner`).

use std::time::Duration;

use serde::Serialize;

use super::{Model, ModelFactory, median};
use crate::tokenize::Encoded;

/// Side by side must beat one session by this much to be worth the memory.
pub const MIN_GAIN: f64 = 0.05;

/// Sequences per session in each round (at least two runs), and rounds: with 8 and 3, the
/// verdict on the same machine ranged from 1.04x to 1.21x between starts.
const SEQUENCES: usize = 16;
const ROUNDS: usize = 5;

/// The largest batch the comparison is made at: about the size the sessions serve under load (at
/// 32 concurrent single queries, two sessions' batches average 5-6 sequences; at 8, about 2).
pub const BATCH: usize = 4;

/// The sessions to try.
#[derive(Clone)]
pub struct InFlightSpec {
    /// Builds one single-threaded session.
    pub factory: ModelFactory,
    /// How many (one per core).
    pub sessions: usize,
    /// Each one's warm-up batches.
    pub warmup: Vec<Vec<Encoded>>,
}

/// What the comparison measured; in `/info` under `batching.calibration`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InFlight {
    /// Single-threaded sessions tried.
    pub sessions: usize,
    /// Sequences per run in the comparison.
    pub batch_size: usize,
    /// Sequences a second, a batch at a time on the first session (every core's intra-op thread).
    pub one_session_sequences_per_sec: f64,
    /// Sequences a second, a batch at a time on each single-threaded session, side by side.
    pub side_by_side_sequences_per_sec: f64,
    /// Whether they serve beside the first session, which keeps the batches that run alone.
    pub chosen: bool,
}

/// How many single-threaded sessions to try: one per core, as far as memory allows each, and the
/// first session that stays beside them, a copy of the weights (`model_bytes`, the ONNX file)
/// with as much again to spare (activations, and the other services on the machine); fewer than
/// 2 means none.
pub fn sessions_that_fit(cores: usize, model_bytes: u64, available_bytes: Option<u64>) -> usize {
    let fit = match available_bytes {
        Some(available) => (available / (2 * model_bytes.max(1))) as usize,
        None => 0, // memory unknown: not worth the risk of running out
    };
    match cores.min(fit.saturating_sub(1)) {
        n if n >= 2 => n,
        _ => 0,
    }
}

/// Memory this process may still use: `MemAvailable`, or less if a cgroup limit (a container's
/// `memory:` limit) leaves less. None when neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    });
    let read = |name: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{name}")).ok()?.trim().parse::<u64>().ok();
    let cgroup = read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Loads `spec`'s sessions, times them side by side against `first` alone on batches of
/// `batch_size` copies of `sequence`, and returns the verdict with the sessions, warmed, if they
/// won (else none). They load a thread each, all at once (each is single-threaded), and run the
/// timed batch once before the timing (a shape's first run allocates); the full warm-up, long
/// batches that take most of the time on a slow core, only once they are chosen, again all at once.
pub(super) fn try_in_flight(
    spec: &InFlightSpec,
    first: &mut dyn Model,
    sequence: &Encoded,
    batch_size: usize,
) -> Result<(InFlight, Vec<Box<dyn Model>>), String> {
    let batch = vec![sequence; batch_size.max(1)];
    let loaded: Vec<Result<Box<dyn Model>, String>> = std::thread::scope(|scope| {
        let loading: Vec<_> = (0..spec.sessions.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut model = (spec.factory)()?;
                    model.run(&batch)?;
                    Ok(model)
                })
            })
            .collect();
        loading
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err("a session panicked while loading".into())))
            .collect()
    });
    let mut sessions = loaded.into_iter().collect::<Result<Vec<_>, _>>()?;
    let runs = (SEQUENCES / batch.len()).max(2);
    let (mut one, mut side) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternately first, so that neither always follows the other's leftovers.
        if round % 2 == 0 {
            one.push(one_after_another(first, &batch, runs)?);
            side.push(side_by_side(&mut sessions, &batch, runs)?);
        } else {
            side.push(side_by_side(&mut sessions, &batch, runs)?);
            one.push(one_after_another(first, &batch, runs)?);
        }
    }
    let sequences = batch.len() * runs;
    let (one, side) = (rate(sequences, median(&mut one)), rate(sessions.len() * sequences, median(&mut side)));
    let chosen = side >= one * (1.0 + MIN_GAIN);
    let verdict = InFlight {
        sessions: sessions.len(),
        batch_size: batch.len(),
        one_session_sequences_per_sec: one,
        side_by_side_sequences_per_sec: side,
        chosen,
    };
    if !chosen {
        return Ok((verdict, Vec::new()));
    }
    each_at_once(&mut sessions, |model| {
        spec.warmup.iter().try_for_each(|batch| model.run(&batch.iter().collect::<Vec<_>>()).map(drop))
    })?;
    Ok((verdict, sessions))
}

/// The time of `runs` runs of `batch` on `model`, as it reports them.
fn one_after_another(model: &mut dyn Model, batch: &[&Encoded], runs: usize) -> Result<Duration, String> {
    (0..runs).try_fold(Duration::ZERO, |total, _| Ok(total + model.timed_run(batch)?))
}

/// Each model runs `runs` batches on a thread of its own, all at once; the slowest thread's time.
fn side_by_side(models: &mut [Box<dyn Model>], batch: &[&Encoded], runs: usize) -> Result<Duration, String> {
    let times = each_at_once(models, |model| one_after_another(model, batch, runs))?;
    Ok(times.into_iter().max().unwrap_or_default())
}

/// `work` on every model at once, a thread each; the results in the models' order.
fn each_at_once<T: Send>(
    models: &mut [Box<dyn Model>],
    work: impl Fn(&mut dyn Model) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = models
            .iter_mut()
            .map(|model| {
                let work = &work;
                scope.spawn(move || work(model.as_mut()))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap_or_else(|_| Err("a session panicked".into()))).collect()
    })
}

/// Sequences a second when `sequences` ran in `time`.
fn rate(sequences: usize, time: Duration) -> f64 {
    sequences as f64 / time.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A session whose run takes `us` microseconds a sequence (as it reports it).
    struct Timed {
        us: u64,
    }

    impl Model for Timed {
        fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
            Ok(batch.iter().map(|_| vec![0.0]).collect())
        }

        fn timed_run(&mut self, batch: &[&Encoded]) -> Result<Duration, String> {
            Ok(Duration::from_micros(self.us * batch.len() as u64))
        }
    }

    fn spec(us: u64) -> InFlightSpec {
        let factory: ModelFactory = Arc::new(move || Ok(Box::new(Timed { us }) as Box<dyn Model>));
        InFlightSpec { factory, sessions: 2, warmup: vec![vec![sequence()]] }
    }

    fn sequence() -> Encoded {
        Encoded { ids: vec![1; 24], type_ids: vec![0; 24] }
    }

    #[test]
    fn side_by_side_sessions_serve_only_when_they_measure_faster() {
        // One session: 1 ms a sequence (1000/s). Two at 1.5 ms each side by side: 1333/s.
        let (verdict, sessions) = try_in_flight(&spec(1500), &mut Timed { us: 1000 }, &sequence(), 1).unwrap();
        assert!(verdict.chosen && sessions.len() == 2, "{verdict:?}");
        assert!((verdict.side_by_side_sequences_per_sec - 1333.3).abs() < 1.0, "{verdict:?}");
        assert!((verdict.one_session_sequences_per_sec - 1000.0).abs() < 1.0, "{verdict:?}");
        // Two at 2 ms each: 1000/s, no better than one session: dropped.
        let (verdict, sessions) = try_in_flight(&spec(2000), &mut Timed { us: 1000 }, &sequence(), 1).unwrap();
        assert!(!verdict.chosen && sessions.is_empty(), "{verdict:?}");
        // The same per sequence in batches of 4: the rates are per sequence, not per run.
        let (verdict, _) = try_in_flight(&spec(1500), &mut Timed { us: 1000 }, &sequence(), 4).unwrap();
        assert_eq!(verdict.batch_size, 4);
        assert!((verdict.side_by_side_sequences_per_sec - 1333.3).abs() < 1.0, "{verdict:?}");
    }

    /// A session that counts the runs of the warm-up's long sequences.
    struct Counted {
        long_runs: Arc<AtomicUsize>,
        us: u64,
    }

    impl Model for Counted {
        fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
            if batch.iter().any(|e| e.len() > 100) {
                self.long_runs.fetch_add(1, Ordering::SeqCst);
            }
            Ok(batch.iter().map(|_| vec![0.0]).collect())
        }

        fn timed_run(&mut self, batch: &[&Encoded]) -> Result<Duration, String> {
            Ok(Duration::from_micros(self.us * batch.len() as u64))
        }
    }

    #[test]
    fn only_sessions_that_serve_run_the_full_warm_up() {
        let long = Encoded { ids: vec![1; 512], type_ids: vec![0; 512] };
        for (us, warmed) in [(1500, 2), (2000, 0)] {
            let long_runs = Arc::new(AtomicUsize::new(0));
            let counter = long_runs.clone();
            let factory: ModelFactory =
                Arc::new(move || Ok(Box::new(Counted { long_runs: counter.clone(), us }) as Box<dyn Model>));
            let spec = InFlightSpec { factory, sessions: 2, warmup: vec![vec![sequence()], vec![long.clone(); 8]] };
            let (verdict, _) = try_in_flight(&spec, &mut Timed { us: 1000 }, &sequence(), 4).unwrap();
            assert_eq!(long_runs.load(Ordering::SeqCst), warmed, "chosen: {}", verdict.chosen);
        }
    }

    #[test]
    fn as_many_sessions_as_cores_and_memory_allow() {
        const GIB: u64 = 1 << 30;
        // e5-large int8 (0.56 GB) on 2 cores with 20 GiB free: 2. fp32 (2.24 GB) on 16 cores in a
        // 6 GiB container: 1 fits twice over, and the first session is that one, so none. With
        // 24 GiB, 5 fit twice over: the first and 4 more.
        assert_eq!(sessions_that_fit(2, 560_000_000, Some(20 * GIB)), 2);
        assert_eq!(sessions_that_fit(16, 2_240_000_000, Some(6 * GIB)), 0);
        assert_eq!(sessions_that_fit(16, 2_240_000_000, Some(24 * GIB)), 4);
        assert_eq!(sessions_that_fit(1, 1000, Some(GIB)), 0, "one core: nothing to put side by side");
        assert_eq!(sessions_that_fit(4, 1000, None), 0, "memory unknown");
        assert!(available_memory().is_some_and(|bytes| bytes > 0), "this machine's /proc/meminfo");
    }

    #[test]
    fn a_session_that_fails_to_load_is_an_error() {
        let factory: ModelFactory = Arc::new(|| Err("no memory".to_string()));
        let spec = InFlightSpec { factory, sessions: 2, warmup: Vec::new() };
        assert_eq!(try_in_flight(&spec, &mut Timed { us: 1 }, &sequence(), 1).err(), Some("no memory".to_string()));
    }
}
