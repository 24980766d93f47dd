//! Where single-threaded sessions serve side by side: a batch with the machine to itself runs on
//! the first session and nothing runs beside it; work that waits runs on the others, side by side.
//! Real threads and real (short) run times: overlap is what is tested.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::tests::{INTERACTIVE, config, seq, submit_at_once};
use super::*;

/// One run: on which kind of session, and whether another run was in flight during it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    narrow: bool,
    overlapped: bool,
}

/// Reports a flat cost per token to the warm-up (batching buys nothing; `per_token_us` sets how
/// the side-by-side comparison comes out) and, once `serving`, takes 20 ms a run and records it.
struct Tracked {
    narrow: bool,
    per_token_us: f64,
    serving: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
    runs: Arc<Mutex<Vec<Run>>>,
}

impl Model for Tracked {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
        if self.serving.load(Ordering::SeqCst) {
            let before = self.running.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            let during = self.running.fetch_sub(1, Ordering::SeqCst);
            self.runs.lock().unwrap().push(Run { narrow: self.narrow, overlapped: before > 0 || during > 1 });
        }
        Ok(batch.iter().map(|e| vec![e.len() as f32]).collect())
    }

    fn timed_run(&mut self, batch: &[&Encoded]) -> Result<Duration, String> {
        let longest = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        self.run(batch)?;
        Ok(Duration::from_secs_f64(self.per_token_us * (batch.len() * longest) as f64 / 1e6))
    }
}

#[tokio::test]
async fn a_batch_alone_has_the_machine_and_waiting_work_runs_side_by_side() {
    let serving = Arc::new(AtomicBool::new(false));
    let (running, runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let factory_of = |narrow: bool, per_token_us: f64| -> ModelFactory {
        let (serving, running, runs) = (serving.clone(), running.clone(), runs.clone());
        Arc::new(move || {
            let (serving, running, runs) = (serving.clone(), running.clone(), runs.clone());
            Ok(Box::new(Tracked { narrow, per_token_us, serving, running, runs }) as Box<dyn Model>)
        })
    };
    // Two single-threaded sessions at 1.5x the time a sequence: 1.33x side by side, chosen.
    let in_flight = in_flight::InFlightSpec { factory: factory_of(true, 75.0), sessions: 2, warmup: Vec::new() };
    let calibration = calibrate::CalibrationSpec::new(&seq(100), 32, true, true);
    let warmup = WarmUp { batches: vec![vec![seq(3)]], calibration: Some(calibration), in_flight: Some(in_flight) };
    // One inference thread to start with (the warm-up adds the others), no wait for company.
    let config = config(32, 100, 0);
    let batcher = Batcher::start(config, factory_of(false, 50.0), warmup, BatcherMetrics::default());
    batcher.readiness().wait_for(|r| *r == Readiness::Ready).await.unwrap();
    assert!(batcher.calibration().and_then(|c| c.in_flight.as_ref()).is_some_and(|f| f.chosen));
    serving.store(true, Ordering::SeqCst);

    // One request at a time: each has the machine to itself, on the first session.
    for _ in 0..3 {
        batcher.submit(vec![seq(20)], INTERACTIVE).await.unwrap();
    }
    let alone: Vec<Run> = std::mem::take(&mut *runs.lock().unwrap());
    assert_eq!(alone, vec![Run { narrow: false, overlapped: false }; 3]);

    // Twelve at once: they run side by side on the single-threaded sessions, and a batch on the
    // first session (one left alone at the end) never has company.
    submit_at_once(&batcher, 12, 20).await;
    let busy: Vec<Run> = std::mem::take(&mut *runs.lock().unwrap());
    assert_eq!(busy.len(), 12, "{busy:?}");
    assert!(busy.iter().filter(|r| !r.narrow).all(|r| !r.overlapped), "the first session ran beside another: {busy:?}");
    assert!(busy.iter().filter(|r| r.narrow && r.overlapped).count() >= 8, "not side by side: {busy:?}");
}
