use std::process::ExitCode;

use clap::Parser;
use search_gateway::Config;

/// `EX_USAGE`: the configuration cannot work.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let config = Config::parse();
    shared::telemetry::init(config.server.serve.log_json);
    if let Err(why) = config.server.validate() {
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
    match runtime.block_on(search_gateway::serve::run(config.server)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("search-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
