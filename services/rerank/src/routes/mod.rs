//! One module per route group.

pub(crate) mod cohere;
pub(crate) mod info;
pub(crate) mod rerank;
