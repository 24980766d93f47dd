//! What a collection name means: an alias resolved to its collection, and that collection's
//! profile (configured collections: their own embedder, input types and point layout).
//!
//! Here too: the configured collections (`profiles`, read from `--collections-config`), the
//! PostgreSQL table a collection may follow (`source`, kept in sync by `crate::sync`) and the
//! writer every write goes through (`documents`: skip unchanged, embed, upsert, invalidate).

pub mod documents;
pub mod profiles;
pub mod source;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::tokenize::InputType;

use crate::retrieval::Bm25;
use crate::store::{StoreError, VectorStore};
use crate::upstream::Embed;
use profiles::Profiles;

/// Embedders of configured collections that another model built, by collection.
pub type CollectionEmbedders = HashMap<String, Arc<dyn Embed>>;

/// How long a fetched alias map is used before it is asked again. Aliases this process sets are
/// seen at once; one set by another process (a reindex against a Qdrant server) within this.
const ALIAS_REFRESH: Duration = Duration::from_secs(1);

pub struct Collections {
    pub profiles: Arc<Profiles>,
    embedders: CollectionEmbedders,
    default_embedder: Arc<dyn Embed>,
    store: Arc<dyn VectorStore>,
    aliases: Mutex<Option<Fetched>>,
    /// The BM25 embedders of collections with settings of their own, and everyone else's.
    bm25: HashMap<String, Arc<Bm25>>,
    default_bm25: Arc<Bm25>,
}

/// An alias map and when it was fetched.
type Fetched = (Instant, Arc<HashMap<String, String>>);

impl Collections {
    pub fn new(
        profiles: Arc<Profiles>,
        embedders: CollectionEmbedders,
        default_embedder: Arc<dyn Embed>,
        store: Arc<dyn VectorStore>,
    ) -> Self {
        let bm25 = profiles
            .iter()
            .filter_map(|(name, p)| p.bm25.as_ref().map(|settings| (name, settings)))
            .map(|(name, settings)| {
                (name.clone(), Arc::new(Bm25::new(settings).expect("checked when the profiles were read")))
            })
            .collect();
        let default_bm25 = Arc::new(Bm25::default());
        Self { profiles, embedders, default_embedder, store, aliases: Mutex::default(), bm25, default_bm25 }
    }

    /// The BM25 embedder of `collection`'s sparse vectors.
    pub fn bm25(&self, collection: &str) -> &Bm25 {
        self.bm25.get(collection).unwrap_or(&self.default_bm25)
    }

    /// The collection `name` stands for: the one its alias names, or `name` itself.
    pub async fn resolve(&self, name: &str) -> String {
        self.aliases().await.get(name).cloned().unwrap_or_else(|| name.to_string())
    }

    /// The alias map, fetched at most every [`ALIAS_REFRESH`]; the last one known while the store
    /// cannot answer (its own errors then surface in the operation itself).
    pub async fn aliases(&self) -> Arc<HashMap<String, String>> {
        let cached = self.aliases.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((fetched, map)) = &cached
            && fetched.elapsed() < ALIAS_REFRESH
        {
            return map.clone();
        }
        match self.store.aliases().await {
            Ok(map) => {
                let map = Arc::new(map);
                *self.aliases.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), map.clone()));
                map
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot list aliases; using the last known");
                cached.map(|(_, map)| map).unwrap_or_default()
            }
        }
    }

    /// Points `alias` at `collection` and forgets the cached map.
    pub async fn set_alias(&self, alias: &str, collection: &str) -> Result<(), StoreError> {
        let result = self.store.set_alias(alias, collection).await;
        self.forget_aliases();
        result
    }

    /// Deletes a collection (not an alias) and forgets the cached aliases.
    pub async fn delete(&self, collection: &str) -> Result<bool, StoreError> {
        let result = self.store.delete_collection(collection).await;
        self.forget_aliases();
        result
    }

    fn forget_aliases(&self) {
        *self.aliases.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The embedder that built `collection` (its own model, if configured, else the gateway's).
    pub fn embedder(&self, collection: &str) -> &dyn Embed {
        self.embedders.get(collection).unwrap_or(&self.default_embedder).as_ref()
    }

    /// What identifies `collection`'s query embeddings in cache keys: the model's name, the
    /// input type, and the collection when it has an embedder of its own (two directories of
    /// the same model may pool differently).
    pub fn embedding_identity(&self, collection: &str) -> String {
        let (query, _) = self.profiles.input_types(collection);
        let own = if self.embedders.contains_key(collection) { collection } else { "" };
        format!("{}|{}|{own}", self.embedder(collection).model(), input_type_name(query))
    }
}

pub fn input_type_name(input_type: InputType) -> &'static str {
    match input_type {
        InputType::Query => "query",
        InputType::Passage => "passage",
        InputType::Raw => "raw",
    }
}
