//! `search-gateway ingest`: bulk indexing of a JSONL file (or stdin) into a collection, in
//! process (same engine and store flags as the server) or through a running gateway.
//!
//! Reading, embedding and upserting overlap: a reader thread parses lines into batches while up
//! to `--concurrency` batches are being embedded and written. Point ids come from document ids
//! and unchanged documents (same text and payload) are skipped, so a re-run resumes an
//! interrupted job. Bad lines are reported with their numbers and skipped, or stop the job with
//! `--strict`.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backends::StartError;
use crate::collections::documents::{Document, Upserted};
use crate::config::IngestArgs;
use crate::jobs::sink::Sink;

/// What the job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: usize,
    pub upserted: usize,
    pub unchanged: usize,
    pub bad_lines: usize,
    pub failed: usize,
    pub interrupted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot read {path}: {source}")]
    Input { path: String, source: std::io::Error },
    #[error("line {line}: {reason} (--strict)")]
    Strict { line: usize, reason: String },
}

/// A parsed batch, or a bad line.
enum Item {
    Batch { documents: Vec<Document>, lines: (usize, usize) },
    Bad { line: usize, reason: String },
}

/// A finished batch: its size, its first and last line, and what became of it.
type Written = (usize, (usize, usize), Result<Upserted, String>);

/// Runs the job; `Ok` carries the summary, also when some documents failed or it was interrupted.
pub async fn run(args: IngestArgs) -> Result<Summary, IngestError> {
    let input: Box<dyn Read + Send> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let path = args.input.display().to_string();
        Box::new(std::fs::File::open(&args.input).map_err(|source| IngestError::Input { path, source })?)
    };
    let total_bytes = std::fs::metadata(&args.input).ok().filter(|_| args.input.as_os_str() != "-").map(|m| m.len());
    let sink = match &args.job.gateway_url {
        Some(url) => Sink::remote(url, args.job.gateway_api_key.as_ref(), args.job.retries)?,
        None => Sink::local(&args.job.backends, Duration::from_secs(args.job.batch_timeout_secs)).await?,
    };
    run_from(&args, input, total_bytes, Arc::new(sink)).await
}

/// The job on any input: JSONL documents from `input` (`total_bytes` long, if known) written to
/// `sink` as `args` say (`reindex` feeds it the old collection's documents).
pub async fn run_from(
    args: &IngestArgs,
    input: Box<dyn Read + Send>,
    total_bytes: Option<u64>,
    sink: Arc<Sink>,
) -> Result<Summary, IngestError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::channel(args.job.concurrency * 2);
    let reader = {
        let (stop, batch_size, max_text) = (stop.clone(), args.job.batch_size, args.max_text_bytes);
        std::thread::spawn(move || read_batches(input, batch_size, max_text, &tx, &stop))
    };
    let mut progress = Progress::new(total_bytes, Duration::from_secs(args.job.progress_secs));
    let mut summary = Summary::default();
    let mut writes: JoinSet<Written> = JoinSet::new();
    let budget = Duration::from_secs(args.job.batch_timeout_secs);
    let mut strict_failure = None;
    let mut interrupt = std::pin::pin!(shared::http::shutdown_signal());
    let mut reading = true;
    let mut input_done = false;
    while reading || !writes.is_empty() {
        tokio::select! {
            _ = &mut interrupt, if !summary.interrupted => {
                summary.interrupted = true;
                stop.store(true, Ordering::SeqCst);
                reading = false;
                progress.note("interrupted: finishing the batches in flight (Ctrl-C again to abort)");
                tokio::spawn(async {
                    shared::http::shutdown_signal().await;
                    eprintln!("ingest: aborted");
                    std::process::exit(130);
                });
            }
            item = rx.recv(), if reading && writes.len() < args.job.concurrency => match item {
                None => {
                    reading = false;
                    input_done = true;
                }
                Some((Item::Bad { line, reason }, bytes)) => {
                    progress.bytes = bytes;
                    summary.bad_lines += 1;
                    progress.note(&format!("line {line}: {reason}; skipped"));
                    if args.strict {
                        stop.store(true, Ordering::SeqCst);
                        reading = false;
                        strict_failure = Some(IngestError::Strict { line, reason });
                    }
                }
                Some((Item::Batch { documents, lines }, bytes)) => {
                    progress.bytes = bytes;
                    summary.read += documents.len();
                    let (sink, collection, n) = (sink.clone(), args.collection.clone(), documents.len());
                    writes.spawn(async move { (n, lines, sink.write(&collection, documents, budget).await) });
                }
            },
            Some(done) = writes.join_next(), if !writes.is_empty() => {
                let (n, (first, last), result) = done.expect("a write task panicked");
                match result {
                    Ok(done) => {
                        summary.upserted += done.upserted;
                        summary.unchanged += done.unchanged;
                    }
                    Err(error) => {
                        summary.failed += n;
                        progress.note(&format!("lines {first}-{last}: {n} documents failed: {error}"));
                        if args.strict && strict_failure.is_none() {
                            stop.store(true, Ordering::SeqCst);
                            reading = false;
                            strict_failure = Some(IngestError::Strict { line: first, reason: error });
                        }
                    }
                }
                progress.update(&summary);
            }
        }
    }
    drop(rx);
    // A reader stopped early may be blocked reading stdin: it is left to end with the process.
    let read_result = if input_done { reader.join().expect("the reader thread panicked") } else { Ok(()) };
    sink.flush();
    progress.finish(&summary);
    if let Some(failure) = strict_failure {
        return Err(failure);
    }
    read_result.map_err(|source| IngestError::Input { path: args.input.display().to_string(), source })?;
    Ok(summary)
}

