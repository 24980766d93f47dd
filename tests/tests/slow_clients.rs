//! Slow and broken clients on every service: half-sent headers, half-sent bodies and idle
//! connections are closed after their timeouts, while a normal client is served throughout.

use std::time::{Duration, Instant};

use e2e::{Process, TempDir, fixture, start_gateway, start_model_service};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READY: Duration = Duration::from_secs(60);
const LIMITS: [&str; 4] = ["--header-timeout-secs", "2", "--body-timeout-secs", "2"];

/// How a stalled connection ended: what the server sent before closing it, and when.
struct Ended {
    answer: String,
    after: Duration,
}

/// Sends `prefix`, then nothing, and waits (at most 20 s) for the server to close the connection.
async fn stall(addr: std::net::SocketAddr, prefix: String) -> Ended {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(prefix.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled connection was still open after 20 s ({prefix:?})");
    Ended { answer: String::from_utf8_lossy(&answer).into_owned(), after: started.elapsed() }
}

/// 50 stalled bodies, 10 stalled header blocks and 10 idle connections against `process`, with a
/// normal client's request to `route` (`body`) answered 200 while they are open.
async fn sheds_slow_clients(process: &Process, route: &str, body: Value) {
    let head = format!("POST {route} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n");
    let full = body.to_string();
    let half_body = format!("{head}Content-Length: {}\r\n\r\n{}", full.len(), &full[..full.len() / 2]);
    let mut stalled = Vec::new();
    for _ in 0..50 {
        stalled.push(("body", tokio::spawn(stall(process.addr, half_body.clone()))));
    }
    for _ in 0..10 {
        stalled.push(("headers", tokio::spawn(stall(process.addr, format!("{head}Content-Le")))));
        stalled.push(("idle", tokio::spawn(stall(process.addr, String::new()))));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let response = client.post(process.url(route)).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "a normal client beside 70 stalled connections");
        let health = client.get(process.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    for (kind, task) in stalled {
        let ended = task.await.unwrap();
        assert!(ended.after >= Duration::from_millis(1500), "{kind}: closed too early ({:?})", ended.after);
        match kind {
            "body" => {
                assert!(ended.answer.starts_with("HTTP/1.1 408"), "{}", ended.answer);
                let json = ended.answer.split("\r\n\r\n").nth(1).unwrap();
                let error: Value = serde_json::from_str(json).unwrap();
                assert_eq!(error["code"], "request_timeout");
            }
            _ => assert_eq!(ended.answer, "", "{kind}: closed without an answer"),
        }
    }
}

#[tokio::test]
async fn embed_service_closes_stalled_and_idle_connections() {
    let service = start_model_service("embed-service", &fixture("tiny-e5"), &LIMITS, &[]);
    service.wait_ready(READY).await;
    sheds_slow_clients(&service, "/embed", json!({"text": "hello there, a normal client"})).await;
}

#[tokio::test]
async fn rerank_service_closes_stalled_and_idle_connections() {
    let service = start_model_service("rerank-service", &fixture("tiny-reranker"), &LIMITS, &[]);
    service.wait_ready(READY).await;
    let body = json!({"query": "a normal client", "documents": ["first document", "second document"]});
    sheds_slow_clients(&service, "/rerank", body).await;
}

#[tokio::test]
async fn gateway_closes_stalled_and_idle_connections() {
    let data = TempDir::new("slow-clients");
    let gateway = start_gateway(&data, &LIMITS);
    gateway.wait_ready(READY).await;
    let documents = json!({"documents": [{"id": "a", "text": "a profile"}, {"id": "b", "text": "another"}]});
    let put = reqwest::Client::new().put(gateway.url("/collections/profiles/documents")).json(&documents);
    assert_eq!(put.send().await.unwrap().status(), 200);
    sheds_slow_clients(&gateway, "/search", json!({"query": "a profile", "top_k": 2})).await;
}

#[tokio::test]
async fn a_kept_alive_connection_serves_requests_then_closes_when_idle() {
    let service = start_model_service("embed-service", &fixture("tiny-e5"), &LIMITS, &[]);
    service.wait_ready(READY).await;
    let mut stream = TcpStream::connect(service.addr).await.unwrap();
    let request = "GET /health HTTP/1.1\r\nHost: test\r\n\r\n";
    for _ in 0..3 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("keep-alive: timeout=1"), "{answer}");
    }
    let started = Instant::now();
    let ended = stall(service.addr, String::new()).await;
    assert_eq!(ended.answer, "");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok() && rest.is_empty(), "the kept-alive connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(1500));
}
