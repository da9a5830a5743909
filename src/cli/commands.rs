//! What each subcommand does.

use super::{environment, output, Cli, Command, TableAction, EXIT_CONFIG, EXIT_FAILURE, EXIT_OK};
use crate::config::LakeFormat;
use crate::config::{self, Config};
use crate::fold::RouteSpec;
use crate::pipeline::{
    self, open_route_table, DeadLetter, Lake, PipelineError, RunOptions, DEAD_LETTER_TABLE,
};
use crate::sink::delta::{DeltaError, DeltaSinkTable};
use crate::sink::hudi::HudiTable;
use crate::sink::SinkError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub async fn dispatch(cli: Cli) -> u8 {
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("{errors}");
            return EXIT_CONFIG;
        }
    };
    let result = match cli.command {
        Command::Validate { no_environment } => return validate(&config, no_environment).await,
        Command::Run { once } => {
            let env = environment::check(&config, false).await;
            if !env.is_empty() {
                eprint!("{}", config::ConfigErrors(env));
                return EXIT_CONFIG;
            }
            run(&config, once).await
        }
        Command::Show {
            table,
            limit,
            filters,
            meta,
        } => show(&config, &table, limit, &filters, meta).await,
        Command::History { table } => history(&config, &table).await,
        Command::Status => super::status::status(&config).await,
        Command::Health => return super::status::health(&config).await,
        Command::DeadLetters { action } => match action {
            super::DeadLettersAction::List { table, limit } => {
                super::dead_letters::list(&config, table.as_deref(), limit).await
            }
            super::DeadLettersAction::Show { id } => super::dead_letters::show(&config, &id).await,
        },
        Command::Replay { table } => super::dead_letters::replay(&config, table.as_deref()).await,
        Command::Top { interval, count } => {
            super::status::top(&config, Duration::from_secs_f64(interval.max(0.1)), count).await
        }
        Command::Table { action, table } => lifecycle(&config, action, &table).await,
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("lakefold: {e}");
            EXIT_FAILURE
        }
    }
}

async fn validate(config: &Config, no_environment: bool) -> u8 {
    if !no_environment {
        let env = environment::check(config, true).await;
        if !env.is_empty() {
            eprint!("{}", config::ConfigErrors(env));
            return EXIT_CONFIG;
        }
    }
    println!(
        "{}: ok ({} source{}, {} route{})",
        config.path.display(),
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" },
        config.routes.len(),
        if config.routes.len() == 1 { "" } else { "s" }
    );
    EXIT_OK
}

async fn run(config: &Config, once: bool) -> Result<(), PipelineError> {
    let stop = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(stop.clone());
    if let Some(m) = &config.metrics {
        // The loop may sit in one long commit; `/healthz` fails only well past the commit interval.
        let alive_within = (config.commit.interval.0 * 10).max(Duration::from_secs(120));
        crate::service::start(m, alive_within)
            .await
            .map_err(|message| PipelineError::Service { message })?;
    }
    let summary = pipeline::run(config, RunOptions { once }, stop).await?;
    eprintln!("{}", output::run_summary(&summary));
    eprintln!(
        "{}",
        output::store_requests(&crate::storage::counting::requests())
    );
    Ok(())
}

fn spawn_signal_handler(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("stop requested: committing what is buffered, then exiting");
        crate::service::systemd::stopping();
        stop.store(true, Ordering::SeqCst);
    });
}

fn known_table(config: &Config, table: &str) -> Result<(), PipelineError> {
    if table == DEAD_LETTER_TABLE || config.route(table).is_some() {
        Ok(())
    } else {
        Err(PipelineError::UnknownTable(table.to_string()))
    }
}

/// The Delta table of `table` when its route writes Delta (`None` for Hudi tables).
async fn open_delta(config: &Config, table: &str) -> Result<Option<DeltaSinkTable>, PipelineError> {
    let Some(route) = config.route(table) else {
        return Ok(None);
    };
    if route.table_format(&config.lake) != LakeFormat::Delta {
        return Ok(None);
    }
    let lake = Lake::open(config).await?;
    let spec = RouteSpec::new(route, None);
    let t = DeltaSinkTable::open(&lake, table, &spec.key_names(), &spec.partition_names())
        .await
        .map_err(SinkError::from)?;
    Ok(Some(t))
}

/// A Delta table that has no commit yet, as an error.
fn no_delta_table(t: &DeltaSinkTable) -> PipelineError {
    PipelineError::Table(SinkError::Delta(DeltaError::Data {
        table: t.name().to_string(),
        message: format!(
            "no Delta table at {} yet (it is created by its first commit)",
            t.location()
        ),
    }))
}

