//! Batch packing: which queued sequences run together. Pure logic, property-tested.
//!
//! A batch is padded to its longest sequence, and every run also pays a fixed cost, so a batch
//! costs about `overhead + count x longest` tokens' worth of time. The batch is built around an
//! anchor (the item whose turn it is) from the queued items closest to it in length: an item
//! joins only if it raises the batch's efficiency `real tokens / cost` (otherwise it is better
//! left for a batch of its own length) and the budget, size and padding caps all still hold.
//!
//! Grouping by length alone lets an item of an odd length be passed over batch after batch while
//! later items of a better-fitting length go first, which shows in the tail latency at
//! saturation. So the caller may name items that are *due* (they have been passed over long
//! enough): they join first, oldest first, under the budget and size caps only.

/// The limits one batch must respect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchLimits {
    /// Padded tokens (batch size x longest sequence) one batch may hold.
    pub max_batch_tokens: usize,
    /// Sequences one batch may hold.
    pub max_batch_size: usize,
    /// Largest share of padding a batch may carry (0.0..=1.0); padding is computed and thrown away.
    pub max_padding_ratio: f64,
    /// The fixed cost of one inference run, in tokens' worth of time.
    pub overhead_tokens: usize,
}

/// `real / (padded + overhead)`: the share of a batch's cost that is useful work.
pub fn efficiency(real_tokens: usize, count: usize, longest: usize, overhead_tokens: usize) -> f64 {
    real_tokens as f64 / (count * longest + overhead_tokens).max(1) as f64
}

/// Padding share of a batch: 1 - real tokens / padded tokens.
pub fn padding_ratio(real_tokens: usize, count: usize, longest: usize) -> f64 {
    let padded = count * longest;
    if padded == 0 { 0.0 } else { 1.0 - real_tokens as f64 / padded as f64 }
}

/// Picks the members of the next batch from queued sequence `lengths`. The `anchor` is always
/// included (alone if nothing else fits, even over budget: a single sequence is never refused).
/// Then the `due` items, in the order given, each if the batch stays within its size and token
/// caps. Then the others, closest in length first, earlier index first among equals, each when
/// it keeps every limit and does not lower the batch's [`efficiency`].
/// Returns indices into `lengths`, anchor first.
pub fn select_batch(lengths: &[usize], anchor: usize, due: &[usize], limits: BatchLimits) -> Vec<usize> {
    let anchor_len = lengths[anchor];
    let mut chosen = vec![anchor];
    let (mut longest, mut real) = (anchor_len, anchor_len);
    for &i in due {
        if chosen.len() >= limits.max_batch_size {
            break;
        }
        let new_longest = longest.max(lengths[i]);
        if i != anchor && !chosen.contains(&i) && (chosen.len() + 1) * new_longest <= limits.max_batch_tokens {
            chosen.push(i);
            longest = new_longest;
            real += lengths[i];
        }
    }
    let mut order: Vec<usize> = (0..lengths.len()).filter(|i| !chosen.contains(i)).collect();
    order.sort_by_key(|&i| (lengths[i].abs_diff(anchor_len), i));
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
        let overhead = limits.overhead_tokens;
        if efficiency(real + len, count, new_longest, overhead) < efficiency(real, count - 1, longest, overhead) {
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

    const LIMITS: BatchLimits =
        BatchLimits { max_batch_tokens: 64, max_batch_size: 4, max_padding_ratio: 0.2, overhead_tokens: 16 };

    #[test]
    fn groups_similar_lengths() {
        let lengths = [10, 50, 11, 49, 12, 9];
        let batch = select_batch(&lengths, 0, &[], LIMITS);
        assert_eq!(batch, vec![0, 2, 5, 4], "closest first, earlier index among equals");
    }

    #[test]
    fn an_item_that_would_lower_efficiency_waits_for_its_own_kind() {
        let limits =
            BatchLimits { max_batch_tokens: 10_000, max_batch_size: 32, max_padding_ratio: 1.0, overhead_tokens: 10 };
        // 30 alone: 30/40 = 0.75; with a 10 it would be 40/70 = 0.57, so the 10s go together later.
        assert_eq!(select_batch(&[30, 10, 10, 29], 0, &[], limits), vec![0, 3]);
        // Short items gain from company: 10 alone is 10/20, two of them 20/30.
        assert_eq!(select_batch(&[10, 30, 10], 0, &[], limits), vec![0, 2]);
    }

    #[test]
    fn a_lone_item_over_budget_still_runs() {
        assert_eq!(select_batch(&[500, 1], 0, &[], LIMITS), vec![0]);
    }

    #[test]
    fn due_items_join_first_whatever_their_length() {
        let limits = BatchLimits { max_batch_tokens: 128, ..LIMITS };
        // 50 lowers the efficiency and breaks the padding cap, but it is due; then the budget
        // (3 x 50 > 128) keeps the closer lengths out.
        assert_eq!(select_batch(&[10, 11, 50, 12], 0, &[2], limits), vec![0, 2]);
        // A due item goes in only if the budget holds: the second 50 does not.
        assert_eq!(select_batch(&[10, 50, 50, 10], 0, &[1, 2], limits), vec![0, 1]);
        // Not due, 50 waits for its own kind.
        assert_eq!(select_batch(&[10, 11, 50, 12], 0, &[], limits), vec![0, 1, 3]);
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
            overhead_tokens in 0usize..64,
        ) {
            let anchor = anchor_seed.index(lengths.len());
            let limits = BatchLimits { max_batch_tokens, max_batch_size, max_padding_ratio, overhead_tokens };
            let batch = select_batch(&lengths, anchor, &[], limits);

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
                let alone = efficiency(lengths[anchor], 1, lengths[anchor], overhead_tokens);
                prop_assert!(efficiency(real, batch.len(), longest, overhead_tokens) >= alone - 1e-12, "never worse than alone");
            }
        }

        #[test]
        fn due_items_are_taken_oldest_first_within_the_caps(
            lengths in prop::collection::vec(1usize..600, 2..100),
            due_count in 1usize..20,
            max_batch_tokens in 1usize..20_000,
            max_batch_size in 1usize..64,
        ) {
            let limits = BatchLimits { max_batch_tokens, max_batch_size, max_padding_ratio: 0.0, overhead_tokens: 16 };
            let due: Vec<usize> = (1..lengths.len()).take(due_count).collect();
            let batch = select_batch(&lengths, 0, &due, limits);
            prop_assert_eq!(batch[0], 0);
            prop_assert!(batch.len() <= max_batch_size.max(1));
            if batch.len() > 1 {
                let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
                prop_assert!(batch.len() * longest <= max_batch_tokens);
            }
            // The first due item is left out only when the caps cannot take it.
            let first = due[0];
            if !batch.contains(&first) {
                let longest = lengths[0].max(lengths[first]);
                prop_assert!(max_batch_size < 2 || 2 * longest > max_batch_tokens);
            }
        }

        #[test]
        fn equal_lengths_fill_the_batch(len in 1usize..100, n in 1usize..100, size in 1usize..32) {
            let lengths = vec![len; n];
            let limits = BatchLimits { max_batch_tokens: usize::MAX, max_batch_size: size, max_padding_ratio: 0.0, overhead_tokens: 8 };
            prop_assert_eq!(select_batch(&lengths, 0, &[], limits).len(), n.min(size));
        }
    }
}
