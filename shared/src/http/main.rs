//! The whole life of a model service's process, shared by embed-service and rerank-service:
//! parse and validate the config, check ONNX Runtime, find (or fetch) the model, serve, drain.

use std::path::Path;
use std::process::ExitCode;

use axum::Router;
use tokio::sync::watch;

use super::serve::ServeArgs;
use super::server::{Listen, ServiceError, run_model_service};
use crate::batcher::Readiness;
use crate::config::resolve_model;
use crate::fetch::FetchError;
use crate::model::{ModelDir, ModelError};
use crate::runtime::RuntimeError;

/// `EX_USAGE`: the configuration cannot work.
const EXIT_USAGE: u8 = 64;

/// What the process needs to know of a model service's configuration.
pub trait ServiceConfig: clap::Parser + std::fmt::Debug {
    /// The binary's name, which starts its error lines.
    const NAME: &'static str;
    /// Rejects settings that cannot work, with one line saying why.
    fn validate(&self) -> Result<(), String>;
    fn listen(&self) -> Listen;
    fn serve_args(&self) -> &ServeArgs;
    /// `--model-dir`, `--model` and `--models-dir`.
    fn model_source(&self) -> (Option<&Path>, &str, &Path);
    /// The subcommand given instead of serving, if any.
    fn command(&self) -> Option<&super::ServiceCommand>;
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("cannot start the async runtime: {0}")]
    Tokio(std::io::Error),
}

/// Runs a model service process and returns its exit code. `build` starts the service on the
/// model directory (given the draining flag) and returns its router and engine readiness.
pub fn run_main<C: ServiceConfig>(
    build: impl FnOnce(C, ModelDir, watch::Receiver<bool>) -> Result<(Router, watch::Receiver<Readiness>), ModelError>,
) -> ExitCode {
    let config = C::parse();
    let serve = config.serve_args();
    // Only the server exports traces; `healthcheck` and `fetch` just log.
    let no_traces = crate::telemetry::TraceArgs::default();
    let traces = if config.command().is_none() { &serve.traces } else { &no_traces };
    let _telemetry = match crate::telemetry::init(C::NAME, serve.log_json, traces) {
        Ok(telemetry) => telemetry,
        Err(why) => {
            eprintln!("{}: invalid configuration: {why}", C::NAME);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let fetch_only = match config.command() {
        Some(super::ServiceCommand::Healthcheck(args)) => {
            return super::healthcheck(args, config.listen().port, &config.serve_args().auth);
        }
        Some(super::ServiceCommand::Fetch) => true,
        None => false,
    };
    if fetch_only {
        let (model_dir, model, models_dir) = config.model_source();
        let fetched = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Tokio)
            .and_then(|rt| Ok(rt.block_on(resolve_model(model_dir, model, models_dir))?));
        return match fetched {
            Ok(dir) => {
                println!("{}", dir.path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", C::NAME);
                ExitCode::FAILURE
            }
        };
    }
    if let Err(why) = config.validate() {
        eprintln!("{}: invalid configuration: {why}", C::NAME);
        return ExitCode::from(EXIT_USAGE);
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Tokio)
        .and_then(|runtime| runtime.block_on(run(config, build)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", C::NAME);
            ExitCode::FAILURE
        }
    }
}

async fn run<C: ServiceConfig>(
    config: C,
    build: impl FnOnce(C, ModelDir, watch::Receiver<bool>) -> Result<(Router, watch::Receiver<Readiness>), ModelError>,
) -> Result<(), StartError> {
    // Fail at once, naming the set-up command, when ONNX Runtime is missing.
    let ort = crate::runtime::init()?;
    let (model_dir, model, models_dir) = config.model_source();
    let dir = resolve_model(model_dir, model, models_dir).await?;
    tracing::info!(onnxruntime = %ort.display(), model = %dir.path.display(), ?config, "starting");
    let listen = config.listen();
    run_model_service(listen, |draining| build(config, dir, draining)).await?;
    Ok(())
}
