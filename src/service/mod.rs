//! The service surface of a running daemon: `GET /metrics` (Prometheus), `/healthz`, `/readyz` and
//! `/status` on `[metrics] listen`.

mod http;
pub mod status;
pub mod systemd;

use crate::config::MetricsConfig;
use std::time::Duration;

/// Starts serving `[metrics] listen`; the recorder is installed first so every event of the run counts.
/// `alive_within`: how long the loop may go without turning before `/healthz` fails.
pub async fn start(config: &MetricsConfig, alive_within: Duration) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("[metrics] listen = \"{}\": {e}", config.listen))?;
    let handle = crate::metrics::install()?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.listen.clone());
    tracing::info!(listen = %addr, "serving /metrics, /healthz, /readyz and /status");
    tokio::spawn(http::serve(listener, handle, alive_within));
    Ok(())
}
