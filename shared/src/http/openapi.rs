//! What every service's OpenAPI document shares: the operational routes (described in `ops`),
//! the error responses common to all JSON routes, and the optional bearer key.
//!
//! Each service derives its own routes from its handler types and passes them to [`document`].
//! The result is served at `GET /openapi.json` and checked in under `openapi/`; a test fails when
//! the two differ (`UPDATE_OPENAPI=1 cargo test -p <service> openapi` rewrites the file).

use utoipa::IntoResponses;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

pub use super::auth::Unauthorized;
use super::error::ErrorBody;

/// The name of the bearer scheme in `components.securitySchemes`.
pub const BEARER: &str = "api_key";

/// The responses of a JSON body that cannot be read.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only the derive reads it.
pub enum BadBody {
    /// The body is not JSON (`invalid_json`).
    #[response(status = 400)]
    InvalidJson(ErrorBody),
    /// The request body stopped arriving (`request_timeout`, --body-timeout-secs).
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// The body is over --max-body-bytes (`payload_too_large`), or holds more items than one
    /// request may (`too_many_texts`, `too_many_documents`).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json` (`unsupported_media_type`).
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// Well-formed JSON of the wrong shape or values; the message names the field
    /// (`invalid_request`, or a more precise code such as `empty_query`).
    #[response(status = 422)]
    Invalid(ErrorBody),
}

/// The responses of a route that needs a model, when it cannot answer.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only the derive reads it.
pub enum EngineBusy {
    /// The queue is full (`overloaded`); retry after `Retry-After` seconds.
    #[response(status = 429, headers(("Retry-After" = u32, description = "Seconds to wait before retrying")))]
    Overloaded(ErrorBody),
    /// The model is loading or the service is shutting down (`not_ready`, or a dependency's
    /// `*_unavailable`); retry after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u32, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
    /// A bug (`internal`); the detail is in the service's log, not the answer.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// A service's whole document: its own routes (`api`) plus the operational routes, the bearer
/// scheme, and the service's title and summary.
pub fn document(mut api: OpenApi, title: &str, description: &str) -> OpenApi {
    api.merge(super::ops::description());
    api.info = InfoBuilder::new()
        .title(title)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(description))
        .license(Some(utoipa::openapi::License::new("Apache-2.0")))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "Needed only when the service runs with --api-key / API_KEY. /health and /openapi.json are \
                     always open; /ready and /metrics unless --protect-ops.",
                ))
                .build(),
        ),
    );
    // Routes that say nothing themselves take the key when keys are on.
    api.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    api
}

/// Compares a service's document with its checked-in copy under `openapi/` and panics, naming
/// the fix, when they differ. With `UPDATE_OPENAPI=1` it rewrites the copy instead. For tests.
pub fn check_checked_in(document: &OpenApi, file_name: &str) {
    let path = crate::runtime::project_root().join("openapi").join(file_name);
    let served = format!("{}\n", super::ops::to_json(document));
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().expect("openapi/ has a parent")).expect("creating openapi/");
        std::fs::write(&path, &served).expect("writing the OpenAPI document");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != served {
        let line = checked_in.lines().zip(served.lines()).position(|(a, b)| a != b);
        panic!(
            "{} differs from the served /openapi.json (first difference at line {}). If the API change is \
             intended, run `UPDATE_OPENAPI=1 cargo test --workspace openapi` and commit the file.",
            path.display(),
            line.map_or_else(|| "the end".to_string(), |l| (l + 1).to_string())
        );
    }
}
