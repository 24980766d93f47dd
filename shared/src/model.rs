//! The model-directory contract: `model.onnx` (+ `model.onnx_data`), `tokenizer.json`, `model.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pooling::Pooling;

/// What a model does, which decides how its output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Embedding,
    Reranker,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedding => "embedding",
            Self::Reranker => "reranker",
        }
    }
}

/// `model.toml`, validated: unknown keys are rejected so a typo never silently changes behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Embedding only; defaults to mean pooling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    /// Embedding only; defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passage_prefix: Option<String>,
}

fn default_max_length() -> usize {
    512
}

impl ModelConfig {
    pub fn pooling(&self) -> Pooling {
        self.pooling.unwrap_or(Pooling::Mean)
    }

    pub fn normalize(&self) -> bool {
        self.normalize.unwrap_or(true)
    }

    fn validate(&self) -> Result<(), String> {
        // Room for at least the special tokens and one token of text.
        if self.max_length < 4 {
            return Err(format!("max_length = {} is too small (at least 4)", self.max_length));
        }
        if self.kind == ModelKind::Reranker {
            for (key, set) in [
                ("pooling", self.pooling.is_some()),
                ("normalize", self.normalize.is_some()),
                ("query_prefix", self.query_prefix.is_some()),
                ("passage_prefix", self.passage_prefix.is_some()),
            ] {
                if set {
                    return Err(format!("`{key}` applies to embedding models only, not to kind = \"reranker\""));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {0} does not exist")]
    NoDirectory(PathBuf),
    #[error("model directory {dir} has no {file}")]
    MissingFile { dir: PathBuf, file: &'static str },
    #[error(
        "{0} is a symlink; ONNX Runtime >= 1.24 rejects external data reached through a symlink: copy the real file there"
    )]
    SymlinkedData(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("cannot load ONNX model {path}: {message}")]
    Onnx { path: PathBuf, message: String },
    #[error("ONNX model {path} does not fit a {kind:?} model: {message}")]
    Graph { path: PathBuf, kind: ModelKind, message: String },
}

/// A model directory whose files exist and whose `model.toml` is valid.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    pub config: ModelConfig,
}

impl ModelDir {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_dir() {
            return Err(ModelError::NoDirectory(path));
        }
        for file in ["model.onnx", "tokenizer.json", "model.toml"] {
            if !path.join(file).is_file() {
                return Err(ModelError::MissingFile { dir: path, file });
            }
        }
        let data = path.join("model.onnx_data");
        if data.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ModelError::SymlinkedData(data));
        }
        let toml_path = path.join("model.toml");
        let text = std::fs::read_to_string(&toml_path)
            .map_err(|source| ModelError::Read { path: toml_path.clone(), source })?;
        let config = parse_config(&text).map_err(|message| ModelError::Config { path: toml_path, message })?;
        Ok(Self { path, config })
    }

    pub fn onnx_path(&self) -> PathBuf {
        self.path.join("model.onnx")
    }

    pub fn tokenizer_path(&self) -> PathBuf {
        self.path.join("tokenizer.json")
    }

    /// The directory's name, used as the model's name in `/info` and in cache keys.
    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
    }
}

pub fn parse_config(text: &str) -> Result<ModelConfig, String> {
    let config: ModelConfig = toml::from_str(text).map_err(|e| e.message().to_string())?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_e5_config() {
        let config = parse_config(
            "kind = \"embedding\"\npooling = \"mean\"\nnormalize = true\nmax_length = 512\nquery_prefix = \"query: \"\npassage_prefix = \"passage: \"\n",
        )
        .unwrap();
        assert_eq!(config.kind, ModelKind::Embedding);
        assert_eq!(config.pooling(), Pooling::Mean);
        assert_eq!(config.query_prefix.as_deref(), Some("query: "));
    }

    #[test]
    fn defaults_are_mean_normalized_512() {
        let config = parse_config("kind = \"embedding\"").unwrap();
        assert_eq!((config.pooling(), config.normalize(), config.max_length), (Pooling::Mean, true, 512));
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = parse_config("kind = \"embedding\"\npoolling = \"cls\"").unwrap_err();
        assert!(err.contains("poolling"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse_config("kind = \"classifier\"").is_err());
        assert!(parse_config("kind = \"embedding\"\npooling = \"max\"").is_err());
        assert!(parse_config("kind = \"embedding\"\nmax_length = 2").is_err());
        let err = parse_config("kind = \"reranker\"\npooling = \"cls\"").unwrap_err();
        assert!(err.contains("embedding models only"), "{err}");
    }

    #[test]
    fn open_reports_the_missing_file() {
        let dir = std::env::temp_dir().join(format!("model-dir-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.onnx"), b"").unwrap();
        let err = ModelDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
        std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
        std::fs::write(dir.join("model.toml"), b"kind = \"embedding\"").unwrap();
        std::os::unix::fs::symlink(dir.join("model.onnx"), dir.join("model.onnx_data")).unwrap();
        let err = ModelDir::open(&dir).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_tiny_fixture_opens() {
        let dir = ModelDir::open(crate::runtime::project_root().join("models/fixtures/tiny-e5")).unwrap();
        assert_eq!(dir.name(), "tiny-e5");
        assert_eq!(dir.config.passage_prefix.as_deref(), Some("passage: "));
    }
}
