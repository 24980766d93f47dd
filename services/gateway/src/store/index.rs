//! How a collection is indexed, set per collection in `--collections-config` (`[name.index]`).
//! The names and ranges are Qdrant's, and both backends take
//! them: qdrant-edge when it creates the collection's shard, a Qdrant server as the collection's
//! creation parameters. (How one search uses the index is `retrieval::SearchParams`.)
//!
//! ```toml
//! [profiles.index]
//! hnsw_m = 16                  # HNSW links per point, 0 (no HNSW) or 4-128 [default: 16]
//! hnsw_ef_construct = 100      # the build's beam, 4-4096 [default: 100]
//! indexing_threshold_kb = 10000    # a segment with more vector KB gets HNSW; 0: never [default: 10000]
//! quantization = "int8"        # 4x smaller vectors to search, candidates rescored from the originals
//! vectors_on_disk = true       # the original vectors memory-mapped, not in RAM [default: false]
//! default_segment_number = 2   # segments the optimizer merges towards; 0: by the CPUs (2-8) [default: 0]
//! max_segment_size_kb = 4000000    # the largest segment it builds, in KB of vectors [default: 256000 per indexing thread]
//! ```
//!
//! A search visits every segment, each through its own graph: fewer, larger segments make a
//! search of a big collection cheaper and each index build (and a rewrite's rebuild) longer.

use serde::Deserialize;

/// A collection's index settings; unset ones are Qdrant's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSettings {
    pub hnsw_m: Option<usize>,
    pub hnsw_ef_construct: Option<usize>,
    pub indexing_threshold_kb: Option<usize>,
    pub quantization: Option<Quantization>,
    pub vectors_on_disk: Option<bool>,
    pub default_segment_number: Option<usize>,
    pub max_segment_size_kb: Option<usize>,
}

/// Vector quantization: `int8` (scalar, one byte per float, kept in RAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    Int8,
}

pub const DEFAULT_HNSW_M: usize = 16;
pub const DEFAULT_HNSW_EF_CONSTRUCT: usize = 100;
/// More segments than this only make every search visit more graphs.
const MAX_SEGMENT_NUMBER: usize = 64;

impl IndexSettings {
    /// `Err` naming the setting when a value is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(m) = self.hnsw_m
            && m != 0
            && !(4..=128).contains(&m)
        {
            return Err(format!("index.hnsw_m is {m}; it must be 0 (no HNSW index) or 4-128"));
        }
        if let Some(ef) = self.hnsw_ef_construct
            && !(4..=4096).contains(&ef)
        {
            return Err(format!("index.hnsw_ef_construct is {ef}; it must be 4-4096"));
        }
        if let Some(kb) = self.indexing_threshold_kb
            && kb > 1 << 30
        {
            return Err(format!("index.indexing_threshold_kb is {kb}; it must be at most 2^30 (0 means never)"));
        }
        if let Some(n) = self.default_segment_number
            && n > MAX_SEGMENT_NUMBER
        {
            return Err(format!(
                "index.default_segment_number is {n}; it must be at most {MAX_SEGMENT_NUMBER} (0 means by the CPUs)"
            ));
        }
        if let Some(kb) = self.max_segment_size_kb
            && !(1..=1 << 30).contains(&kb)
        {
            return Err(format!("index.max_segment_size_kb is {kb}; it must be 1-2^30"));
        }
        Ok(())
    }

    pub fn hnsw_m(&self) -> usize {
        self.hnsw_m.unwrap_or(DEFAULT_HNSW_M)
    }

    pub fn hnsw_ef_construct(&self) -> usize {
        self.hnsw_ef_construct.unwrap_or(DEFAULT_HNSW_EF_CONSTRUCT)
    }

    pub fn int8(&self) -> bool {
        self.quantization == Some(Quantization::Int8)
    }

    pub fn vectors_on_disk(&self) -> bool {
        self.vectors_on_disk.unwrap_or(false)
    }

    /// The bytes of RAM its vectors take by these settings: the originals (unless on disk) and
    /// the quantized copies; an estimate, which leaves out the HNSW links and the payloads.
    pub fn vector_ram_bytes(&self, points: u64, dimension: usize) -> u64 {
        let originals = if self.vectors_on_disk() { 0 } else { 4 * dimension as u64 };
        let quantized = if self.int8() { dimension as u64 } else { 0 };
        points * (originals + quantized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_out_of_range_values_name_the_setting() {
        let settings: IndexSettings =
            toml::from_str("hnsw_m = 32\nquantization = \"int8\"\nvectors_on_disk = true").unwrap();
        assert_eq!((settings.hnsw_m(), settings.hnsw_ef_construct(), settings.int8()), (32, 100, true));
        assert!(toml::from_str::<IndexSettings>("quantization = \"int4\"").is_err());
        assert!(toml::from_str::<IndexSettings>("hnsw_mm = 3").is_err(), "typos are refused");
        for (bad, field) in [
            (IndexSettings { hnsw_m: Some(2), ..Default::default() }, "hnsw_m"),
            (IndexSettings { hnsw_ef_construct: Some(1), ..Default::default() }, "hnsw_ef_construct"),
            (IndexSettings { indexing_threshold_kb: Some(usize::MAX), ..Default::default() }, "indexing_threshold_kb"),
            (IndexSettings { default_segment_number: Some(65), ..Default::default() }, "default_segment_number"),
            (IndexSettings { max_segment_size_kb: Some(0), ..Default::default() }, "max_segment_size_kb"),
        ] {
            assert!(bad.validate().unwrap_err().contains(field), "{field}");
        }
        assert!(IndexSettings { hnsw_m: Some(0), ..Default::default() }.validate().is_ok(), "0: no HNSW");
        let segments: IndexSettings =
            toml::from_str("default_segment_number = 0\nmax_segment_size_kb = 4000000").unwrap();
        assert!(segments.validate().is_ok(), "0 segments: by the CPUs");
        assert_eq!(segments.max_segment_size_kb, Some(4_000_000));
    }

    #[test]
    fn ram_follows_the_settings() {
        let plain = IndexSettings::default();
        let int8_on_disk =
            IndexSettings { quantization: Some(Quantization::Int8), vectors_on_disk: Some(true), ..plain };
        assert_eq!(plain.vector_ram_bytes(1000, 1024), 4_096_000);
        assert_eq!(int8_on_disk.vector_ram_bytes(1000, 1024), 1_024_000);
    }
}
