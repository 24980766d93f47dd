//! Collections the gateway did not build: how their points are laid out and how their queries
//! must be embedded, read from `--collections-config` (TOML, one table per collection).
//!
//! ```toml
//! [profiles_v1]                       # built by the old Python stack (fastembed 0.5.1)
//! text_key = "text"                   # the payload key holding the text to rerank
//! id_key = "profile_id"               # the payload key holding the app's id [default: the point id]
//! vector = "fast-multilingual-e5-large"   # a named vector (Qdrant server) [default: unnamed]
//! embed_model_dir = "models/multilingual-e5-large-cls"   # or embed_url = "http://embed-legacy:5555"
//! input_type = "raw"                  # no E5 prefixes, as fastembed fed the model
//! writable = false                    # writes are refused unless true
//!
//! [profiles_v0]                       # built by this gateway with the previous model: only
//! embed_url = "http://embed-old:5555" # its embedder is pinned while it is re-indexed
//! writable = true
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shared::tokenize::InputType;

use super::source::SourceSettings;
use crate::retrieval::{Bm25, Bm25Settings};
use crate::store::index::IndexSettings;
use crate::store::{HASH_KEY, ID_KEY, PointKeys, PointLayouts, TEXT_KEY};

/// One collection's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The payload key holding the document text; unset: the collection was built by the gateway
    /// (its own keys), and only its embedder or vector differ.
    pub text_key: Option<String>,
    /// The payload key holding the app's document id; unset: the point id is the id.
    pub id_key: Option<String>,
    /// The named vector to search (Qdrant server); unset: the collection's unnamed vector.
    pub vector: Option<String>,
    /// The model directory whose embedder built the collection (in process).
    pub embed_model_dir: Option<PathBuf>,
    /// An embed-service serving the model that built the collection.
    pub embed_url: Option<String>,
    /// The input type the collection's texts were embedded with; queries use it too [default:
    /// `query` for queries and `passage` for documents, as the gateway embeds].
    pub input_type: Option<InputType>,
    /// Whether the gateway may write to the collection (in its layout: text and id under their
    /// keys, no keys of the gateway's own) [default: false for a collection the table says was
    /// built otherwise (keys, vector, embedder or input type of its own), true for one whose
    /// table only sets `bm25` or `sparse`].
    pub writable: Option<bool>,
    /// How its BM25 sparse vectors tokenize (`[name.bm25]`: `tokenizer`, `language`, `stemming`,
    /// `stopwords`, `k`, `b`, `avg_len`) [default: multilingual, no stemming, no stopwords].
    pub bm25: Option<Bm25Settings>,
    /// Whether its documents get BM25 sparse vectors [default: true]; `false`: dense retrieval
    /// only, for a smaller collection and a faster ingest (`sparse` searches are refused, `hybrid`
    /// ones answer dense).
    pub sparse: Option<bool>,
    /// How it is indexed when created (`[name.index]`: `hnsw_m`, `hnsw_ef_construct`,
    /// `indexing_threshold_kb`, `quantization`, `vectors_on_disk`, `default_segment_number`,
    /// `max_segment_size_kb`) [default: Qdrant's].
    pub index: Option<IndexSettings>,
    /// The PostgreSQL table the collection follows (`[name.source]`: `table`, `key`, `text`,
    /// `payload`, `where`, `url_env`; `crate::sync`); its documents are written by sync, and the
    /// API's writes are refused unless `writable = true`.
    pub source: Option<SourceSettings>,
}

impl Profile {
    /// Whether the table only tunes retrieval (`bm25`, `sparse`, `index`) of a collection of the
    /// gateway's own.
    fn only_retrieval(&self) -> bool {
        let Self {
            text_key,
            id_key,
            vector,
            embed_model_dir,
            embed_url,
            input_type,
            writable: _,
            bm25: _,
            sparse: _,
            index: _,
            source: _,
        } = self;
        text_key.is_none()
            && id_key.is_none()
            && vector.is_none()
            && embed_model_dir.is_none()
            && embed_url.is_none()
            && input_type.is_none()
    }
}

