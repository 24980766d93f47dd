//! What each inference thread does before it serves: build the model, run the warm-up batches
//! (memory reaches its working size before `/ready`), and, when outputs must not depend on the
//! batch, check that a sequence gives the same bits alone and padded beside another.
//!
//! Engines in one process warm up at the same time (the gateway's embedder and reranker, or
//! several inference threads of one engine): a measurement of the batch policy must have the CPU
//! to itself, or it times the other's loading as well. Loading and warming take [`CPU`] shared,
//! measuring takes it alone.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::calibrate::{Calibration, CalibrationSpec, calibrate};
use super::in_flight::{self, InFlightSpec, try_in_flight};
use super::{Model, ModelFactory};
use crate::tokenize::Encoded;

/// A model ready to serve and what its warm-up showed.
pub(super) struct Warmed {
    pub model: Box<dyn Model>,
    /// The first warm-up sequence's output, run alone (its length is the output width).
    pub first_output: Option<Vec<f32>>,
    /// The probe found the first sequence's output changed when it shared a batch.
    pub batch_dependent: bool,
    /// What batching is worth, if this thread calibrated.
    pub calibration: Option<Calibration>,
    /// Single-threaded sessions that serve beside `model` (which is one of them), when the
    /// calibration found they beat one session (`in_flight`).
    pub extra: Vec<Box<dyn Model>>,
    /// Then the first session, for a batch that has the machine to itself.
    pub wide: Option<Box<dyn Model>>,
}

/// Shared while a model loads and warms up, held alone while the batch policy is measured.
static CPU: RwLock<()> = RwLock::new(());

