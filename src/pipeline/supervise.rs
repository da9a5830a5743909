//! Riding out outages: a run that stops on a transient error (object store, broker or database
//! unreachable) is reopened from the tables' checkpoints with backoff, so nothing folded but not committed
//! is lost or committed twice (the source reads it again), until `[commit] retry_deadline` passes without
//! a successful commit; then the error ends the process (exit 1) for systemd or ECS to restart it.

use super::error::PipelineError;
use super::run::{run_pipeline, until_stopped};
use super::state::{RunOptions, RunSummary};
use crate::config::Config;
use crate::metrics::events::Outage;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15);

/// Runs the pipeline of `config` until drained (`once`) or until `stop` is set, riding out outages.
pub async fn run(
    config: &Config,
    options: RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary, PipelineError> {
    let mut summary = RunSummary::default();
    let mut outage: Option<Instant> = None;
    let mut delay = FIRST_DELAY;
    loop {
        let mut committed = false;
        let result = run_pipeline(config, options, &stop, &mut summary, &mut committed).await;
        if committed {
            outage = None;
            delay = FIRST_DELAY;
        }
        let error = match result {
            Ok(()) => {
                Outage::over();
                return Ok(summary);
            }
            Err(e) if e.is_transient() && !stop.load(Ordering::SeqCst) => e,
            Err(e) => return Err(e),
        };
        if let PipelineError::Busy { message } = &error {
            // Not an outage: a replay holds the tables for as long as it takes.
            tracing::info!(%message, "waiting");
            tokio::select! {
                _ = tokio::time::sleep(MAX_DELAY.min(FIRST_DELAY * 2)) => {}
                _ = until_stopped(&stop) => return Ok(summary),
            }
            continue;
        }
        let since = *outage.get_or_insert_with(Instant::now);
        let deadline = config.commit.retry_deadline.0;
        if since.elapsed() >= deadline {
            tracing::error!(error = %error, deadline = ?deadline, "the outage outlasted [commit] retry_deadline; exiting");
            return Err(error);
        }
        Outage {
            error: &error.to_string(),
            retry_in: delay,
            since: since.elapsed(),
        }
        .emit();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = until_stopped(&stop) => return Ok(summary),
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}
