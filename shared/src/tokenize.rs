//! Tokenization with a Hugging Face `tokenizer.json`: truncation at `max_length` (special tokens
//! included), E5 input-type prefixes, and query/document pairs for cross-encoders.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::model::{ModelConfig, ModelError};

/// How a text is meant to be used, which picks the E5 prefix: `query` ("query: "), `passage`
/// ("passage: "), or `raw` (no prefix, as fastembed 0.5.1 fed the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    #[default]
    Query,
    Passage,
    /// No prefix: what fastembed 0.5.1 fed the model.
    Raw,
}

/// One tokenized sequence, ready for the batcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("tokenization failed: {0}")]
pub struct TokenizeError(String);

/// A tokenizer configured for one model directory. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct TextTokenizer {
    /// Truncates the longest sequence first: single texts, and pairs whose query alone is too long.
    longest_first: Tokenizer,
    /// Cuts only the document of a pair, the normal case for reranking.
    only_second: Tokenizer,
    pad_id: i64,
    max_length: usize,
    query_prefix: String,
    passage_prefix: String,
}

fn truncation(max_length: usize, strategy: TruncationStrategy) -> TruncationParams {
    TruncationParams { direction: TruncationDirection::Right, max_length, strategy, stride: 0 }
}

impl TextTokenizer {
    pub fn load(path: &Path, config: &ModelConfig) -> Result<Self, ModelError> {
        let error = |message: String| ModelError::Tokenizer { path: path.to_path_buf(), message };
        let mut base = Tokenizer::from_file(path).map_err(|e| error(e.to_string()))?;
        // Padding is the batcher's job (to the batch's longest sequence); the file's own setting
        // would pad every text to a fixed length.
        let pad_id = pad_id(&base)
            .ok_or_else(|| error("cannot tell its padding id: no padding config and no <pad> or [PAD] token".into()))?;
        base.with_padding(None);
        let mut longest_first = base.clone();
        longest_first
            .with_truncation(Some(truncation(config.max_length, TruncationStrategy::LongestFirst)))
            .map_err(|e| error(e.to_string()))?;
        let mut only_second = base;
        only_second
            .with_truncation(Some(truncation(config.max_length, TruncationStrategy::OnlySecond)))
            .map_err(|e| error(e.to_string()))?;
        Ok(Self {
            longest_first,
            only_second,
            pad_id,
            max_length: config.max_length,
            query_prefix: config.query_prefix.clone().unwrap_or_default(),
            passage_prefix: config.passage_prefix.clone().unwrap_or_default(),
        })
    }

    /// The id that fills padded positions (XLM-R: 1, BERT: 0), taken from the tokenizer itself.
    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn prefix(&self, input_type: InputType) -> &str {
        match input_type {
            InputType::Query => &self.query_prefix,
            InputType::Passage => &self.passage_prefix,
            InputType::Raw => "",
        }
    }

    /// Tokenizes one text with its prefix; longer input is truncated, never rejected.
    pub fn encode(&self, text: &str, input_type: InputType) -> Result<Encoded, TokenizeError> {
        let prefix = self.prefix(input_type);
        let encoding = if prefix.is_empty() {
            self.longest_first.encode(text, true)
        } else {
            self.longest_first.encode(format!("{prefix}{text}"), true)
        };
        encoding.map(|e| to_encoded(&e)).map_err(|e| TokenizeError(e.to_string()))
    }

    /// The start of `text` that holds its first `max_tokens` tokens (special tokens aside); the
    /// whole text when it has no more (Cohere's `max_tokens_per_doc`).
    pub fn first_tokens<'t>(&self, text: &'t str, max_tokens: usize) -> &'t str {
        let Ok(encoding) = self.longest_first.encode(text, false) else { return text };
        match encoding.get_offsets().get(max_tokens) {
            Some(&(next_start, _)) => text.get(..next_start).unwrap_or(text).trim_end(),
            None => text,
        }
    }

    /// Tokenizes a (query, document) pair with the tokenizer's pair template. The document is
    /// cut to fit; the query is cut only when it alone leaves no room.
    pub fn encode_pair(&self, query: &str, document: &str) -> Result<Encoded, TokenizeError> {
        let pair = (query, document);
        match self.only_second.encode(pair, true) {
            Ok(e) => Ok(to_encoded(&e)),
            Err(_) => {
                self.longest_first.encode(pair, true).map(|e| to_encoded(&e)).map_err(|e| TokenizeError(e.to_string()))
            }
        }
    }
}

