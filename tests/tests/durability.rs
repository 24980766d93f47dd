//! Acknowledged means durable: `kill -9` the embedded gateway (and the in-process `ingest` job)
//! at random moments, and inside the store's checkpoints, then check that every acknowledged
//! write is there after a restart and every acknowledged delete is not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Process, TempDir, fixture, start_gateway, start_gateway_with_envs};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
const ROUNDS: usize = 24;
const WRITERS: usize = 4;
const IDS_PER_WRITER: usize = 12;

/// A small deterministic generator (no dependency needed); the seed is printed for replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a document id holds: absent, or the text last written.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Absent,
    Text(String),
}

/// What the test knows of one id: its acknowledged state, and the outcome of a write that was
/// in flight when the gateway died (either may be what the restarted gateway holds).
#[derive(Debug, Clone)]
struct Known {
    acked: State,
    in_flight: Option<State>,
}

/// A writer's own ids (no two writers touch the same id, so each id's history is sequential).
type Model = HashMap<String, Known>;

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Upserts and deletes on `model`'s ids until a request fails (the gateway was killed).
async fn write_until_killed(url: String, mut model: Model, mut rng: Rng, version: Arc<Mutex<u64>>) -> (Model, usize) {
    let client = client();
    let ids: Vec<String> = model.keys().cloned().collect();
    let mut acknowledged = 0;
    loop {
        let upsert = rng.below(10) < 7;
        let count = if upsert { 1 + rng.below(4) as usize } else { 1 };
        let mut chosen: Vec<String> = Vec::new();
        while chosen.len() < count {
            let id = &ids[rng.below(ids.len() as u64) as usize];
            if !chosen.contains(id) {
                chosen.push(id.clone());
            }
        }
        let request = if upsert {
            let documents: Vec<Value> = chosen
                .iter()
                .map(|id| {
                    let mut v = version.lock().unwrap();
                    *v += 1;
                    let text = format!("document {id} version {v}");
                    model.get_mut(id).unwrap().in_flight = Some(State::Text(text.clone()));
                    json!({"id": id, "text": text, "payload": {"version": *v}})
                })
                .collect();
            client.put(format!("{url}/collections/durable/documents")).json(&json!({ "documents": documents }))
        } else {
            model.get_mut(&chosen[0]).unwrap().in_flight = Some(State::Absent);
            client.delete(format!("{url}/collections/durable/documents/{}", chosen[0]))
        };
        match request.send().await {
            Ok(response) if response.status() == 200 => {
                for id in &chosen {
                    let known = model.get_mut(id).unwrap();
                    known.acked = known.in_flight.take().unwrap();
                }
                acknowledged += 1;
            }
            // Killed mid-request (or answering an error while dying): the write is in doubt.
            _ => return (model, acknowledged),
        }
    }
}

