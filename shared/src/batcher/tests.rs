//! Owner-task behaviour on tokio's paused clock, with a fake model that records its batches.

use std::sync::Mutex;

use super::*;

pub(super) const INTERACTIVE: Priority = Priority::Interactive;

/// Stands in for ONNX Runtime (these tests are about the queue, not numerics): returns each
/// sequence's length and records the batch sizes it was given.
struct RecordingModel {
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Model for RecordingModel {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
        self.batches.lock().unwrap().push(batch.len());
        Ok(batch.iter().map(|e| vec![e.len() as f32]).collect())
    }
}

/// One inference thread, a roomy token budget, and the given size cap, queue and max wait.
pub(super) fn config(max_batch_size: usize, queue_capacity: usize, max_wait_ms: u64) -> BatcherConfig {
    BatcherConfig {
        limits: BatchLimits { max_batch_tokens: 10_000, max_batch_size, max_padding_ratio: 0.5, overhead_tokens: 16 },
        max_wait: Duration::from_millis(max_wait_ms),
        queue_capacity,
        workers: 1,
        bulk_batch_tokens: 10_000,
        bulk_max_delay: Duration::from_secs(1),
        interactive_linger: Duration::from_millis(50),
        max_passed_over: 2,
        probe_batch_invariance: false,
    }
}

pub(super) fn seq(len: usize) -> Encoded {
    Encoded { ids: vec![5; len], type_ids: vec![0; len] }
}

/// `count` single sequences of `len` tokens submitted at once, each by its own caller; waits for
/// every answer.
pub(super) async fn submit_at_once(batcher: &Batcher, count: usize, len: usize) {
    let callers: Vec<_> = (0..count)
        .map(|_| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit(vec![seq(len)], INTERACTIVE).await })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
}

async fn start(max_batch_size: usize, queue_capacity: usize) -> (Batcher, Arc<Mutex<Vec<usize>>>) {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let recorded = batches.clone();
    let factory: ModelFactory =
        Arc::new(move || Ok(Box::new(RecordingModel { batches: recorded.clone() }) as Box<dyn Model>));
    let batcher =
        Batcher::start(config(max_batch_size, queue_capacity, 50), factory, Vec::new(), BatcherMetrics::default());
    let mut ready = batcher.readiness();
    ready.wait_for(|r| *r == Readiness::Ready).await.unwrap();
    (batcher, batches)
}

