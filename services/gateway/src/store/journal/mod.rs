//! The embedded store's write-ahead journal. qdrant-edge 0.7.0 writes a WAL of its own but never
//! replays it, and its segments (point mappings and versions included) reach the disk only when
//! the shard is flushed: without this journal a `kill -9` loses every write since the last flush.
//!
//! Every write is applied to its shard and appended here under one lock (so the journal's order
//! is the shards' order), then made durable by `fdatasync` before it is acknowledged. Writers that
//! arrive while a sync is under way wait for the next one, which serves them all (group commit).
//! A checkpoint flushes every shard and then starts a new journal file and deletes the old ones;
//! at start-up whatever files remain are replayed in order. Replaying is idempotent (an upsert
//! replaces the whole point, a delete of a missing point does nothing), so a kill during a
//! checkpoint, which leaves the old files beside a half-flushed shard, replays them onto it.
//!
//! A file is a sequence of records `[body length: u32 LE][CRC-32 of body: u32 LE][body]`. A record
//! cut short or failing its checksum ends the file: it was never synced, so never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::Point;
use crate::retrieval::SparseVector;

/// One write, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    Upsert { collection: String, points: Vec<Point> },
    Delete { collection: String, document_id: String },
}

const UPSERT: u8 = 1;
const DELETE: u8 = 2;
/// An upsert whose points may carry sparse vectors: after each point's dense vector, a flag and,
/// when set, the sparse vector's length, indices and values. (Upserts without any are written
/// as `UPSERT`, as before sparse vectors existed.)
const UPSERT_SPARSE: u8 = 3;
/// Larger bodies are taken for corruption (an upsert of 1000 documents of 100 kB is 100 MB).
const MAX_BODY: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub(super) enum JournalError {
    #[error("the write-ahead journal failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the write-ahead journal is unusable after an earlier failure ({0}); restart the gateway")]
    Broken(String),
}

pub(super) struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
    synced_changed: Condvar,
}

struct State {
    file: Arc<File>,
    /// The current file's number (files are `<number>.log`, replayed in number order).
    number: u64,
    /// Bytes in the current file.
    bytes: u64,
    /// Records appended so far (in all files), and how many of them are durable.
    appended: u64,
    synced: u64,
    syncing: bool,
    /// Set when a failed write could not be undone: appending after it would hide later records.
    broken: Option<String>,
}

/// Held while a write is applied and recorded, or while a checkpoint runs.
pub(super) struct WriteGuard<'a> {
    journal: &'a Journal,
    state: MutexGuard<'a, State>,
}

impl Journal {
    /// Opens the journal in `dir` and returns it with the entries of the files it holds, oldest
    /// first. Appends go to a new file; the old ones are deleted by the next checkpoint.
    pub(super) fn open(dir: &Path) -> Result<(Self, Vec<Entry>), JournalError> {
        std::fs::create_dir_all(dir)?;
        let mut numbers = log_numbers(dir)?;
        numbers.sort_unstable();
        let mut entries = Vec::new();
        for &number in &numbers {
            let (found, torn) = read_file(&log_path(dir, number))?;
            if torn > 0 {
                tracing::warn!(file = number, bytes = torn, "journal ends in an unsynced partial record; ignored");
            }
            entries.extend(found);
        }
        let number = numbers.last().map_or(1, |n| n + 1);
        let file = create_log(dir, number)?;
        let state =
            State { file: Arc::new(file), number, bytes: 0, appended: 0, synced: 0, syncing: false, broken: None };
        Ok((Self { dir: dir.to_path_buf(), state: Mutex::new(state), synced_changed: Condvar::new() }, entries))
    }

    /// Locks the journal: writes are applied and recorded one at a time, in one order.
    pub(super) fn lock(&self) -> WriteGuard<'_> {
        WriteGuard { journal: self, state: self.state.lock().unwrap_or_else(|p| p.into_inner()) }
    }

    /// Waits until record `ticket` (from [`WriteGuard::append`]) is on disk. One `fdatasync`
    /// serves every record appended before it started.
    pub(super) fn commit(&self, ticket: u64) -> Result<(), JournalError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if let Some(why) = &state.broken {
                return Err(JournalError::Broken(why.clone()));
            }
            if state.syncing {
                state = self.synced_changed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.syncing = true;
            let (file, target) = (state.file.clone(), state.appended);
            drop(state);
            let result = file.sync_data();
            state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.syncing = false;
            match result {
                Ok(()) => state.synced = state.synced.max(target),
                Err(e) => state.broken = Some(format!("fdatasync: {e}")),
            }
            self.synced_changed.notify_all();
        }
    }
}

impl WriteGuard<'_> {
    /// Appends a record (not yet durable: pass the ticket to [`Journal::commit`] after unlocking).
    pub(super) fn append(&mut self, entry: &EntryRef<'_>) -> Result<u64, JournalError> {
        let state = &mut *self.state;
        if let Some(why) = &state.broken {
            return Err(JournalError::Broken(why.clone()));
        }
        let record = encode(entry);
        if let Err(e) = (&*state.file).write_all(&record) {
            // Cut the partial record off, or a later record would be unreadable behind it.
            if let Err(undo) = state.file.set_len(state.bytes) {
                state.broken = Some(format!("write: {e}; truncating back: {undo}"));
            }
            return Err(e.into());
        }
        state.bytes += record.len() as u64;
        state.appended += 1;
        Ok(state.appended)
    }

    /// Bytes in the current journal file.
    pub(super) fn bytes(&self) -> u64 {
        self.state.bytes
    }

    /// Call after every shard was flushed: everything appended so far is durable in the shards,
    /// so a new file starts and the old ones go. A crash before the old files are deleted only
    /// replays them again.
    pub(super) fn checkpointed(&mut self) -> Result<(), JournalError> {
        let dir = &self.journal.dir;
        let state = &mut *self.state;
        let next = state.number + 1;
        let file = create_log(dir, next)?;
        state.file = Arc::new(file);
        state.number = next;
        state.bytes = 0;
        state.synced = state.appended;
        state.broken = None;
        self.journal.synced_changed.notify_all();
        for number in log_numbers(dir)?.into_iter().filter(|&n| n < next) {
            std::fs::remove_file(log_path(dir, number))?;
        }
        sync_dir(dir)?;
        Ok(())
    }
}

