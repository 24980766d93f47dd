//! Whether the Qdrant-server tests are compiled to run: they need a server binary, and only
//! `QDRANT_BIN` names one (no package registry ships a Qdrant server). Without it they are
//! ignored with the reason `e2e::NO_QDRANT_SERVER`, so the test runner counts them as skipped,
//! never as passed; with it they run, and fail loudly if it is not a Qdrant server.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(qdrant_server)");
    println!("cargo::rerun-if-env-changed=QDRANT_BIN");
    if std::env::var_os("QDRANT_BIN").is_some_and(|path| !path.is_empty()) {
        println!("cargo::rustc-cfg=qdrant_server");
    }
}
