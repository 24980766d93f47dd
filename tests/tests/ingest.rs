//! `search-gateway ingest` end to end: thousands of generated documents into qdrant-edge in
//! process and through a running gateway; bad lines; --strict; interrupt and resume; re-runs.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{Process, TempDir, binary, fixture, post_json as post, run_to_exit};
use serde_json::{Value, json};

/// `count` documents, one per line, with bad lines at the given (1-based) line numbers.
fn write_corpus(dir: &TempDir, name: &str, count: usize, edit: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..count {
        let doc = json!({"id": format!("doc-{i}"), "text": format!("profile {i}{edit}: engineer number {}", i % 97), "payload": {"n": i}});
        writeln!(file, "{doc}").unwrap();
    }
    path
}

fn append(path: &std::path::Path, lines: &[&str]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

/// The numbers of the final summary line.
#[derive(Debug, PartialEq)]
struct Summary {
    read: u64,
    upserted: u64,
    unchanged: u64,
    bad: u64,
    failed: u64,
}

fn summary(stderr: &str) -> Summary {
    let line = stderr.lines().rev().find(|l| l.starts_with("ingest: done") || l.starts_with("ingest: interrupted"));
    let line = line.unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let number = |label: &str| -> u64 {
        let rest = line.split(label).nth(1).unwrap_or_else(|| panic!("{label} in {line}"));
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    Summary {
        read: number("read "),
        upserted: number("upserted "),
        unchanged: number("(skipped) "),
        bad: number("bad lines "),
        failed: number("failed "),
    }
}

fn ingest_locally(input: &std::path::Path, data: &TempDir, extra: &[&str]) -> (std::process::ExitStatus, String) {
    let embed = fixture("tiny-e5");
    let mut args = vec!["ingest", "--collection", "people", "--input", input.to_str().unwrap()];
    args.extend(["--data-dir", data.to_str(), "--embed-model-dir", embed.to_str().unwrap(), "--intra-op-threads", "1"]);
    args.extend_from_slice(extra);
    run_to_exit("search-gateway", &args, &[("RUST_LOG", "warn")])
}

async fn count(gateway: &Process, collection: &str) -> u64 {
    let info: Value =
        reqwest::get(gateway.url(&format!("/collections/{collection}"))).await.unwrap().json().await.unwrap();
    info["points_count"].as_u64().unwrap_or_else(|| panic!("{info}"))
}

fn gateway(data: &TempDir) -> Process {
    e2e::start_gateway(data, &[])
}

#[tokio::test]
async fn in_process_ingest_reports_bad_lines_skips_unchanged_and_picks_up_edits() {
    let dir = TempDir::new("ingest-local");
    let data = TempDir::new("ingest-local-data");
    let input = write_corpus(&dir, "corpus.jsonl", 3000, "");
    let long = json!({"id": "long", "text": "x".repeat(2000)}).to_string();
    append(&input, &["{not json", r#"{"id": "no-text"}"#, "", &long, r#"{"id": "", "text": "empty id"}"#]);

    let (status, stderr) = ingest_locally(&input, &data, &["--max-text-bytes", "1000"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(summary(&stderr), Summary { read: 3000, upserted: 3000, unchanged: 0, bad: 4, failed: 0 });
    for line in [
        "line 3001: invalid document",
        "line 3002: invalid document",
        "line 3004: text of 2000 bytes",
        "line 3005: document ids",
    ] {
        assert!(stderr.contains(line), "{line} in:\n{stderr}");
    }

    // A re-run skips everything; an edit of 10 documents re-embeds just those.
    let (status, stderr) = ingest_locally(&input, &data, &[]);
    assert!(status.success(), "bad lines are reported and skipped, not fatal: {stderr}");
    let again = summary(&stderr);
    assert_eq!((again.upserted, again.unchanged, again.bad), (1, 3000, 3), "only the long document is new: {stderr}");
    let edited = write_corpus(&dir, "edited.jsonl", 3000, "");
    let mut text = std::fs::read_to_string(&edited).unwrap();
    for i in 0..10 {
        text = text.replace(&format!("\"profile {i}: "), &format!("\"profile {i} (edited): "));
    }
    std::fs::write(&edited, text).unwrap();
    let (status, stderr) = ingest_locally(&edited, &data, &[]);
    assert!(status.success(), "{stderr}");
    assert_eq!(summary(&stderr), Summary { read: 3000, upserted: 10, unchanged: 2990, bad: 0, failed: 0 });

    let gw = gateway(&data);
    gw.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(count(&gw, "people").await, 3001);
    let client = reqwest::Client::new();
    let (status, out) = post(&client, gw.url("/search"), json!({"query": "engineer", "collection": "people"})).await;
    assert_eq!((status, out["hits"].as_array().map(Vec::len)), (200, Some(10)), "{out}");
}

#[tokio::test]
async fn strict_mode_stops_at_the_first_bad_line() {
    let dir = TempDir::new("ingest-strict");
    let data = TempDir::new("ingest-strict-data");
    let input = dir.path().join("bad.jsonl");
    std::fs::write(&input, "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": 3}\n").unwrap();
    let (status, stderr) = ingest_locally(&input, &data, &["--strict"]);
    assert_eq!(status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("line 2: invalid document"), "{stderr}");
}

#[tokio::test]
async fn an_interrupted_job_resumes_where_it_stopped() {
    let dir = TempDir::new("ingest-resume");
    let data = TempDir::new("ingest-resume-data");
    let input = write_corpus(&dir, "corpus.jsonl", 20_000, "");
    let embed = fixture("tiny-e5");
    let child = Command::new(binary("search-gateway"))
        .args(["ingest", "--collection", "people", "--input", input.to_str().unwrap(), "--data-dir", data.to_str()])
        .args(["--embed-model-dir", embed.to_str().unwrap(), "--intra-op-threads", "1", "--batch-size", "32"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let first = summary(&stderr);
    assert!(stderr.contains("ingest: interrupted"), "{stderr}");
    assert!(first.upserted > 0 && first.upserted < 20_000, "interrupted midway: {first:?}");

    let (status, stderr) = ingest_locally(&input, &data, &[]);
    assert!(status.success(), "{stderr}");
    let second = summary(&stderr);
    assert_eq!(second.unchanged, first.upserted, "what was written is consistent and skipped: {stderr}");
    assert_eq!(second.upserted + second.unchanged, 20_000);
    let gw = gateway(&data);
    gw.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(count(&gw, "people").await, 20_000);
}

#[tokio::test]
async fn through_a_running_gateway_with_cache_invalidation() {
    let dir = TempDir::new("ingest-http");
    let data = TempDir::new("ingest-http-data");
    let gw = gateway(&data);
    gw.wait_ready(Duration::from_secs(60)).await;
    let client = reqwest::Client::new();
    let first = write_corpus(&dir, "first.jsonl", 100, "");
    let url = gw.url("");
    let via_gateway = |input: &std::path::Path| {
        let args = ["ingest", "--collection", "people", "--input", input.to_str().unwrap(), "--gateway-url", &url];
        run_to_exit("search-gateway", &args, &[("RUST_LOG", "warn")])
    };
    let (status, stderr) = via_gateway(&first);
    assert!(status.success(), "{stderr}");
    assert_eq!(summary(&stderr), Summary { read: 100, upserted: 100, unchanged: 0, bad: 0, failed: 0 });

    let query = json!({"query": "engineer", "collection": "people", "top_k": 50, "candidates": 200});
    let (_, before) = post(&client, gw.url("/search"), query.clone()).await;
    let (_, cached) = post(&client, gw.url("/search"), query.clone()).await;
    assert_eq!(cached["cache"], "hit");

    // A bigger corpus (the first 100 unchanged) through the same gateway: searches see it at once.
    let second = write_corpus(&dir, "second.jsonl", 2000, "");
    let (status, stderr) = via_gateway(&second);
    assert!(status.success(), "{stderr}");
    assert_eq!(summary(&stderr), Summary { read: 2000, upserted: 1900, unchanged: 100, bad: 0, failed: 0 });
    assert_eq!(count(&gw, "people").await, 2000);
    let (_, after) = post(&client, gw.url("/search"), query).await;
    assert_eq!(after["cache"], "miss", "the ingest bumped the collection's generation");
    assert_ne!(after["hits"], before["hits"]);

    // A gateway that is not there: every batch fails, and the job says so.
    drop(gw);
    let (status, stderr) = via_gateway(&first);
    assert!(!status.success());
    assert_eq!(summary(&stderr).failed, 100, "{stderr}");
}

#[tokio::test]
async fn reads_documents_from_stdin() {
    let dir = TempDir::new("ingest-stdin");
    let data = TempDir::new("ingest-stdin-data");
    let corpus = std::fs::read(write_corpus(&dir, "corpus.jsonl", 50, "")).unwrap();
    let embed = fixture("tiny-e5");
    let mut child = Command::new(binary("search-gateway"))
        .args(["ingest", "--collection", "people", "--input", "-", "--data-dir", data.to_str()])
        .args(["--embed-model-dir", embed.to_str().unwrap(), "--intra-op-threads", "1"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&corpus).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(summary(&stderr), Summary { read: 50, upserted: 50, unchanged: 0, bad: 0, failed: 0 });
}
