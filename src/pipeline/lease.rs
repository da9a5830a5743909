//! Who writes a lake's tables right now. Every `run` and every `replay` keeps a lease object,
//! `.hoodie/.lakefold/lease-<id>.json` in the dead-letter table (the one table every process of a lake
//! shares), naming its kind, host, pid, `[metrics] listen` and tables. It is rewritten every
//! [`LEASE_REFRESH`] and deleted when the process ends; one not rewritten for [`LEASE_STALE`] (measured on
//! the store's clock) belonged to a process that died. `replay` refuses to run beside a live lease on its
//! tables and a `run` waits for a replay's lease to go, so the two are never writers of one table at once.

use super::dead_letter::DEAD_LETTER_TABLE;
use super::error::PipelineError;
use super::lake::Lake;
use crate::sink::hudi::HudiError;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How often a lease is rewritten.
pub const LEASE_REFRESH: Duration = Duration::from_secs(10);
/// A lease older than this is a dead process's.
pub const LEASE_STALE: Duration = Duration::from_secs(30);

/// What a lease says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// `run` or `replay`.
    pub kind: String,
    pub host: String,
    pub pid: u32,
    /// The holder's `[metrics] listen`, when it serves one.
    pub listen: Option<String>,
    /// The tables it writes (the dead-letter table included).
    pub tables: Vec<String>,
}

impl LeaseInfo {
    /// A lease of this process for `tables`.
    pub fn of_this_process(kind: &str, listen: Option<String>, tables: Vec<String>) -> LeaseInfo {
        LeaseInfo {
            kind: kind.to_string(),
            host: hostname(),
            pid: std::process::id(),
            listen,
            tables,
        }
    }

    /// For messages: `run (pid 4242 on etl-1, 127.0.0.1:9464)`.
    pub fn describe(&self) -> String {
        let listen = self
            .listen
            .as_deref()
            .map(|l| format!(", {l}"))
            .unwrap_or_default();
        format!("{} (pid {} on {}{listen})", self.kind, self.pid, self.host)
    }
}

/// Another process's live lease on some of our tables, and how long ago it was rewritten.
#[derive(Debug, Clone)]
pub struct Holder {
    pub info: LeaseInfo,
    pub age: Duration,
}

/// This process's lease, rewritten in the background until released (or dropped).
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    path: Path,
    info: LeaseInfo,
    refresh: tokio::task::JoinHandle<()>,
    /// When the lease was last written.
    written: Arc<std::sync::Mutex<std::time::Instant>>,
}

impl Lease {
    /// Writes the lease and keeps it fresh.
    pub async fn take(lake: &Lake, info: LeaseInfo) -> Result<Lease, PipelineError> {
        let dir = lake
            .table_path(DEAD_LETTER_TABLE)
            .join(".hoodie")
            .join(".lakefold");
        let path = dir
            .clone()
            .join(format!("lease-{}.json", uuid::Uuid::new_v4()).as_str());
        let body = serde_json::to_vec(&info).map_err(|e| PipelineError::Service {
            message: format!("cannot encode the lease: {e}"),
        })?;
        put(&lake.store, &path, &body).await?;
        let written = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
        let refresh = {
            let (store, path, written) = (lake.store.clone(), path.clone(), written.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_REFRESH).await;
                    match put(&store, &path, &body).await {
                        Ok(()) => {
                            if let Ok(mut w) = written.lock() {
                                *w = std::time::Instant::now();
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "lease refresh failed; retried in {LEASE_REFRESH:?}")
                        }
                    }
                }
            })
        };
        Ok(Lease {
            store: lake.store.clone(),
            dir,
            path,
            info,
            refresh,
            written,
        })
    }

    /// Live leases of other processes that share a table with this one.
    pub async fn others(&self) -> Result<Vec<Holder>, PipelineError> {
        let now = self
            .store
            .head(&self.path)
            .await
            .map_err(storage(&self.path))?
            .last_modified;
        let listing = self
            .store
            .list_with_delimiter(Some(&self.dir))
            .await
            .map_err(storage(&self.dir))?;
        let mut holders = Vec::new();
        for o in listing.objects {
            let is_lease = o
                .location
                .filename()
                .is_some_and(|n| n.starts_with("lease-"));
            if !is_lease || o.location == self.path {
                continue;
            }
            let age = now
                .signed_duration_since(o.last_modified)
                .to_std()
                .unwrap_or_default();
            if age >= LEASE_STALE {
                continue;
            }
            // Gone since the listing: its holder ended.
            let Ok(got) = self.store.get(&o.location).await else {
                continue;
            };
            let Ok(bytes) = got.bytes().await else {
                continue;
            };
            let Ok(info) = serde_json::from_slice::<LeaseInfo>(&bytes) else {
                continue;
            };
            if info.tables.iter().any(|t| self.info.tables.contains(t)) {
                holders.push(Holder { info, age });
            }
        }
        Ok(holders)
    }

    /// True while others still see the lease as live, with a margin: written less than half of
    /// [`LEASE_STALE`] ago.
    pub fn is_fresh(&self) -> bool {
        self.written
            .lock()
            .map(|w| w.elapsed() < LEASE_STALE / 2)
            .unwrap_or(false)
    }

    /// Stops refreshing and deletes the lease.
    pub async fn release(self) {
        self.refresh.abort();
        if let Err(e) = self.store.delete(&self.path).await {
            tracing::debug!(error = %e, "removing the lease failed; it goes stale in {LEASE_STALE:?}");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.refresh.abort();
    }
}

async fn put(store: &Arc<dyn ObjectStore>, path: &Path, body: &[u8]) -> Result<(), PipelineError> {
    store
        .put(path, PutPayload::from(body.to_vec()))
        .await
        .map(|_| ())
        .map_err(storage(path))
}

fn storage(path: &Path) -> impl Fn(object_store::Error) -> PipelineError {
    let path = path.to_string();
    move |source| {
        PipelineError::Sink(HudiError::Storage {
            table: DEAD_LETTER_TABLE.into(),
            path: path.clone(),
            source,
        })
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown host".into())
}
