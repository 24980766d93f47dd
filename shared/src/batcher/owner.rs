//! The single owner of the queues: decides when a batch forms, from which priority class, and
//! hands it to a free inference thread.
//!
//! Interactive work (a search's query, a rerank) goes before bulk work (batch jobs' documents).
//! A batch that has started cannot be interrupted, so bulk work also yields in two more ways:
//! its batches are capped at `bulk_batch_tokens` (the longest an interactive item can find every
//! thread busy with bulk), and no bulk batch starts while interactive work is in flight, here or
//! wherever the [`Foreground`] is shared (a gateway holds it for a whole search, whose rerank runs
//! on another engine but on the same cores), nor within `interactive_linger` of its end:
//! interactive work comes in streams (a client's next search follows its last answer within a
//! millisecond or two), and a bulk batch started in such a gap would hold up the next search for
//! its whole length. (An embed-service cannot see the rerank of the search it embedded a query
//! for, in another process; on one machine, a linger as long as a rerank covers it.) Bulk is never starved: once its oldest item has waited `bulk_max_delay`
//! since the last bulk batch, the next batch is bulk's, whatever waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::pending::Pending;
use super::worker::Job;
use super::{Activity, BatchLimits, BatcherConfig, BatcherError, BatcherMetrics, Foreground, Item, Priority};

/// One request's items on their way to the owner.
pub(super) struct Submitted {
    pub items: Vec<Item>,
    pub priority: Priority,
}

pub(super) struct Owner {
    pub config: BatcherConfig,
    pub requests: mpsc::UnboundedReceiver<Submitted>,
    pub jobs: std_mpsc::Sender<Job>,
    pub free_workers: Arc<Semaphore>,
    pub queued: Arc<AtomicUsize>,
    pub metrics: BatcherMetrics,
    /// Interactive work in flight (this engine's and any shared guard's); the handle keeps the
    /// channel open for the receiver.
    pub foreground: watch::Receiver<Activity>,
    pub _foreground: Foreground,
    /// Set at warm-up when outputs were found to depend on the batch: batches of one.
    pub learned: super::learned::Learned,
}

#[derive(Default)]
struct Queues {
    interactive: Pending,
    bulk: Pending,
    arrivals: Arrivals,
}

impl Queues {
    fn push(&mut self, submitted: Submitted, max_wait: Duration) {
        let pending = match submitted.priority {
            Priority::Interactive => &mut self.interactive,
            Priority::Bulk => &mut self.bulk,
        };
        self.arrivals.push(pending, submitted.items, max_wait);
    }
}

/// What the owner does next with a free inference thread.
enum Next {
    Run(Priority),
    /// Nothing may start before `until` (or an arrival, or a change in the foreground).
    Wait(Option<Instant>),
}

impl Owner {
    pub(super) async fn run(mut self) {
        let mut queues = Queues::default();
        let mut worker: Option<OwnedSemaphorePermit> = None;
        let mut open = true;
        let mut last_bulk = Instant::now();
        loop {
            let cancelled = queues.interactive.drop_cancelled() + queues.bulk.drop_cancelled();
            if cancelled > 0 {
                self.metrics.cancelled.inc_by(cancelled as u64);
                self.dequeued(cancelled);
            }
            if queues.interactive.is_empty() && queues.bulk.is_empty() {
                if !open {
                    return;
                }
                match self.requests.recv().await {
                    Some(submitted) => queues.push(submitted, self.config.max_wait),
                    None => open = false,
                }
                continue;
            }
            let Some(permit) = worker.take() else {
                tokio::select! {
                    biased;
                    permit = self.free_workers.clone().acquire_owned() => {
                        worker = Some(permit.expect("the worker semaphore is never closed"));
                    }
                    submitted = self.requests.recv(), if open => match submitted {
                        Some(submitted) => queues.push(submitted, self.config.max_wait),
                        None => open = false,
                    },
                }
                continue;
            };
            while let Ok(submitted) = self.requests.try_recv() {
                queues.push(submitted, self.config.max_wait);
            }
            let priority = match self.next(&queues, open, last_bulk) {
                Next::Run(priority) => priority,
                Next::Wait(until) => {
                    worker = Some(permit);
                    let until = until.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                    tokio::select! {
                        _ = sleep_until(until) => {}
                        _ = self.foreground.changed() => {}
                        submitted = self.requests.recv(), if open => match submitted {
                            Some(submitted) => queues.push(submitted, self.config.max_wait),
                            None => open = false,
                        },
                    }
                    continue;
                }
            };
            let (pending, limits) = match priority {
                Priority::Interactive => (&mut queues.interactive, self.limits()),
                Priority::Bulk => {
                    last_bulk = Instant::now();
                    (&mut queues.bulk, self.bulk_limits())
                }
            };
            let items = pending.take_batch(&limits, self.config.max_passed_over);
            self.dequeued(items.len());
            if priority == Priority::Bulk {
                self.metrics.bulk_items.inc_by(items.len() as u64);
            }
            let alone = queues.interactive.is_empty() && queues.bulk.is_empty();
            self.dispatch(items, permit, alone);
        }
    }

