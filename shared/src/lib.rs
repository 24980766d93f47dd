//! The engine room shared by the services: ONNX Runtime bootstrap, model directories,
//! tokenization, pooling, the dynamic batching engine and the HTTP plumbing.

pub mod batcher;
pub mod config;
pub mod embedder;
pub mod engine;
pub mod exact;
pub mod fetch;
pub mod http;
pub mod memory;
pub mod model;
pub mod niceness;
pub mod pooling;
pub mod reranker;
pub mod runtime;
pub mod session;
pub mod telemetry;
pub mod tokenize;

pub use batcher::{Batcher, BatcherError, Priority};
pub use embedder::Embedder;
pub use engine::EngineError;
pub use model::{ModelConfig, ModelDir, ModelKind};
pub use reranker::Reranker;
