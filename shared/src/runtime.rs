//! Finds and loads the ONNX Runtime shared library (`ort`'s `load-dynamic`) once per process.
//!
//! Search order: `ORT_DYLIB_PATH`; `libonnxruntime.so` beside the executable or in `../lib`;
//! the project-local `.ort/lib/libonnxruntime.so` written by `scripts/setup.sh`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The command that installs the library; named in every error about it.
pub const SETUP_COMMAND: &str = "scripts/setup.sh";
const LIBRARY_NAME: &str = "libonnxruntime.so";

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library not found (looked at {searched}); run `{SETUP_COMMAND}` or set ORT_DYLIB_PATH")]
    NotFound { searched: String },
    #[error("ORT_DYLIB_PATH points to {0}, which does not exist; run `{SETUP_COMMAND}` or fix the path")]
    EnvPathMissing(PathBuf),
    #[error("cannot load ONNX Runtime from {path}: {message}; run `{SETUP_COMMAND}` (onnxruntime 1.31)")]
    Load { path: PathBuf, message: String },
}

/// Where the library would be looked for, in order, given `ORT_DYLIB_PATH` (if set).
fn candidates(env_path: Option<PathBuf>) -> Vec<PathBuf> {
    if let Some(path) = env_path {
        return vec![path];
    }
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
        out.push(dir.join(LIBRARY_NAME));
        out.push(dir.join("../lib").join(LIBRARY_NAME));
    }
    out.push(project_root().join(".ort/lib").join(LIBRARY_NAME));
    out
}

/// The workspace this binary was built from (for the project-local default location).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Resolves the library path without loading it.
pub fn locate() -> Result<PathBuf, RuntimeError> {
    let env_path = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()).map(PathBuf::from);
    let from_env = env_path.is_some();
    let list = candidates(env_path);
    if let Some(found) = list.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    if from_env {
        return Err(RuntimeError::EnvPathMissing(list[0].clone()));
    }
    let searched = list.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    Err(RuntimeError::NotFound { searched })
}

/// Loads ONNX Runtime and creates the process-wide environment. Idempotent; returns the path used.
pub fn init() -> Result<PathBuf, RuntimeError> {
    state().map(|(path, _)| path.clone())
}

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    state().map(|(_, env)| env)
}

fn state() -> Result<&'static (PathBuf, ort::environment::Environment), RuntimeError> {
    static STATE: OnceLock<Result<(PathBuf, ort::environment::Environment), RuntimeError>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let path = locate()?;
            let load_error = |message: String| RuntimeError::Load { path: path.clone(), message };
            let builder = ort::init_from(&path).map_err(|e| load_error(e.to_string()))?;
            // Telemetry off: these services run on closed networks and must not phone home.
            let env =
                builder.with_name("semsearch").with_telemetry(false).build().map_err(|e| load_error(e.to_string()))?;
            Ok((path, env))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_path_is_the_only_candidate_when_set() {
        let list = candidates(Some(PathBuf::from("/opt/ort/libonnxruntime.so")));
        assert_eq!(list, vec![PathBuf::from("/opt/ort/libonnxruntime.so")]);
    }

    #[test]
    fn default_candidates_end_with_the_project_local_copy() {
        let list = candidates(None);
        assert_eq!(list.last().unwrap(), &project_root().join(".ort/lib/libonnxruntime.so"));
        assert!(list.len() >= 2, "the executable's folder is searched first: {list:?}");
    }

    #[test]
    fn not_found_names_the_setup_command() {
        let err = RuntimeError::NotFound { searched: "/x".into() };
        assert!(err.to_string().contains(SETUP_COMMAND), "{err}");
    }
}
