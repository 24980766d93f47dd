//! HTTP plumbing shared by every service: JSON errors, operational routes (`/health`, `/ready`,
//! `/metrics`, `/openapi.json`), API keys, per-route metrics, and serving with graceful shutdown.

pub mod auth;
pub mod error;
pub mod health;
pub mod integer;
pub mod main;
pub mod metrics;
pub mod openapi;
pub mod serve;
pub mod server;

pub use auth::{ApiKeys, AuthArgs};
pub use error::{ErrorBody, Json, engine_error_response, error_response};
pub use health::{HealthcheckArgs, ServiceCommand, healthcheck};
pub use main::{ServiceConfig, run_main};
pub use metrics::HttpMetrics;
pub use serve::{ConnectionLimits, serve, shutdown_signal};
pub use server::{
    Listen, Operations, Readiness, ServiceError, ServiceMetrics, engine_readiness, model_router, ops_routes,
    run_model_service,
};
