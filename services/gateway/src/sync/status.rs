//! What a collection's sync is doing, as the worker knows it and as `GET
//! /collections/{name}/sync` answers it (**contract**: `queued`, `failed`, `done`,
//! `oldest_queued_secs`, `last_error`, `backfill`).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// Keys processed are counted over this window for the rate.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// A collection's sync, shared by its workers and the routes.
#[derive(Debug, Default)]
pub struct State {
    pub connected: bool,
    pub last_error: Option<(String, SystemTime)>,
    /// Keys brought up to date since start (written, deleted or found unchanged).
    pub done: u64,
    pub upserted: u64,
    pub deleted: u64,
    /// Rows found but not searchable (outside `where`, or no text): their documents are removed.
    pub unsearchable: u64,
    /// Keys that failed every attempt and were parked.
    pub parked: u64,
    /// (when, keys) of recent batches, for the rate.
    recent: VecDeque<(Instant, u64)>,
    /// Read from the database at most every few seconds.
    pub queued: Option<i64>,
    pub failed: Option<i64>,
    pub oldest_queued_secs: Option<f64>,
    pub backfill: Backfill,
}

/// The first (or a requested) catch-up: every searchable key queued, in pages.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Backfill {
    /// `not_started`, `running` or `done`.
    pub state: &'static str,
    /// Searchable rows when it started.
    pub total: Option<i64>,
    /// Keys it has queued so far.
    pub queued: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Default for Backfill {
    fn default() -> Self {
        Self { state: "not_started", total: None, queued: 0, started_at: None, finished_at: None }
    }
}

impl State {
    pub fn processed(&mut self, keys: u64) {
        self.done += keys;
        let now = Instant::now();
        self.recent.push_back((now, keys));
        while self.recent.front().is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW) {
            self.recent.pop_front();
        }
    }

    pub fn failed_with(&mut self, error: String) {
        self.last_error = Some((error, SystemTime::now()));
    }

    /// Keys a second over the last minute (or since the first batch, if sooner).
    fn rate(&self) -> f64 {
        let Some((first, _)) = self.recent.front() else { return 0.0 };
        let keys: u64 = self.recent.iter().map(|(_, k)| k).sum();
        let seconds = first.elapsed().as_secs_f64().max(1.0);
        keys as f64 / seconds
    }
}

/// `GET /collections/{name}/sync`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    pub collection: String,
    /// The table it follows.
    pub table: String,
    /// This index's name in the database's consumers (`semsearch.sync_consumers`).
    pub consumer: String,
    /// Whether a worker is connected to the database now.
    pub connected: bool,
    /// Keys waiting in the queue (null while the database cannot be read).
    pub queued: Option<i64>,
    /// Keys parked after failing every attempt (`semsearch.sync_failed`).
    pub failed: Option<i64>,
    /// Keys brought up to date since this process started.
    pub done: u64,
    /// Of those, documents written (new or changed text or payload).
    pub upserted: u64,
    /// Of those, documents removed (row deleted, outside `where`, or without text).
    pub deleted: u64,
    /// Rows read that were not searchable (outside `where`, or all text columns NULL or empty).
    pub unsearchable: u64,
    /// How long the oldest queued key has waited.
    pub oldest_queued_secs: Option<f64>,
    /// Keys a second over the last minute.
    pub rate_per_sec: f64,
    /// `queued` / `rate_per_sec`, while there is a rate.
    pub eta_secs: Option<f64>,
    /// The last error (cleared when a batch goes through), and when.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub backfill: Backfill,
}

impl SyncStatus {
    pub fn of(collection: &str, table: &str, consumer: &str, state: &State) -> Self {
        let rate = state.rate();
        let eta_secs = state.queued.filter(|_| rate > 0.0).map(|q| q as f64 / rate);
        Self {
            collection: collection.to_string(),
            table: table.to_string(),
            consumer: consumer.to_string(),
            connected: state.connected,
            queued: state.queued,
            failed: state.failed,
            done: state.done,
            upserted: state.upserted,
            deleted: state.deleted,
            unsearchable: state.unsearchable,
            oldest_queued_secs: state.oldest_queued_secs,
            rate_per_sec: rate,
            eta_secs,
            last_error: state.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: state.last_error.as_ref().map(|(_, t)| rfc3339(*t)),
            backfill: state.backfill.clone(),
        }
    }
}

/// A UTC timestamp as `2026-12-07T10:47:00Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_640_420);
        assert_eq!(rfc3339(t), "2026-12-07T10:47:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn the_rate_counts_the_last_minute() {
        let mut state = State::default();
        assert_eq!(state.rate(), 0.0);
        state.processed(30);
        state.processed(30);
        assert_eq!(state.rate(), 60.0, "within the first second: per second since it");
        state.queued = Some(120);
        let status = SyncStatus::of("c", "t", "k", &state);
        assert_eq!((status.done, status.eta_secs), (60, Some(2.0)));
    }
}
