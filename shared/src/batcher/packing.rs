//! Batch packing: which queued sequences run together. Pure logic, property-tested.
//!
//! A batch is padded to its longest sequence, so its cost is `count x longest` tokens. The batch
//! is built around an anchor (the item whose turn it is) by adding the queued items closest to
//! it in length while the padded-token budget, the size cap and the padding cap all hold.

/// The limits one batch must respect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchLimits {
    /// Padded tokens (batch size x longest sequence) one batch may hold.
    pub max_batch_tokens: usize,
    /// Sequences one batch may hold.
    pub max_batch_size: usize,
    /// Largest share of padding a batch may carry (0.0..=1.0); padding is computed and thrown away.
    pub max_padding_ratio: f64,
}

/// Padding share of a batch: 1 - real tokens / padded tokens.
pub fn padding_ratio(real_tokens: usize, count: usize, longest: usize) -> f64 {
    let padded = count * longest;
    if padded == 0 {
        0.0
    } else {
        1.0 - real_tokens as f64 / padded as f64
    }
}

/// Picks the members of the next batch from queued sequence `lengths`. The `anchor` is always
/// included (alone if nothing else fits, even over budget: a single sequence is never refused);
/// the others are taken closest in length first, earlier index first among equals.
/// Returns indices into `lengths`, anchor first.
pub fn select_batch(lengths: &[usize], anchor: usize, limits: BatchLimits) -> Vec<usize> {
    let anchor_len = lengths[anchor];
    let mut order: Vec<usize> = (0..lengths.len()).filter(|&i| i != anchor).collect();
    order.sort_by_key(|&i| (lengths[i].abs_diff(anchor_len), i));

    let mut chosen = vec![anchor];
    let (mut longest, mut real) = (anchor_len, anchor_len);
    for i in order {
        if chosen.len() >= limits.max_batch_size {
            break;
        }
        let len = lengths[i];
        let new_longest = longest.max(len);
        let count = chosen.len() + 1;
        if count * new_longest > limits.max_batch_tokens {
            continue;
        }
        if padding_ratio(real + len, count, new_longest) > limits.max_padding_ratio {
            continue;
        }
        chosen.push(i);
        longest = new_longest;
        real += len;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_batch_tokens: 64,
        max_batch_size: 4,
        max_padding_ratio: 0.2,
    };

    #[test]
    fn groups_similar_lengths() {
        let lengths = [10, 50, 11, 49, 12, 9];
        let batch = select_batch(&lengths, 0, LIMITS);
        assert_eq!(
            batch,
            vec![0, 2, 5, 4],
            "closest first, earlier index among equals"
        );
    }

    #[test]
    fn a_lone_item_over_budget_still_runs() {
        assert_eq!(select_batch(&[500, 1], 0, LIMITS), vec![0]);
    }

    #[test]
    fn padding_ratio_of_an_even_batch_is_zero() {
        assert_eq!(padding_ratio(30, 3, 10), 0.0);
        assert!((padding_ratio(15, 2, 10) - 0.25).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn batches_respect_every_limit(
            lengths in prop::collection::vec(1usize..600, 1..200),
            anchor_seed in any::<prop::sample::Index>(),
            max_batch_tokens in 1usize..20_000,
            max_batch_size in 1usize..64,
            max_padding_ratio in 0.0f64..1.0,
        ) {
            let anchor = anchor_seed.index(lengths.len());
            let limits = BatchLimits { max_batch_tokens, max_batch_size, max_padding_ratio };
            let batch = select_batch(&lengths, anchor, limits);

            prop_assert_eq!(batch[0], anchor);
            prop_assert!(batch.len() <= max_batch_size.max(1));
            let mut seen = batch.clone();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), batch.len(), "no index twice");
            if batch.len() > 1 {
                let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
                let real: usize = batch.iter().map(|&i| lengths[i]).sum();
                prop_assert!(batch.len() * longest <= max_batch_tokens);
                prop_assert!(padding_ratio(real, batch.len(), longest) <= max_padding_ratio + 1e-12);
            }
        }

        #[test]
        fn equal_lengths_fill_the_batch(len in 1usize..100, n in 1usize..100, size in 1usize..32) {
            let lengths = vec![len; n];
            let limits = BatchLimits { max_batch_tokens: usize::MAX, max_batch_size: size, max_padding_ratio: 0.0 };
            prop_assert_eq!(select_batch(&lengths, 0, limits).len(), n.min(size));
        }
    }
}
