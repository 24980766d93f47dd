//! The `healthcheck` subcommand every binary has: an HTTP GET of its own `/ready`, so container
//! images need no curl.

use std::process::ExitCode;
use std::time::Duration;

/// Check that the service on this machine is ready (for container health checks).
#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// URL to check [default: http://127.0.0.1:<PORT>/ready].
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

/// What every service binary can do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ServiceCommand {
    /// Exit 0 if the service on this machine answers 200 on /ready, else 1.
    Healthcheck(HealthcheckArgs),
    /// Download the model (--model / MODEL) into --models-dir and exit (to bake it into an image).
    Fetch,
}

/// GETs the readiness URL (the service's own port by default); 0 if it answers 200. The
/// service's own first API key, if it has keys, goes along (for `--protect-ops`).
pub fn healthcheck(args: &HealthcheckArgs, port: u16, auth: &super::AuthArgs) -> ExitCode {
    let url = args.url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{port}/ready"));
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let check = async {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        let mut request = client.get(&url);
        if let Some(key) = auth.keys().ok().and_then(|keys| keys.into_iter().next()) {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.text().await.unwrap_or_default()))
    };
    let result = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(check));
    match result {
        Ok(Ok((status, _))) if status.is_success() => {
            println!("ready: {url}");
            ExitCode::SUCCESS
        }
        Ok(Ok((status, body))) => {
            eprintln!("not ready: {url} answered {status}: {}", body.trim());
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("not ready: {url}: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("healthcheck: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
