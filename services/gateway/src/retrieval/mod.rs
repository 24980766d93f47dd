//! What a search retrieves by: the dense embedding, a BM25 sparse vector of the text, or both
//! fused by the engine (Qdrant's Query API: one prefetch per vector, then a fusion). The sparse
//! vectors are built here, by the gateway, with one tokenizer for both backends (`bm25`); the
//! engine applies the IDF (the sparse vector is declared with `modifier: idf`).

pub mod bm25;

use serde::{Deserialize, Serialize};

pub use bm25::{Bm25, Bm25Settings};

/// The name of the sparse vector in every collection that has one; the dense vector stays the
/// unnamed one (or the configured collection's named vector).
pub const SPARSE_VECTOR: &str = "bm25";

/// A sparse vector: term ids (sorted, unique) and their weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// `dense`: nearest by the embedding; `sparse`: BM25 over the text's terms; `hybrid`: both, fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    Dense,
    Sparse,
    Hybrid,
}

impl Retrieval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Sparse => "sparse",
            Self::Hybrid => "hybrid",
        }
    }

    /// Whether the query needs its embedding (and the sparse vector, `needs_sparse`).
    pub fn needs_dense(self) -> bool {
        self != Self::Sparse
    }

    pub fn needs_sparse(self) -> bool {
        self != Self::Dense
    }
}

impl std::str::FromStr for Retrieval {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(Self::Dense),
            "sparse" => Ok(Self::Sparse),
            "hybrid" => Ok(Self::Hybrid),
            _ => Err(format!("unknown retrieval {s:?}: use dense, sparse or hybrid")),
        }
    }
}

/// How a hybrid search fuses its two rankings, in the engine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Fusion {
    /// `rrf` (reciprocal rank fusion, Qdrant's: a document at position `p`, from 0, of a ranking
    /// of weight `w` adds `1 / ((p + 1) / w + k - 1)`, which is `1 / (k + p)` at `w = 1`: a weight
    /// stretches the positions) or `dbsf` (distribution-based score fusion: scores normalized
    /// by their mean and spread, summed).
    #[serde(default)]
    pub method: FusionMethod,
    /// RRF's `k`, 1-1000 [default: 5: a small `k` keeps the dense ranking's top decisive].
    #[serde(default = "default_k")]
    #[schema(default = 5, minimum = 1, maximum = 1000)]
    pub k: u32,
    /// RRF's weight of the sparse ranking, the dense one weighing 1; 0-10 [default: 0.05: BM25's
    /// first document counts as dense's 20th].
    #[serde(default = "default_sparse_weight")]
    #[schema(default = 0.05, minimum = 0.0, maximum = 10.0)]
    pub sparse_weight: f32,
}

/// How the rankings are fused: `rrf` or `dbsf`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FusionMethod {
    #[default]
    Rrf,
    Dbsf,
}

fn default_k() -> u32 {
    Fusion::default().k
}

fn default_sparse_weight() -> f32 {
    Fusion::default().sparse_weight
}

impl Default for Fusion {
    /// BM25 as a tie-breaker of the dense ranking, chosen from the measurements in BENCHMARKS.md
    /// ("Relevance"): plain RRF (k 60, equal weights) lost to dense alone on German and on the
    /// cross-lingual pool, where BM25 sees only the query's own language; any weight that lets
    /// BM25 move documents further lost there too, while this one gained on every collection.
    fn default() -> Self {
        Self { method: FusionMethod::Rrf, k: 5, sparse_weight: 0.05 }
    }
}

impl Fusion {
    /// `Err` naming the field when a value is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.k) {
            return Err(format!("`fusion.k` is {}; it must be 1-1000", self.k));
        }
        if !(0.0..=10.0).contains(&self.sparse_weight) {
            return Err(format!("`fusion.sparse_weight` is {}; it must be 0-10", self.sparse_weight));
        }
        Ok(())
    }

    /// What identifies it in a cache key.
    pub fn canonical(&self) -> String {
        match self.method {
            FusionMethod::Rrf => format!("rrf:{}:{}", self.k, self.sparse_weight),
            FusionMethod::Dbsf => "dbsf".into(),
        }
    }
}

