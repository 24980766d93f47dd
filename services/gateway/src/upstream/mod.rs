//! The model services the gateway calls: the `Embed` and `Rerank` roles with their in-process
//! engines and remote clients (`engines`), one model service over HTTP with its time budget and
//! retries (`remote`), its replicas balanced (`replicas`), and what a failed call reports (`error`).

pub mod engines;
pub mod error;
pub mod remote;
pub mod replicas;

pub use engines::{Embed, Pacing, RemoteEmbedder, RemoteReranker, Rerank};
pub use error::UpstreamError;
pub use remote::RemoteService;
