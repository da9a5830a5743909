//! Command line (design.md §1): run, validate, show, history, table.

mod commands;
mod dead_letters;
mod environment;
mod malloc;
mod output;
mod status;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CONFIG: u8 = 78;

/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "config/lakefold.toml";

#[derive(Debug, Parser)]
#[command(
    name = "lakefold",
    version,
    about = "Moves database change events into Hudi lakehouse tables, folded per key"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Log format on stderr: `text` or `json` (for services).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline (a daemon; with --once: drain what is available, commit, exit).
    Run {
        /// Drain what is available now, commit, exit 0.
        #[arg(long)]
        once: bool,
    },
    /// Check the configuration; report every error with file, line and key (exit 78 when bad).
    Validate {
        /// Skip checks against the environment (files, lake directory).
        #[arg(long)]
        no_environment: bool,
    },
    /// Print a table's current rows.
    Show {
        /// A route's table, or _lakefold_dead_letters.
        table: String,
        /// Most rows to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only rows whose column equals a value, `COL=VAL` (repeatable).
        #[arg(long = "where", value_name = "COL=VAL")]
        filters: Vec<String>,
        /// Also print the _hoodie_* meta columns and the position column.
        #[arg(long)]
        meta: bool,
    },
    /// Print a table's commits: instant, operation, rows written, checkpoint.
    History { table: String },
    /// Per table: last commit, checkpoint, lag, freshness, dead letters (from the running daemon's
    /// `/status`, else from the tables' timelines).
    Status,
    /// The dead-letter table: `list` (id, where, error) and `show ID` (every field and the raw record).
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
    /// Re-run the dead letters not yet replayed through the current routes (after a config fix) and mark
    /// them; refused while a daemon owns the tables.
    Replay {
        /// Only the letters this route's table rejected (undecodable letters are replayed without it).
        #[arg(long)]
        table: Option<String>,
    },
    /// Exit 0 when the running daemon's `/healthz` answers 200 (container health checks), else 1.
    Health,
    /// `status`, refreshed in the terminal (like `vector top`).
    Top {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Refresh this many times, then exit (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Table lifecycle: create (empty), truncate (remove all rows and the checkpoint), drop.
    Table {
        #[arg(value_enum)]
        action: TableAction,
        table: String,
    },
}

/// `lakefold dead-letters ...`
#[derive(Debug, Subcommand)]
pub enum DeadLettersAction {
    /// Dead letters, oldest first.
    List {
        /// Only those rejected by this route's table.
        #[arg(long)]
        table: Option<String>,
        /// Most to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One dead letter: every field and the raw record.
    Show { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableAction {
    Create,
    Truncate,
    Drop,
}

/// Runs a parsed command line; returns the exit code.
pub fn main(cli: Cli) -> u8 {
    malloc::tune();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lakefold: cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let code = runtime.block_on(commands::dispatch(cli));
    // Do not wait for blocking calls still in flight (a librdkafka metadata request against an absent
    // broker): everything that matters is committed by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

fn init_logging(format: LogFormat) {
    // delta-rs and its kernel log every snapshot they build at info: lakefold says what matters itself.
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAKEFOLD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,deltalake_core=warn,buoyant_kernel=warn,buoyant_kernel_engine=warn",
        )
    });
    // Colours only on a terminal: journald, ECS and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
