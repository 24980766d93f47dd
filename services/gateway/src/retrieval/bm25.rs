//! BM25 sparse vectors, built by the gateway for both backends with qdrant-edge's BM25 embedder
//! (the tokenizers, stemmers and stopword lists Qdrant's own full-text index uses). A document's
//! vector holds each term's saturated, length-normalized frequency; a query's holds 1 per term;
//! the engine multiplies in the IDF from its own collection statistics (`modifier: idf`).
//!
//! The default suits any language: the multilingual tokenizer (words by Unicode rules,
//! Chinese by dictionary segmentation, Japanese by its own segmenter), lowercased, with no
//! stemming and no stopwords (IDF already gives common words little weight, and a wrong
//! language's stemmer mangles words). A collection of one language can ask for its stemmer and
//! stopwords (`language = "english"` in its `--collections-config` table).

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use serde::{Deserialize, Serialize};

use super::SparseVector;

/// One collection's BM25 settings (`[name.bm25]` in `--collections-config`). Changing them
/// changes the stored vectors' terms: `reindex` the collection afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bm25Settings {
    /// `multilingual` (default), `word` (Unicode word boundaries only) or `whitespace`.
    #[serde(default = "default_tokenizer")]
    pub tokenizer: String,
    /// A language whose stemmer and stopwords apply (`english`, `german`, `russian`, ... or
    /// their ISO codes); unset: none.
    #[serde(default)]
    pub language: Option<String>,
    /// With `language`: stem words [default: true].
    #[serde(default = "default_true")]
    pub stemming: bool,
    /// With `language`: drop its stopwords [default: true].
    #[serde(default = "default_true")]
    pub stopwords: bool,
    /// Term-frequency saturation [default: 1.2].
    #[serde(default = "default_k")]
    pub k: f64,
    /// Length normalization, 0-1 [default: 0.75].
    #[serde(default = "default_b")]
    pub b: f64,
    /// The expected document length in tokens [default: 256, Qdrant's].
    #[serde(default = "default_avg_len")]
    pub avg_len: f64,
}

fn default_tokenizer() -> String {
    "multilingual".into()
}
fn default_true() -> bool {
    true
}
fn default_k() -> f64 {
    1.2
}
fn default_b() -> f64 {
    0.75
}
fn default_avg_len() -> f64 {
    256.0
}

impl Default for Bm25Settings {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

/// A language qdrant-edge knows and that has no Snowball stemmer: naming it is how the embedder
/// is told "no stemming" (it stems by its language's default otherwise). Its stopwords are
/// always given explicitly below, so it changes nothing else.
const NO_STEMMER: &str = "chinese";

/// The BM25 embedder of a collection.
pub struct Bm25 {
    model: EdgeBm25,
    /// The settings, canonical: what identifies the vectors in cache keys.
    identity: String,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bm25({})", self.identity)
    }
}

impl Bm25 {
    /// `Err` says what in the settings is wrong.
    pub fn new(settings: &Bm25Settings) -> Result<Self, String> {
        if !["multilingual", "word", "whitespace"].contains(&settings.tokenizer.as_str()) {
            return Err(format!("bm25.tokenizer {:?}: use multilingual, word or whitespace", settings.tokenizer));
        }
        let language = settings.language.as_deref();
        if let Some(language) = language
            && serde_json::from_value::<qdrant_edge::Language>(language.into()).is_err()
        {
            return Err(format!(
                "bm25.language {language:?} is not one qdrant-edge knows (english, german, ru, zh, ...)"
            ));
        }
        let stemmer_language = match language {
            Some(language) if settings.stemming => language,
            _ => NO_STEMMER,
        };
        let stopwords: Vec<&str> = language.filter(|_| settings.stopwords).into_iter().collect();
        let config = serde_json::json!({
            "k": settings.k,
            "b": settings.b,
            "avg_len": settings.avg_len,
            "tokenizer": settings.tokenizer,
            "language": stemmer_language,
            "stopwords": {"languages": stopwords, "custom": []},
        });
        let config: EdgeBm25Config = serde_json::from_value(config).map_err(|e| format!("bm25: {e}"))?;
        let model = EdgeBm25::new(config).map_err(|e| format!("bm25: {e}"))?;
        let identity = serde_json::to_string(settings).expect("settings serialize");
        Ok(Self { model, identity })
    }

