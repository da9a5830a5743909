//! Coordination between writers of one table, with create-only PUTs only (S3 `If-None-Match: *`):
//!
//! - **Slot claims** serialize commits: before publishing, a writer claims
//!   `.hoodie/.lakefold/next-after-<newest completed instant it planned on>`. Two writers that planned on the
//!   same table state cannot both claim it; the second sees the other's commit and backs off. A claim whose
//!   owner never finished is taken over after [`STALE_AFTER`] (measured on the store's clock).
//! - **Fate markers** decide each instant once: `.hoodie/.lakefold/fate-<instant>` says `commit` (with the
//!   final commit metadata, so anyone can roll it forward) or `rollback`. A writer publishes its `.commit`
//!   only after winning `commit`; a rollback deletes files only after winning `rollback`. So a rollback
//!   never deletes the files of an instant that is (or will be) completed.

use super::error::HudiError;
use super::instant::Instant;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a claim may stay without its instant completing before it counts as abandoned.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What a slot claim holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// A random id per writer.
    pub owner: String,
    /// The instant the owner is completing.
    pub instant: String,
}

/// The outcome of trying to claim a slot.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimResult {
    Claimed,
    /// Someone else holds it since `since` (store time).
    Held {
        by: Claim,
        since: DateTime<Utc>,
    },
}

/// What was decided for an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fate", rename_all = "lowercase")]
pub enum Fate {
    /// The instant completes; `commit` is its `.commit` JSON (for rolling it forward).
    Commit {
        owner: String,
        commit: String,
    },
    Rollback {
        owner: String,
    },
}

pub fn claims_dir(base: &Path) -> Path {
    base.clone().join(".hoodie").join(".lakefold")
}

fn claim_path(base: &Path, after: Option<&Instant>) -> Path {
    let name = format!(
        "next-after-{}",
        after.map(Instant::as_str).unwrap_or("00000000000000000")
    );
    claims_dir(base).join(name.as_str())
}

fn fate_path(base: &Path, instant: &Instant) -> Path {
    claims_dir(base).join(format!("fate-{instant}").as_str())
}

fn storage(table: &str, path: &Path) -> impl Fn(object_store::Error) -> HudiError {
    let (table, path) = (table.to_string(), path.to_string());
    move |source| HudiError::Storage {
        table: table.clone(),
        path: path.clone(),
        source,
    }
}

/// A create-only PUT: `Ok(false)` when the object already exists.
pub async fn create(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    body: Vec<u8>,
) -> object_store::Result<bool> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(path, PutPayload::from(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Tries once to claim the slot after `after`.
pub async fn try_claim(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    base: &Path,
    after: Option<&Instant>,
    claim: &Claim,
) -> Result<ClaimResult, HudiError> {
    let path = claim_path(base, after);
    let err = storage(table, &path);
    for _ in 0..3 {
        if create(store, &path, serde_json::to_vec(claim).unwrap_or_default())
            .await
            .map_err(&err)?
        {
            return Ok(ClaimResult::Claimed);
        }
        match store.get(&path).await {
            Ok(r) => {
                let since = r.meta.last_modified;
                let bytes = r.bytes().await.map_err(&err)?;
                let by: Claim = serde_json::from_slice(&bytes).unwrap_or(Claim {
                    owner: "unknown".into(),
                    instant: String::new(),
                });
                if by.owner == claim.owner {
                    return Ok(ClaimResult::Claimed);
                }
                return Ok(ClaimResult::Held { by, since });
            }
            // Released between our PUT and GET: try again.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(HudiError::Data {
        table: table.to_string(),
        message: format!("claim {path} keeps changing"),
    })
}

/// The store's clock: the modification time of a probe object written now (host clocks may be skewed).
pub async fn store_now(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    base: &Path,
    owner: &str,
) -> Result<DateTime<Utc>, HudiError> {
    let path = claims_dir(base).join(format!("clock-{owner}").as_str());
    let err = storage(table, &path);
    store
        .put(&path, PutPayload::from_static(b""))
        .await
        .map_err(&err)?;
    let meta = store.head(&path).await.map_err(&err)?;
    let _ = store.delete(&path).await;
    Ok(meta.last_modified)
}

/// Removes the claim after `after` (taking over an abandoned one).
pub async fn release(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    base: &Path,
    after: Option<&Instant>,
) -> Result<(), HudiError> {
    let path = claim_path(base, after);
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(storage(table, &path)(e)),
    }
}

/// Decides `instant`'s fate: ours if nobody decided before, else the one already decided.
pub async fn decide(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    base: &Path,
    instant: &Instant,
    fate: &Fate,
) -> Result<Fate, HudiError> {
    let path = fate_path(base, instant);
    let err = storage(table, &path);
    if create(store, &path, serde_json::to_vec(fate).unwrap_or_default())
        .await
        .map_err(&err)?
    {
        return Ok(fate.clone());
    }
    let bytes = store
        .get(&path)
        .await
        .map_err(&err)?
        .bytes()
        .await
        .map_err(&err)?;
    serde_json::from_slice(&bytes).map_err(|e| HudiError::Data {
        table: table.to_string(),
        message: format!("unreadable {path}: {e}"),
    })
}

/// Removes the fate marker of a completed instant (no longer consulted once the `.commit` exists).
pub async fn forget(store: &Arc<dyn ObjectStore>, base: &Path, instant: &Instant) {
    let _ = store.delete(&fate_path(base, instant)).await;
}
