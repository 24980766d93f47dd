//! Interactive work before bulk work: order of batches with a model held on a gate, and bulk's
//! guaranteed turn.

use std::sync::Mutex;

use super::*;

/// Records each batch's tags (every sequence's first id) and, while `gate` has no permit, holds
/// the batch as a long inference would.
struct GatedModel {
    batches: Arc<Mutex<Vec<Vec<i64>>>>,
    gate: Arc<Mutex<std_mpsc::Receiver<()>>>,
    started: Arc<AtomicUsize>,
}

impl Model for GatedModel {
    fn run(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, String> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.gate.lock().unwrap().recv().map_err(|e| e.to_string())?;
        self.batches.lock().unwrap().push(batch.iter().map(|e| e.ids[0]).collect());
        Ok(batch.iter().map(|_| vec![0.0]).collect())
    }
}

struct Fixture {
    batcher: Batcher,
    batches: Arc<Mutex<Vec<Vec<i64>>>>,
    gate: std_mpsc::Sender<()>,
    started: Arc<AtomicUsize>,
}

impl Fixture {
    /// Waits until `n` batches have reached the model.
    async fn until_started(&self, n: usize) {
        while self.started.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn start(bulk_max_delay: Duration) -> Fixture {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (gate, permits) = std_mpsc::channel();
    let permits = Arc::new(Mutex::new(permits));
    let (recorded, started) = (batches.clone(), Arc::new(AtomicUsize::new(0)));
    let counted = started.clone();
    let factory: ModelFactory = Arc::new(move || {
        let (batches, gate, started) = (recorded.clone(), permits.clone(), counted.clone());
        Ok(Box::new(GatedModel { batches, gate, started }) as Box<dyn Model>)
    });
    let config = BatcherConfig {
        limits: BatchLimits {
            max_batch_tokens: 10_000,
            max_batch_size: 4,
            max_padding_ratio: 0.5,
            overhead_tokens: 16,
        },
        max_wait: Duration::ZERO,
        queue_capacity: 100,
        workers: 1,
        bulk_batch_tokens: 10_000,
        bulk_max_delay,
        interactive_linger: Duration::from_millis(50),
        max_passed_over: 2,
        probe_batch_invariance: false,
    };
    let batcher = Batcher::start(config, factory, Vec::new(), BatcherMetrics::default());
    batcher.readiness().wait_for(|r| *r == Readiness::Ready).await.unwrap();
    Fixture { batcher, batches, gate, started }
}

fn tagged(count: usize, tag: i64) -> Vec<Encoded> {
    (0..count).map(|_| Encoded { ids: vec![tag; 8], type_ids: vec![0; 8] }).collect()
}

fn spawn_submit(
    batcher: &Batcher,
    count: usize,
    tag: i64,
    priority: Priority,
) -> tokio::task::JoinHandle<Result<Vec<Vec<f32>>, BatcherError>> {
    let batcher = batcher.clone();
    tokio::spawn(async move { batcher.submit(tagged(count, tag), priority).await })
}

async fn until_queued(batcher: &Batcher, depth: usize) {
    while batcher.queue_depth() != depth {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_work_jumps_the_queued_bulk_work() {
    let f = start(Duration::from_secs(3600)).await;
    // A bulk batch is running (held on the gate); more bulk and then a query queue behind it.
    let running = spawn_submit(&f.batcher, 1, 1, Priority::Bulk);
    f.until_started(1).await;
    let bulk = spawn_submit(&f.batcher, 8, 2, Priority::Bulk);
    until_queued(&f.batcher, 8).await;
    let query = spawn_submit(&f.batcher, 1, 3, Priority::Interactive);
    until_queued(&f.batcher, 9).await;
    for _ in 0..4 {
        f.gate.send(()).unwrap();
    }
    for task in [running, bulk, query] {
        task.await.unwrap().unwrap();
    }
    let order = f.batches.lock().unwrap().clone();
    assert_eq!(
        order,
        vec![vec![1], vec![3], vec![2; 4], vec![2; 4]],
        "the running bulk batch finishes, then the query"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_waits_while_interactive_work_is_in_flight_but_is_not_starved() {
    let f = start(Duration::from_millis(300)).await;
    for _ in 0..8 {
        f.gate.send(()).unwrap();
    }
    // A search elsewhere holds the foreground (as the gateway does while it reranks).
    let search = f.batcher.foreground().enter();
    let started = Instant::now();
    let held = spawn_submit(&f.batcher, 2, 1, Priority::Bulk);
    held.await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300), "held back for bulk_max_delay, then run");
    // Right after its turn, the next bulk request waits again until the search is over.
    let next = spawn_submit(&f.batcher, 2, 2, Priority::Bulk);
    until_queued(&f.batcher, 2).await;
    tokio::task::yield_now().await;
    assert_eq!(f.batches.lock().unwrap().len(), 1, "not run while the search is in flight");
    drop(search);
    next.await.unwrap().unwrap();
    assert_eq!(*f.batches.lock().unwrap(), vec![vec![1, 1], vec![2, 2]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_interactive_work_leaves_bulk_its_turn() {
    let f = start(Duration::from_millis(50)).await;
    let search = f.batcher.foreground().enter();
    let first = spawn_submit(&f.batcher, 1, 100, Priority::Interactive);
    f.until_started(1).await;
    let bulk = spawn_submit(&f.batcher, 4, 9, Priority::Bulk);
    // One query after another, for ~200 ms, each batch let through as the next query arrives.
    let mut queries = vec![first];
    for n in 0..20 {
        queries.push(spawn_submit(&f.batcher, 1, n, Priority::Interactive));
        tokio::time::sleep(Duration::from_millis(10)).await;
        f.gate.send(()).unwrap();
    }
    drop(search);
    for _ in 0..20 {
        f.gate.send(()).unwrap();
    }
    bulk.await.unwrap().unwrap();
    for query in queries {
        query.await.unwrap().unwrap();
    }
    let order = f.batches.lock().unwrap().clone();
    let bulk_at = order.iter().position(|b| b.contains(&9)).unwrap();
    assert!(bulk_at < order.len() - 1, "bulk ran while queries kept coming: {order:?}");
}