    /// A document's vector (term frequencies, saturated and length-normalized).
    pub fn document(&self, text: &str) -> SparseVector {
        let v = self.model.embed_document(text);
        SparseVector { indices: v.indices, values: v.values }
    }

    /// A query's vector (1 per distinct term).
    pub fn query(&self, text: &str) -> SparseVector {
        let v = self.model.embed_query(text);
        SparseVector { indices: v.indices, values: v.values }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }
}

impl Default for Bm25 {
    fn default() -> Self {
        Self::new(&Bm25Settings::default()).expect("the default settings are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(bm25: &Bm25, text: &str) -> usize {
        bm25.query(text).indices.len()
    }

    #[test]
    fn the_default_neither_stems_nor_drops_stopwords() {
        let bm25 = Bm25::default();
        assert_eq!(bm25.query("running"), bm25.query("Running"), "lowercased");
        assert_ne!(bm25.query("running"), bm25.query("run"), "not stemmed");
        assert_eq!(terms(&bm25, "the cat is a hunter"), 5, "no stopwords");
    }

    #[test]
    fn a_language_brings_its_stemmer_and_stopwords() {
        let settings = Bm25Settings { language: Some("english".into()), ..Bm25Settings::default() };
        let bm25 = Bm25::new(&settings).unwrap();
        assert_eq!(bm25.query("running"), bm25.query("run"), "stemmed");
        assert_eq!(terms(&bm25, "the cat is a hunter"), 2, "stopwords dropped");
        let no_stemming = Bm25::new(&Bm25Settings { stemming: false, ..settings.clone() }).unwrap();
        assert_ne!(no_stemming.query("running"), no_stemming.query("run"));
        assert_eq!(terms(&no_stemming, "the cat is a hunter"), 2);
        let no_stopwords = Bm25::new(&Bm25Settings { stopwords: false, ..settings }).unwrap();
        assert_eq!(terms(&no_stopwords, "the cat is a hunter"), 5);
    }

    #[test]
    fn chinese_and_russian_are_split_into_words() {
        let bm25 = Bm25::default();
        assert!(terms(&bm25, "今天是星期一") >= 3, "segmented, not one token");
        assert_eq!(terms(&bm25, "Москва — столица России"), 3);
        // A document shares the query's terms whatever the case.
        let doc = bm25.document("МОСКВА большой город");
        let query = bm25.query("москва");
        assert!(query.indices.iter().all(|i| doc.indices.contains(i)));
    }

    #[test]
    fn documents_weigh_repeated_terms_more_but_saturate() {
        let bm25 = Bm25::default();
        let once = bm25.document("search");
        let thrice = bm25.document("search search search");
        assert_eq!(once.indices, thrice.indices);
        assert!(thrice.values[0] > once.values[0] && thrice.values[0] < 3.0 * once.values[0]);
    }

    #[test]
    fn bad_settings_are_named() {
        let bad_language = Bm25Settings { language: Some("klingon".into()), ..Bm25Settings::default() };
        assert!(Bm25::new(&bad_language).unwrap_err().contains("klingon"));
        let bad_tokenizer = Bm25Settings { tokenizer: "prefix".into(), ..Bm25Settings::default() };
        assert!(Bm25::new(&bad_tokenizer).unwrap_err().contains("bm25.tokenizer"));
        let bad_b = Bm25Settings { b: 2.0, ..Bm25Settings::default() };
        assert!(Bm25::new(&bad_b).is_err());
        assert!(toml::from_str::<Bm25Settings>("languag = 'en'").is_err(), "typos are refused");
    }
}