/// Every configured collection; the others are the gateway's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profiles(HashMap<String, Profile>);

impl Profiles {
    /// Reads `--collections-config`; an error names the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("--collections-config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--collections-config {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let profiles: HashMap<String, Profile> = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, profile) in &profiles {
            crate::store::validate_collection_name(name)?;
            let reserved = [TEXT_KEY, ID_KEY, HASH_KEY];
            if let Some(key) = &profile.text_key
                && (key.is_empty() || reserved.contains(&key.as_str()))
            {
                return Err(format!("[{name}] text_key must name the collection's own text key (or be left out)"));
            }
            if profile.text_key.is_none() && profile.id_key.is_some() {
                return Err(format!("[{name}] id_key needs text_key (a collection of the gateway's own has neither)"));
            }
            if profile.embed_model_dir.is_some() && profile.embed_url.is_some() {
                return Err(format!("[{name}] give embed_model_dir or embed_url, not both"));
            }
            if profile.sparse == Some(false) && profile.bm25.is_some() {
                return Err(format!("[{name}] has BM25 settings but sparse = false: keep one of them"));
            }
            if let Some(settings) = &profile.bm25 {
                Bm25::new(settings).map_err(|e| format!("[{name}] {e}"))?;
            }
            if let Some(index) = &profile.index {
                index.validate().map_err(|e| format!("[{name}] {e}"))?;
            }
            if let Some(source) = &profile.source {
                source.validate().map_err(|e| format!("[{name}] {e}"))?;
                if profile.text_key.is_some() {
                    return Err(format!(
                        "[{name}] a collection with a source is laid out by the gateway: drop text_key"
                    ));
                }
            }
        }
        Ok(Self(profiles))
    }

    pub fn get(&self, collection: &str) -> Option<&Profile> {
        self.0.get(collection)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Profile)> {
        self.0.iter()
    }

    /// How each configured collection's points are laid out, for the stores.
    pub fn layouts(&self) -> PointLayouts {
        let keys = self.iter().map(|(name, profile)| (name.clone(), keys(profile)));
        let indexes = self.iter().filter_map(|(name, profile)| Some((name.clone(), profile.index?)));
        PointLayouts::new(keys.collect()).with_indexes(indexes.collect())
    }

    /// How `collection`'s points are laid out.
    pub fn keys(&self, collection: &str) -> PointKeys {
        self.get(collection).map_or_else(PointKeys::gateway, keys)
    }

    /// Whether `collection`'s documents get BM25 sparse vectors.
    pub fn sparse(&self, collection: &str) -> bool {
        self.get(collection).and_then(|p| p.sparse).unwrap_or(true)
    }

    /// The input types of `collection`'s queries and documents.
    pub fn input_types(&self, collection: &str) -> (InputType, InputType) {
        match self.get(collection).and_then(|p| p.input_type) {
            Some(input_type) => (input_type, input_type),
            None => (InputType::Query, InputType::Passage),
        }
    }

    /// `Err` with the reason when the API may not write to `collection`.
    pub fn check_writable(&self, collection: &str) -> Result<(), String> {
        match self.get(collection) {
            Some(Profile { source: Some(source), writable, .. }) if *writable != Some(true) => Err(format!(
                "collection {collection:?} follows the table {} (its [{collection}.source]): write to the table, \
                 or set writable = true",
                source.table
            )),
            Some(profile) if !profile.writable.unwrap_or_else(|| profile.only_retrieval()) => Err(format!(
                "collection {collection:?} is served read-only (--collections-config; set writable = true to allow writes)"
            )),
            _ => Ok(()),
        }
    }
}

