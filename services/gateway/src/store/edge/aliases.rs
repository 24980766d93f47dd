//! The aliases of a qdrant-edge data directory (qdrant-edge has none of its own): a JSON map in
//! `<data-dir>/aliases.json`, replaced atomically (written beside, synced, renamed, directory
//! synced), so a crash leaves the old map or the new one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::super::journal::sync_dir;

pub(super) struct Aliases {
    path: PathBuf,
    map: RwLock<HashMap<String, String>>,
}

impl Aliases {
    pub(super) fn open(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join("aliases.json");
        let map = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{} is not valid: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Self { path, map: RwLock::new(map) })
    }

    pub(super) fn all(&self) -> HashMap<String, String> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies `change` to the map and makes the result durable before returning.
    pub(super) fn update(&self, change: impl FnOnce(&mut HashMap<String, String>)) -> std::io::Result<()> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut next = map.clone();
        change(&mut next);
        let staging = self.path.with_extension("json.new");
        let mut file = std::fs::File::create(&staging)?;
        file.write_all(&serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&staging, &self.path)?;
        sync_dir(self.path.parent().expect("aliases.json is in the data directory"))?;
        *map = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let aliases = Aliases::open(dir.path()).unwrap();
        aliases.update(|m| drop(m.insert("people".into(), "profiles_v1".into()))).unwrap();
        aliases.update(|m| drop(m.insert("people".into(), "profiles_v2".into()))).unwrap();
        let reopened = Aliases::open(dir.path()).unwrap();
        assert_eq!(reopened.all(), HashMap::from([("people".to_string(), "profiles_v2".to_string())]));
        assert!(!dir.path().join("aliases.json.new").exists());
    }
}
