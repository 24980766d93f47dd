//! rerank-service configuration: every option is a flag and an environment variable.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use shared::config::EngineArgs;
use shared::http::ServeArgs;
use shared::http::{Listen, ServiceCommand, ServiceConfig};

/// BGE cross-encoder reranking over HTTP, on ONNX Runtime with dynamic batching.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "rerank-service", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free port, printed at start-up).
    #[arg(long, env = "PORT", default_value_t = 5556)]
    pub port: u16,
    /// Model directory (model.onnx, tokenizer.json, model.toml); wins over --model.
    #[arg(long, env = "MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Model name from models/models.toml, downloaded into --models-dir on first use.
    #[arg(long, env = "MODEL", default_value = "bge-reranker-base")]
    pub model: String,
    /// Where named models are kept.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Most documents in one /rerank request.
    #[arg(long, env = "MAX_DOCUMENTS", default_value_t = 1000)]
    pub max_documents: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl ServiceConfig for Config {
    const NAME: &'static str = "rerank-service";

    fn validate(&self) -> Result<(), String> {
        if self.max_documents == 0 {
            return Err("--max-documents must be at least 1".into());
        }
        self.serve.validate()?;
        self.engine.validate(self.max_documents)
    }

    fn listen(&self) -> Listen {
        Listen { host: self.host, port: self.port, limits: self.serve.limits() }
    }

    fn serve_args(&self) -> &ServeArgs {
        &self.serve
    }

    fn model_source(&self) -> (Option<&Path>, &str, &Path) {
        (self.model_dir.as_deref(), &self.model, &self.models_dir)
    }

    fn command(&self) -> Option<&ServiceCommand> {
        self.command.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use shared::http::ServiceConfig;

    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let config = Config::try_parse_from(["rerank-service"]).unwrap();
        assert_eq!((config.port, config.max_documents, config.model.as_str()), (5556, 1000, "bge-reranker-base"));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_queue_smaller_than_a_request_is_refused() {
        let config = Config::try_parse_from(["rerank-service", "--queue-capacity", "999"]).unwrap();
        assert!(config.validate().unwrap_err().contains("--queue-capacity"));
    }
}
