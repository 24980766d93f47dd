//! A collection following a PostgreSQL table, end to end: a real PostgreSQL server (a cluster
//! made by the test), the real gateway binary with its in-process engines on the tiny fixtures.
//! After every story the collection must equal the table: every key, every text and payload, no
//! extra; the expected state is computed here from the table with SQL of the test's own.

mod drift;
mod faults;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::{Postgres, Process, TempDir};
use serde_json::{Value, json};

pub const READY: Duration = Duration::from_secs(60);
/// How long a story may take to settle.
pub const SETTLE: Duration = Duration::from_secs(60);

pub const TABLE: &str = "CREATE TABLE public.profiles (
    id bigint PRIMARY KEY,
    name text,
    bio text,
    city text,
    deleted_at timestamptz
)";

pub const SOURCE: &str = r#"
[people.source]
table = "public.profiles"
key = "id"
text = ["name", "bio"]
payload = ["city"]
where = "deleted_at IS NULL"
"#;

/// A database with the profiles table, a collections config, and a data directory.
pub struct Setup {
    pub pg: Postgres,
    pub config: TempDir,
    pub data: TempDir,
}

impl Setup {
    pub async fn new(collections: &str) -> Self {
        let pg = Postgres::start();
        pg.client().await.batch_execute(TABLE).await.unwrap();
        let config = TempDir::new("sync-config");
        std::fs::write(config.path().join("collections.toml"), collections).unwrap();
        Self { pg, config, data: TempDir::new("sync-data") }
    }

    /// A gateway following the table (polling every 100 ms, retrying after 50 ms).
    pub fn gateway(&self, extra: &[&str]) -> Process {
        self.gateway_in(&self.data, extra)
    }

    pub fn gateway_in(&self, data: &TempDir, extra: &[&str]) -> Process {
        let config = self.config.path().join("collections.toml");
        let mut args = vec!["--collections-config", config.to_str().unwrap(), "--sync-poll-ms", "100"];
        args.extend(["--sync-retry-ms", "50"]);
        args.extend_from_slice(extra);
        e2e::start_gateway_with_envs(data, &args, &[("DATABASE_URL", &self.pg.url())])
    }
}

/// The table's searchable rows as the collection should hold them: id -> (text, payload).
pub async fn expected(client: &tokio_postgres::Client) -> BTreeMap<String, (String, Value)> {
    let rows = client
        .query(
            "SELECT id::text, concat_ws(E'\\n', NULLIF(name, ''), NULLIF(bio, '')), json_build_object('city', city)::text \
             FROM public.profiles WHERE deleted_at IS NULL",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), serde_json::from_str(&r.get::<_, String>(2)).unwrap()))
        .filter(|(_, text, _)| !text.trim().is_empty())
        .map(|(id, text, payload)| (id, (text, payload)))
        .collect()
}

/// The collection's documents: id -> (text, payload).
pub async fn documents(gw: &Process, collection: &str) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = gw.url(&format!("/collections/{collection}/documents?limit=1000"));
        if let Some(after) = &after {
            url += &format!("&after={after}");
        }
        let response = reqwest::get(&url).await.unwrap();
        if response.status() == 404 {
            return out;
        }
        let page: Value = response.json().await.unwrap();
        for d in page["documents"].as_array().unwrap() {
            let text = d["text"].as_str().unwrap_or_default().to_string();
            out.insert(d["id"].as_str().unwrap().to_string(), (text, d["payload"].clone()));
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return out,
        }
    }
}

