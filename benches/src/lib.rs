//! Bench helpers: texts of exact token lengths, an HTTP load driver, latency statistics, process
//! RSS, and reading counters from `/metrics`. The bench targets print ratios against the raw engine.

pub mod closed_loop;
pub mod clustered;
pub mod pool;
pub mod raw_engine;
pub mod raw_search;
pub mod search_http;

use std::time::{Duration, Instant};

use serde_json::Value;
use shared::ModelDir;
use shared::tokenize::{InputType, TextTokenizer};

/// A small deterministic generator (xorshift64*), so every run sends the same texts.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "engineer",
    "Berlin",
    "Rust",
    "search",
    "ranking",
    "designer",
    "Lisbon",
    "nurse",
    "teacher",
    "data",
    "scientist",
    "Tokyo",
    "machine",
    "learning",
    "pastry",
    "chef",
    "lawyer",
    "contract",
    "systems",
    "Montréal",
    "Zürich",
    "Kraków",
    "vector",
    "databases",
    "research",
    "years",
    "experience",
    "with",
    "and",
    "in",
];

/// A text whose tokenization (with `input_type`'s prefix and special tokens) is exactly `tokens`
/// long, or as close as the word list allows; never shorter than the prefix and special tokens,
/// nor longer than the tokenizer's `max_length` (which truncates).
pub fn text_of_length(tokenizer: &TextTokenizer, input_type: InputType, tokens: usize, rng: &mut Rng) -> String {
    let tokens = tokens.min(tokenizer.max_length());
    text_counted_by(|t| tokenizer.encode(t, input_type).map_or(0, |e| e.len()), tokens, rng)
}

/// A document whose pair with `query` tokenizes to exactly `tokens` (or as close as possible),
/// at most the tokenizer's `max_length`.
pub fn document_of_pair_length(tokenizer: &TextTokenizer, query: &str, tokens: usize, rng: &mut Rng) -> String {
    let tokens = tokens.min(tokenizer.max_length());
    text_counted_by(|t| tokenizer.encode_pair(query, t).map_or(0, |e| e.len()), tokens, rng)
}

fn text_counted_by(count: impl Fn(&str) -> usize, tokens: usize, rng: &mut Rng) -> String {
    let mut text = String::new();
    loop {
        let word = WORDS[rng.next_u64() as usize % WORDS.len()];
        let candidate = if text.is_empty() { word.to_string() } else { format!("{text} {word}") };
        if count(&candidate) > tokens {
            // Pad with short endings until the length is reached exactly, or nothing fits.
            while count(&text) < tokens {
                let Some(longer) =
                    [" a", "a", "."].iter().map(|end| format!("{text}{end}")).find(|t| count(t) <= tokens)
                else {
                    break;
                };
                text = longer;
            }
            return text;
        }
        text = candidate;
        if count(&text) == tokens {
            return text;
        }
    }
}

/// The model directory at `path` (relative to the workspace root) and its tokenizer; prints the
/// bench's title line with the machine.
pub fn open_model(
    bench: &str,
    path: &std::path::Path,
) -> anyhow::Result<(std::path::PathBuf, ModelDir, TextTokenizer)> {
    let path = e2e::root().join(path);
    let dir = ModelDir::open(&path)?;
    let tokenizer = TextTokenizer::load(&dir.tokenizer_path(), &dir.config)?;
    println!("# {bench} bench: {} on {}", dir.name(), machine());
    Ok((path, dir, tokenizer))
}

/// Median of a list of figures (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    Latencies::new(values.to_vec()).median()
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Vec<f64>);

impl Latencies {
    pub fn new(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        Self(ms)
    }

    pub fn percentile(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        self.0[rank]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The samples, sorted.
    pub fn values(&self) -> Vec<f64> {
        self.0.clone()
    }

    pub fn median(&self) -> f64 {
        self.percentile(50.0)
    }
}

/// What a load run saw.
#[derive(Debug)]
pub struct LoadResult {
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub ok: usize,
    pub errors: Vec<u16>,
    /// Every request, in the order each client sent them.
    pub completions: Vec<Completion>,
}

/// One request of a load run.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// Index into the bodies given to [`load`].
    pub body: usize,
    pub client: usize,
    pub ok: bool,
    /// When the response was complete, from the start of the run.
    pub done_at: Duration,
}

impl LoadResult {
    /// Throughput over the whole run, start and tail included, in `weight` units per second.
    pub fn whole_run_rate(&self, weight: impl Fn(usize) -> f64) -> f64 {
        self.completions.iter().filter(|c| c.ok).map(|c| weight(c.body)).sum::<f64>() / self.elapsed.as_secs_f64()
    }

    /// Throughput at full concurrency, in `weight` units per second: what completed after the
    /// first response and before the first client ran out of requests, over that window. The
    /// start (the first batch forming) and the tail (fewer clients than `concurrency`, the queue
    /// draining) are left out. The whole run if that window is empty.
    pub fn steady_rate(&self, weight: impl Fn(usize) -> f64) -> f64 {
        let ok = || self.completions.iter().filter(|c| c.ok);
        let first = ok().map(|c| c.done_at).min();
        let clients = self.completions.iter().map(|c| c.client).max().map_or(0, |m| m + 1);
        let end = (0..clients)
            .filter_map(|k| self.completions.iter().filter(|c| c.client == k).map(|c| c.done_at).max())
            .min();
        match (first, end) {
            (Some(first), Some(end)) if end > first => {
                let done: f64 = ok().filter(|c| c.done_at > first && c.done_at <= end).map(|c| weight(c.body)).sum();
                done / (end - first).as_secs_f64()
            }
            _ => self.whole_run_rate(weight),
        }
    }
}