/// How one search uses the index: `hnsw_ef` (the search's beam; larger finds more of the true
/// nearest, slower) and `exact` (a full scan, no index: the reference the index is measured by).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchParams {
    pub hnsw_ef: Option<usize>,
    pub exact: bool,
}

/// The range of a search's `hnsw_ef`.
pub const HNSW_EF_RANGE: std::ops::RangeInclusive<usize> = 1..=10_000;

impl SearchParams {
    /// What identifies it in a cache key.
    pub fn canonical(&self) -> String {
        match (self.exact, self.hnsw_ef) {
            (true, _) => "exact".into(),
            (false, Some(ef)) => format!("ef{ef}"),
            (false, None) => String::new(),
        }
    }
}

/// A search as the store runs it.
#[derive(Debug, Clone)]
pub struct StoreQuery {
    /// The query's embedding (`None` for a sparse-only search).
    pub dense: Option<Vec<f32>>,
    /// The query's BM25 vector (`None` for a dense-only search).
    pub sparse: Option<SparseVector>,
    pub fusion: Fusion,
    pub limit: usize,
    /// How the dense search uses the index.
    pub params: SearchParams,
}

impl StoreQuery {
    pub fn dense(vector: Vec<f32>, limit: usize) -> Self {
        Self { dense: Some(vector), sparse: None, fusion: Fusion::default(), limit, params: SearchParams::default() }
    }

    /// How many results to ask the engine for when it runs `retrieval`: for hybrid the whole
    /// union of the two prefetches (each `limit` deep), which the store cuts to `limit` itself
    /// with ties broken by id; otherwise `limit`.
    pub fn engine_limit(&self, retrieval: Retrieval) -> usize {
        if retrieval == Retrieval::Hybrid { 2 * self.limit } else { self.limit }
    }

    /// What the store is asked for; a collection without sparse vectors answers it dense-only
    /// (when it has the dense vector to do so).
    pub fn asked(&self) -> Retrieval {
        match (&self.dense, &self.sparse) {
            (Some(_), Some(_)) => Retrieval::Hybrid,
            (None, Some(_)) => Retrieval::Sparse,
            _ => Retrieval::Dense,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_takes_defaults_and_refuses_out_of_range_values() {
        let fusion: Fusion = serde_json::from_str("{}").unwrap();
        assert_eq!(fusion, Fusion::default());
        let dbsf: Fusion = serde_json::from_str(r#"{"method": "dbsf"}"#).unwrap();
        assert_eq!(dbsf.method, FusionMethod::Dbsf);
        assert!(serde_json::from_str::<Fusion>(r#"{"methd": "rrf"}"#).is_err(), "typos are refused");
        let bad_k = Fusion { k: 0, ..Fusion::default() };
        assert!(bad_k.validate().unwrap_err().contains("fusion.k"));
        let bad_weight = Fusion { sparse_weight: -1.0, ..Fusion::default() };
        assert!(bad_weight.validate().unwrap_err().contains("fusion.sparse_weight"));
        assert_ne!(Fusion::default().canonical(), Fusion { k: 61, ..Fusion::default() }.canonical());
    }

    #[test]
    fn retrievals_parse_and_say_what_they_need() {
        assert_eq!("hybrid".parse::<Retrieval>(), Ok(Retrieval::Hybrid));
        assert!("bm25".parse::<Retrieval>().is_err());
        assert!(!Retrieval::Sparse.needs_dense() && Retrieval::Sparse.needs_sparse());
        assert!(Retrieval::Hybrid.needs_dense() && Retrieval::Hybrid.needs_sparse());
    }
}
