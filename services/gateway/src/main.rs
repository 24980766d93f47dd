use std::process::ExitCode;

use clap::Parser;
use search_gateway::config::{Command, Config};
use search_gateway::jobs::ingest::{self, IngestError};
use shared::config::resolve_model;

/// `EX_USAGE`: the configuration cannot work.
const EXIT_USAGE: u8 = 64;
/// `EX_DATAERR`: `ingest --strict` met a bad line.
const EXIT_DATA: u8 = 65;
/// The shell's code for a process stopped by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let config = Config::parse();
    // Only the server exports traces; the one-shot commands just log.
    let no_traces = shared::telemetry::TraceArgs::default();
    let traces = if config.command.is_none() { &config.server.serve.traces } else { &no_traces };
    let _telemetry = match shared::telemetry::init("search-gateway", config.server.serve.log_json, traces) {
        Ok(telemetry) => telemetry,
        Err(why) => {
            eprintln!("search-gateway: invalid configuration: {why}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let valid = match &config.command {
        None => config.server.validate(),
        Some(Command::Ingest(args)) => args.validate(),
        Some(Command::Reindex(args)) => args.validate(),
        Some(Command::Eval(args)) => args.validate(),
        Some(Command::Healthcheck(args)) => {
            return shared::http::healthcheck(args, config.server.port, &config.server.serve.auth);
        }
        Some(Command::Fetch | Command::Sync(_)) => Ok(()),
    };
    if let Err(why) = valid {
        eprintln!("search-gateway: invalid configuration: {why}");
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("search-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match config.command {
        Some(Command::Healthcheck(_)) => unreachable!("answered above"),
        Some(Command::Fetch) => {
            let b = &config.server.backends;
            let fetch = async {
                resolve_model(b.embed_model_dir.as_deref(), &b.embed_model, &b.models_dir).await?;
                resolve_model(b.rerank_model_dir.as_deref(), &b.rerank_model, &b.models_dir).await
            };
            match runtime.block_on(fetch) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("search-gateway: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Sync(command)) => match runtime.block_on(search_gateway::sync::cli::run(&command)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("search-gateway sync: {e}");
                ExitCode::FAILURE
            }
        },
        None => match runtime.block_on(search_gateway::http::serve::run(config.server)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("search-gateway: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Reindex(args)) => match runtime.block_on(search_gateway::jobs::reindex::run(*args)) {
            Ok(summary) if summary.interrupted => ExitCode::from(EXIT_INTERRUPTED),
            Ok(summary) if summary.failed > 0 => ExitCode::FAILURE,
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("search-gateway reindex: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Eval(args)) => match runtime.block_on(search_gateway::eval::run(&args)) {
            Ok(report) if args.json => {
                println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
                ExitCode::SUCCESS
            }
            Ok(report) => {
                print!("{}", report.table());
                if args.rerank.contains(&search_gateway::config::Switch::On) {
                    println!(
                        "\nrerank on: the figures are only as good as the reranker ({}); a test fixture's random weights make its order noise",
                        report.reranker
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("search-gateway eval: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Ingest(args)) => match runtime.block_on(ingest::run(*args)) {
            Ok(summary) if summary.interrupted => ExitCode::from(EXIT_INTERRUPTED),
            Ok(summary) if summary.failed > 0 => ExitCode::FAILURE,
            Ok(_) => ExitCode::SUCCESS,
            Err(e @ IngestError::Strict { .. }) => {
                eprintln!("search-gateway ingest: {e}");
                ExitCode::from(EXIT_DATA)
            }
            Err(e) => {
                eprintln!("search-gateway ingest: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
