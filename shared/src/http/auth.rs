//! Optional API keys: `Authorization: Bearer <key>` on every route but the open ones.
//!
//! Keys are compared as SHA-256 digests with `subtle`'s constant-time equality, so neither a key's
//! content nor its length leaks through timing. `/health` (container liveness) and the API's own
//! description (`/openapi.json`, and the gateway's playground page, which asks for the key) are
//! always open; `/ready` and `/metrics` are open unless `--protect-ops`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::IntoResponses;

use super::error::{ErrorBody, error_response};
use crate::config::Secret;

/// Who may call the API.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// API keys a client must send as `Authorization: Bearer <key>`, comma-separated (several
    /// let keys be rotated without downtime). Unset: the API is open.
    #[arg(long = "api-key", env = "API_KEY", value_name = "KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<Secret>,
    /// A file of API keys, one per line (Docker and Kubernetes secrets); added to --api-key.
    #[arg(long, env = "API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// With API keys on, also require one on /ready and /metrics (by default they stay open for
    /// health probes and scrapers; /health is always open).
    #[arg(long, env = "PROTECT_OPS")]
    pub protect_ops: bool,
    /// The keys once read (the file is read once: by validation at start-up).
    #[arg(skip)]
    loaded: Arc<OnceLock<Result<Option<ApiKeys>, String>>>,
}

impl AuthArgs {
    /// Every configured key: `--api-key` plus the lines of `--api-key-file`. Blank keys are errors
    /// (an empty `API_KEY=` would otherwise look like auth switched on with no key).
    pub fn keys(&self) -> Result<Vec<Secret>, String> {
        // `API_KEY=` (as compose writes an unset `${VAR:-}`) means no key, not an empty one.
        let unset = self.api_keys.len() == 1 && self.api_keys[0].expose().is_empty();
        let mut keys = if unset { Vec::new() } else { self.api_keys.clone() };
        if let Some(path) = self.api_key_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--api-key-file {}: cannot read it: {e}", path.display()))?;
            keys.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(Secret::from));
            if keys.is_empty() {
                return Err(format!("--api-key-file {} holds no key", path.display()));
            }
        }
        if keys.iter().any(|k| k.expose().trim().is_empty()) {
            return Err("--api-key: a key is empty (check for a stray comma)".into());
        }
        Ok(keys)
    }

    /// The keys as the middleware checks them; `None` when auth is off.
    pub fn api_keys(&self) -> Result<Option<ApiKeys>, String> {
        self.loaded.get_or_init(|| self.load()).clone()
    }

    fn load(&self) -> Result<Option<ApiKeys>, String> {
        let keys = self.keys()?;
        if keys.is_empty() {
            if self.protect_ops {
                return Err("--protect-ops needs --api-key or --api-key-file".into());
            }
            return Ok(None);
        }
        Ok(Some(ApiKeys { digests: keys.iter().map(|k| digest(k.expose())).collect(), protect_ops: self.protect_ops }))
    }
}

/// The digests of the accepted keys.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
    protect_ops: bool,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys, protect_ops: {})", self.digests.len(), self.protect_ops)
    }
}

impl ApiKeys {
    /// Whether `presented` is one of the keys; every key is compared, in constant time.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        self.digests.iter().fold(subtle::Choice::from(0), |found, key| found | key.ct_eq(&presented)).into()
    }

    fn is_open(&self, path: &str) -> bool {
        matches!(path, "/health" | "/openapi.json" | "/")
            || (!self.protect_ops && matches!(path, "/ready" | "/metrics"))
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key in `Authorization: Bearer <key>`, if the header has that form.
fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Middleware: 401 `unauthorized` unless the route is open or the request carries a valid key.
pub async fn require_key(State(keys): State<Arc<ApiKeys>>, request: Request, next: Next) -> Response {
    if keys.is_open(request.uri().path()) || bearer(&request).is_some_and(|key| keys.accepts(key)) {
        return next.run(request).await;
    }
    let message = match request.headers().contains_key(header::AUTHORIZATION) {
        true => "the API key is not valid",
        false => "an API key is required: send `Authorization: Bearer <key>`",
    };
    let mut response = error_response(StatusCode::UNAUTHORIZED, "unauthorized", message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The answer to a request without a valid key, when API keys are on.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only the derive reads it.
pub enum Unauthorized {
    /// No `Authorization: Bearer <key>`, or a key that is not valid (`unauthorized`).
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "`Bearer`")))]
    Unauthorized(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(args: &[&str]) -> Result<Option<ApiKeys>, String> {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            auth: AuthArgs,
        }
        Cli::try_parse_from([&["cli"], args].concat()).map_err(|e| e.to_string())?.auth.api_keys()
    }

    #[test]
    fn any_listed_key_is_accepted_and_nothing_else() {
        let keys = keys(&["--api-key", "alpha,beta"]).unwrap().unwrap();
        assert!(keys.accepts("alpha") && keys.accepts("beta"));
        for wrong in ["", "alph", "alphaa", "ALPHA", "alpha,beta"] {
            assert!(!keys.accepts(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn keys_come_from_a_file_too_and_blank_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("auth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "one\n\n  two  \n").unwrap();
        let keys = keys(&["--api-key-file", file.to_str().unwrap()]).unwrap().unwrap();
        assert!(keys.accepts("one") && keys.accepts("two") && !keys.accepts(""));
        std::fs::write(&file, "\n").unwrap();
        assert!(super::tests::keys(&["--api-key-file", file.to_str().unwrap()]).unwrap_err().contains("no key"));
        assert!(super::tests::keys(&["--api-key", "a,,b"]).unwrap_err().contains("empty"));
        assert!(super::tests::keys(&["--protect-ops"]).unwrap_err().contains("--api-key"));
        assert!(super::tests::keys(&[]).unwrap().is_none());
        // What `API_KEY=` and `API_KEY_FILE=` in the environment give (compose's unset `${VAR:-}`).
        let unset =
            AuthArgs { api_keys: vec![Secret::from("")], api_key_file: Some(PathBuf::new()), ..Default::default() };
        assert!(unset.api_keys().unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_routes_depend_on_protect_ops() {
        let open = keys(&["--api-key", "k"]).unwrap().unwrap();
        let closed = keys(&["--api-key", "k", "--protect-ops"]).unwrap().unwrap();
        for path in ["/health", "/openapi.json", "/"] {
            assert!(open.is_open(path) && closed.is_open(path), "{path}");
        }
        assert!(open.is_open("/ready") && open.is_open("/metrics"));
        assert!(!closed.is_open("/ready") && !closed.is_open("/metrics"));
        assert!(!open.is_open("/search") && !open.is_open("/healthz") && !open.is_open("/health/"));
    }

    #[test]
    fn debug_output_shows_no_key() {
        let keys = keys(&["--api-key", "s3cret"]).unwrap().unwrap();
        assert!(!format!("{keys:?}").contains("s3cret"));
    }
}
