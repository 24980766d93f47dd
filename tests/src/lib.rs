//! Helpers for end-to-end tests: start the real service binaries on port 0, find their address
//! in their logs, wait for readiness, send signals, and stop them when the test ends.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub mod otlp;
mod postgres;
mod qdrant;
pub use postgres::{Postgres, pg_bin};
pub use qdrant::{NO_QDRANT_SERVER, QDRANT_API_KEY, Qdrant, qdrant_binary};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("models/fixtures").join(name)
}

/// A binary of the workspace, built into the same target folder as this test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A running service process; killed when dropped.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `name` with `args` and waits until it logs its listening address.
    pub fn start(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_binary(&binary(name), args, envs)
    }

    /// [`Process::start`] for a binary given by its path (e.g. an older build, in a bench).
    pub fn start_binary(path: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut command = Command::new(path);
        command
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("LOG_JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next()) {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().ok());
                }
                sink.lock().unwrap().push(line);
            }
        });
        match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(addr)) => Self { child, addr, logs },
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not report a listening address; logs:\n{}", logs.lock().unwrap().join("\n"));
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Polls `/ready` until it answers 200.
    pub async fn wait_ready(&self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) = client.get(self.url("/ready")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not ready within {timeout:?}; logs:\n{}", self.logs());
    }

    /// Polls `/metrics` until the unlabelled metric `name` reads `value` (e.g. a queue depth).
    pub async fn wait_for_metric(&self, name: &str, value: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(self.url("/metrics")).await {
                last = r.text().await.unwrap_or_default();
                let current =
                    last.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
                if current == Some(value) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name} never reached {value} within {timeout:?}; last scrape:\n{last}");
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits until a line logged from now on contains `needle`; false after `timeout`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let from = self.logs.lock().unwrap().len();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs.lock().unwrap()[from..].iter().any(|l| l.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }

    /// `kill -9`, then waits until it is gone and its last log lines are read.
    pub fn kill_9(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit within {timeout:?}; logs:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a model service on 127.0.0.1, port 0, serving `model` (a model directory), with `extra`
/// arguments appended.
pub fn start_model_service(binary: &str, model: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Process {
    let model = model.to_str().expect("a UTF-8 model path");
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--model-dir", model];
    args.extend_from_slice(extra);
    Process::start(binary, &args, envs)
}

/// POSTs `body` as JSON; returns the status and the JSON answer.
pub async fn post_json(client: &reqwest::Client, url: String, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Runs a binary to completion (for start-up failures) and returns its status and stderr.
pub fn run_to_exit(name: &str, args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut command = Command::new(binary(name));
    command.args(args).stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Runs a batch job of search-gateway (`ingest`, `reindex`; `args` should ask for a progress
/// line after every batch) until it reports `kill_after` documents upserted, kills it (-9), and
/// returns what it last reported: (upserted, stored = upserted + unchanged).
pub fn run_job_and_kill(args: &[&str], kill_after: usize) -> (usize, usize) {
    let mut child = Command::new(binary("search-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Progress lines read "ingest: read R | upserted U | unchanged C | ...".
    let field =
        |line: &str, key: &str| -> Option<usize> { line.split(key).nth(1)?.split_whitespace().next()?.parse().ok() };
    let (mut upserted, mut stored) = (0, 0);
    for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
        if let (Some(u), Some(c)) = (field(&line, "| upserted "), field(&line, "| unchanged ")) {
            (upserted, stored) = (u, u + c);
        }
        if upserted >= kill_after {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert!(upserted >= kill_after, "the job ended before {kill_after} documents were upserted");
    (upserted, stored)
}

/// A directory under the system temp folder, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("e2e-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn to_str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real `redis-server` on 127.0.0.1 (installed by scripts/setup.sh), without persistence,
/// with a password; stopped when dropped. It can be stopped and started again on the same port.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

pub const REDIS_PASSWORD: &str = "e2e-secret";

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self { port: free_port(), child: None };
        redis.restart();
        redis
    }

    /// The URL the gateway takes, password included.
    pub fn url(&self) -> String {
        format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port, "--requirepass", REDIS_PASSWORD])
            .args(["--save", "", "--appendonly", "no", "--enable-debug-command", "local"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (installed by scripts/setup.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. STOP, CONT) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id().to_string();
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid).status().unwrap();
        assert!(status.success());
    }

    /// A redis-cli command for this server, to run later (e.g. on another thread).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string(), "-a", REDIS_PASSWORD, "--no-auth-warning"]).args(args);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    }

    /// Runs a command with redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = self.cli_command(args).stdout(Stdio::piped()).output().expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A search-gateway on 127.0.0.1:0 with qdrant-edge in `data` and in-process engines on the tiny
/// fixtures (one intra-op thread), with `extra` arguments appended (e.g. remote engine URLs,
/// which win over the fixtures).
pub fn start_gateway(data: &TempDir, extra: &[&str]) -> Process {
    start_gateway_with_envs(data, extra, &[])
}

/// [`start_gateway`] with environment variables.
pub fn start_gateway_with_envs(data: &TempDir, extra: &[&str], envs: &[(&str, &str)]) -> Process {
    let (embed, rerank) = (fixture("tiny-e5"), fixture("tiny-reranker"));
    let (embed, rerank) = (embed.to_str().unwrap(), rerank.to_str().unwrap());
    let mut args = vec!["--host", "127.0.0.1", "--port", "0", "--data-dir", data.to_str(), "--intra-op-threads", "1"];
    args.extend(["--embed-model-dir", embed, "--rerank-model-dir", rerank]);
    args.extend_from_slice(extra);
    Process::start("search-gateway", &args, envs)
}
