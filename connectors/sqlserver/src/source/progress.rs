//! Snapshot progress for people: on a terminal a bar redrawn in place on stderr, otherwise a log line
//! every [`LOG_EVERY`].

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(10);
const DRAW_EVERY: Duration = Duration::from_millis(100);
const WIDTH: usize = 30;

/// The progress of one table's snapshot.
pub(super) struct TableProgress {
    pub(super) instance: String,
    /// The catalog's row count, when it gave one.
    total: Option<u64>,
    terminal: bool,
    started: Instant,
    shown: Option<Instant>,
}

impl TableProgress {
    pub(super) fn new(instance: &str, total: Option<u64>) -> TableProgress {
        TableProgress {
            instance: instance.to_string(),
            total,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            shown: None,
        }
    }

    /// `rows` of the table read so far.
    pub(super) fn rows(&mut self, rows: u64) {
        let now = Instant::now();
        let every = if self.terminal { DRAW_EVERY } else { LOG_EVERY };
        if self.shown.is_some_and(|t| now.duration_since(t) < every) {
            return;
        }
        self.shown = Some(now);
        if self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", self.line(rows));
            let _ = err.flush();
        } else {
            tracing::info!(instance = %self.instance, rows, total = ?self.total, "snapshot progress");
        }
    }

    /// The table is read completely: `rows` rows.
    pub(super) fn done(&mut self, rows: u64) {
        if self.terminal {
            self.total = Some(rows);
            eprintln!("\r\x1b[2K{}", self.line(rows));
        }
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::info!(instance = %self.instance, rows, seconds, "snapshot of table done");
    }

    fn line(&self, rows: u64) -> String {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = rows as f64 / seconds;
        match self.total {
            Some(total) if total > 0 => {
                let fraction = (rows as f64 / total as f64).min(1.0);
                let filled = (fraction * WIDTH as f64) as usize;
                format!(
                    "snapshot {} [{}{}] {:>3}%  {rows}/{total} rows  {rate:.0} rows/s",
                    self.instance,
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled),
                    (fraction * 100.0) as u32
                )
            }
            _ => format!("snapshot {}  {rows} rows  {rate:.0} rows/s", self.instance),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_fraction_read_and_caps_at_the_total() {
        let p = TableProgress::new("dbo_T", Some(200));
        let half = p.line(100);
        assert!(
            half.contains(&format!("[{}{}]  50%", "#".repeat(15), "-".repeat(15))),
            "{half}"
        );
        assert!(p.line(250).contains(" 100%  250/200 rows"));
        assert!(TableProgress::new("dbo_T", None)
            .line(7)
            .starts_with("snapshot dbo_T  7 rows"));
    }
}
