//! The production model manifest (`models/models.toml`) and fetching a model from the Hugging
//! Face hub into a model directory: progress bar, real files (no symlinks), verified sizes and
//! SHA-256 checksums.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::{ModelConfig, ModelDir, ModelError};

/// The manifest, compiled in so a binary knows the model names wherever it runs.
pub const MANIFEST: &str = include_str!("../../models/models.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub description: String,
    pub repo: String,
    pub revision: String,
    pub files: Vec<FileSpec>,
    pub config: ModelConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path in the hub repository.
    pub from: String,
    /// Name in the model directory.
    pub to: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unknown model `{name}`; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("invalid model manifest: {0}")]
    Manifest(String),
    #[error(
        "cannot reach the Hugging Face hub for {repo}: {message} (the models are ~2.2 GB fp32 / ~0.6 GB int8; on a closed network copy a model directory and pass --model-dir)"
    )]
    Hub { repo: String, message: String },
    #[error("{file}: {message}")]
    Verify { file: String, message: String },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Model(#[from] ModelError),
}

pub fn manifest() -> Result<BTreeMap<String, ModelSpec>, FetchError> {
    parse_manifest(MANIFEST)
}

pub fn parse_manifest(text: &str) -> Result<BTreeMap<String, ModelSpec>, FetchError> {
    toml::from_str(text).map_err(|e| FetchError::Manifest(e.message().to_string()))
}

pub fn spec(name: &str) -> Result<ModelSpec, FetchError> {
    let mut all = manifest()?;
    match all.remove(name) {
        Some(spec) => Ok(spec),
        None => {
            Err(FetchError::UnknownModel { name: name.into(), known: all.into_keys().collect::<Vec<_>>().join(", ") })
        }
    }
}

/// What the hub says a file should be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

#[derive(Deserialize)]
struct HubInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<HubFile>,
}

#[derive(Deserialize)]
struct HubFile {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<HubLfs>,
}

#[derive(Deserialize)]
struct HubLfs {
    sha256: String,
    size: u64,
}

/// The model directory for `name` under `models_dir`, fetched first if it is not there yet.
pub async fn ensure(name: &str, models_dir: &Path) -> Result<ModelDir, FetchError> {
    let dir = models_dir.join(name);
    if dir.join("model.toml").is_file() {
        return Ok(ModelDir::open(&dir)?);
    }
    fetch(name, models_dir, "https://huggingface.co").await
}

/// Downloads model `name` into `models_dir/name/` (replacing an incomplete one).
pub async fn fetch(name: &str, models_dir: &Path, endpoint: &str) -> Result<ModelDir, FetchError> {
    use hf_hub::api::tokio::ApiBuilder;
    use hf_hub::{Repo, RepoType};

    let spec = spec(name)?;
    let hub_error = |e: &dyn std::fmt::Display| FetchError::Hub { repo: spec.repo.clone(), message: e.to_string() };
    let cache = models_dir.join(".hf-cache");
    let api = ApiBuilder::new()
        .with_progress(true)
        .with_endpoint(endpoint.to_string())
        .with_cache_dir(cache)
        .with_token(std::env::var("HF_TOKEN").ok())
        .build()
        .map_err(|e| hub_error(&e))?;
    let repo = api.repo(Repo::with_revision(spec.repo.clone(), RepoType::Model, spec.revision.clone()));
    let info: HubInfo = repo
        .info_request()
        .query(&[("blobs", "true")])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| hub_error(&e))?
        .json()
        .await
        .map_err(|e| hub_error(&e))?;
    let expected: BTreeMap<String, Expected> = info
        .siblings
        .into_iter()
        .map(|f| {
            let (size, sha256) = match f.lfs {
                Some(lfs) => (Some(lfs.size), Some(lfs.sha256)),
                None => (f.size, None),
            };
            (f.rfilename, Expected { size, sha256 })
        })
        .collect();

    let staging = models_dir.join(format!(".{name}.partial"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    for file in &spec.files {
        let hub = expected.get(&file.from).cloned().ok_or_else(|| FetchError::Verify {
            file: file.from.clone(),
            message: format!("not in {} at revision {}", spec.repo, spec.revision),
        })?;
        eprintln!("fetching {}/{} ({})", spec.repo, file.from, hub.size.map(human_size).unwrap_or_default());
        let cached = repo.get(&file.from).await.map_err(|e| hub_error(&e))?;
        let target = staging.join(&file.to);
        // A real copy: the hub cache links files, and ONNX Runtime refuses symlinked external data.
        std::fs::copy(&cached, &target).map_err(io(&target))?;
        let pinned = Expected { size: hub.size, sha256: file.sha256.clone().or(hub.sha256) };
        verify(&target, &pinned).map_err(|message| FetchError::Verify { file: file.from.clone(), message })?;
    }
    let toml = toml::to_string(&spec.config).map_err(|e| FetchError::Manifest(e.to_string()))?;
    std::fs::write(staging.join("model.toml"), toml).map_err(io(&staging))?;
    let provenance = format!(
        "repo = {:?}\nrevision = {:?}\ncommit = {:?}\n",
        spec.repo,
        spec.revision,
        info.sha.unwrap_or_default()
    );
    std::fs::write(staging.join(".fetched.toml"), provenance).map_err(io(&staging))?;
    let dir = models_dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir).map_err(io(&dir))?;
    let _ = std::fs::remove_dir_all(models_dir.join(".hf-cache"));
    Ok(ModelDir::open(&dir)?)
}

