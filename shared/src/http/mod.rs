//! HTTP plumbing shared by every service: JSON errors, operational routes (`/health`, `/ready`,
//! `/metrics`), per-route metrics, and serving with graceful shutdown.

pub mod error;
pub mod metrics;
pub mod server;

pub use error::{ErrorBody, Json, error_response};
pub use metrics::HttpMetrics;
pub use server::{Readiness, ops_routes, serve, shutdown_signal};