/// Waits until the collection equals the table, then checks it (a failure shows the difference).
pub async fn assert_in_sync(gw: &Process, pg: &Postgres, collection: &str) {
    let client = pg.client().await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let (want, got) = (expected(&client).await, documents(gw, collection).await);
        if want == got || Instant::now() > deadline {
            assert_eq!(got, want, "the collection differs from the table; logs:\n{}", gw.logs());
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn status(gw: &Process, collection: &str) -> Value {
    reqwest::get(gw.url(&format!("/collections/{collection}/sync"))).await.unwrap().json().await.unwrap()
}

/// Waits until the status satisfies `done`.
pub async fn wait_status(gw: &Process, collection: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let status = status(gw, collection).await;
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok()).unwrap_or(0.0)
}

/// POSTs `body` to `route`, expecting 200; the JSON answer.
pub async fn post_json(client: &reqwest::Client, gw: &Process, route: &str, body: Value) -> Value {
    let (status, out) = e2e::post_json(client, gw.url(route), body).await;
    assert_eq!(status, 200, "{route}: {out}");
    out
}

pub async fn metrics(gw: &Process) -> String {
    reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn inserts_updates_deletes_truncate_and_the_where_reach_the_collection() {
    let setup = Setup::new(SOURCE).await;
    let db = setup.pg.client().await;
    db.batch_execute(
        "INSERT INTO profiles (id, name, bio, city) SELECT i, 'person ' || i, 'writes rust in town ' || i, 'Paris'
         FROM generate_series(1, 40) AS i",
    )
    .await
    .unwrap();
    let gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    // The rows from before the gateway came are the backfill's.
    assert_in_sync(&gw, &setup.pg, "people").await;
    let backfill = wait_status(&gw, "people", "backfill", |s| s["backfill"]["state"] == "done").await;
    assert_eq!(backfill["backfill"]["total"], 40);

    db.batch_execute(
        "INSERT INTO profiles (id, name, city) VALUES (100, 'newcomer', 'Lyon');
         UPDATE profiles SET bio = 'bakes bread' WHERE id = 1;
         UPDATE profiles SET city = 'Berlin' WHERE id = 2;
         DELETE FROM profiles WHERE id = 3;
         UPDATE profiles SET deleted_at = now() WHERE id = 4;
         UPDATE profiles SET name = NULL, bio = '' WHERE id = 5;
         UPDATE profiles SET id = 6000 WHERE id = 6;",
    )
    .await
    .unwrap();
    assert_in_sync(&gw, &setup.pg, "people").await;
    let docs = documents(&gw, "people").await;
    assert_eq!(docs["1"].0, "person 1\nbakes bread");
    assert_eq!(docs["100"].0, "newcomer", "a NULL column is skipped");
    assert!(!docs.contains_key("4") && !docs.contains_key("5") && !docs.contains_key("6"));
    let status = wait_status(&gw, "people", "counts", |s| s["queued"] == 0).await;
    assert!(status["unsearchable"].as_u64() >= Some(2), "{status}");

    // A row back inside the where comes back; a TRUNCATE empties the collection.
    db.batch_execute("UPDATE profiles SET deleted_at = NULL WHERE id = 4").await.unwrap();
    assert_in_sync(&gw, &setup.pg, "people").await;
    db.batch_execute("TRUNCATE profiles; INSERT INTO profiles (id, name) VALUES (7, 'after the truncate')")
        .await
        .unwrap();
    assert_in_sync(&gw, &setup.pg, "people").await;
    assert_eq!(documents(&gw, "people").await.len(), 1);

    let text = metrics(&gw).await;
    assert!(metric(&text, "gateway_sync_done_total{collection=\"people\"}") > 40.0, "{text}");
    assert_eq!(metric(&text, "gateway_sync_queued{collection=\"people\"}"), 0.0);
    // The API may not write to a collection that follows a table.
    let refused = reqwest::Client::new()
        .put(gw.url("/collections/people/documents"))
        .json(&json!({"documents": [{"id": "x", "text": "y"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("public.profiles"), "{body}");
}

#[tokio::test]
async fn transactions_that_commit_in_the_opposite_order_of_their_queue_ids_both_land() {
    let setup = Setup::new(SOURCE).await;
    let gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    wait_status(&gw, "people", "backfill", |s| s["backfill"]["state"] == "done").await;
    let (mut first, mut second) = (setup.pg.client().await, setup.pg.client().await);
    let early = first.transaction().await.unwrap();
    early.execute("INSERT INTO profiles (id, name) VALUES (1, 'queued first, committed last')", &[]).await.unwrap();
    let late = second.transaction().await.unwrap();
    late.execute("INSERT INTO profiles (id, name) VALUES (2, 'queued second, committed first')", &[]).await.unwrap();
    late.commit().await.unwrap();
    // The later id is processed while the earlier one is still invisible.
    let deadline = Instant::now() + SETTLE;
    while !documents(&gw, "people").await.contains_key("2") {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    early.commit().await.unwrap();
    assert_in_sync(&gw, &setup.pg, "people").await;
    assert_eq!(documents(&gw, "people").await.len(), 2);
}

#[tokio::test]
async fn deletes_and_reinserts_during_the_backfill_end_as_the_table() {
    let setup = Setup::new(SOURCE).await;
    let db = setup.pg.client().await;
    db.batch_execute(
        "INSERT INTO profiles (id, name, bio, city) SELECT i, 'person ' || i, 'bio ' || i, 'Rome'
         FROM generate_series(1, 3000) AS i",
    )
    .await
    .unwrap();
    let gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    wait_status(&gw, "people", "backfill running", |s| s["backfill"]["state"] != "not_started").await;
    for round in 0..20 {
        let keys = format!("ARRAY[{}, {}, {}]", 1 + round * 7, 1500 + round * 13, 2990 - round);
        db.batch_execute(&format!(
            "DELETE FROM profiles WHERE id = ANY({keys});
             INSERT INTO profiles (id, name, city) SELECT k, 'reinserted {round}', 'Oslo' FROM unnest({keys}) AS k
             WHERE k % 2 = 0;
             UPDATE profiles SET bio = 'changed in round {round}' WHERE id = {};",
            100 + round
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_in_sync(&gw, &setup.pg, "people").await;
    let status = wait_status(&gw, "people", "backfill done", |s| s["backfill"]["state"] == "done").await;
    assert_eq!(status["backfill"]["total"], 3000, "{status}\n{}", gw.logs());
}

#[tokio::test]
async fn a_full_requeue_re_embeds_nothing() {
    let setup = Setup::new(SOURCE).await;
    let db = setup.pg.client().await;
    db.batch_execute("INSERT INTO profiles (id, name) SELECT i, 'person ' || i FROM generate_series(1, 200) AS i")
        .await
        .unwrap();
    let gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    assert_in_sync(&gw, &setup.pg, "people").await;
    wait_status(&gw, "people", "idle", |s| s["backfill"]["state"] == "done" && s["queued"] == 0).await;
    let embedded = metric(&metrics(&gw).await, "gateway_embed_sequences_total");
    let done = status(&gw, "people").await["done"].as_u64().unwrap();
    let response = reqwest::Client::new().post(gw.url("/collections/people/sync/resync")).send().await.unwrap();
    assert_eq!(response.status(), 202);
    wait_status(&gw, "people", "the requeue processed", |s| {
        s["backfill"]["state"] == "done" && s["queued"] == 0 && s["done"].as_u64() >= Some(done + 200)
    })
    .await;
    assert_eq!(metric(&metrics(&gw).await, "gateway_embed_sequences_total"), embedded, "nothing embedded again");
    assert_in_sync(&gw, &setup.pg, "people").await;
}

#[tokio::test]
async fn two_gateways_each_with_its_own_index_follow_the_whole_table() {
    let setup = Setup::new(SOURCE).await;
    let other_data = TempDir::new("sync-data-other");
    let (one, two) = (setup.gateway(&[]), setup.gateway_in(&other_data, &[]));
    one.wait_ready(READY).await;
    two.wait_ready(READY).await;
    let db = setup.pg.client().await;
    for i in 0..30 {
        db.execute("INSERT INTO profiles (id, name) VALUES ($1, 'person ' || $1::bigint::text)", &[&i64::from(i)])
            .await
            .unwrap();
    }
    assert_in_sync(&one, &setup.pg, "people").await;
    assert_in_sync(&two, &setup.pg, "people").await;
    let (a, b) = (status(&one, "people").await, status(&two, "people").await);
    assert_ne!(a["consumer"], b["consumer"], "two data directories are two consumers");
}

/// Two gateways that are one consumer share its queue: what replicas on one Qdrant server are
/// (their consumer is the server's URL and the collection; no server binary exists here, so the
/// second gateway gets a data directory of its own with the first one's `sync-id`). Each key is
/// written by exactly one of them, both take part, and the second does not backfill again.
#[tokio::test]
async fn two_gateways_of_one_consumer_share_the_queue_and_write_each_key_once() {
    let setup = Setup::new(SOURCE).await;
    let one = setup.gateway(&["--sync-batch", "1"]);
    one.wait_ready(READY).await;
    wait_status(&one, "people", "the first backfill", |s| s["backfill"]["state"] == "done").await;
    let other = TempDir::new("sync-data-same-consumer");
    std::fs::copy(setup.data.path().join("sync-id"), other.path().join("sync-id")).unwrap();
    let two = setup.gateway_in(&other, &["--sync-batch", "1"]);
    two.wait_ready(READY).await;
    let (a, b) = (status(&one, "people").await, status(&two, "people").await);
    assert_eq!(a["consumer"], b["consumer"], "one consumer: {a} {b}");

    let db = setup.pg.client().await;
    db.batch_execute("INSERT INTO profiles (id, name) SELECT i, 'person ' || i FROM generate_series(1, 300) i")
        .await
        .unwrap();
    let want = expected(&db).await;
    let deadline = Instant::now() + SETTLE;
    let (a, b) = loop {
        let (a, b) = (documents(&one, "people").await, documents(&two, "people").await);
        let union: BTreeMap<_, _> = a.clone().into_iter().chain(b.clone()).collect();
        if union == want || Instant::now() > deadline {
            assert_eq!(union, want, "the two collections together differ from the table");
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let twice: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    assert!(twice.is_empty(), "written by both: {twice:?}");
    assert!(!a.is_empty() && !b.is_empty(), "both take part: {} and {} of 300", a.len(), b.len());
    assert_eq!(status(&two, "people").await["backfill"]["state"], "done", "no second backfill");
}

#[tokio::test]
async fn the_sql_for_a_dba_installs_what_the_gateway_needs() {
    let setup = Setup::new(SOURCE).await;
    let config = setup.config.path().join("collections.toml");
    // No database is needed to print it.
    let output = std::process::Command::new(e2e::binary("search-gateway"))
        .args(["sync", "sql", "--collections-config", config.to_str().unwrap(), "--role", "gateway"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains("CREATE TRIGGER semsearch_sync_rows") && script.contains("GRANT SELECT ON"), "{script}");
    // Applied by the table's owner, twice (it is idempotent); then a role without CREATE or
    // TRIGGER follows the table.
    let db = setup.pg.client().await;
    db.batch_execute("CREATE ROLE gateway LOGIN").await.unwrap();
    db.batch_execute(&script).await.unwrap();
    db.batch_execute(&script).await.unwrap();
    db.batch_execute("INSERT INTO profiles (id, name) VALUES (1, 'written before the gateway came')").await.unwrap();
    let url = format!("postgres://gateway@127.0.0.1:{}/postgres", setup.pg.port);
    let config = setup.config.path().join("collections.toml");
    let args = ["--collections-config", config.to_str().unwrap(), "--sync-poll-ms", "100"];
    let gw = e2e::start_gateway_with_envs(&setup.data, &args, &[("DATABASE_URL", &url)]);
    gw.wait_ready(READY).await;
    db.batch_execute("INSERT INTO profiles (id, name) VALUES (2, 'written after')").await.unwrap();
    assert_in_sync(&gw, &setup.pg, "people").await;
    assert_eq!(documents(&gw, "people").await.len(), 2);
}
