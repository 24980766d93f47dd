//! Faults caused for real: an embedder frozen (SIGSTOP) while a key is claimed, the gateway
//! killed (-9) mid-batch, PostgreSQL killed and restarted mid-stream, a row that can never be
//! written, and configurations that cannot work.

use std::time::{Duration, Instant};

use e2e::{fixture, start_model_service};
use serde_json::Value;

use super::{READY, SETTLE, SOURCE, Setup, assert_in_sync, documents, metric, metrics, status, wait_status};

#[tokio::test]
async fn an_update_while_its_key_is_claimed_ends_at_the_latest_version() {
    let setup = Setup::new(SOURCE).await;
    let embed = start_model_service("embed-service", &fixture("tiny-e5"), &["--intra-op-threads", "1"], &[]);
    embed.wait_ready(READY).await;
    let embed_url = embed.url("");
    let gw = setup.gateway(&["--embed-url", &embed_url, "--embed-timeout-ms", "120000"]);
    gw.wait_ready(READY).await;
    wait_status(&gw, "people", "backfill", |s| s["backfill"]["state"] == "done").await;
    let db = setup.pg.client().await;
    embed.signal("STOP");
    db.batch_execute("INSERT INTO profiles (id, name) VALUES (1, 'version one')").await.unwrap();
    // Claimed: the worker holds the key's queue row (and waits for the frozen embedder).
    let deadline = Instant::now() + SETTLE;
    loop {
        let free =
            db.query("SELECT id FROM semsearch.sync_queue WHERE key = '1' FOR UPDATE SKIP LOCKED", &[]).await.unwrap();
        let queued = db.query("SELECT id FROM semsearch.sync_queue WHERE key = '1'", &[]).await.unwrap();
        if free.is_empty() && !queued.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the key was never claimed: {}", gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.batch_execute("UPDATE profiles SET name = 'version two' WHERE id = 1").await.unwrap();
    embed.signal("CONT");
    assert_in_sync(&gw, &setup.pg, "people").await;
    assert_eq!(documents(&gw, "people").await["1"].0, "version two");
}

#[tokio::test]
async fn kill_9_mid_batch_and_postgres_restarted_mid_stream_lose_nothing() {
    let mut setup = Setup::new(SOURCE).await;
    let mut gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    wait_status(&gw, "people", "backfill", |s| s["backfill"]["state"] == "done").await;
    let url = setup.pg.url();
    // A writer that keeps inserting and rewriting rows, reconnecting across the restart.
    let writer = tokio::spawn(async move {
        let mut written = 0u32;
        let mut client: Option<tokio_postgres::Client> = None;
        while written < 600 {
            if client.is_none() {
                client = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.ok().map(|(c, conn)| {
                    tokio::spawn(conn);
                    c
                });
            }
            let Some(db) = &client else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let id = i64::from(written % 200);
            let sql = "INSERT INTO profiles (id, name, bio) VALUES ($1, 'person ' || $1::bigint::text, 'revision ' || $2::bigint::text)
                       ON CONFLICT (id) DO UPDATE SET bio = EXCLUDED.bio";
            match db.execute(sql, &[&id, &i64::from(written)]).await {
                Ok(_) => written += 1,
                Err(_) => client = None,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    // Kill the gateway while it holds a claimed batch (queue rows locked by its transaction).
    let db = setup.pg.client().await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let all: i64 = db.query_one("SELECT count(*) FROM semsearch.sync_queue", &[]).await.unwrap().get(0);
        let free = db.query("SELECT id FROM semsearch.sync_queue FOR UPDATE SKIP LOCKED", &[]).await.unwrap().len();
        if status(&gw, "people").await["done"].as_u64() >= Some(20) && (free as i64) < all {
            break;
        }
        assert!(Instant::now() < deadline, "no batch was ever seen claimed: {}", gw.logs());
    }
    gw.kill_9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    // Then PostgreSQL crashes and comes back, the writer and the workers reconnecting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    setup.pg.kill_9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    setup.pg.restart();
    writer.await.unwrap();
    assert_in_sync(&gw, &setup.pg, "people").await;
    let text = metrics(&gw).await;
    assert!(metric(&text, "gateway_sync_errors_total{collection=\"people\"}") >= 1.0, "the outage was seen: {text}");
}

#[tokio::test]
async fn a_row_that_can_never_be_written_is_parked_while_the_rest_flows() {
    let setup = Setup::new(&SOURCE.replace("key = \"id\"", "key = \"handle\"")).await;
    let db = setup.pg.client().await;
    db.batch_execute("ALTER TABLE profiles ADD COLUMN handle text UNIQUE").await.unwrap();
    let gw = setup.gateway(&[]);
    gw.wait_ready(READY).await;
    // A document id is at most 512 bytes: this key can never be one.
    let poison = "x".repeat(600);
    db.execute("INSERT INTO profiles (id, handle, name) VALUES (0, $1, 'poison')", &[&poison]).await.unwrap();
    db.batch_execute(
        "INSERT INTO profiles (id, handle, name) SELECT i, 'h' || i, 'person ' || i FROM generate_series(1, 20) AS i",
    )
    .await
    .unwrap();
    let parked = wait_status(&gw, "people", "parked", |s| s["failed"] == 1 && s["queued"] == 0).await;
    assert!(parked["done"].as_u64() >= Some(20), "{parked}");
    let row = db.query_one("SELECT attempts, error FROM semsearch.sync_failed", &[]).await.unwrap();
    let (attempts, error): (i32, String) = (row.get(0), row.get(1));
    assert_eq!(attempts, 5);
    assert!(error.contains("512 bytes"), "{error}");
    let docs = documents(&gw, "people").await;
    assert_eq!(docs.len(), 20, "every other row flowed");
    // Fixed in the table, it is queued again by its change and leaves the parked list.
    db.batch_execute("UPDATE profiles SET handle = 'h0' WHERE id = 0").await.unwrap();
    wait_status(&gw, "people", "unparked", |s| s["failed"] == 0 && s["queued"] == 0).await;
    assert_eq!(documents(&gw, "people").await["h0"].0, "poison");
}

/// A configuration that cannot work is named in the status and the log; searches go on.
#[tokio::test]
async fn a_source_that_does_not_fit_is_named_and_searches_go_on() {
    let cases: [(&str, &str, &str); 4] = [
        ("DROP TABLE profiles", "table public.profiles does not exist", ""),
        ("ALTER TABLE profiles DROP COLUMN bio", "has no column \"bio\" (source.text)", ""),
        ("ALTER TABLE profiles DROP CONSTRAINT profiles_pkey", "has no unique index", "ADD UNIQUE"),
        ("SELECT 1", "reading public.profiles as configured fails", "nonexistent"),
    ];
    for (sql, needle, extra) in cases {
        let source = if extra == "nonexistent" {
            SOURCE.replace("deleted_at IS NULL", "nonexistent > 0")
        } else {
            SOURCE.into()
        };
        let setup = Setup::new(&source).await;
        setup.pg.client().await.batch_execute(sql).await.unwrap();
        let gw = setup.gateway(&[]);
        gw.wait_ready(READY).await;
        let failed = wait_status(&gw, "people", needle, |s| s["last_error"].as_str().is_some()).await;
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains(needle) && error.contains(extra), "{needle}: {error}");
        assert_eq!(failed["connected"], false);
        let search = reqwest::Client::new()
            .post(gw.url("/search"))
            .json(&serde_json::json!({"query": "anything", "collection": "other"}))
            .send()
            .await
            .unwrap();
        assert_ne!(search.status(), 500, "searches are served: {}", search.text().await.unwrap());
    }
    // A database that refuses the connection.
    let setup = Setup::new(SOURCE).await;
    let config = setup.config.path().join("collections.toml");
    let args = ["--collections-config", config.to_str().unwrap()];
    let unreachable = format!("postgres://postgres@127.0.0.1:{}/postgres", e2e::free_port());
    let gw = e2e::start_gateway_with_envs(&setup.data, &args, &[("DATABASE_URL", &unreachable)]);
    gw.wait_ready(READY).await;
    let failed: Value = wait_status(&gw, "people", "refused", |s| s["last_error"].as_str().is_some()).await;
    assert!(failed["last_error"].as_str().unwrap().contains("PostgreSQL"), "{failed}");
    // And no connection string at all.
    drop(gw);
    let gw = e2e::start_gateway_with_envs(&e2e::TempDir::new("sync-data-unset"), &args, &[("DATABASE_URL", "")]);
    gw.wait_ready(READY).await;
    let failed = status(&gw, "people").await;
    assert!(failed["last_error"].as_str().unwrap().contains("DATABASE_URL is not set"), "{failed}");
}
