//! `search-gateway sync ...` from a terminal: the SQL for a DBA, and a running gateway's sync
//! routes (status, verify, resync), printed as JSON.

use crate::collections::profiles::Profiles;
use crate::config::{GatewayTarget, SyncCommand};

/// Runs the command; `Err` is one line for stderr.
pub async fn run(command: &SyncCommand) -> Result<(), String> {
    let (target, method, route, body) = match command {
        SyncCommand::Sql { collections_config, role } => {
            let profiles = Profiles::load(collections_config)?;
            let mut sources: Vec<(&String, &super::SourceSettings)> =
                profiles.iter().filter_map(|(name, p)| Some((name, p.source.as_ref()?))).collect();
            if sources.is_empty() {
                return Err(format!("{}: no collection has a [NAME.source]", collections_config.display()));
            }
            sources.sort_by_key(|(name, _)| name.as_str());
            let tables: Vec<&super::SourceSettings> = sources.iter().map(|(_, s)| *s).collect();
            print!("{}", super::schema::script(&tables, role.as_deref()));
            return Ok(());
        }
        SyncCommand::Status { target } => (target, reqwest::Method::GET, "sync", None),
        SyncCommand::Verify { target, repair } => {
            (target, reqwest::Method::POST, "sync/verify", Some(serde_json::json!({"repair": repair})))
        }
        SyncCommand::Resync { target } => (target, reqwest::Method::POST, "sync/resync", None),
    };
    let answer = call(target, method, route, body).await?;
    println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
    Ok(())
}

async fn call(
    target: &GatewayTarget,
    method: reqwest::Method,
    route: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, String> {
    let url = format!("{}/collections/{}/{route}", target.gateway_url.trim_end_matches('/'), target.collection);
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(key) = &target.gateway_api_key {
        request = request.bearer_auth(key.expose());
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
    match status.is_success() {
        true => Ok(answer),
        false => Err(format!("{url}: {status}: {}", answer["error"].as_str().unwrap_or("(no message)"))),
    }
}
