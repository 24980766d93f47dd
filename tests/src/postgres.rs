//! A real PostgreSQL server for the tests: Debian's `postgresql` package (installed by
//! scripts/setup.sh), a cluster made by `initdb` in a temp dir as the `postgres` user (initdb
//! refuses root), started on a free port, stopped by its PID when dropped. It can be stopped and
//! started again on the same port, or killed (-9) like a crash.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port};

/// The directory of the newest installed server's binaries (`PG_BIN` wins).
pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect("no PostgreSQL server under /usr/lib/postgresql: run scripts/setup.sh")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` as the `postgres` user when this process is root (the server refuses root).
fn as_postgres(program: PathBuf) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

pub struct Postgres {
    dir: TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Whether commits reach the disk (production's setting); off for tests, which restart the
    /// server but never lose the machine.
    fsync: bool,
}

impl Postgres {
    /// A new cluster, started, with `fsync=off`.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A new cluster that syncs its commits to disk, as a production server does.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(fsync: bool) -> Self {
        let dir = TempDir::new("postgres");
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres", dir.to_str()]).status().unwrap();
            assert!(status.success(), "chown of the cluster's directory");
        }
        let data = dir.path().join("data");
        let output = as_postgres(pg_bin().join("initdb"))
            .args(["-D", data.to_str().unwrap(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C.UTF-8")
            .output()
            .expect("initdb");
        assert!(output.status.success(), "initdb: {}", String::from_utf8_lossy(&output.stderr));
        let mut postgres = Self { dir, port: free_port(), child: None, fsync };
        postgres.restart();
        postgres
    }

    /// The URL a client connects with (no password: the test cluster trusts local connections).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// (Re)starts the server on its port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let data = self.dir.path().join("data");
        let child = as_postgres(pg_bin().join("postgres"))
            .args(["-D", data.to_str().unwrap(), "-p", &self.port.to_string(), "-k", self.dir.to_str()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", if self.fsync { "fsync=on" } else { "fsync=off" }])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(pg_bin().join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's own PID (`runuser` runs it as a child).
    fn server_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?;
        pid.lines().next().map(str::to_string)
    }

    /// Kills the server (-9), as a crash: nothing is shut down cleanly.
    pub fn kill_9(&mut self) {
        if let Some(pid) = self.server_pid() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        // The crash leaves the children and the shared memory behind for a moment.
        std::thread::sleep(Duration::from_millis(500));
    }

    /// A fast shutdown (SIGINT: open transactions are rolled back, clients are disconnected).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = self.server_pid().unwrap_or_else(|| child.id().to_string());
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A client; its connection runs on the current tokio runtime.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
