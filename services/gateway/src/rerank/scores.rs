//! The score cache's keys and values. A key names everything a score depends on: the engine (its
//! identity: model and score fingerprint), the query as scored, the cut applied to documents, and
//! the document's text, by hash. A changed text has another hash, so nothing else decides
//! whether a score is fresh. The value is the score's four bytes.

use crate::cache::hex_sha256;

/// The keys of one query's documents, in document order.
#[derive(Debug, Clone)]
pub struct ScoreKeys {
    keys: Vec<String>,
}

/// 128 bits of SHA-256 in hex: a collision among the scores one cache holds is out of reach.
fn short_hash(parts: &[&str]) -> String {
    let mut hash = hex_sha256(parts);
    hash.truncate(32);
    hash
}

impl ScoreKeys {
    pub fn new(identity: &str, query: &str, document_tokens: Option<usize>, documents: &[String]) -> Self {
        let cut = document_tokens.map_or_else(String::new, |n| n.to_string());
        let pair = short_hash(&[identity, query, &cut]);
        let keys = documents.iter().map(|text| format!("sg:v1:score:{pair}:{}", short_hash(&[text]))).collect();
        Self { keys }
    }

    pub fn all(&self) -> &[String] {
        &self.keys
    }

    /// The keys of the documents at `indices`.
    pub fn of(&self, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| self.keys[i].clone()).collect()
    }

    /// Cache entries for scores of documents by index.
    pub fn entries(&self, scored: &[(usize, f32)]) -> Vec<(String, Vec<u8>)> {
        scored.iter().map(|&(i, score)| (self.keys[i].clone(), score.to_le_bytes().to_vec())).collect()
    }

    /// Scores from cached values; anything but four bytes of a finite number is unknown.
    pub fn decode(values: Vec<Option<Vec<u8>>>) -> Vec<Option<f32>> {
        values
            .into_iter()
            .map(|value| value.and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok()).map(f32::from_le_bytes))
            .map(|score| score.filter(|s| s.is_finite()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_key_changes_with_each_thing_a_score_depends_on_and_nothing_else() {
        let base = ScoreKeys::new("bge|3f80", "rust", None, &docs(&["a", "b"]));
        let key = |k: &ScoreKeys| k.all()[0].clone();
        assert_eq!(
            key(&base),
            key(&ScoreKeys::new("bge|3f80", "rust", None, &docs(&["a", "other"]))),
            "not on neighbours"
        );
        assert_eq!(
            base.all()[1],
            ScoreKeys::new("bge|3f80", "rust", None, &docs(&["x", "y", "b"])).all()[2],
            "nor position"
        );
        for other in [
            ScoreKeys::new("bge|3f81", "rust", None, &docs(&["a"])),
            ScoreKeys::new("bge|3f80", "rust ", None, &docs(&["a"])),
            ScoreKeys::new("bge|3f80", "rust", Some(64), &docs(&["a"])),
            ScoreKeys::new("bge|3f80", "rust", None, &docs(&["a "])),
        ] {
            assert_ne!(key(&base), key(&other));
        }
    }

    #[test]
    fn scores_round_trip_to_the_bit_and_garbage_is_unknown() {
        let keys = ScoreKeys::new("m", "q", None, &docs(&["a", "b"]));
        let score = 0.123_456_79_f32;
        let entries = keys.entries(&[(1, score)]);
        assert_eq!(entries[0].0, keys.all()[1]);
        let values = vec![Some(entries[0].1.clone()), Some(vec![1, 2, 3]), Some(f32::NAN.to_le_bytes().to_vec()), None];
        let decoded = ScoreKeys::decode(values);
        assert_eq!(decoded[0].map(f32::to_bits), Some(score.to_bits()));
        assert_eq!(&decoded[1..], &[None, None, None]);
    }
}