fn pad_id(tokenizer: &Tokenizer) -> Option<i64> {
    if let Some(padding) = tokenizer.get_padding() {
        return Some(i64::from(padding.pad_id));
    }
    ["<pad>", "[PAD]"].iter().find_map(|t| tokenizer.token_to_id(t)).map(i64::from)
}

fn to_encoded(e: &tokenizers::Encoding) -> Encoded {
    Encoded {
        ids: e.get_ids().iter().map(|&i| i64::from(i)).collect(),
        type_ids: e.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelDir;
    use crate::runtime::project_root;

    fn fixture(name: &str) -> TextTokenizer {
        let dir = ModelDir::open(project_root().join("models/fixtures").join(name)).unwrap();
        TextTokenizer::load(&dir.tokenizer_path(), &dir.config).unwrap()
    }

    #[test]
    fn pad_id_comes_from_the_tokenizer() {
        assert_eq!(fixture("tiny-e5").pad_id(), 1, "XLM-R pads with <pad> = 1");
        assert_eq!(fixture("tiny-bert-reranker").pad_id(), 0, "BERT pads with [PAD] = 0");
    }

    #[test]
    fn prefixes_follow_the_input_type() {
        let tok = fixture("tiny-e5");
        let raw = tok.encode("query: Berlin", InputType::Raw).unwrap();
        let query = tok.encode("Berlin", InputType::Query).unwrap();
        assert_eq!(raw, query, "the query prefix is `query: `");
        let passage = tok.encode("Berlin", InputType::Passage).unwrap();
        assert_ne!(passage, query);
    }

    #[test]
    fn long_text_is_truncated_to_max_length_with_special_tokens() {
        let tok = fixture("tiny-e5");
        let long = "engineer in Berlin ".repeat(200);
        let e = tok.encode(&long, InputType::Passage).unwrap();
        assert_eq!(e.len(), tok.max_length());
        assert_eq!(*e.ids.last().unwrap(), 2, "the closing </s> survives truncation");
    }

    #[test]
    fn empty_text_is_just_the_special_tokens() {
        let e = fixture("tiny-e5").encode("", InputType::Raw).unwrap();
        assert_eq!(e.ids, vec![0, 2]);
    }

    #[test]
    fn pairs_cut_the_document_not_the_query() {
        let tok = fixture("tiny-bert-reranker");
        let query = "who knows rust";
        let short = tok.encode_pair(query, "rust engineer").unwrap();
        let long = tok.encode_pair(query, &"rust engineer in berlin ".repeat(100)).unwrap();
        assert_eq!(long.len(), tok.max_length());
        let query_part = short.type_ids.iter().take_while(|&&t| t == 0).count();
        assert_eq!(short.ids[..query_part], long.ids[..query_part], "the query is kept whole");
        assert!(long.type_ids.contains(&1), "BERT pairs mark the document with type 1");
    }

    #[test]
    fn a_document_cut_to_its_first_tokens_keeps_exactly_that_many() {
        for name in ["tiny-reranker", "tiny-bert-reranker"] {
            let tok = fixture(name);
            let text = "rust engineer in berlin, café owner ".repeat(10);
            let count = |t: &str| tok.longest_first.encode(t, false).unwrap().len();
            let cut = tok.first_tokens(&text, 7);
            assert!(text.starts_with(cut) && count(cut) == 7, "{name}: {cut:?} has {} tokens", count(cut));
            assert_eq!(tok.first_tokens("rust", 7), "rust", "{name}: a shorter text stays whole");
        }
    }

    #[test]
    fn a_query_too_long_for_the_pair_is_cut_rather_than_rejected() {
        let tok = fixture("tiny-reranker");
        let e = tok.encode_pair(&"search ".repeat(300), "doc").unwrap();
        assert_eq!(e.len(), tok.max_length());
    }
}