async fn stored(client: &reqwest::Client, gateway: &Process, id: &str) -> State {
    let response = client.get(gateway.url(&format!("/collections/durable/documents/{id}"))).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    match status {
        200 => State::Text(body["text"].as_str().unwrap().to_string()),
        404 => State::Absent,
        _ => panic!("GET document {id}: {status} {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_and_deletes_survive_kill_9_at_any_moment() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let data = TempDir::new("durability");
    // A 16 KiB journal bound: a checkpoint (flush every shard, rotate the journal) every dozen
    // writes or so, so that kills also land inside checkpoints. An HNSW index from 1 KB of
    // vectors keeps the optimizer at work in the background (and some kills inside it).
    let config = data.path().join("collections.toml");
    std::fs::write(&config, "[durable.index]\nindexing_threshold_kb = 1\n").unwrap();
    let args = ["--journal-checkpoint-kib", "16", "--collections-config", config.to_str().unwrap()];
    let envs = [("RUST_LOG", "info,search_gateway::store=debug")];
    let mut models: Vec<Model> = (0..WRITERS)
        .map(|w| {
            let ids = (0..IDS_PER_WRITER).map(|i| format!("w{w}-{i}"));
            ids.map(|id| (id, Known { acked: State::Absent, in_flight: None })).collect()
        })
        .collect();
    let version = Arc::new(Mutex::new(0u64));
    let client = client();
    let (mut acknowledged, mut in_checkpoint, mut in_doubt_landed) = (0, 0, 0);
    let (mut optimizations, mut in_optimization) = (0, 0);
    let started = Instant::now();
    for round in 0..ROUNDS {
        let mut gateway = start_gateway_with_envs(&data, &args, &envs);
        gateway.wait_ready(READY).await;

        // Everything acknowledged before the last kill is there; an in-doubt write is either.
        for model in &mut models {
            for (id, known) in model.iter_mut() {
                let actual = stored(&client, &gateway, id).await;
                let in_doubt = known.in_flight.take();
                if actual != known.acked {
                    assert_eq!(Some(&actual), in_doubt.as_ref(), "round {round}, {id}: acked {:?}", known.acked);
                    in_doubt_landed += 1;
                }
                known.acked = actual;
            }
        }

        let writers: Vec<_> = std::mem::take(&mut models)
            .into_iter()
            .map(|model| {
                let rng = Rng(rng.below(u64::MAX) | 1);
                tokio::spawn(write_until_killed(gateway.url(""), model, rng, version.clone()))
            })
            .collect();
        if round % 2 == 0 {
            // Kill as a checkpoint starts flushing (it takes milliseconds; the poll takes one).
            let seen = gateway.wait_for_log("checkpoint: flushing", Duration::from_secs(10)).await;
            assert!(seen, "no checkpoint within 10 s; logs:\n{}", gateway.logs());
        } else {
            tokio::time::sleep(Duration::from_millis(50 + rng.below(600))).await;
        }
        gateway.kill_9();
        let logs = gateway.logs();
        let last_flush = logs.rfind("checkpoint: flushing");
        if last_flush.is_some_and(|at| !logs[at..].contains("checkpoint: done")) {
            in_checkpoint += 1;
        }
        let last_optimization = logs.rfind("optimizing collection");
        optimizations += logs.matches("optimizing collection").count();
        if last_optimization.is_some_and(|at| !logs[at..].contains("optimized") && !logs[at..].contains("nothing to")) {
            in_optimization += 1;
        }
        for writer in writers {
            let (model, acked) = writer.await.unwrap();
            acknowledged += acked;
            models.push(model);
        }
    }
    // The last round's kill, checked once more.
    let gateway = start_gateway_with_envs(&data, &args, &envs);
    gateway.wait_ready(READY).await;
    for (id, known) in models.iter().flatten() {
        let actual = stored(&client, &gateway, id).await;
        assert!(actual == known.acked || Some(&actual) == known.in_flight.as_ref(), "{id}: {actual:?} vs {known:?}");
    }
    println!(
        "{ROUNDS} kill -9 rounds in {:.0} s: {acknowledged} acknowledged writes all found; {in_checkpoint} kills \
         landed inside a checkpoint's flush, {in_optimization} inside an optimization ({optimizations} optimizations \
         started); {in_doubt_landed} unacknowledged writes had landed",
        started.elapsed().as_secs_f64()
    );
    assert!(optimizations > 0, "the optimizer never started: the kills tested nothing of it");
    assert!(acknowledged >= ROUNDS, "too few writes to mean anything: {acknowledged}");
}

/// Writes `count` documents as JSONL.
fn corpus(dir: &TempDir, count: usize) -> std::path::PathBuf {
    let path = dir.path().join("corpus.jsonl");
    let lines: Vec<String> = (0..count)
        .map(|i| json!({"id": format!("doc-{i}"), "text": format!("profile number {i} of the corpus")}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// Runs the in-process ingest until it has upserted `kill_after` documents in this run, kills it
/// (-9), and returns how many documents it had reported as stored (upserted or unchanged).
fn ingest_and_kill(input: &std::path::Path, data: &TempDir, kill_after: usize) -> usize {
    let (embed, input) = (fixture("tiny-e5"), input.to_str().unwrap());
    let mut args = vec!["ingest", "--collection", "corpus", "--input", input, "--data-dir", data.to_str()];
    args.extend(["--embed-model-dir", embed.to_str().unwrap(), "--intra-op-threads", "1"]);
    args.extend(["--batch-size", "8", "--progress-secs", "0", "--journal-checkpoint-kib", "16"]);
    e2e::run_job_and_kill(&args, kill_after).1
}

#[tokio::test]
async fn an_ingest_killed_mid_run_keeps_what_it_reported_and_a_rerun_finishes() {
    let work = TempDir::new("durability-ingest");
    let data = TempDir::new("durability-ingest-data");
    let input = corpus(&work, 600);
    let mut reported = 0;
    for kill_after in [40, 120, 120] {
        reported = ingest_and_kill(&input, &data, kill_after);
        // Reading through a gateway on the same directory: every reported document is stored.
        let gateway = start_gateway(&data, &[]);
        gateway.wait_ready(READY).await;
        let info: Value = reqwest::get(gateway.url("/collections/corpus")).await.unwrap().json().await.unwrap();
        let count = info["points_count"].as_u64().unwrap() as usize;
        assert!(count >= reported, "killed after reporting {reported} stored, found {count}");
        println!("ingest killed after reporting {reported} documents stored; the gateway finds {count}");
    }
    let (embed, path) = (fixture("tiny-e5"), input.to_str().unwrap());
    let (status, stderr) = e2e::run_to_exit(
        "search-gateway",
        &["ingest", "--collection", "corpus", "--input", path, "--data-dir", data.to_str()]
            .into_iter()
            .chain(["--embed-model-dir", embed.to_str().unwrap(), "--intra-op-threads", "1"])
            .collect::<Vec<_>>(),
        &[("RUST_LOG", "warn")],
    );
    assert!(status.success(), "{stderr}");
    let done = stderr.lines().find(|l| l.starts_with("ingest: done")).expect(&stderr);
    let number =
        |key: &str| -> usize { done.split(key).nth(1).unwrap().split([',', ' ']).nth(1).unwrap().parse().unwrap() };
    let (upserted, unchanged) = (number("upserted"), number("(skipped)"));
    assert_eq!(upserted + unchanged, 600, "{done}");
    assert!(unchanged >= reported, "the last kill reported {reported} upserted; the re-run found {unchanged}: {done}");
}