/// An entry to record, borrowing what the store is about to write.
pub(super) enum EntryRef<'a> {
    Upsert { collection: &'a str, points: &'a [Point] },
    Delete { collection: &'a str, document_id: &'a str },
}

impl EntryRef<'_> {
    pub(super) fn collection(&self) -> &str {
        match self {
            Self::Upsert { collection, .. } | Self::Delete { collection, .. } => collection,
        }
    }
}

fn log_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.log"))
}

fn log_numbers(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(number) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok()) {
            numbers.push(number);
        }
    }
    Ok(numbers)
}

/// A new, empty journal file whose directory entry is durable.
fn create_log(dir: &Path, number: u64) -> std::io::Result<File> {
    let file = OpenOptions::new().create(true).truncate(true).write(true).open(log_path(dir, number))?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The entries of one file, and how many bytes at its end were not a whole, valid record.
fn read_file(path: &Path) -> Result<(Vec<Entry>, usize), JournalError> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut entries = Vec::new();
    let mut rest = data.as_slice();
    while rest.len() >= 8 {
        let length = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if length > MAX_BODY || rest.len() < 8 + length {
            break;
        }
        let body = &rest[8..8 + length];
        if crc32fast::hash(body) != crc {
            break;
        }
        let Some(entry) = decode(body) else { break };
        entries.push(entry);
        rest = &rest[8 + length..];
    }
    Ok((entries, rest.len()))
}

fn encode(entry: &EntryRef<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    match entry {
        EntryRef::Upsert { collection, points } => {
            let with_sparse = points.iter().any(|p| p.sparse.is_some());
            body.push(if with_sparse { UPSERT_SPARSE } else { UPSERT });
            put_bytes(&mut body, collection.as_bytes());
            body.extend((points.len() as u32).to_le_bytes());
            for point in *points {
                put_bytes(&mut body, point.id.as_bytes());
                put_bytes(&mut body, point.text.as_bytes());
                let payload = serde_json::to_vec(&point.payload).expect("a JSON map serializes");
                put_bytes(&mut body, &payload);
                body.extend((point.vector.len() as u32).to_le_bytes());
                body.extend(point.vector.iter().flat_map(|x| x.to_le_bytes()));
                if with_sparse {
                    put_sparse(&mut body, point.sparse.as_ref());
                }
            }
        }
        EntryRef::Delete { collection, document_id } => {
            body.push(DELETE);
            put_bytes(&mut body, collection.as_bytes());
            put_bytes(&mut body, document_id.as_bytes());
        }
    }
    let mut record = Vec::with_capacity(body.len() + 8);
    record.extend((body.len() as u32).to_le_bytes());
    record.extend(crc32fast::hash(&body).to_le_bytes());
    record.extend(body);
    record
}

fn put_sparse(out: &mut Vec<u8>, sparse: Option<&SparseVector>) {
    let Some(sparse) = sparse else { return out.push(0) };
    out.push(1);
    out.extend((sparse.indices.len() as u32).to_le_bytes());
    out.extend(sparse.indices.iter().flat_map(|i| i.to_le_bytes()));
    out.extend(sparse.values.iter().flat_map(|x| x.to_le_bytes()));
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_le_bytes());
    out.extend(bytes);
}

/// Reads a record body; `None` if it is not one this version wrote.
fn decode(body: &[u8]) -> Option<Entry> {
    let mut r = Cursor(body);
    let entry = match r.u8()? {
        tag @ (UPSERT | UPSERT_SPARSE) => {
            let collection = r.string()?;
            let count = r.u32()? as usize;
            let mut points = Vec::with_capacity(count.min(4096));
            for _ in 0..count {
                let id = r.string()?;
                let text = r.string()?;
                let payload: Map<String, Value> = serde_json::from_slice(r.bytes()?).ok()?;
                let dimension = r.u32()? as usize;
                let raw = r.take(dimension.checked_mul(4)?)?;
                let vector = floats(raw);
                let sparse = if tag == UPSERT_SPARSE { r.sparse()? } else { None };
                points.push(Point { id, text, payload, vector, sparse });
            }
            Entry::Upsert { collection, points }
        }
        DELETE => Entry::Delete { collection: r.string()?, document_id: r.string()? },
        _ => return None,
    };
    r.0.is_empty().then_some(entry)
}

fn floats(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// `Some(None)`: the point has no sparse vector; `None`: the record is malformed.
    fn sparse(&mut self) -> Option<Option<SparseVector>> {
        match self.u8()? {
            0 => Some(None),
            1 => {
                let n = self.u32()? as usize;
                let indices = self.take(n.checked_mul(4)?)?;
                let indices = indices.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
                let values = floats(self.take(n.checked_mul(4)?)?);
                Some(Some(SparseVector { indices: indices.collect(), values }))
            }
            _ => None,
        }
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests;
