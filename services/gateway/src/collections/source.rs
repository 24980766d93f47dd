//! `[NAME.source]`: the PostgreSQL table a collection follows (`crate::sync` keeps it so), and the
//! SQL that reads it. Names from the file are always quoted as identifiers; only `where` is SQL of
//! its own, as written.
//!
//! ```toml
//! [profiles.source]
//! table = "public.profiles"          # schema.table, or a table on the search path
//! key = "id"                         # its unique key (text, varchar, integer types or uuid)
//! text = ["name", "headline", "bio"] # joined with a newline, in this order; NULL and empty skipped
//! payload = ["city", "updated_at"]   # stored under their own names (as JSON: numbers, strings, ...)
//! where = "deleted_at IS NULL"       # the searchable rows [default: all]
//! url_env = "DATABASE_URL"           # the env variable with the connection string [default]
//! ```

use serde::Deserialize;

use crate::store::{HASH_KEY, ID_KEY, TEXT_KEY};

/// One collection's source table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// `schema.table`, or a table found on the connection's search path.
    pub table: String,
    /// The unique key column; the document id is its text form.
    pub key: String,
    /// The columns joined (newline) into the document's text.
    pub text: Vec<String>,
    /// The columns stored as the document's payload, under their own names.
    #[serde(default)]
    pub payload: Vec<String>,
    /// An SQL condition on the row: the rows that should be searchable.
    #[serde(default, rename = "where")]
    pub condition: Option<String>,
    /// The environment variable holding the connection string.
    #[serde(default)]
    pub url_env: Option<String>,
}

/// The connection string's variable when `url_env` is not given.
pub const DEFAULT_URL_ENV: &str = "DATABASE_URL";

/// The key column types whose text form is the same from `::text` and from `to_jsonb(row) ->>`
/// (the trigger's), so a key reads the same everywhere.
pub const KEY_TYPES: [&str; 7] = ["text", "character varying", "character", "smallint", "integer", "bigint", "uuid"];

impl SourceSettings {
    pub fn validate(&self) -> Result<(), String> {
        let parts: Vec<&str> = self.table.split('.').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("source.table {:?}: give schema.table or a table name", self.table));
        }
        for (field, name) in std::iter::once(("key", &self.key))
            .chain(self.text.iter().map(|c| ("text", c)))
            .chain(self.payload.iter().map(|c| ("payload", c)))
        {
            if name.is_empty() || name.contains('\0') {
                return Err(format!("source.{field}: a column name must not be empty"));
            }
        }
        if self.text.is_empty() {
            return Err("source.text must name at least one column".into());
        }
        if let Some(reserved) = self.payload.iter().find(|c| [ID_KEY, TEXT_KEY, HASH_KEY].contains(&c.as_str())) {
            return Err(format!("source.payload: {reserved:?} is a key the gateway keeps itself"));
        }
        if self.condition.as_deref().is_some_and(|c| c.trim().is_empty() || c.contains(';')) {
            return Err("source.where must be one SQL condition (no `;`)".into());
        }
        if self.url_env.as_deref().is_some_and(str::is_empty) {
            return Err("source.url_env must name an environment variable".into());
        }
        Ok(())
    }

    pub fn url_env(&self) -> &str {
        self.url_env.as_deref().unwrap_or(DEFAULT_URL_ENV)
    }

    /// The table as SQL: each part quoted.
    pub fn table_sql(&self) -> String {
        self.table.split('.').map(quote).collect::<Vec<_>>().join(".")
    }

    /// The document's text: the text columns as text, empty ones skipped, joined by newlines.
    pub fn text_sql(&self) -> String {
        let columns: Vec<String> = self.text.iter().map(|c| format!("NULLIF(({})::text, '')", quote(c))).collect();
        format!("concat_ws(E'\\n', {})", columns.join(", "))
    }

    /// The payload as JSON text: `{"column": value, ...}`.
    pub fn payload_sql(&self) -> String {
        let pairs: Vec<String> = self.payload.iter().map(|c| format!("{}, {}", literal(c), quote(c))).collect();
        format!("jsonb_build_object({})::text", pairs.join(", "))
    }

    /// Whether a row is searchable by the `where` condition (NULL is no).
    pub fn searchable_sql(&self) -> String {
        match &self.condition {
            Some(condition) => format!("COALESCE(({condition}), false)"),
            None => "true".into(),
        }
    }

    /// Reads the rows of the keys in `$1` (text forms): key, text, payload, searchable.
    /// `key_type` is the key column's type, so that the key's index is used.
    pub fn read_rows_sql(&self, key_type: &str) -> String {
        format!(
            "SELECT ({key})::text, {text}, {payload}, {searchable} FROM {table} WHERE {key} = ANY($1::text[]::{key_type}[])",
            key = quote(&self.key),
            text = self.text_sql(),
            payload = self.payload_sql(),
            searchable = self.searchable_sql(),
            table = self.table_sql(),
        )
    }

    /// Every searchable row's key and text, for a comparison with the collection.
    pub fn searchable_rows_sql(&self) -> String {
        format!(
            "SELECT ({key})::text, {text} FROM {table} WHERE {searchable}",
            key = quote(&self.key),
            text = self.text_sql(),
            table = self.table_sql(),
            searchable = self.searchable_sql(),
        )
    }
}

/// `name` as an SQL identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SourceSettings {
        toml::from_str(
            r#"
            table = "public.profiles"
            key = "id"
            text = ["name", "bio"]
            payload = ["city"]
            where = "deleted_at IS NULL"
        "#,
        )
        .unwrap()
    }

    #[test]
    fn names_are_quoted_and_the_condition_is_kept() {
        let s = settings();
        assert!(s.validate().is_ok());
        assert_eq!(s.table_sql(), r#""public"."profiles""#);
        assert_eq!(s.text_sql(), r#"concat_ws(E'\n', NULLIF(("name")::text, ''), NULLIF(("bio")::text, ''))"#);
        assert_eq!(s.payload_sql(), r#"jsonb_build_object('city', "city")::text"#);
        assert_eq!(s.searchable_sql(), "COALESCE((deleted_at IS NULL), false)");
        assert_eq!(s.url_env(), "DATABASE_URL");
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert!(s.read_rows_sql("uuid").ends_with(r#"WHERE "id" = ANY($1::text[]::uuid[])"#));
    }

    #[test]
    fn impossible_sources_are_refused_by_name() {
        let bad = |change: fn(&mut SourceSettings)| {
            let mut s = settings();
            change(&mut s);
            s.validate().unwrap_err()
        };
        assert!(bad(|s| s.table = "a.b.c".into()).contains("source.table"));
        assert!(bad(|s| s.text.clear()).contains("source.text"));
        assert!(bad(|s| s.payload = vec!["_text".into()]).contains("_text"));
        assert!(bad(|s| s.condition = Some("true; DROP TABLE x".into())).contains("source.where"));
        assert!(bad(|s| s.key = String::new()).contains("source.key"));
        assert!(toml::from_str::<SourceSettings>("table = \"t\"\nkey = \"id\"\ntext = [\"a\"]\ntypo = 1").is_err());
    }
}