/// Sends `bodies` as POSTs to `url` from `concurrency` clients (each a keep-alive connection);
/// client k sends bodies k, k + concurrency, ... in turn.
pub async fn load(url: &str, bodies: &[Value], concurrency: usize) -> LoadResult {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..concurrency {
        let mine: Vec<(usize, Value)> = bodies.iter().cloned().enumerate().skip(k).step_by(concurrency).collect();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut out = Vec::with_capacity(mine.len());
            for (index, body) in mine {
                let t = Instant::now();
                let status = match client.post(&url).json(&body).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                let completion = Completion { body: index, client: k, ok: status == 200, done_at: started.elapsed() };
                out.push((completion, status, t.elapsed().as_secs_f64() * 1e3));
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut completions = Vec::new();
    for task in tasks {
        for (completion, status, ms) in task.await.unwrap() {
            if completion.ok {
                latencies.push(ms);
            } else {
                errors.push(status);
            }
            completions.push(completion);
        }
    }
    LoadResult {
        elapsed: started.elapsed(),
        ok: latencies.len(),
        latencies: Latencies::new(latencies),
        errors,
        completions,
    }
}

/// Resident set size of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The value of an unlabelled metric in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Starts `binary` (a release build) on `model` with the bench's extra arguments (one string),
/// quiet but for its `listening` line, and waits until it is ready.
pub fn start_service(
    runtime: &tokio::runtime::Runtime,
    binary: &str,
    model: &std::path::Path,
    extra: &str,
) -> e2e::Process {
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let service = e2e::start_model_service(binary, model, &extra, &[("RUST_LOG", "warn,shared::http=info")]);
    runtime.block_on(service.wait_ready(std::time::Duration::from_secs(600)));
    service
}

/// One line describing this machine, for the record.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let core_has_avx512 = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains("avx512f"));
    // What CPUID tells this process, which is what ONNX Runtime dispatches on.
    #[cfg(target_arch = "x86_64")]
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    let isa = match (core_has_avx512, avx512) {
        (_, true) => ", AVX-512",
        (true, false) => ", AVX2 kernels only (CPUID masked by benches/cpu/avx2_only.c; the core has AVX-512)",
        (false, false) => "",
    };
    format!("{cpu}, {cores} cores{isa}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_latencies() {
        let l = Latencies::new(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((l.median(), l.percentile(0.0), l.percentile(100.0)), (3.0, 1.0, 5.0));
    }

    #[test]
    fn steady_rate_leaves_out_the_first_batch_and_the_tail() {
        let at = |body, client, ms| Completion { body, client, ok: true, done_at: Duration::from_millis(ms) };
        // Two clients; client 1 runs out at 300 ms, so 300..400 (one client left) is the tail.
        let completions = vec![at(0, 0, 100), at(2, 0, 200), at(4, 0, 400), at(1, 1, 100), at(3, 1, 300)];
        let run = LoadResult {
            elapsed: Duration::from_millis(400),
            latencies: Latencies::new(vec![]),
            ok: 5,
            errors: vec![],
            completions,
        };
        // Window (100, 300] ms: bodies 2 and 3, weighing 2 and 3 units, in 0.2 s.
        assert!((run.steady_rate(|body| body as f64) - 25.0).abs() < 1e-9);
        // A run with one request has no window: everything over the whole run.
        let single = LoadResult { completions: vec![at(7, 0, 400)], ..run };
        assert!((single.steady_rate(|_| 1.0) - 2.5).abs() < 1e-9);
    }

    #[test]
    fn metric_reads_unlabelled_values() {
        let text = "# HELP x y\nembed_real_tokens_total 42\nembed_real_tokens_total_other 1\n";
        assert_eq!(metric(text, "embed_real_tokens_total"), 42.0);
        assert!(metric(text, "missing").is_nan());
    }

    #[test]
    fn texts_hit_their_token_length() {
        let dir = shared::ModelDir::open(shared::runtime::project_root().join("models/fixtures/tiny-e5")).unwrap();
        let tokenizer = TextTokenizer::load(&dir.tokenizer_path(), &dir.config).unwrap();
        let mut rng = Rng::new(3);
        for (input_type, want) in
            [(InputType::Raw, 5), (InputType::Query, 12), (InputType::Query, 30), (InputType::Passage, 100)]
        {
            let text = text_of_length(&tokenizer, input_type, want, &mut rng);
            assert_eq!(tokenizer.encode(&text, input_type).unwrap().len(), want, "{text:?}");
        }
        // Nothing is longer than max_length (truncation) ...
        let capped = text_of_length(&tokenizer, InputType::Passage, 1000, &mut rng);
        assert_eq!(tokenizer.encode(&capped, InputType::Passage).unwrap().len(), tokenizer.max_length());
        let pair = document_of_pair_length(&tokenizer, "who knows rust", 1000, &mut rng);
        assert_eq!(tokenizer.encode_pair("who knows rust", &pair).unwrap().len(), tokenizer.max_length());
        // ... nor shorter than the prefix and special tokens themselves.
        let floor = tokenizer.encode("", InputType::Query).unwrap().len();
        assert_eq!(
            tokenizer
                .encode(&text_of_length(&tokenizer, InputType::Query, 3, &mut rng), InputType::Query)
                .unwrap()
                .len(),
            floor
        );
    }
}
