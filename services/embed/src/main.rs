//! embed-service binary: parse the config, start telemetry, build the app, serve it.

use std::process::ExitCode;

use embed_service::{Config, Service, app};

fn main() -> ExitCode {
    shared::http::run_main(|config: Config, model_dir, draining| {
        let service = Service::start(config, &model_dir, draining)?;
        let readiness = service.embedder().batcher().readiness();
        Ok((app(service), readiness))
    })
}
