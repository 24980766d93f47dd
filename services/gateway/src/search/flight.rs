//! Coalescing of identical concurrent work ("single flight"): the first caller for a key starts
//! the work as its own task; later callers for the same key wait for that result. A caller that
//! goes away does not cancel the work for the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub struct Flights<V> {
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<Option<V>>>>>,
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Self { inflight: Arc::default() }
    }
}

impl<V: Clone + Send + Sync + 'static> Flights<V> {
    /// The result of `work` for `key`, shared with concurrent callers of the same key; `None` if
    /// the work panicked.
    pub async fn run(&self, key: String, work: impl Future<Output = V> + Send + 'static) -> Option<V> {
        let mut result = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match inflight.get(&key) {
                Some(running) => running.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inflight.insert(key.clone(), rx.clone());
                    let flights = self.inflight.clone();
                    tokio::spawn(async move {
                        // Removed (also if `work` panics) before the value is published, so a caller
                        // arriving later starts afresh rather than reading a finished flight.
                        let _done = Deregister { flights, key };
                        let value = work.await;
                        drop(_done);
                        tx.send_replace(Some(value));
                    });
                    rx
                }
            }
        };
        result.wait_for(Option::is_some).await.ok()?.clone()
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

struct Deregister<V> {
    flights: Arc<Mutex<HashMap<String, watch::Receiver<Option<V>>>>>,
    key: String,
}

impl<V> Drop for Deregister<V> {
    fn drop(&mut self) {
        self.flights.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn identical_concurrent_work_runs_once() {
        let flights = Arc::new(Flights::<u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let call = |key: &str| {
            let (flights, runs, key) = (flights.clone(), runs.clone(), key.to_string());
            tokio::spawn(async move {
                flights
                    .run(key, async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    })
                    .await
            })
        };
        let calls: Vec<_> = (0..5).map(|_| call("a")).chain([call("b")]).collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), Some(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one run for 'a', one for 'b'");
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(call("a").await.unwrap(), Some(7));
        assert_eq!(runs.load(Ordering::SeqCst), 3, "a finished flight is not reused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_going_away_does_not_cancel_the_others() {
        let flights = Arc::new(Flights::<u32>::default());
        let slow = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            1
        };
        let first = tokio::spawn({
            let flights = flights.clone();
            async move { flights.run("k".into(), slow).await }
        });
        tokio::task::yield_now().await;
        first.abort();
        assert_eq!(flights.run("k".into(), async { 2 }).await, Some(1), "joined the first caller's flight");
    }

    #[tokio::test]
    async fn a_panicking_flight_is_none_and_forgotten() {
        let flights = Flights::<u32>::default();
        assert_eq!(flights.run("k".into(), async { panic!("boom") }).await, None);
        assert_eq!(flights.in_flight(), 0);
    }
}
