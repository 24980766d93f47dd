//! embed-service configuration: every option is a flag and an environment variable.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use shared::config::EngineArgs;
use shared::http::ServeArgs;
use shared::http::{Listen, ServiceCommand, ServiceConfig};
use shared::tokenize::InputType;

/// Multilingual E5 embeddings over HTTP, on ONNX Runtime with dynamic batching.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "embed-service", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free port, printed at start-up).
    #[arg(long, env = "PORT", default_value_t = 5555)]
    pub port: u16,
    /// Model directory (model.onnx, tokenizer.json, model.toml); wins over --model.
    #[arg(long, env = "MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Model name from models/models.toml, downloaded into --models-dir on first use.
    #[arg(long, env = "MODEL", default_value = "multilingual-e5-large")]
    pub model: String,
    /// Where named models are kept.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// input_type for requests that do not give one: query and passage add E5's prefixes, raw
    /// adds none (use raw, with pooling = "cls", for indexes built by fastembed 0.5.1).
    #[arg(long, env = "DEFAULT_INPUT_TYPE", value_enum, default_value_t = InputType::Query)]
    pub default_input_type: InputType,
    /// Most texts in one /embed/batch or /v1/embeddings request.
    #[arg(long, env = "MAX_CLIENT_BATCH", default_value_t = 256)]
    pub max_client_batch: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl ServiceConfig for Config {
    const NAME: &'static str = "embed-service";

    fn validate(&self) -> Result<(), String> {
        if self.max_client_batch == 0 {
            return Err("--max-client-batch must be at least 1".into());
        }
        self.serve.validate()?;
        self.engine.validate(self.max_client_batch)
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
        let config = Config::try_parse_from(["embed-service"]).unwrap();
        assert_eq!(config.port, 5555);
        assert_eq!(config.max_client_batch, 256);
        assert_eq!(config.default_input_type, InputType::Query);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_queue_smaller_than_a_client_batch_is_refused() {
        let config = Config::try_parse_from(["embed-service", "--queue-capacity", "10"]).unwrap();
        assert!(config.validate().unwrap_err().contains("--queue-capacity"));
    }
}
