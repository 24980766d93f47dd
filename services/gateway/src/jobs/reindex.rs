//! `search-gateway reindex --from OLD --to NEW [--alias NAME]`: reads OLD page by page (a
//! configured collection's text and id keys included), re-embeds every text with the current
//! embedder through the `ingest` pipeline into NEW (same ids and payloads, the gateway's own keys
//! added; unchanged documents skipped, so a re-run resumes), then points NAME at NEW in one step.
//!
//! Like `ingest`, it runs in process (the engine and store flags; with qdrant-edge only while no
//! gateway owns the data directory) or through a running gateway (`--gateway-url`), which also
//! reads OLD (`GET /collections/{name}/documents`) and switches the alias (`PUT /aliases/{name}`).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::backends::StartError;
use crate::collections::documents::Document;
use crate::config::ReindexArgs;
use crate::jobs::ingest::{IngestError, Summary};
use crate::jobs::sink::Sink;
use crate::upstream::RemoteService;

/// A page of the old collection, as `GET /collections/{name}/documents` answers.
#[derive(Deserialize)]
struct Page {
    documents: Vec<PageDocument>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct PageDocument {
    id: String,
    text: Option<String>,
    payload: Map<String, Value>,
}

/// Runs the job; `Ok` carries the ingest summary of writing NEW.
pub async fn run(args: ReindexArgs) -> Result<Summary, IngestError> {
    let job = &args.job;
    let budget = Duration::from_secs(job.batch_timeout_secs);
    let sink = Arc::new(match &job.gateway_url {
        Some(url) => Sink::remote(url, job.gateway_api_key.as_ref(), job.retries)?,
        None => Sink::local(&job.backends, budget).await?,
    });
    let (input, output) = std::io::pipe().map_err(|e| StartError::Config(format!("cannot make a pipe: {e}")))?;
    let reader = tokio::spawn(read_old(sink.clone(), args.from.clone(), job.batch_size, budget, output));
    let summary = crate::jobs::ingest::run_from(&args.ingest_args(), Box::new(input), None, sink.clone()).await?;
    let read = reader.await.map_err(|e| StartError::Config(format!("the reader stopped: {e}")))?;
    let complete = match read {
        Ok(count) => {
            eprintln!("reindex: read {count} documents from {}", args.from);
            !summary.interrupted && summary.failed == 0
        }
        Err(why) => {
            eprintln!("reindex: reading {} failed: {why}", args.from);
            false
        }
    };
    if let Some(alias) = args.alias.as_deref().filter(|_| complete) {
        switch_alias(&sink, alias, &args.to, budget).await.map_err(StartError::Config)?;
        eprintln!("reindex: alias {alias} -> {}", args.to);
    } else if args.alias.is_some() {
        eprintln!("reindex: not complete, so the alias was left as it was; run the same command again to resume");
    }
    sink.flush();
    Ok(summary)
}

/// Writes OLD's documents as JSONL into `output` (the ingest pipeline's input), page by page;
/// returns how many. Ends early, with an error, if the pipeline stops reading.
async fn read_old(
    sink: Arc<Sink>,
    from: String,
    page_size: usize,
    budget: Duration,
    output: std::io::PipeWriter,
) -> Result<usize, String> {
    let mut output = Some(output);
    let (mut after, mut count) = (None::<String>, 0);
    loop {
        let page = match sink.as_ref() {
            Sink::Local(local) => {
                let collection = local.collections.resolve(&from).await;
                let page =
                    local.store.scroll(&collection, after.as_deref(), page_size).await.map_err(|e| e.to_string())?;
                let documents =
                    page.documents.into_iter().map(|f| PageDocument { id: f.id, text: f.text, payload: f.payload });
                Page { documents: documents.collect(), next: page.next }
            }
            Sink::Remote(gateway) => remote_page(gateway, &from, after.as_deref(), page_size, budget).await?,
        };
        let mut lines = Vec::new();
        for d in page.documents {
            // A point without text is written without it, and ingest reports it as a bad line.
            let document = Document { id: d.id, text: d.text.unwrap_or_default(), payload: Some(d.payload) };
            serde_json::to_writer(&mut lines, &document).map_err(|e| e.to_string())?;
            lines.push(b'\n');
            count += 1;
        }
        let mut pipe = output.take().expect("the pipe is put back after every write");
        let pipe = tokio::task::spawn_blocking(move || pipe.write_all(&lines).map(|()| pipe))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("the writer stopped reading: {e}"))?;
        output = Some(pipe);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(count),
        }
    }
}

async fn remote_page(
    gateway: &RemoteService,
    from: &str,
    after: Option<&str>,
    limit: usize,
    budget: Duration,
) -> Result<Page, String> {
    let mut path = format!("/collections/{from}/documents?limit={limit}");
    if let Some(after) = after {
        path.push_str(&format!("&after={after}"));
    }
    gateway.send(reqwest::Method::GET, &path, &(), budget).await.map_err(|e| e.to_string())
}

async fn switch_alias(sink: &Sink, alias: &str, collection: &str, budget: Duration) -> Result<(), String> {
    match sink {
        Sink::Local(local) => {
            local.collections.set_alias(alias, collection).await.map_err(|e| e.to_string())?;
            local.cache.bump(alias).await;
            Ok(())
        }
        Sink::Remote(gateway) => {
            let body = serde_json::json!({ "collection": collection });
            let path = format!("/aliases/{alias}");
            gateway
                .send::<_, Value>(reqwest::Method::PUT, &path, &body, budget)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    }
}
