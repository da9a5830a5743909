//! Optimistic concurrency between writers of one table. Every commit (and every rollback) first claims the
//! slot after the newest completed instant it planned on: `.hoodie/.lakefold/next-after-<instant>`,
//! created with a create-only PUT (S3 `If-None-Match: *`). Two writers that planned on the same table state
//! cannot both claim it; the second learns that another writer committed, rolls back what it wrote and
//! reports a conflict. A claim whose owner died (never completed its instant) is taken over after
//! `STALE_AFTER`.

use super::error::HudiError;
use super::instant::Instant;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a claim may stay without its instant completing before it counts as abandoned.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// What a claim file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// A random id per writer process.
    pub owner: String,
    /// The instant the owner is completing, or the pending instant it is rolling back.
    pub instant: String,
    /// `commit` or `rollback`.
    pub purpose: String,
}

/// The outcome of trying to claim a slot.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimResult {
    /// The slot is ours.
    Claimed,
    /// Someone else holds it; their claim, and whether it is old enough to be abandoned.
    Held { by: Claim, stale: bool },
}

pub fn claims_dir(base: &Path) -> Path {
    base.clone().join(".hoodie").join(".lakefold")
}

pub fn claim_path(base: &Path, after: Option<&Instant>) -> Path {
    let name = format!(
        "next-after-{}",
        after.map(Instant::as_str).unwrap_or("00000000000000000")
    );
    claims_dir(base).join(name.as_str())
}

/// Tries once to claim the slot after `after` for `claim`.
pub async fn try_claim(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    base: &Path,
    after: Option<&Instant>,
    claim: &Claim,
) -> Result<ClaimResult, HudiError> {
    let path = claim_path(base, after);
    let storage = |source| HudiError::Storage {
        table: table.to_string(),
        path: path.to_string(),
        source,
    };
    let body = serde_json::to_vec(claim).unwrap_or_default();
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(&path, PutPayload::from(body), opts).await {
        Ok(_) => Ok(ClaimResult::Claimed),
        Err(object_store::Error::AlreadyExists { .. }) => {
            let existing = match store.get(&path).await {
                Ok(r) => {
                    let modified = r.meta.last_modified;
                    let bytes = r.bytes().await.map_err(storage)?;
                    let by: Claim = serde_json::from_slice(&bytes).unwrap_or(Claim {
                        owner: "unknown".into(),
                        instant: String::new(),
                        purpose: "unknown".into(),
                    });
                    let age = chrono::Utc::now().signed_duration_since(modified);
                    (by, age.to_std().is_ok_and(|a| a >= STALE_AFTER))
                }
                // Released between our PUT and GET: try again.
                Err(object_store::Error::NotFound { .. }) => {
                    return Box::pin(try_claim(store, table, base, after, claim)).await
                }
                Err(source) => return Err(storage(source)),
            };
            if existing.0.owner == claim.owner {
                return Ok(ClaimResult::Claimed);
            }
            Ok(ClaimResult::Held {
                by: existing.0,
                stale: existing.1,
            })
        }
        Err(source) => Err(storage(source)),
    }
}

/// Removes a claim (an abandoned one being taken over, or one that is no longer needed).
pub async fn release(
    store: &Arc<dyn ObjectStore>,
    table: &str,
    base: &Path,
    after: Option<&Instant>,
) -> Result<(), HudiError> {
    let path = claim_path(base, after);
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(HudiError::Storage {
            table: table.to_string(),
            path: path.to_string(),
            source,
        }),
    }
}
