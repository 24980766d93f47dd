//! The batch jobs of the `search-gateway` binary: `ingest` (a JSONL file into a collection),
//! `reindex` (a collection into a new one through the same pipeline, then an alias switched), and
//! `sink`, where both write (this process's engines and store, or a running gateway's API).

pub mod ingest;
pub mod reindex;
pub mod sink;
