//! embed-service binary: parse the config, start telemetry, build the app, serve it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use embed_service::{Config, Service, app};
use shared::batcher::Readiness;
use shared::config::resolve_model;
use tokio::sync::watch;

/// `EX_USAGE`: the configuration cannot work.
const EXIT_USAGE: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    shared::telemetry::init(config.serve.log_json);
    if let Err(why) = config.validate() {
        eprintln!("embed-service: invalid configuration: {why}");
        return ExitCode::from(EXIT_USAGE);
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed-service: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Fail at once, with the set-up command, when ONNX Runtime is missing.
    let ort = shared::runtime::init()?;
    let model_dir = resolve_model(config.model_dir.as_deref(), &config.model, &config.models_dir).await?;
    tracing::info!(onnxruntime = %ort.display(), model = %model_dir.path.display(), ?config, "starting");

    let listener = tokio::net::TcpListener::bind((config.host, config.port)).await?;
    let grace = Duration::from_secs(config.serve.shutdown_grace_secs);
    let (draining_tx, draining_rx) = watch::channel(false);
    let service = Service::start(config, &model_dir, draining_rx)?;
    let mut readiness = service.embedder().batcher().readiness();
    tracing::info!(addr = %listener.local_addr()?, "listening");

    let server = shared::http::serve(
        listener,
        app(service),
        shared::http::shutdown_signal(),
        grace,
        draining_tx,
    );
    tokio::select! {
        result = server => Ok(result?),
        state = readiness.wait_for(|r| !matches!(r, Readiness::Loading | Readiness::Ready)) => {
            let why = match state.as_deref() {
                Ok(Readiness::Failed(why)) => why.clone(),
                _ => "the inference threads stopped".to_string(),
            };
            anyhow::bail!("the model failed to load: {why}")
        }
    }
}
