//! The gateway's own schema in the source database, `semsearch`: the change queue, the parked
//! keys, the consumers (each index that follows a table: a qdrant-edge data directory's
//! collection, or a Qdrant server's), and the trigger that queues a row's key for every consumer
//! of its table when the row changes (TRUNCATE queues a marker). Installed at start,
//! idempotently, under an advisory lock (two gateways starting at once take turns), versioned in
//! `semsearch.sync_migrations`; `search-gateway sync sql` prints the same SQL for a DBA.
//!
//! What the gateway's role needs: with the schema and triggers applied by a DBA (`sync sql
//! --role R`), SELECT on the source table and the grants that script gives; to install them
//! itself, CREATE on the database (the schema) and ownership of the source table (its triggers).
//! The trigger function is SECURITY DEFINER: the app's own role needs no grant at all.

use tokio_postgres::Client;

use super::SyncError;
use crate::collections::source::{KEY_TYPES, SourceSettings, quote};

/// The schema version this gateway installs and expects.
pub const VERSION: i32 = 1;

/// The advisory lock every installer takes ("semsearch" in hex, then 1).
const INSTALL_LOCK: i64 = 0x7365_6d73_6561_0001;

/// Version 1: the queue, the parked keys, the consumers and the trigger function.
const MIGRATION_1: &str = r#"
CREATE SCHEMA IF NOT EXISTS semsearch;
CREATE TABLE IF NOT EXISTS semsearch.sync_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
-- An index that follows a table: one queue of its own, one backfill.
CREATE TABLE IF NOT EXISTS semsearch.sync_consumers (
    consumer text PRIMARY KEY,
    relid oid NOT NULL,
    key_column text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    backfill_started_at timestamptz,
    backfill_finished_at timestamptz,
    backfill_total bigint,
    backfill_queued bigint NOT NULL DEFAULT 0,
    backfill_after text
);
CREATE INDEX IF NOT EXISTS sync_consumers_relid ON semsearch.sync_consumers (relid);
-- A key to bring up to date (NULL: the table was truncated).
CREATE TABLE IF NOT EXISTS semsearch.sync_queue (
    id bigserial PRIMARY KEY,
    consumer text NOT NULL,
    key text,
    queued_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    not_before timestamptz NOT NULL DEFAULT now(),
    last_error text
);
CREATE INDEX IF NOT EXISTS sync_queue_next ON semsearch.sync_queue (consumer, not_before, id);
CREATE INDEX IF NOT EXISTS sync_queue_key ON semsearch.sync_queue (consumer, key);
-- A key that failed every attempt, with why; queued again when its row changes.
CREATE TABLE IF NOT EXISTS semsearch.sync_failed (
    consumer text NOT NULL,
    key text NOT NULL,
    attempts integer NOT NULL,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, key)
);
CREATE OR REPLACE FUNCTION semsearch.sync_enqueue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    new_row jsonb;
    old_row jsonb;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO semsearch.sync_queue (consumer, key)
            SELECT c.consumer, NULL FROM semsearch.sync_consumers c WHERE c.relid = TG_RELID;
    ELSE
        IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
        IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
        INSERT INTO semsearch.sync_queue (consumer, key)
            SELECT DISTINCT c.consumer, k.key
            FROM semsearch.sync_consumers c
            CROSS JOIN LATERAL (VALUES (new_row ->> c.key_column), (old_row ->> c.key_column)) AS k (key)
            WHERE c.relid = TG_RELID AND k.key IS NOT NULL;
    END IF;
    PERFORM pg_notify('semsearch_sync', '');
    RETURN NULL;
END
$fn$;
"#;

/// The channel the trigger notifies; a worker listens, and polls besides.
pub const CHANNEL: &str = "semsearch_sync";

/// The triggers of one source table (created only where missing: their definition never changes).
pub fn trigger_sql(source: &SourceSettings) -> String {
    let table = source.table_sql();
    format!(
        "CREATE TRIGGER semsearch_sync_rows AFTER INSERT OR UPDATE OR DELETE ON {table}\n    \
         FOR EACH ROW EXECUTE FUNCTION semsearch.sync_enqueue();\n\
         CREATE TRIGGER semsearch_sync_truncate AFTER TRUNCATE ON {table}\n    \
         FOR EACH STATEMENT EXECUTE FUNCTION semsearch.sync_enqueue();\n"
    )
}

/// Everything `sync sql` prints: the schema, the triggers of `sources`, and grants for `role`.
pub fn script(sources: &[&SourceSettings], role: Option<&str>) -> String {
    let mut out = format!(
        "-- search-gateway sync: schema version {VERSION}, and the triggers of each [NAME.source].\n\
         -- Safe to run again: it changes nothing that is already there.\nBEGIN;\n\
         SELECT pg_advisory_xact_lock({INSTALL_LOCK});\n{MIGRATION_1}\n\
         INSERT INTO semsearch.sync_migrations (version) VALUES ({VERSION}) ON CONFLICT DO NOTHING;\n"
    );
    for source in sources {
        let table = source.table_sql();
        out += &format!(
            "DROP TRIGGER IF EXISTS semsearch_sync_rows ON {table};\nDROP TRIGGER IF EXISTS semsearch_sync_truncate ON {table};\n{}",
            trigger_sql(source)
        );
    }
    if let Some(role) = role {
        let role = quote(role);
        out += &format!(
            "GRANT USAGE ON SCHEMA semsearch TO {role};\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA semsearch TO {role};\n\
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA semsearch TO {role};\n"
        );
        for source in sources {
            out += &format!("GRANT SELECT ON {} TO {role};\n", source.table_sql());
        }
    }
    out + "COMMIT;\n"
}