fn sharing_the_cpu() -> RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn alone_on_the_cpu() -> RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds the model and runs `warmup`; with `probe`, then runs the first warm-up sequence beside
/// the last one (which pads it, when longer) and compares its output with its output alone; with
/// `calibration`, then times batches of its sequence (`calibrate`), unless the probe found that
/// every sequence must run alone anyway; and then, with `in_flight`, tries single-threaded
/// sessions side by side.
pub(super) fn load_and_warm(
    factory: &ModelFactory,
    warmup: &[Vec<Encoded>],
    probe: bool,
    calibration: Option<&CalibrationSpec>,
    in_flight: Option<&InFlightSpec>,
) -> Result<Warmed, String> {
    let sharing = sharing_the_cpu();
    let mut model = factory()?;
    let mut first_output = None;
    for batch in warmup {
        let batch: Vec<&Encoded> = batch.iter().collect();
        let outputs = model.run(&batch).map_err(|e| format!("warm-up failed: {e}"))?;
        if first_output.is_none() {
            first_output = outputs.into_iter().next();
        }
    }
    let mut batch_dependent = false;
    let first = warmup.first().and_then(|b| b.first());
    let last = warmup.last().and_then(|b| b.last());
    if let (true, Some(first), Some(last), Some(alone)) = (probe, first, last, &first_output) {
        let outputs = model.run(&[first, last]).map_err(|e| format!("warm-up failed: {e}"))?;
        batch_dependent = !same_bits(&outputs[0], alone);
    }
    drop(sharing);
    let (mut calibrated, mut extra, mut wide) = (None, Vec::new(), None);
    if let (Some(spec), false) = (calibration, batch_dependent) {
        let _alone = alone_on_the_cpu();
        let mut c = calibrate(spec, |batch| model.timed_run(batch)).map_err(|e| format!("calibration failed: {e}"))?;
        if let Some(in_flight) = in_flight {
            let batch_size = c.max_batch_size.unwrap_or(spec.cap).min(in_flight::BATCH);
            match try_in_flight(in_flight, model.as_mut(), &spec.sequence, batch_size) {
                Ok((verdict, mut sessions)) => {
                    let gain = verdict.side_by_side_sequences_per_sec / verdict.one_session_sequences_per_sec;
                    let n = verdict.sessions;
                    let batches = if batch_size == 1 {
                        "one sequence at a time".into()
                    } else {
                        format!("batches of {batch_size}")
                    };
                    c.reason += &format!(
                        "; {n} single-threaded sessions side by side ran {gain:.2}x one session on {batches}: "
                    );
                    if let Some(first) = sessions.pop() {
                        c.reason += &format!(
                            "while more work waits, each batch runs on one of them, and a batch that has the \
                             machine to itself runs on the first session, on every core (the weights {} times \
                             in memory: --workers 1 keeps one)",
                            n + 1
                        );
                        let first_session = std::mem::replace(&mut model, first);
                        extra = sessions;
                        // The output the handles report comes from a session that serves.
                        let alone = first_output.take();
                        if let Some(sequence) = warmup.first().and_then(|b| b.first()) {
                            first_output = model.run(&[sequence]).map_err(|e| format!("warm-up failed: {e}"))?.pop();
                        }
                        // Where outputs must not depend on how they ran, the first session serves
                        // only if it gives the same bits as the others.
                        if !probe || alone.zip(first_output.as_ref()).is_some_and(|(a, b)| same_bits(&a, b)) {
                            wide = Some(first_session);
                        } else {
                            c.reason += "; the first session's outputs differ in their last bits from theirs: dropped";
                        }
                    } else {
                        c.reason += "not worth their memory";
                    }
                    c.in_flight = Some(verdict);
                }
                Err(error) => {
                    tracing::warn!(%error, "single-threaded sessions side by side could not be tried");
                    c.reason += &format!("; single-threaded sessions could not be tried: {error}");
                }
            }
        }
        calibrated = Some(c);
    }
    Ok(Warmed { model, first_output, batch_dependent, calibration: calibrated, extra, wide })
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, Mutex};
    use std::time::{Duration, Instant};

    use super::*;

    /// A model whose output for a sequence is its length plus, when `coupled`, a share of the
    /// batch's total length: what per-tensor dynamic quantization does to a real one.
    struct Fake {
        coupled: bool,
    }

    impl Model for Fake {
        fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
            let total: usize = batch.iter().map(|e| e.len()).sum();
            let company = if self.coupled { total as f32 / 1000.0 } else { 0.0 };
            Ok(batch.iter().map(|e| vec![e.len() as f32 + company]).collect())
        }
    }

    fn seq(len: usize) -> Encoded {
        Encoded { ids: vec![5; len], type_ids: vec![0; len] }
    }

    fn warm(coupled: bool, probe: bool) -> Warmed {
        let factory: ModelFactory = Arc::new(move || Ok(Box::new(Fake { coupled }) as Box<dyn Model>));
        load_and_warm(&factory, &[vec![seq(3)], vec![seq(40), seq(40)]], probe, None, None).unwrap()
    }

    /// Every run of the two-engine test: (engine, timed by a measurement, start, end).
    type Runs = Arc<Mutex<Vec<(usize, bool, Instant, Instant)>>>;

    /// A model that takes real time and says when it ran.
    struct Logged {
        engine: usize,
        runs: Runs,
    }

    impl Logged {
        fn busy(&self, measuring: bool, time: Duration) -> Duration {
            let start = Instant::now();
            std::thread::sleep(time);
            self.runs.lock().unwrap().push((self.engine, measuring, start, Instant::now()));
            start.elapsed()
        }
    }

    impl Model for Logged {
        fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
            self.busy(false, Duration::from_millis(2));
            Ok(batch.iter().map(|e| vec![e.len() as f32]).collect())
        }

        fn timed_run(&mut self, _batch: &[&Encoded]) -> Result<Duration, String> {
            Ok(self.busy(true, Duration::from_millis(1)))
        }
    }

    #[test]
    fn a_measurement_has_the_cpu_to_itself_while_another_engine_loads() {
        let runs = Runs::default();
        let start = Arc::new(Barrier::new(2));
        let engines: Vec<_> = (0..2)
            .map(|engine| {
                let (runs, start) = (runs.clone(), start.clone());
                std::thread::spawn(move || {
                    let factory: ModelFactory = Arc::new(move || {
                        let model = Logged { engine, runs: runs.clone() };
                        model.busy(false, Duration::from_millis(20)); // loading
                        Ok(Box::new(model) as Box<dyn Model>)
                    });
                    let spec = CalibrationSpec::new(&seq(30), 4, true, true);
                    start.wait();
                    load_and_warm(&factory, &vec![vec![seq(30)]; 10], false, Some(&spec), None).unwrap();
                })
            })
            .collect();
        engines.into_iter().for_each(|e| e.join().unwrap());
        let runs = runs.lock().unwrap();
        let measured = runs.iter().filter(|r| r.1).count();
        assert!(measured >= 2 * 10, "both engines calibrated: {measured} timed runs");
        for &(engine, _, start, end) in runs.iter().filter(|r| r.1) {
            let beside = runs.iter().find(|o| o.0 != engine && o.2 < end && start < o.3);
            assert!(beside.is_none(), "engine {engine} measured while the other ran: {beside:?}");
        }
    }

    #[test]
    fn the_probe_tells_a_batch_dependent_model_from_an_independent_one() {
        assert!(warm(true, true).batch_dependent);
        assert!(!warm(false, true).batch_dependent);
        assert!(!warm(true, false).batch_dependent, "no probe, no verdict");
        assert_eq!(warm(false, true).first_output, Some(vec![3.0]), "the first sequence alone");
    }
}
