//! The lake: an object store and where each table lives in it.

use super::error::PipelineError;
use crate::config::Config;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use std::path::PathBuf;
use std::sync::Arc;

/// Where tables are stored.
#[derive(Debug, Clone)]
pub struct Lake {
    pub store: Arc<dyn ObjectStore>,
    /// The configured URI, for messages.
    pub uri: String,
    /// Local directory of a file lake.
    pub local_root: Option<PathBuf>,
    /// Hudi `hoodie.database.name` (the catalog database, else `default`).
    pub database: String,
}

impl Lake {
    /// Opens (creating the directory of) the lake of `config`.
    pub fn open(config: &Config) -> Result<Lake, PipelineError> {
        let uri = config.lake.uri.trim().to_string();
        let err = |message: String| PipelineError::Lake {
            uri: uri.clone(),
            message,
        };
        let dir = local_path(&uri).ok_or_else(|| {
            err("only local paths and file:// URIs are supported by this build".into())
        })?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| err(e.to_string()))?;
        let database = config
            .catalog
            .as_ref()
            .and_then(|c| c.database.clone())
            .unwrap_or_else(|| "default".into());
        Ok(Lake {
            store: Arc::new(store),
            uri,
            local_root: Some(dir),
            database,
        })
    }

    /// The base path of `table` inside the store.
    pub fn table_path(&self, table: &str) -> Path {
        Path::from(table)
    }

    /// Human form of a table's location.
    pub fn table_location(&self, table: &str) -> String {
        match &self.local_root {
            Some(root) => root.join(table).display().to_string(),
            None => format!("{}/{table}", self.uri.trim_end_matches('/')),
        }
    }
}

/// The directory of a local lake URI (`file:///x`, `/x`, `./x`, `x`); `None` for other schemes.
pub fn local_path(uri: &str) -> Option<PathBuf> {
    let path = match uri.split_once("://") {
        Some(("file", rest)) => PathBuf::from(rest),
        Some(_) => return None,
        None => PathBuf::from(uri),
    };
    if path.is_absolute() {
        Some(path)
    } else {
        std::env::current_dir().ok().map(|cwd| cwd.join(path))
    }
}
