//! Pooling of token embeddings into one vector, and L2 normalisation.

use serde::{Deserialize, Serialize};

/// How token vectors become one: `mean` (E5's model card) or `cls` (fastembed 0.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over the tokens the attention mask marks as real (E5's model card).
    Mean,
    /// The first token's vector (what fastembed 0.5.1 did for multilingual-e5-large).
    Cls,
}

/// Pools one sequence. `hidden` is its `[seq_len, dim]` slice of the output; `mask` its attention mask.
pub fn pool(hidden: &[f32], dim: usize, mask: &[i64], pooling: Pooling) -> Vec<f32> {
    debug_assert_eq!(hidden.len(), mask.len() * dim);
    match pooling {
        Pooling::Cls => hidden[..dim].to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0f32; dim];
            let mut count = 0usize;
            for (token, &m) in hidden.chunks_exact(dim).zip(mask) {
                if m != 0 {
                    count += 1;
                    sum.iter_mut().zip(token).for_each(|(s, &x)| *s += x);
                }
            }
            // Every sequence carries at least its special tokens, but guard the division anyway.
            let scale = 1.0 / count.max(1) as f32;
            sum.iter_mut().for_each(|s| *s *= scale);
            sum
        }
    }
}

/// Scales `v` to unit L2 norm; a zero vector stays zero rather than becoming NaN.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_ignores_masked_tokens() {
        let hidden = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        assert_eq!(pool(&hidden, 2, &[1, 1, 0], Pooling::Mean), vec![2.0, 3.0]);
    }

    #[test]
    fn cls_takes_the_first_token() {
        let hidden = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(pool(&hidden, 2, &[1, 1], Pooling::Cls), vec![1.0, 2.0]);
    }

    #[test]
    fn normalize_gives_unit_norm_and_keeps_zero() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0, 0.0];
        l2_normalize(&mut zero);
        assert_eq!(zero, vec![0.0, 0.0]);
    }
}
