//! HTTP plumbing shared by every service: reading JSON bodies, JSON errors, operational routes
//! (`/health`, `/ready`, `/metrics`, `/openapi.json`), API keys, per-route metrics, and serving
//! with graceful shutdown.

pub mod auth;
pub mod body;
pub mod cohere;
pub mod error;
pub mod health;
pub mod integer;
pub mod main;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod serve;
pub mod server;

pub use auth::{ApiKeys, AuthArgs};
pub use body::Json;
pub use error::{ErrorBody, engine_error_response, error_response};
pub use health::{HealthcheckArgs, ServiceCommand, healthcheck};
pub use main::{ServiceConfig, run_main};
pub use metrics::HttpMetrics;
pub use ops::{Operations, Readiness, ops_routes};
pub use serve::{ConnectionLimits, ServeArgs, serve, shutdown_signal};
pub use server::{Listen, ServiceError, ServiceMetrics, engine_readiness, model_router, run_model_service};