async fn open_existing(config: &Config, table: &str) -> Result<(Lake, HudiTable), PipelineError> {
    known_table(config, table)?;
    let lake = Lake::open(config).await?;
    match HudiTable::open(lake.store.clone(), lake.table_path(table), table).await? {
        Some(t) => Ok((lake, t)),
        None => Err(crate::sink::hudi::HudiError::NotFound {
            table: table.to_string(),
            path: lake.table_location(table),
        }
        .into()),
    }
}

async fn show(
    config: &Config,
    table: &str,
    limit: usize,
    filters: &[String],
    meta: bool,
) -> Result<(), PipelineError> {
    known_table(config, table)?;
    if let Some(t) = open_delta(config, table).await? {
        if !t.exists() {
            return Err(no_delta_table(&t));
        }
        let batches = t.snapshot().await.map_err(SinkError::from)?;
        let keys = config
            .route(table)
            .map(|r| r.key.clone())
            .unwrap_or_default();
        println!(
            "{}",
            output::rows(table, batches, &keys, filters, limit, meta)?
        );
        return Ok(());
    }
    let (_, mut t) = open_existing(config, table).await?;
    let batches = t.snapshot().await?;
    let keys = t
        .properties()
        .list(crate::sink::hudi::TableKey::RecordKeyFields);
    let text = output::rows(table, batches, &keys, filters, limit, meta)?;
    println!("{text}");
    Ok(())
}

async fn history(config: &Config, table: &str) -> Result<(), PipelineError> {
    known_table(config, table)?;
    if let Some(t) = open_delta(config, table).await? {
        if !t.exists() {
            return Err(no_delta_table(&t));
        }
        let entries = t.history().await.map_err(SinkError::from)?;
        println!("{}", output::delta_history(&entries));
        return Ok(());
    }
    let (_, t) = open_existing(config, table).await?;
    let entries = t.history().await?;
    println!("{}", output::history(&entries));
    Ok(())
}

async fn lifecycle(config: &Config, action: TableAction, table: &str) -> Result<(), PipelineError> {
    known_table(config, table)?;
    if let Some(t) = open_delta(config, table).await? {
        return delta_lifecycle(config, action, &t).await;
    }
    let lake = Lake::open(config).await?;
    let (key, partitions) = match config.route(table) {
        Some(route) => {
            let spec = RouteSpec::new(route, None);
            (spec.key_names(), spec.partition_names())
        }
        None => (DeadLetter::key_fields(), Vec::new()),
    };
    let location = lake.table_location(table);
    match action {
        TableAction::Create => {
            let exists = HudiTable::open(lake.store.clone(), lake.table_path(table), table)
                .await?
                .is_some();
            open_route_table(&lake, table, &key, &partitions).await?;
            println!(
                "{table}: {} at {location}",
                if exists { "already exists" } else { "created" }
            );
        }
        TableAction::Truncate => {
            let n = HudiTable::drop_table(&lake.store, &lake.table_path(table), table).await?;
            open_route_table(&lake, table, &key, &partitions).await?;
            println!("{table}: truncated ({n} files removed; its checkpoint is reset, so the next run rebuilds it from what the source still holds)");
        }
        TableAction::Drop => {
            let n = HudiTable::drop_table(&lake.store, &lake.table_path(table), table).await?;
            if let Some(root) = &lake.local_root {
                let _ = remove_empty_dirs(&root.join(table));
            }
            println!("{table}: dropped ({n} files removed)");
        }
    }
    Ok(())
}

/// `table create|truncate|drop` of a Delta table. A Delta table holds its schema from its first version,
/// so `create` leaves its creation to the first commit (whose rows decide undeclared column types).
async fn delta_lifecycle(
    config: &Config,
    action: TableAction,
    t: &DeltaSinkTable,
) -> Result<(), PipelineError> {
    let table = t.name();
    let location = t.location();
    match action {
        TableAction::Create if t.exists() => println!("{table}: already exists at {location}"),
        TableAction::Create => println!(
            "{table}: a Delta table is created by its first commit, with the column types its rows give (nothing written at {location})"
        ),
        TableAction::Truncate | TableAction::Drop => {
            let n = t.drop_table().await.map_err(SinkError::from)?;
            let lake = Lake::open(config).await?;
            if let Some(root) = &lake.local_root {
                let _ = remove_empty_dirs(&root.join(table));
            }
            if matches!(action, TableAction::Truncate) {
                println!("{table}: truncated ({n} files removed; its checkpoint is reset, so the next run rebuilds it from what the source still holds)");
            } else {
                println!("{table}: dropped ({n} files removed)");
            }
        }
    }
    Ok(())
}

/// Removes the empty folders a local file store leaves behind.
fn remove_empty_dirs(dir: &std::path::Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            remove_empty_dirs(&p)?;
        }
    }
    std::fs::remove_dir(dir)
}