/// Checks a downloaded file's size and SHA-256 against what is expected of it.
pub fn verify(path: &Path, expected: &Expected) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("is a symlink".into());
    }
    if let Some(size) = expected.size.filter(|&s| s != meta.len()) {
        return Err(format!("size {} but expected {size}", meta.len()));
    }
    if let Some(want) = &expected.sha256 {
        let got = sha256_file(path).map_err(|e| e.to_string())?;
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("sha256 {got} but expected {want}"));
        }
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn human_size(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;

    #[test]
    fn the_manifest_lists_the_four_production_models() {
        let all = manifest().unwrap();
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["bge-reranker-base", "bge-reranker-base-int8", "multilingual-e5-large", "multilingual-e5-large-int8"]
        );
        let e5 = &all["multilingual-e5-large"];
        assert_eq!(e5.config.kind, ModelKind::Embedding);
        assert_eq!(e5.config.query_prefix.as_deref(), Some("query: "));
        assert!(
            e5.files.iter().any(|f| f.to == "model.onnx_data"),
            "the fp32 export keeps its weights in external data"
        );
        for spec in all.values() {
            let targets: Vec<&str> = spec.files.iter().map(|f| f.to.as_str()).collect();
            assert!(targets.contains(&"model.onnx") && targets.contains(&"tokenizer.json"), "{spec:?}");
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = spec("e5-huge").unwrap_err().to_string();
        assert!(err.contains("multilingual-e5-large-int8"), "{err}");
    }

    #[test]
    fn verify_checks_size_and_checksum() {
        let path = std::env::temp_dir().join(format!("fetch-verify-{}", std::process::id()));
        std::fs::write(&path, b"hello").unwrap();
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(verify(&path, &Expected { size: Some(5), sha256: Some(sha.into()) }), Ok(()));
        assert!(verify(&path, &Expected { size: Some(6), sha256: None }).unwrap_err().contains("size 5"));
        assert!(verify(&path, &Expected { size: None, sha256: Some("00".into()) }).unwrap_err().contains("sha256"));
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_hub_is_a_clear_error_not_a_hang() {
        let dir = std::env::temp_dir().join(format!("fetch-unreachable-{}", std::process::id()));
        let err = fetch("multilingual-e5-large-int8", &dir, "http://127.0.0.1:9").await.unwrap_err().to_string();
        assert!(err.contains("cannot reach the Hugging Face hub") && err.contains("--model-dir"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_existing_model_directory_is_used_without_fetching() {
        let fixtures = crate::runtime::project_root().join("models/fixtures");
        let dir = ensure("tiny-e5", &fixtures).await.unwrap();
        assert_eq!(dir.config.kind, ModelKind::Embedding);
    }
}
