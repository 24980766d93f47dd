//! One priority class's queue: items grouped by request, served round-robin so that one large
//! client batch cannot starve the single queries that arrive after it, and with a bound on how
//! many batches a request may be passed over before one of its items must go in.
//!
//! A request is passed over by a batch that takes a later request and nothing of it: that is
//! what grouping by length costs it. Batches of earlier requests only are its place in the line,
//! which first come, first served would give it too; counting those as well made every request
//! due after a few batches whenever many waited, and batches then formed in arrival order, with
//! the padding that brings (a quarter of the compute at 32 concurrent queries, BENCHMARKS.md).

use std::collections::VecDeque;

use tokio::time::Instant;

use super::Item;
use super::packing::{BatchLimits, select_batch};

struct RequestQueue {
    items: VecDeque<Item>,
    /// Batches that took a later request, and nothing of this one, since it was last in one.
    passed_over: usize,
    /// Its place in arrival order.
    arrival: u64,
}

#[derive(Default)]
pub(super) struct Pending {
    /// Requests in round-robin order: the front one supplies the next batch's anchor.
    requests: VecDeque<RequestQueue>,
    len: usize,
    tokens: usize,
    arrivals: u64,
}

impl Pending {
    pub(super) fn push_request(&mut self, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        self.len += items.len();
        self.tokens += items.iter().map(|i| i.encoded.len()).sum::<usize>();
        self.arrivals += 1;
        self.requests.push_back(RequestQueue { items: items.into(), passed_over: 0, arrival: self.arrivals });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When the longest-waiting item was queued.
    pub(super) fn oldest(&self) -> Option<Instant> {
        self.requests.iter().filter_map(|r| r.items.front()).map(|i| i.enqueued).min()
    }

    /// Whether enough is queued to fill a batch, so waiting for more would only add latency.
    pub(super) fn can_fill(&self, limits: &BatchLimits) -> bool {
        self.len >= limits.max_batch_size || self.tokens >= limits.max_batch_tokens
    }

    /// Removes items whose caller has gone away; returns how many.
    pub(super) fn drop_cancelled(&mut self) -> usize {
        let before = self.len;
        for request in &mut self.requests {
            request.items.retain(|i| !i.respond.is_closed());
        }
        self.requests.retain(|r| !r.items.is_empty());
        self.recount();
        before - self.len
    }

    fn recount(&mut self) {
        self.len = self.requests.iter().map(|r| r.items.len()).sum();
        self.tokens = self.requests.iter().flat_map(|r| &r.items).map(|i| i.encoded.len()).sum();
    }

    /// Takes the next batch: anchored on the front request's first item, then one item of each
    /// request passed over `max_passed_over` times or more (the one closest in length to the
    /// anchor; oldest requests first), then filled with the queued items closest in length. The
    /// anchor's request then goes to the back of the rotation. `max_passed_over = 0` makes it a
    /// first-come first-served batcher; `usize::MAX` groups by length alone.
    pub(super) fn take_batch(&mut self, limits: &BatchLimits, max_passed_over: usize) -> Vec<Item> {
        if self.is_empty() {
            return Vec::new();
        }
        // Candidates in rotation order, so earlier requests win ties; the anchor is index 0.
        let positions: Vec<(usize, usize)> =
            self.requests.iter().enumerate().flat_map(|(r, q)| (0..q.items.len()).map(move |i| (r, i))).collect();
        let lengths: Vec<usize> = positions.iter().map(|&(r, i)| self.requests[r].items[i].encoded.len()).collect();
        let due = self.due(&positions, &lengths, max_passed_over);
        let mut chosen: Vec<(usize, usize)> =
            select_batch(&lengths, 0, &due, *limits).into_iter().map(|k| positions[k]).collect();
        let latest = chosen.iter().map(|&(r, _)| self.requests[r].arrival).max().unwrap_or(0);
        for (r, request) in self.requests.iter_mut().enumerate() {
            if chosen.iter().any(|&(cr, _)| cr == r) {
                request.passed_over = 0;
            } else if request.arrival < latest {
                request.passed_over += 1;
            }
        }

        // Remove from the back of each request's queue first so indices stay valid.
        chosen.sort_unstable_by(|a, b| b.cmp(a));
        let mut batch: Vec<Item> = chosen.iter().filter_map(|&(r, i)| self.requests[r].items.remove(i)).collect();
        batch.reverse();

        if let Some(front) = self.requests.pop_front() {
            self.requests.push_back(front);
        }
        self.requests.retain(|r| !r.items.is_empty());
        self.len -= batch.len();
        self.tokens -= batch.iter().map(|i| i.encoded.len()).sum::<usize>();
        batch
    }

    /// Indices into `positions` of the items that must go first: for each request (after the
    /// anchor's) passed over at least `max_passed_over` times, its item closest in length to the
    /// anchor.
    fn due(&self, positions: &[(usize, usize)], lengths: &[usize], max_passed_over: usize) -> Vec<usize> {
        let anchor_len = lengths[0];
        let mut due: Vec<usize> = Vec::new();
        for (k, &(r, _)) in positions.iter().enumerate().skip(1) {
            if r == 0 || self.requests[r].passed_over < max_passed_over {
                continue;
            }
            match due.last() {
                Some(&last) if positions[last].0 == r => {
                    if lengths[k].abs_diff(anchor_len) < lengths[last].abs_diff(anchor_len) {
                        *due.last_mut().expect("just matched") = k;
                    }
                }
                _ => due.push(k),
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::Encoded;
    use tokio::sync::oneshot;

    fn item(len: usize, tag: i64) -> (Item, oneshot::Receiver<super::super::ItemResult>) {
        let (tx, rx) = oneshot::channel();
        let encoded = Encoded { ids: vec![tag; len], type_ids: vec![0; len] };
        (
            Item {
                encoded,
                respond: tx,
                enqueued: Instant::now(),
                span: tracing::Span::none(),
                queued: tracing::Span::none(),
            },
            rx,
        )
    }

    fn request(lens: &[usize], tag: i64) -> (Vec<Item>, Vec<oneshot::Receiver<super::super::ItemResult>>) {
        lens.iter().map(|&l| item(l, tag)).unzip()
    }

    const LIMITS: BatchLimits =
        BatchLimits { max_batch_tokens: 1000, max_batch_size: 4, max_padding_ratio: 0.5, overhead_tokens: 16 };

    #[tokio::test]
    async fn a_single_query_is_not_starved_by_a_large_batch() {
        let mut pending = Pending::default();
        let (big, _big_rx) = request(&[10; 40], 1);
        pending.push_request(big);
        let (single, _single_rx) = request(&[10], 2);
        pending.push_request(single);

        let first = pending.take_batch(&LIMITS, usize::MAX);
        assert_eq!(first.len(), 4);
        let second = pending.take_batch(&LIMITS, usize::MAX);
        assert_eq!(second[0].encoded.ids[0], 2, "the single query anchors the second batch");
        assert_eq!(pending.len(), 40 - 7);
    }

    /// Which batch the query of length 40 (tag 99) runs in: single queries of four lengths are
    /// ahead of it and three more of each length behind it, so every batch's anchor finds company
    /// of its own length among the later arrivals.
    fn batch_of_the_odd_one(max_passed_over: usize) -> usize {
        let mut pending = Pending::default();
        let mut receivers = Vec::new();
        let behind = [10, 20, 30, 60].iter().flat_map(|&l| [l; 3]);
        for len in [10, 20, 30, 60, 40].into_iter().chain(behind) {
            let (items, rx) = request(&[len], if len == 40 { 99 } else { 1 });
            pending.push_request(items);
            receivers.push(rx);
        }
        (0..).find(|_| pending.take_batch(&LIMITS, max_passed_over).iter().any(|i| i.encoded.ids[0] == 99)).unwrap()
    }

    #[tokio::test]
    async fn a_request_is_passed_over_at_most_max_passed_over_times() {
        assert_eq!(batch_of_the_odd_one(usize::MAX), 4, "by length alone, every anchor's kind goes first");
        assert_eq!(batch_of_the_odd_one(2), 2, "passed over twice, then due");
        assert_eq!(batch_of_the_odd_one(0), 1, "first come, first served: the four ahead fill batch 0");
    }

    /// Many single queries of two lengths, alternating, wait at once (saturation): batches of
    /// one length each. Waiting behind earlier requests is not being passed over, so nothing
    /// becomes due and no batch mixes the lengths (counting every batch did: batch 2 was 10, 30,
    /// 10, 30).
    #[tokio::test]
    async fn waiting_behind_earlier_requests_is_not_being_passed_over() {
        let mut pending = Pending::default();
        let mut receivers = Vec::new();
        for len in [10, 30].into_iter().cycle().take(12) {
            let (items, rx) = request(&[len], len as i64);
            pending.push_request(items);
            receivers.push(rx);
        }
        let mut batches = Vec::new();
        while !pending.is_empty() {
            let batch: Vec<usize> = pending.take_batch(&LIMITS, 2).iter().map(|i| i.encoded.len()).collect();
            batches.push(batch);
        }
        assert!(batches.iter().all(|b| b.iter().all(|&l| l == b[0])), "one length a batch: {batches:?}");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 12);
    }

    #[tokio::test]
    async fn cancelled_items_are_dropped_unrun() {
        let mut pending = Pending::default();
        let (items, receivers) = request(&[5, 6, 7], 1);
        pending.push_request(items);
        drop(receivers);
        let (kept, _rx) = request(&[8], 2);
        pending.push_request(kept);
        assert_eq!(pending.drop_cancelled(), 3);
        assert_eq!(pending.len(), 1);
        assert!(!pending.can_fill(&LIMITS));
        assert_eq!(pending.take_batch(&LIMITS, usize::MAX).len(), 1);
        assert!(pending.is_empty());
        assert_eq!(pending.oldest(), None);
    }
}