/// Reads lines into batches of valid documents; each item carries the bytes read so far.
fn read_batches(
    input: Box<dyn Read + Send>,
    batch_size: usize,
    max_text_bytes: usize,
    tx: &mpsc::Sender<(Item, u64)>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let (mut line, mut number, mut bytes) = (String::new(), 0usize, 0u64);
    let mut batch = Vec::with_capacity(batch_size);
    let mut first = 1;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes += n as u64;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Document>(text)
            .map_err(|e| format!("invalid document: {e}"))
            .and_then(|d| d.validate().map(|()| d))
            .and_then(|d| {
                if d.text.len() > max_text_bytes {
                    Err(format!("text of {} bytes is over --max-text-bytes ({max_text_bytes})", d.text.len()))
                } else {
                    Ok(d)
                }
            });
        match parsed {
            Ok(document) => {
                if batch.is_empty() {
                    first = number;
                }
                batch.push(document);
                if batch.len() == batch_size {
                    let documents = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if tx.blocking_send((Item::Batch { documents, lines: (first, number) }, bytes)).is_err() {
                        return Ok(());
                    }
                }
            }
            Err(reason) => {
                if tx.blocking_send((Item::Bad { line: number, reason }, bytes)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send((Item::Batch { documents: batch, lines: (first, number) }, bytes));
    }
    Ok(())
}

/// A progress bar on a terminal; a log line every `--progress-secs` otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Instant,
    bytes: u64,
    total_bytes: Option<u64>,
    /// Between log lines, when there is no bar.
    interval: Duration,
}

impl Progress {
    fn new(total_bytes: Option<u64>, interval: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total_bytes {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if total_bytes.is_some() {
                "{bar:30} {percent:>3}% {msg} [{elapsed_precise}, ETA {eta}]"
            } else {
                "{spinner} {msg} [{elapsed_precise}]"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Self { bar, started: Instant::now(), last_line: Instant::now(), bytes: 0, total_bytes, interval }
    }

    fn rate(&self, summary: &Summary) -> f64 {
        (summary.upserted + summary.unchanged) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn status(&self, summary: &Summary) -> String {
        format!(
            "read {} | upserted {} | unchanged {} | bad {} | failed {} | {:.1} docs/s",
            summary.read,
            summary.upserted,
            summary.unchanged,
            summary.bad_lines,
            summary.failed,
            self.rate(summary)
        )
    }

    fn update(&mut self, summary: &Summary) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.bytes);
                bar.set_message(self.status(summary));
            }
            None if self.last_line.elapsed() >= self.interval => {
                self.last_line = Instant::now();
                let eta = match self.total_bytes {
                    Some(total) if self.bytes > 0 => {
                        let elapsed = self.started.elapsed().as_secs_f64();
                        format!(
                            ", ETA {:.0} s",
                            elapsed * (total.saturating_sub(self.bytes)) as f64 / self.bytes as f64
                        )
                    }
                    _ => String::new(),
                };
                eprintln!("ingest: {}{eta}", self.status(summary));
            }
            None => {}
        }
    }

    fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("ingest: {message}")),
            None => eprintln!("ingest: {message}"),
        }
    }

    fn finish(&self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!(
            "ingest: {}: read {}, embedded and upserted {}, unchanged (skipped) {}, bad lines {}, failed {} in {secs:.1} s ({:.1} docs/s)",
            if summary.interrupted { "interrupted" } else { "done" },
            summary.read,
            summary.upserted,
            summary.unchanged,
            summary.bad_lines,
            summary.failed,
            self.rate(summary),
        );
    }
}