/// Applies the schema if this database has an older one (or none).
pub async fn migrate(client: &mut Client) -> Result<(), SyncError> {
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&INSTALL_LOCK]).await?;
    let exists: bool =
        transaction.query_one("SELECT to_regclass('semsearch.sync_migrations') IS NOT NULL", &[]).await?.get(0);
    let installed: Option<i32> = match exists {
        true => transaction.query_one("SELECT max(version) FROM semsearch.sync_migrations", &[]).await?.get(0),
        false => None,
    };
    if installed.is_some_and(|v| v >= VERSION) {
        return Ok(transaction.commit().await?);
    }
    transaction
        .batch_execute(MIGRATION_1)
        .await
        .map_err(|e| SyncError::privileges(e, "create the schema semsearch"))?;
    transaction
        .execute("INSERT INTO semsearch.sync_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING", &[&VERSION])
        .await?;
    transaction.commit().await?;
    tracing::info!(version = VERSION, "sync schema installed");
    Ok(())
}

/// What registering a consumer found out about its table.
pub struct Registered {
    /// The key column's type, to read rows by key through its index.
    pub key_type: String,
    /// The consumer was new here: it has everything to catch up on.
    pub new: bool,
}

/// Checks the source table (it exists, its columns do, its key is unique and of a usable type,
/// the SQL reads), creates its triggers if missing and registers `consumer`; errors name the
/// table, the column and what to do.
pub async fn register(client: &mut Client, source: &SourceSettings, consumer: &str) -> Result<Registered, SyncError> {
    let table = &source.table;
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&INSTALL_LOCK]).await?;
    let relid: Option<u32> = transaction.query_one("SELECT to_regclass($1)::oid", &[&source.table_sql()]).await?.get(0);
    let Some(relid) = relid else {
        return Err(SyncError::Source(format!(
            "table {table} does not exist (or this role cannot see it): create it, or fix source.table"
        )));
    };
    let columns = transaction
        .query(
            "SELECT attname::text, attnum, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
            &[&relid],
        )
        .await?;
    let column = |name: &str| columns.iter().find(|row| row.get::<_, String>(0) == name);
    let named = std::iter::once(("key", &source.key))
        .chain(source.text.iter().map(|c| ("text", c)))
        .chain(source.payload.iter().map(|c| ("payload", c)));
    for (field, name) in named {
        if column(name).is_none() {
            return Err(SyncError::Source(format!(
                "table {table} has no column {name:?} (source.{field}); fix the configuration"
            )));
        }
    }
    let key = column(&source.key).expect("checked above");
    let (key_attnum, key_type): (i16, String) = (key.get(1), key.get(2));
    if !KEY_TYPES.iter().any(|t| key_type == *t || key_type.starts_with(&format!("{t}("))) {
        return Err(SyncError::Source(format!(
            "the key {:?} of {table} is of type {key_type}: use a text, varchar, integer or uuid column",
            source.key
        )));
    }
    let unique = transaction
        .query_opt(
            "SELECT 1 FROM pg_index WHERE indrelid = $1 AND indisunique AND indnkeyatts = 1 \
             AND indkey[0] = $2 AND indpred IS NULL LIMIT 1",
            &[&relid, &key_attnum],
        )
        .await?;
    if unique.is_none() {
        return Err(SyncError::Source(format!(
            "the key {:?} of {table} has no unique index: add one (ALTER TABLE {} ADD UNIQUE ({}))",
            source.key,
            source.table_sql(),
            quote(&source.key)
        )));
    }
    // The text, payload and condition read (an empty key list: nothing is fetched).
    transaction
        .query(&source.read_rows_sql(&key_type), &[&Vec::<String>::new()])
        .await
        .map_err(|e| SyncError::Source(format!("reading {table} as configured fails: {}", super::db_message(&e))))?;
    let triggers: i64 = transaction
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1 AND tgname IN ('semsearch_sync_rows', 'semsearch_sync_truncate')",
            &[&relid],
        )
        .await?
        .get(0);
    if triggers < 2 {
        let drop = format!(
            "DROP TRIGGER IF EXISTS semsearch_sync_rows ON {t}; DROP TRIGGER IF EXISTS semsearch_sync_truncate ON {t};",
            t = source.table_sql()
        );
        transaction
            .batch_execute(&format!("{drop}\n{}", trigger_sql(source)))
            .await
            .map_err(|e| SyncError::privileges(e, &format!("create triggers on {table}")))?;
        tracing::info!(table = %table, "sync triggers installed");
    }
    let inserted = transaction
        .execute(
            "INSERT INTO semsearch.sync_consumers (consumer, relid, key_column) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer) DO UPDATE SET relid = EXCLUDED.relid, key_column = EXCLUDED.key_column, \
             last_seen_at = now() WHERE sync_consumers.relid <> EXCLUDED.relid OR sync_consumers.key_column <> EXCLUDED.key_column",
            &[&consumer, &relid, &source.key],
        )
        .await?;
    let new = transaction
        .query_one("SELECT backfill_started_at IS NULL FROM semsearch.sync_consumers WHERE consumer = $1", &[&consumer])
        .await?
        .get::<_, bool>(0);
    transaction.commit().await?;
    if inserted > 0 {
        tracing::info!(table = %table, consumer, "sync consumer registered");
    }
    Ok(Registered { key_type, new })
}
