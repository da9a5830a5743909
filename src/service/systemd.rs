//! systemd's notify protocol (`Type=notify`): READY=1 once the sources and tables are open, WATCHDOG=1
//! from the run loop (at half of `WatchdogSec`), STOPPING=1 on a stop request. Nothing is sent when
//! `NOTIFY_SOCKET` is not set (not under systemd).

use sd_notify::NotifyState;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// WATCHDOG=1 at most this often when systemd did not say (`WATCHDOG_USEC` unset).
const DEFAULT_WATCHDOG_EVERY: Duration = Duration::from_secs(5);

fn send(state: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "systemd notify failed");
    }
}

/// The service is up: sources connected, tables open.
pub fn ready() {
    static SENT: Mutex<bool> = Mutex::new(false);
    let mut sent = SENT.lock().unwrap_or_else(|e| e.into_inner());
    if !*sent {
        send(&[NotifyState::Ready]);
        *sent = true;
    }
}

/// The loop turned: WATCHDOG=1, throttled to half the watchdog interval.
pub fn watchdog() {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let every = watchdog_interval().map_or(DEFAULT_WATCHDOG_EVERY, |w| w / 2);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= every) {
        send(&[NotifyState::Watchdog]);
        *last = Some(Instant::now());
    }
}

/// A stop was requested: STOPPING=1 (systemd waits up to `TimeoutStopSec` for the last commit).
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(Duration::from_micros(usec))
}
