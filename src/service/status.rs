//! What `/status`, `/healthz` and `/readyz` report: one board per process, updated by the typed events of
//! [`crate::metrics::events`] and by the run loop (heartbeat, readiness).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// One route's table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteStatus {
    pub table: String,
    pub source: String,
    pub last_instant: Option<String>,
    /// RFC 3339, UTC.
    pub last_commit_time: Option<String>,
    pub checkpoint: Option<String>,
    pub freshness_seconds: Option<f64>,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    pub commits: u64,
    pub dead_letters: u64,
    pub last_error: Option<String>,
}

/// One source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    pub name: String,
    pub records: u64,
    pub events: u64,
    pub skipped: u64,
    pub dead_letters: u64,
    /// `bytes` / `messages` / `seconds` behind the source's end (per partition for Kafka).
    pub lag: BTreeMap<String, f64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Board {
    ready: bool,
    heartbeat: Option<Instant>,
    routes: BTreeMap<String, RouteStatus>,
    sources: BTreeMap<String, SourceStatus>,
    degraded: Option<String>,
}

/// The process's status.
pub struct StatusBoard {
    started: Instant,
    board: Mutex<Board>,
}

/// The process's board.
pub fn board() -> &'static StatusBoard {
    static BOARD: OnceLock<StatusBoard> = OnceLock::new();
    BOARD.get_or_init(|| StatusBoard {
        started: Instant::now(),
        board: Mutex::new(Board::default()),
    })
}

impl StatusBoard {
    fn lock(&self) -> MutexGuard<'_, Board> {
        // A panic while holding the lock cannot leave the board inconsistent in a way that matters.
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The loop turned.
    pub fn beat(&self) {
        self.lock().heartbeat = Some(Instant::now());
    }

    pub fn set_ready(&self, ready: bool) {
        self.lock().ready = ready;
    }

    /// A fault the service is riding out (`None` when it is over).
    pub fn set_degraded(&self, why: Option<String>) {
        self.lock().degraded = why;
    }

    pub fn route(&self, table: &str, update: impl FnOnce(&mut RouteStatus)) {
        let mut b = self.lock();
        let r = b
            .routes
            .entry(table.to_string())
            .or_insert_with(|| RouteStatus {
                table: table.to_string(),
                ..RouteStatus::default()
            });
        update(r);
    }

    pub fn source(&self, name: &str, update: impl FnOnce(&mut SourceStatus)) {
        let mut b = self.lock();
        let s = b
            .sources
            .entry(name.to_string())
            .or_insert_with(|| SourceStatus {
                name: name.to_string(),
                ..SourceStatus::default()
            });
        update(s);
    }

    /// Alive: the loop turned within `within`.
    pub fn healthy(&self, within: Duration) -> bool {
        self.lock().heartbeat.is_some_and(|t| t.elapsed() <= within)
    }

    /// Ready: sources connected and tables open, and no fault being ridden out.
    pub fn ready(&self) -> bool {
        let b = self.lock();
        b.ready && b.degraded.is_none()
    }

    /// The `/status` document.
    pub fn to_json(&self) -> serde_json::Value {
        let b = self.lock();
        // Tables without a source are not routes (the dead-letter table).
        let (routes, others): (Vec<&RouteStatus>, Vec<&RouteStatus>) =
            b.routes.values().partition(|r| !r.source.is_empty());
        let routes: Vec<serde_json::Value> = routes
            .into_iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(s) = b.sources.get(&r.source) {
                    v["lag"] = serde_json::json!(s.lag);
                }
                v
            })
            .collect();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "ready": b.ready && b.degraded.is_none(),
            "degraded": b.degraded,
            "sources": b.sources.values().collect::<Vec<_>>(),
            "routes": routes,
            "other_tables": others,
        })
    }
}
