//! A real Qdrant server for tests: the binary `QDRANT_BIN` names (`scripts/test.sh` sets it to
//! the one `scripts/install-qdrant.sh` installed, where it could), on free ports, with an API key and a temp storage directory; one node or a
//! cluster of several on 127.0.0.1. Killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port};

pub const QDRANT_API_KEY: &str = "e2e-qdrant-key";

/// Why a Qdrant-server test did not run: the `ignore` reason the test runner prints beside its
/// name (`scripts/test.sh` counts these lines). The literal stands in each `ignore` attribute,
/// which takes no constant; `the_skip_reason_is_the_one_scripts_count` keeps them equal.
pub const NO_QDRANT_SERVER: &str = "skipped: no Qdrant server (set QDRANT_BIN=/path/to/qdrant)";

/// The Qdrant server binary `QDRANT_BIN` names. A test that gets here was compiled with it set
/// (tests/build.rs), so anything but a Qdrant server there is a failure, not a skip.
pub fn qdrant_binary() -> PathBuf {
    let path = PathBuf::from(std::env::var_os("QDRANT_BIN").unwrap_or_default());
    assert!(
        path.is_file(),
        "QDRANT_BIN={:?} is not a file: point it at a Qdrant server binary, or unset it to skip the Qdrant-server tests",
        path.display().to_string()
    );
    let version = Command::new(&path).arg("--version").stdin(Stdio::null()).output();
    let printed =
        version.as_ref().map(|out| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string());
    match printed {
        Ok(line) if line.starts_with("qdrant ") => path,
        Ok(line) => panic!(
            "QDRANT_BIN={} is not a Qdrant server: `--version` printed {line:?}, not \"qdrant <version>\"",
            path.display()
        ),
        Err(e) => panic!("QDRANT_BIN={} is not a Qdrant server: it does not run ({e})", path.display()),
    }
}

pub struct Qdrant {
    pub http_port: u16,
    pub grpc_port: u16,
    /// Set for a cluster node.
    pub p2p_port: Option<u16>,
    /// The first node's peer URL, for the others to join (cluster nodes but the first).
    bootstrap: Option<String>,
    storage: TempDir,
    child: Option<Child>,
}

impl Qdrant {
    /// One node, ready to serve.
    pub fn start() -> Self {
        let mut node = Self::new(None, None);
        node.restart();
        node
    }

    /// `nodes` nodes of one cluster (distributed mode), each ready.
    pub fn start_cluster(nodes: usize) -> Vec<Self> {
        let mut first = Self::new(Some(free_port()), None);
        first.restart();
        let bootstrap = format!("http://127.0.0.1:{}", first.p2p_port.unwrap());
        let mut cluster = vec![first];
        for _ in 1..nodes {
            let mut node = Self::new(Some(free_port()), Some(bootstrap.clone()));
            node.restart();
            cluster.push(node);
        }
        cluster
    }

    fn new(p2p_port: Option<u16>, bootstrap: Option<String>) -> Self {
        let storage = TempDir::new("qdrant");
        Self { http_port: free_port(), grpc_port: free_port(), p2p_port, bootstrap, storage, child: None }
    }

    /// The gRPC URL the gateway takes (`--qdrant-url`).
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the node on the same ports and storage and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        let dir = self.storage.path();
        let log = std::fs::File::create(dir.join("qdrant.log")).unwrap();
        let mut command = Command::new(qdrant_binary());
        command
            .current_dir(dir)
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", dir.join("snapshots"))
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc_port.to_string())
            .env("QDRANT__SERVICE__API_KEY", QDRANT_API_KEY)
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(p2p) = self.p2p_port {
            command.env("QDRANT__CLUSTER__ENABLED", "true").env("QDRANT__CLUSTER__P2P__PORT", p2p.to_string());
            command.args(["--uri", &format!("http://127.0.0.1:{p2p}")]);
            if let Some(bootstrap) = &self.bootstrap {
                command.args(["--bootstrap", bootstrap]);
            }
        }
        self.child = Some(command.spawn().expect("starting the Qdrant server"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if answers_200(&self.http_url("/readyz")).unwrap_or(false) {
                return;
            }
            assert!(Instant::now() < deadline, "Qdrant did not become ready; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.storage.path().join("qdrant.log")).unwrap_or_default()
    }
}

impl Drop for Qdrant {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A blocking GET on loopback (the callers are not async): whether it answered 200.
fn answers_200(url: &str) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.starts_with("HTTP/1.1 200"))
}