#[tokio::test(start_paused = true)]
async fn a_lone_item_waits_max_wait_for_company() {
    let (batcher, batches) = start(8, 100).await;
    let started = Instant::now();
    let out = batcher.submit(vec![seq(7)], INTERACTIVE).await.unwrap();
    assert_eq!(out, vec![vec![7.0]]);
    assert!(started.elapsed() >= Duration::from_millis(50), "waited {:?}", started.elapsed());
    assert_eq!(*batches.lock().unwrap(), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn one_request_at_a_time_is_not_kept_waiting_and_a_burst_waits_again() {
    let (batcher, batches) = start(8, 100).await;
    // Requests 200 ms apart (max wait 50 ms): only the first (no history yet) waits for company.
    let mut waited = Vec::new();
    for _ in 0..4 {
        let started = Instant::now();
        batcher.submit(vec![seq(5)], INTERACTIVE).await.unwrap();
        waited.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(waited[0] >= Duration::from_millis(50), "{waited:?}");
    assert!(waited[1..].iter().all(|w| *w < Duration::from_millis(50)), "{waited:?}");

    // Then requests 5 ms apart: within a few of them, lone items wait and batches form again.
    let mut callers = Vec::new();
    for _ in 0..12 {
        let batcher = batcher.clone();
        callers.push(tokio::spawn(async move { batcher.submit(vec![seq(5)], INTERACTIVE).await }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    let sizes = batches.lock().unwrap().clone();
    assert!(sizes[..4].iter().all(|&n| n == 1), "{sizes:?}");
    assert!(sizes[4..].iter().any(|&n| n > 1), "a burst shares batches again: {sizes:?}");
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_goes_at_once() {
    let (batcher, batches) = start(4, 100).await;
    let started = Instant::now();
    let out = batcher.submit((1..=4).map(seq).collect(), INTERACTIVE).await.unwrap();
    assert_eq!(out, vec![vec![1.0], vec![2.0], vec![3.0], vec![4.0]], "outputs keep input order");
    assert!(started.elapsed() < Duration::from_millis(50), "no wait: {:?}", started.elapsed());
    assert_eq!(*batches.lock().unwrap(), vec![4]);
}

#[tokio::test(start_paused = true)]
async fn items_arriving_within_max_wait_share_a_batch() {
    let (batcher, batches) = start(8, 100).await;
    let first = tokio::spawn({
        let batcher = batcher.clone();
        async move { batcher.submit(vec![seq(6)], INTERACTIVE).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = batcher.submit(vec![seq(6)], INTERACTIVE).await.unwrap();
    assert_eq!(second, vec![vec![6.0]]);
    first.await.unwrap().unwrap();
    assert_eq!(*batches.lock().unwrap(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_instead_of_growing() {
    let (batcher, _batches) = start(8, 3).await;
    assert_eq!(batcher.submit((0..4).map(|_| seq(3)).collect(), INTERACTIVE).await, Err(BatcherError::Overloaded));
    assert_eq!(batcher.queue_depth(), 0, "a refused request leaves nothing queued");
    assert_eq!(batcher.submit((0..3).map(|_| seq(3)).collect(), INTERACTIVE).await.unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn cancelled_callers_are_dropped_unrun() {
    let (batcher, batches) = start(8, 100).await;
    let abandoned = tokio::spawn({
        let batcher = batcher.clone();
        async move { batcher.submit(vec![seq(3), seq(3)], INTERACTIVE).await }
    });
    tokio::task::yield_now().await;
    abandoned.abort();
    let _ = abandoned.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    batcher.submit(vec![seq(9)], INTERACTIVE).await.unwrap();
    assert_eq!(*batches.lock().unwrap(), vec![1], "only the live request ran");
    assert_eq!(batcher.queue_depth(), 0);
}

#[tokio::test]
async fn a_model_that_fails_to_load_reports_it() {
    let factory: ModelFactory = Arc::new(|| Err("no such model".to_string()));
    let batcher = Batcher::start(config(2, 10, 1), factory, Vec::new(), BatcherMetrics::default());
    let mut ready = batcher.readiness();
    let state = ready.wait_for(|r| *r != Readiness::Loading).await.unwrap().clone();
    assert_eq!(state, Readiness::Failed("no such model".into()));
    assert!(matches!(batcher.submit(vec![seq(2)], INTERACTIVE).await, Err(BatcherError::Unavailable(_))));
}

/// Panics on its first batch, as a broken native library might.
struct PanickingModel;

impl Model for PanickingModel {
    fn run(&mut self, _batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
        panic!("simulated fault in the inference library")
    }
}

#[tokio::test]
async fn a_panicking_inference_thread_fails_the_engine_instead_of_hanging() {
    let factory: ModelFactory = Arc::new(|| Ok(Box::new(PanickingModel) as Box<dyn Model>));
    let batcher = Batcher::start(config(2, 10, 1), factory, Vec::new(), BatcherMetrics::default());
    let mut ready = batcher.readiness();
    ready.wait_for(|r| *r == Readiness::Ready).await.unwrap();
    assert!(matches!(batcher.submit(vec![seq(2)], INTERACTIVE).await, Err(BatcherError::Unavailable(_))));
    let state = ready.wait_for(|r| matches!(r, Readiness::Failed(_))).await.unwrap().clone();
    assert_eq!(state, Readiness::Failed("an inference thread panicked".into()));
    assert!(
        matches!(batcher.submit(vec![seq(2)], INTERACTIVE).await, Err(BatcherError::Unavailable(_))),
        "no hang afterwards"
    );
}

/// Adds a share of the batch's total length to each output, as per-tensor dynamic quantization
/// lets batch-mates move a real model's outputs; records its batch sizes.
struct CoupledModel {
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Model for CoupledModel {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
        self.batches.lock().unwrap().push(batch.len());
        let total: usize = batch.iter().map(|e| e.len()).sum();
        Ok(batch.iter().map(|e| vec![e.len() as f32 + total as f32 / 1000.0]).collect())
    }
}

#[tokio::test(start_paused = true)]
async fn outputs_found_to_depend_on_the_batch_at_warm_up_run_one_at_a_time() {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let recorded = batches.clone();
    let factory: ModelFactory =
        Arc::new(move || Ok(Box::new(CoupledModel { batches: recorded.clone() }) as Box<dyn Model>));
    let config = BatcherConfig { probe_batch_invariance: true, ..config(8, 100, 50) };
    let warmup = vec![vec![seq(2)], vec![seq(9), seq(9)]];
    let batcher = Batcher::start(config, factory, warmup, BatcherMetrics::default());
    batcher.readiness().wait_for(|r| *r == Readiness::Ready).await.unwrap();
    assert!(batcher.runs_alone(), "the probe saw the first sequence change beside the last");
    assert_eq!(batcher.first_output(), Some(&[2.002][..]), "the first sequence alone");
    batches.lock().unwrap().clear();
    let out = batcher.submit(vec![seq(3), seq(4), seq(3)], INTERACTIVE).await.unwrap();
    assert_eq!(out, vec![vec![3.003], vec![4.004], vec![3.003]], "each as it is alone");
    assert_eq!(*batches.lock().unwrap(), vec![1, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn outputs_that_do_not_depend_on_the_batch_keep_batching() {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let recorded = batches.clone();
    let factory: ModelFactory =
        Arc::new(move || Ok(Box::new(RecordingModel { batches: recorded.clone() }) as Box<dyn Model>));
    let config = BatcherConfig { probe_batch_invariance: true, ..config(8, 100, 50) };
    let warmup = vec![vec![seq(2)], vec![seq(9), seq(9)]];
    let batcher = Batcher::start(config, factory, warmup, BatcherMetrics::default());
    batcher.readiness().wait_for(|r| *r == Readiness::Ready).await.unwrap();
    assert!(!batcher.runs_alone());
    batches.lock().unwrap().clear();
    batcher.submit(vec![seq(3), seq(4), seq(3)], INTERACTIVE).await.unwrap();
    assert_eq!(*batches.lock().unwrap(), vec![3]);
}

/// A fake engine whose run time is given: `fixed_us + per_token_us x padded tokens`. It reports
/// that time to the calibration and records the batch sizes it serves.
struct CostModel {
    fixed_us: f64,
    per_token_us: f64,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Model for CostModel {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
        self.batches.lock().unwrap().push(batch.len());
        Ok(batch.iter().map(|e| vec![e.len() as f32]).collect())
    }

    fn timed_run(&mut self, batch: &[&Encoded]) -> Result<Duration, String> {
        let longest = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        self.run(batch)?;
        Ok(Duration::from_secs_f64((self.fixed_us + self.per_token_us * (batch.len() * longest) as f64) / 1e6))
    }
}

/// Starts a batcher that calibrates on `model`'s costs (and, with `side_us_per_token`, tries
/// two single-threaded sessions of that cost side by side), then queues 24 requests at once and
/// returns the calibration, the sizes of the batches the first session served, and those the
/// side-by-side sessions served.
async fn calibrated_batches_beside(
    fixed_us: f64,
    per_token_us: f64,
    side_us_per_token: Option<f64>,
) -> (calibrate::Calibration, Vec<usize>, Vec<usize>) {
    let (batches, side) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let recorded = batches.clone();
    let factory: ModelFactory = Arc::new(move || {
        Ok(Box::new(CostModel { fixed_us, per_token_us, batches: recorded.clone() }) as Box<dyn Model>)
    });
    let in_flight = side_us_per_token.map(|per_token_us| {
        let recorded = side.clone();
        let factory: ModelFactory = Arc::new(move || {
            Ok(Box::new(CostModel { fixed_us: 0.0, per_token_us, batches: recorded.clone() }) as Box<dyn Model>)
        });
        in_flight::InFlightSpec { factory, sessions: 2, warmup: Vec::new() }
    });
    let spec = calibrate::CalibrationSpec::new(&seq(100), 32, true, true);
    let warmup = WarmUp { batches: vec![vec![seq(3)]], calibration: Some(spec), in_flight };
    let batcher = Batcher::start(config(32, 100, 50), factory, warmup, BatcherMetrics::default());
    batcher.readiness().wait_for(|r| *r == Readiness::Ready).await.unwrap();
    batches.lock().unwrap().clear();
    side.lock().unwrap().clear();
    submit_at_once(&batcher, 24, 20).await;
    let (served, beside) = (batches.lock().unwrap().clone(), side.lock().unwrap().clone());
    (batcher.calibration().cloned().expect("calibrated at warm-up"), served, beside)
}

async fn calibrated_batches(fixed_us: f64, per_token_us: f64) -> (calibrate::Calibration, Vec<usize>) {
    let (calibration, served, _) = calibrated_batches_beside(fixed_us, per_token_us, None).await;
    (calibration, served)
}

#[tokio::test(start_paused = true)]
async fn single_threaded_sessions_serve_side_by_side_if_they_measure_faster() {
    // Batching buys nothing; two single-threaded sessions each take 1.5x as long per sequence,
    // so side by side they run 1.33x one session: they serve whatever waits, and the first
    // session keeps only a batch with nothing else waiting (here at most the last one).
    let (calibration, served, beside) = calibrated_batches_beside(0.0, 50.0, Some(75.0)).await;
    let in_flight = calibration.in_flight.clone().expect("tried");
    assert!(in_flight.chosen && (in_flight.sessions, in_flight.batch_size) == (2, 1), "{calibration:?}");
    assert!(calibration.reason.contains("2 single-threaded sessions side by side ran 1.33x"), "{}", calibration.reason);
    assert!(served.len() <= 1 && beside.len() + served.len() == 24, "{served:?} {beside:?}");
    assert!(served.iter().chain(&beside).all(|&size| size == 1), "{served:?} {beside:?}");

    // Each 2.5x as long: 0.8x one session, not worth their memory; the first session serves.
    let (calibration, served, beside) = calibrated_batches_beside(0.0, 50.0, Some(125.0)).await;
    assert!(!calibration.in_flight.clone().expect("tried").chosen, "{calibration:?}");
    assert_eq!((served, beside), (vec![1; 24], vec![]));

    // Where batching pays, they are compared on batches of the size they would serve under load
    // (24 queued at once fit one batch, which then has the machine to itself).
    let (calibration, served, beside) = calibrated_batches_beside(2000.0, 50.0, Some(1.0)).await;
    let in_flight = calibration.in_flight.clone().expect("tried");
    assert!(in_flight.chosen && in_flight.batch_size == in_flight::BATCH, "{calibration:?}");
    assert_eq!(served.iter().chain(&beside).sum::<usize>(), 24, "{served:?} {beside:?}");
}

#[tokio::test(start_paused = true)]
async fn the_batch_size_follows_the_measured_costs_not_the_cpu() {
    // Flat cost per token: batching buys nothing, so every request runs alone, at once.
    let (calibration, served) = calibrated_batches(0.0, 50.0).await;
    assert_eq!((calibration.max_batch_size, calibration.overhead_tokens), (Some(1), Some(0)), "{calibration:?}");
    assert_eq!(served, vec![1; 24]);

    // A fixed cost of 40 tokens' worth per run: batches, up to the fastest size measured (32),
    // and the packer weighs padding against that fixed cost.
    let (calibration, served) = calibrated_batches(2000.0, 50.0).await;
    assert_eq!((calibration.max_batch_size, calibration.overhead_tokens), (Some(32), Some(40)), "{calibration:?}");
    assert_eq!(served.iter().sum::<usize>(), 24, "{served:?}");
    assert!(served.iter().any(|&n| n > 1), "{served:?}");

    // A small fixed cost (4 tokens' worth: a batch of 32 gains 1.16x): still batches; a smaller
    // one (1 token: 1.04x) does not.
    let (calibration, _) = calibrated_batches(200.0, 50.0).await;
    assert_eq!(calibration.max_batch_size, Some(32), "{calibration:?}");
    let (calibration, served) = calibrated_batches(50.0, 50.0).await;
    assert_eq!(calibration.max_batch_size, Some(1), "{calibration:?}");
    assert_eq!(served, vec![1; 24]);
}
