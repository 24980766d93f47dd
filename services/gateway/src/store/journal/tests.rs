//! The journal's records, torn tails, checkpoints and group commit.

use serde_json::json;

use super::*;

fn point(id: &str, x: f32) -> Point {
    let payload = json!({"n": x, "tags": ["a", "b"]}).as_object().unwrap().clone();
    Point { id: id.into(), text: format!("text of {id}"), payload, vector: vec![x, -x, 0.5], sparse: None }
}

fn record(journal: &Journal, entry: EntryRef<'_>) {
    let ticket = journal.lock().append(&entry).unwrap();
    journal.commit(ticket).unwrap();
}

#[test]
fn entries_come_back_in_order_after_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (journal, old) = Journal::open(dir).unwrap();
    assert!(old.is_empty());
    let points = [point("a", 1.0), point("b", 2.0)];
    record(&journal, EntryRef::Upsert { collection: "c", points: &points });
    record(&journal, EntryRef::Delete { collection: "c", document_id: "a" });
    drop(journal);
    let (_journal, entries) = Journal::open(dir).unwrap();
    assert_eq!(
        entries,
        vec![
            Entry::Upsert { collection: "c".into(), points: points.to_vec() },
            Entry::Delete { collection: "c".into(), document_id: "a".into() },
        ]
    );
}

#[test]
fn sparse_vectors_come_back_and_old_records_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let sparse = SparseVector { indices: vec![3, 17, 4_000_000_000], values: vec![0.5, 1.25, 2.0] };
    let points = [Point { sparse: Some(sparse), ..point("a", 1.0) }, point("b", 2.0)];
    let entry = EntryRef::Upsert { collection: "c", points: &points };
    assert_eq!(encode(&entry)[8], UPSERT_SPARSE);
    let plain = [point("b", 2.0)];
    let old = encode(&EntryRef::Upsert { collection: "c", points: &plain });
    assert_eq!(old[8], UPSERT, "without sparse vectors, the record is the one older versions wrote");
    let (journal, _) = Journal::open(tmp.path()).unwrap();
    record(&journal, entry);
    record(&journal, EntryRef::Upsert { collection: "c", points: &plain });
    drop(journal);
    let (_journal, entries) = Journal::open(tmp.path()).unwrap();
    assert_eq!(
        entries,
        vec![
            Entry::Upsert { collection: "c".into(), points: points.to_vec() },
            Entry::Upsert { collection: "c".into(), points: plain.to_vec() },
        ]
    );
}

#[test]
fn a_torn_or_corrupt_tail_ends_the_file_and_later_files_still_count() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (journal, _) = Journal::open(dir).unwrap();
    record(&journal, EntryRef::Delete { collection: "c", document_id: "kept" });
    record(&journal, EntryRef::Delete { collection: "c", document_id: "torn" });
    drop(journal);
    let first = log_path(dir, 1);
    let length = std::fs::metadata(&first).unwrap().len();
    let file = OpenOptions::new().write(true).open(&first).unwrap();
    file.set_len(length - 3).unwrap();
    // The next run writes a second file; a flipped byte in it ends that file too.
    let (journal, entries) = Journal::open(dir).unwrap();
    assert_eq!(entries, vec![Entry::Delete { collection: "c".into(), document_id: "kept".into() }]);
    record(&journal, EntryRef::Delete { collection: "c", document_id: "second" });
    record(&journal, EntryRef::Delete { collection: "c", document_id: "flipped" });
    drop(journal);
    let second = log_path(dir, 2);
    let mut bytes = std::fs::read(&second).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&second, bytes).unwrap();
    let (_, entries) = Journal::open(dir).unwrap();
    let ids: Vec<_> = entries
        .iter()
        .map(|e| match e {
            Entry::Delete { document_id, .. } => document_id.as_str(),
            Entry::Upsert { .. } => "upsert",
        })
        .collect();
    assert_eq!(ids, ["kept", "second"]);
}

#[test]
fn a_checkpoint_forgets_what_came_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (journal, _) = Journal::open(dir).unwrap();
    record(&journal, EntryRef::Delete { collection: "c", document_id: "before" });
    let mut guard = journal.lock();
    assert!(guard.bytes() > 0);
    guard.checkpointed().unwrap();
    assert_eq!(guard.bytes(), 0);
    drop(guard);
    record(&journal, EntryRef::Delete { collection: "c", document_id: "after" });
    drop(journal);
    let (_, entries) = Journal::open(dir).unwrap();
    assert_eq!(entries, vec![Entry::Delete { collection: "c".into(), document_id: "after".into() }]);
    assert_eq!(log_numbers(dir).unwrap().len(), 2, "the checkpointed file and the one just opened");
}

#[test]
fn concurrent_writers_share_syncs_and_all_land() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (journal, _) = Journal::open(dir).unwrap();
    let journal = Arc::new(journal);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let id = format!("{w}-{i}");
                    record(&journal, EntryRef::Delete { collection: "c", document_id: &id });
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    drop(journal);
    let (_, entries) = Journal::open(dir).unwrap();
    assert_eq!(entries.len(), 400);
}
