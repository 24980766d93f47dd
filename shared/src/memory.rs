//! Giving freed heap memory back to the operating system between inference batches.
//!
//! Batches of varying shapes allocate and free large activation buffers. glibc keeps much of
//! what is freed inside its per-thread arenas, so a service's resident memory would settle well
//! above its working size. `malloc_trim(0)` returns those free pages. This is the only module
//! that needs `unsafe`: one foreign call with no preconditions.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

/// Trims at most once per `interval`, so the cost stays negligible under constant load.
pub struct Trimmer {
    interval: Duration,
    last: Instant,
}

impl Trimmer {
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: Instant::now() }
    }

    /// Trims now, whatever the interval.
    pub fn trim_now(&mut self) {
        let started = Instant::now();
        release_free_memory();
        self.last = Instant::now();
        tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "heap trimmed");
    }

    /// Trims if `interval` has passed since the last trim; returns whether it did.
    pub fn maybe_trim(&mut self) -> bool {
        if self.last.elapsed() < self.interval {
            return false;
        }
        self.trim_now();
        true
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointers and has no preconditions; it locks each glibc arena
    // in turn and releases free pages, so it is safe to call from any thread at any time.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_at_most_once_per_interval() {
        let mut trimmer = Trimmer::new(Duration::from_secs(3600));
        assert!(!trimmer.maybe_trim(), "not before the interval");
        let mut eager = Trimmer::new(Duration::ZERO);
        let _garbage: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 16]).collect();
        drop(_garbage);
        assert!(eager.maybe_trim());
    }
}
