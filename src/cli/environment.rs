//! Environment checks of `validate` (skipped with `--no-environment`) and of `run` at start.

use crate::config::{Config, ConfigError, SourceConfig};
use crate::pipeline::sources::{
    kafka_options, resolve_source_path, sqlserver_database, sqlserver_options,
};
use lakefold_debezium::KafkaSource;
use lakefold_sqlserver::SqlServerSource;
use std::time::Duration;

/// Problems with what the configuration points at: missing source files, an unusable lake directory,
/// unset environment variables, and (with `remote`) unreachable Kafka brokers or missing topics and a
/// missing Glue database.
pub async fn check(config: &Config, brokers: bool) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let at = |key: &str, message: String| ConfigError {
        file: config.path.clone(),
        line: None,
        column: None,
        key: key.to_string(),
        message,
    };
    for (name, source) in &config.sources {
        match source {
            SourceConfig::DebeziumFile(f) => {
                let path = resolve_source_path(config, &f.path);
                if let Err(e) = std::fs::File::open(&path) {
                    errors.push(at(
                        &format!("sources.{name}.path"),
                        format!("cannot open {}: {e}", path.display()),
                    ));
                }
            }
            SourceConfig::DebeziumKafka(k) => match kafka_options(name, k, config, true) {
                Err(e) => errors.push(at(&format!("sources.{name}"), e.to_string())),
                Ok(mut options) if brokers => {
                    options.connect_timeout = Some(Duration::from_secs(15));
                    if let Err(e) = KafkaSource::check_topics(&options).await {
                        errors.push(at(&format!("sources.{name}.topics"), e.to_string()));
                    }
                }
                Ok(_) => {}
            },
            SourceConfig::SqlServerCdc(sql) if brokers => {
                let key = format!("sources.{name}");
                match sqlserver_database(name, sql) {
                    Err(e) => errors.push(at(&format!("{key}.connection"), e.to_string())),
                    Ok(db) => {
                        let mut options = sqlserver_options(config, name, sql);
                        options.max_attempts = 1;
                        let checked = tokio::time::timeout(
                            Duration::from_secs(60),
                            SqlServerSource::check(Box::new(db), options),
                        )
                        .await;
                        match checked {
                            Ok(problems) => {
                                errors.extend(problems.into_iter().map(|p| at(&key, p)))
                            }
                            Err(_) => errors.push(at(&key, "no answer within 60 s".into())),
                        }
                    }
                }
            }
            SourceConfig::SqlServerCdc(_) => {}
        }
    }
    if let (Some(c), true) = (&config.catalog, brokers) {
        if c.kind == crate::config::CatalogKind::Glue {
            let glue = crate::catalog::GlueCatalog::new(c).await;
            let check = tokio::time::timeout(Duration::from_secs(30), glue.check_database()).await;
            match check {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(at("catalog.database", e.to_string())),
                Err(_) => errors.push(at("catalog", "no answer from Glue within 30 s".into())),
            }
        }
    }
    if let Some(dir) = crate::pipeline::lake_local_path(&config.lake.uri) {
        let mut probe = dir.as_path();
        while !probe.exists() {
            match probe.parent() {
                Some(p) => probe = p,
                None => break,
            }
        }
        if probe.exists()
            && std::fs::metadata(probe)
                .map(|m| m.permissions().readonly())
                .unwrap_or(false)
        {
            errors.push(at("lake.uri", format!("{} is read-only", probe.display())));
        }
    }
    errors
}