    /// Chooses the class of the next batch, or how long to hold the free thread.
    fn next(&mut self, queues: &Queues, open: bool, last_bulk: Instant) -> Next {
        let now = Instant::now();
        let bulk_due = queues.bulk.oldest().map(|oldest| oldest.max(last_bulk) + self.config.bulk_max_delay);
        let bulk_owed = bulk_due.is_some_and(|due| now >= due);
        let (priority, pending, limits) = if !queues.interactive.is_empty() && !bulk_owed {
            (Priority::Interactive, &queues.interactive, self.limits())
        } else if let Some(quiet) = self.quiet_from(now)
            && !bulk_owed
        {
            return Next::Wait(quiet.map_or(bulk_due, |q| Some(bulk_due.map_or(q, |d| d.min(q)))));
        } else {
            (Priority::Bulk, &queues.bulk, self.bulk_limits())
        };
        // Wait up to max_wait for company when it is likely to come and cannot fill a batch yet.
        let deadline = pending.oldest().map_or(now, |t| t + self.config.max_wait);
        let worth_waiting = open && queues.arrivals.company_likely(self.config.max_wait) && !pending.can_fill(&limits);
        if worth_waiting && now < deadline { Next::Wait(Some(deadline)) } else { Next::Run(priority) }
    }

    /// `None` when bulk may start now; else when the foreground will be quiet (`Some(None)`:
    /// not before interactive work in flight ends).
    fn quiet_from(&mut self, now: Instant) -> Option<Option<Instant>> {
        let activity = *self.foreground.borrow_and_update();
        let quiet = activity.last_exit.map(|t| t + self.config.interactive_linger);
        if activity.in_flight > 0 { Some(None) } else { quiet.filter(|&q| now < q).map(Some) }
    }

    /// The configured limits as the warm-up left them (see [`super::Learned::limits`]).
    fn limits(&self) -> BatchLimits {
        self.learned.limits(self.config.limits)
    }

    fn bulk_limits(&self) -> BatchLimits {
        let limits = self.limits();
        BatchLimits { max_batch_tokens: limits.max_batch_tokens.min(self.config.bulk_batch_tokens), ..limits }
    }

    /// Hands `items` to a free inference thread. Where single-threaded sessions serve side by
    /// side, a batch with nothing else waiting (`alone`) and no other run in flight takes every
    /// thread's permit and runs on the first session, on every core: a lone request is not held
    /// to one core's speed, and while it runs nothing starts beside it.
    fn dispatch(&self, mut items: Vec<Item>, mut permit: OwnedSemaphorePermit, alone: bool) {
        let wide_session = self.learned.wide.get().filter(|wide| {
            let others = u32::try_from(wide.narrow.saturating_sub(1)).unwrap_or(u32::MAX);
            alone && self.free_workers.clone().try_acquire_many_owned(others).map(|rest| permit.merge(rest)).is_ok()
        });
        let wide = wide_session.is_some();
        let span = tracing::debug_span!("batch", size = items.len(), wide);
        for item in &items {
            span.follows_from(&item.span);
        }
        let inference = inference_spans(&mut items);
        let job = Job { items, _workers: permit, wide, span, inference };
        let queue = wide_session.map_or(&self.jobs, |session| &session.jobs);
        if let Err(std_mpsc::SendError(job)) = queue.send(job) {
            for item in job.items {
                let _ = item.respond.send(Err(BatcherError::Unavailable("no inference thread is running".into())));
            }
        }
    }

    fn dequeued(&self, n: usize) {
        let before = self.queued.fetch_sub(n, Ordering::SeqCst);
        self.metrics.queue_depth.set((before - n) as i64);
    }
}

/// How far apart requests have recently arrived, to tell whether a lone item waiting `max_wait`
/// can expect company. A client sending one request at a time (each after the previous answer)
/// never brings company within `max_wait`, and waiting would only add to every request's latency;
/// concurrent clients and bursts arrive close together and share batches.
#[derive(Default)]
struct Arrivals {
    last: Option<Instant>,
    /// Moving average (weight 1/4 for the newest) of the gaps between requests, each counted as
    /// at most `8 x max_wait` so that one idle pause is forgotten within a few requests.
    mean_gap: Option<Duration>,
}

impl Arrivals {
    fn push(&mut self, pending: &mut Pending, items: Vec<Item>, max_wait: Duration) {
        let now = Instant::now();
        if let Some(last) = self.last {
            let gap = now.duration_since(last).min(max_wait * 8);
            self.mean_gap = Some(self.mean_gap.map_or(gap, |mean| (mean * 3 + gap) / 4));
        }
        self.last = Some(now);
        pending.push_request(items);
    }

    /// With no history yet (the very first request), yes: it waits as configured.
    fn company_likely(&self, max_wait: Duration) -> bool {
        self.mean_gap.is_none_or(|gap| gap <= max_wait)
    }
}

/// Ends the items' queue wait and opens, under each request that has items in this batch, an
/// `inference` span saying what the batch was: a batch serves many requests, each in its own trace.
fn inference_spans(items: &mut [Item]) -> Vec<tracing::Span> {
    let longest = items.iter().map(|i| i.encoded.len()).max().unwrap_or(0);
    let (size, padded) = (items.len(), longest * items.len());
    let mut requests: Vec<(tracing::Id, &tracing::Span, usize, usize)> = Vec::new();
    for item in items.iter_mut() {
        item.queued = tracing::Span::none();
        let Some(id) = item.span.id() else { continue };
        match requests.iter_mut().find(|(seen, ..)| *seen == id) {
            Some((_, _, sequences, tokens)) => {
                *sequences += 1;
                *tokens += item.encoded.len();
            }
            None => requests.push((id, &item.span, 1, item.encoded.len())),
        }
    }
    requests
        .into_iter()
        .map(|(_, parent, sequences, tokens)| {
            tracing::info_span!(parent: parent, "inference", batch_size = size, batch_tokens = padded, sequences, tokens)
        })
        .collect()
}