/// The layout a profile describes: the collection's own keys, or the gateway's with another vector.
fn keys(profile: &Profile) -> PointKeys {
    match profile {
        Profile { text_key: Some(text), id_key, vector, .. } => {
            PointKeys { text: text.clone(), id: id_key.clone(), hash: false, vector: vector.clone() }
        }
        Profile { text_key: None, vector, .. } => PointKeys { vector: vector.clone(), ..PointKeys::gateway() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_STACK: &str = r#"
        [profiles_v1]
        text_key = "text"
        id_key = "profile_id"
        vector = "fast-multilingual-e5-large"
        embed_model_dir = "models/e5-cls"
        input_type = "raw"
    "#;

    #[test]
    fn a_configured_collection_has_its_own_layout_and_embedding() {
        let profiles = Profiles::parse(OLD_STACK).unwrap();
        let keys = profiles.keys("profiles_v1");
        assert_eq!(keys.text, "text");
        assert_eq!(keys.id.as_deref(), Some("profile_id"));
        assert_eq!(keys.vector.as_deref(), Some("fast-multilingual-e5-large"));
        assert!(!keys.hash);
        assert_eq!(profiles.input_types("profiles_v1"), (InputType::Raw, InputType::Raw));
        assert!(profiles.check_writable("profiles_v1").unwrap_err().contains("read-only"));
        assert_eq!(profiles.keys("other"), PointKeys::gateway());
        assert_eq!(profiles.input_types("other"), (InputType::Query, InputType::Passage));
        assert!(profiles.check_writable("other").is_ok());
    }

    #[test]
    fn impossible_profiles_are_refused() {
        assert!(Profiles::parse("[x]\ntext_key = \"_text\"").unwrap_err().contains("text_key"));
        assert!(
            Profiles::parse("[x]\ntext_key = \"t\"\nembed_url = \"http://a\"\nembed_model_dir = \"m\"")
                .unwrap_err()
                .contains("not both")
        );
        assert!(Profiles::parse("[\"../x\"]\ntext_key = \"t\"").unwrap_err().contains("invalid collection name"));
        assert!(Profiles::parse("[x]\ntext_key = \"t\"\ntypo = 1").is_err());
        assert!(Profiles::parse("[x]\nid_key = \"i\"").unwrap_err().contains("needs text_key"));
    }

    #[test]
    fn a_collection_of_the_gateways_own_can_pin_its_embedder() {
        let profiles = Profiles::parse("[v0]\nembed_url = \"http://embed-old:5555\"\nwritable = true").unwrap();
        assert_eq!(profiles.keys("v0"), PointKeys::gateway());
        assert_eq!(profiles.input_types("v0"), (InputType::Query, InputType::Passage));
        assert!(profiles.check_writable("v0").is_ok());
    }

    #[test]
    fn sparse_vectors_are_on_unless_a_collection_turns_them_off() {
        let profiles = Profiles::parse("[dense_only]\nsparse = false\n[stemmed.bm25]\nlanguage = \"russian\"").unwrap();
        assert!(!profiles.sparse("dense_only"));
        assert!(profiles.sparse("other") && profiles.sparse("stemmed"));
        for name in ["dense_only", "stemmed"] {
            assert!(profiles.check_writable(name).is_ok(), "a table that only tunes retrieval keeps {name} writable");
        }
        let pinned = Profiles::parse("[v0]\nembed_url = \"http://embed-old:5555\"\nsparse = false").unwrap();
        assert!(pinned.check_writable("v0").is_err(), "a collection built otherwise stays read-only unless told");
        let both = Profiles::parse("[x]\nsparse = false\n[x.bm25]\nlanguage = \"english\"").unwrap_err();
        assert!(both.contains("[x] has BM25 settings but sparse = false"), "{both}");
    }

    #[test]
    fn index_tables_reach_the_stores_and_bad_values_are_named() {
        let profiles = Profiles::parse("[big.index]\nhnsw_m = 32\nquantization = \"int8\"").unwrap();
        let layouts = profiles.layouts();
        assert_eq!((layouts.index("big").hnsw_m(), layouts.index("big").int8()), (32, true));
        assert_eq!(layouts.index("other"), IndexSettings::default());
        assert!(profiles.check_writable("big").is_ok(), "a table that only sets the index keeps it writable");
        let bad = Profiles::parse("[big.index]\nhnsw_ef_construct = 2").unwrap_err();
        assert!(bad.contains("[big] index.hnsw_ef_construct is 2"), "{bad}");
    }
}
