//! Checks that need more than one key: names, references between sections, columns of routes. Every
//! problem is collected; nothing stops at the first.

use super::error::ConfigError;
use super::model::*;
use lakefold_api::LogicalType;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Where a section and its keys are in the files.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub file: PathBuf,
    pub start: (usize, usize),
    /// Key name (or `key[i]` for array items, `key.sub` for inline-table keys) → line, column.
    pub keys: HashMap<String, (usize, usize)>,
}

impl Site {
    fn error(&self, section: &str, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.keys.get(key).copied().unwrap_or(self.start);
        let shown = if key.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{key}")
        };
        ConfigError {
            file: self.file.clone(),
            line: Some(line),
            column: Some(column),
            key: shown,
            message: message.into(),
        }
    }
}

/// Sites of every section, in parallel with the loaded config.
#[derive(Debug, Default)]
pub struct Sites {
    pub lake: Option<Site>,
    pub catalog: Option<Site>,
    pub commit: Option<Site>,
    pub metrics: Option<Site>,
    pub sources: HashMap<String, Site>,
    /// One per successfully deserialized route, in order.
    pub routes: Vec<Site>,
    /// Routes that failed to deserialize (already reported).
    pub failed_routes: Vec<Site>,
}

/// Names for tables and columns: what Hudi, Hive and Glue all accept.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

pub(super) fn validate(config: &Config, sites: &Sites) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let empty = Site::default();
    let lake_site = sites.lake.as_ref().unwrap_or(&empty);

    // [lake]
    let uri = config.lake.uri.trim();
    if uri.is_empty() {
        errors.push(lake_site.error("lake", "uri", "must not be empty"));
    } else if let Some((scheme, _)) = uri.split_once("://") {
        match scheme {
            "file" => {}
            "s3" | "s3a" => {
                let bucket = uri
                    .split_once("://")
                    .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
                    .unwrap_or("");
                if bucket.is_empty() {
                    errors.push(lake_site.error(
                        "lake",
                        "uri",
                        "name the bucket: s3://bucket/prefix",
                    ));
                }
            }
            other => errors.push(lake_site.error(
                "lake",
                "uri",
                format!("unsupported scheme `{other}://` (expected a path, file:// or s3://)"),
            )),
        }
    }
    // [catalog]
    if let (Some(catalog), Some(site)) = (&config.catalog, &sites.catalog) {
        if catalog.kind == CatalogKind::Glue && catalog.database.as_deref().unwrap_or("").is_empty()
        {
            errors.push(site.error("catalog", "database", "required for type = \"glue\""));
        }
    }

    // [commit]
    let commit_site = sites.commit.as_ref().unwrap_or(&empty);
    if config.commit.max_events == 0 {
        errors.push(commit_site.error("commit", "max_events", "must be at least 1"));
    }
    if config.commit.max_bytes.0 == 0 {
        errors.push(commit_site.error("commit", "max_bytes", "must be at least 1 byte"));
    }
    if config.commit.interval.0.is_zero() {
        errors.push(commit_site.error("commit", "interval", "must be longer than zero"));
    }

    // [metrics]
    if let (Some(m), Some(site)) = (&config.metrics, &sites.metrics) {
        if m.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(site.error(
                "metrics",
                "listen",
                format!("`{}` is not an address like 127.0.0.1:9464", m.listen),
            ));
        }
    }

    // [sources.*]
    for (name, source) in &config.sources {
        let site = sites.sources.get(name).unwrap_or(&empty);
        let section = format!("sources.{name}");
        if !is_identifier(&name.replace('-', "_")) {
            errors.push(site.error(
                &section,
                "",
                "source names use letters, digits, `_` and `-`",
            ));
        }
        match source {
            SourceConfig::DebeziumFile(f) => {
                if f.path.trim().is_empty() {
                    errors.push(site.error(&section, "path", "must not be empty"));
                }
            }
            SourceConfig::DebeziumKafka(k) => {
                if k.brokers.trim().is_empty() {
                    errors.push(site.error(&section, "brokers", "must not be empty"));
                }
                if k.topics.is_empty() {
                    errors.push(site.error(&section, "topics", "name at least one topic"));
                }
                if k.format == KafkaFormat::Avro && k.schema_registry.is_none() {
                    errors.push(site.error(
                        &section,
                        "schema_registry",
                        "required when format = \"avro\"",
                    ));
                }
            }
            SourceConfig::SqlServerCdc(s) => {
                if s.connection.to_ascii_lowercase().contains("password=")
                    || s.connection.to_ascii_lowercase().contains("pwd=")
                {
                    errors.push(site.error(
                        &section,
                        "connection",
                        "must not hold the password: set LAKEFOLD_SQLSERVER_PASSWORD",
                    ));
                }
                if let Err(e) = lakefold_sqlserver::tds::parse_connection(&s.connection) {
                    if !e.contains("password") {
                        errors.push(site.error(&section, "connection", &e));
                    }
                }
                if s.max_transactions_per_window == 0 {
                    errors.push(site.error(
                        &section,
                        "max_transactions_per_window",
                        "must be at least 1",
                    ));
                }
            }
        }
    }

    // [[route]]
    if config.routes.is_empty() && sites.failed_routes.is_empty() {
        errors.push(ConfigError {
            file: config.path.clone(),
            line: None,
            column: None,
            key: "route".into(),
            message: "no [[route]]: name at least one output table".into(),
        });
    }
    let mut tables: HashMap<String, usize> = HashMap::new();
    for (i, route) in config.routes.iter().enumerate() {
        let site = sites.routes.get(i).unwrap_or(&empty);
        let section = format!("route[{}]", route.table);
        let mut err = |key: &str, msg: String| errors.push(site.error(&section, key, msg));

        if !is_identifier(&route.table) {
            err(
                "table",
                format!(
                    "`{}` is not a table name (letters, digits and `_`, not starting with a digit)",
                    route.table
                ),
            );
        } else if route.table.starts_with("_lakefold") || route.table.starts_with("_hoodie") {
            err(
                "table",
                format!(
                    "`{}`: names starting with `_lakefold` or `_hoodie` are reserved",
                    route.table
                ),
            );
        }
        if let Some(first) = tables.insert(route.table.to_ascii_lowercase(), i) {
            err(
                "table",
                format!(
                    "table `{}` is already written by route #{}; one route per table",
                    route.table,
                    first + 1
                ),
            );
        }
        if !config.sources.contains_key(&route.source) {
            let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
            err(
                "source",
                format!(
                    "unknown source `{}` (defined: {})",
                    route.source,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        if route.from.trim().is_empty() {
            err(
                "from",
                "must name the source table, e.g. \"dbo.SALES\"".into(),
            );
        }

        let projection = route.projection();
        if projection.is_empty() {
            err("columns", "name at least one column".into());
        }
        let mut outs = HashSet::new();
        for (j, (out, _)) in projection.iter().enumerate() {
            let key = match route.columns {
                Columns::List(_) => format!("columns[{j}]"),
                Columns::Renames(_) => format!("columns.{out}"),
            };
            if !is_identifier(out) {
                err(
                    &key,
                    format!("`{out}` is not a column name (letters, digits and `_`)"),
                );
            } else if out.starts_with("_hoodie_") || out.starts_with("_lakefold_") {
                err(
                    &key,
                    format!("`{out}`: names starting with `_hoodie_` or `_lakefold_` are reserved"),
                );
            }
            if !outs.insert(out.to_ascii_lowercase()) {
                err(&key, format!("column `{out}` appears twice"));
            }
        }
        let in_columns = |c: &str| projection.iter().any(|(out, _)| out == c);
        if route.key.is_empty() {
            err("key", "name at least one key column".into());
        }
        let mut seen_keys = HashSet::new();
        for (j, k) in route.key.iter().enumerate() {
            if !in_columns(k) {
                err(
                    &format!("key[{j}]"),
                    format!("key column `{k}` is not among the route's columns"),
                );
            }
            if !seen_keys.insert(k) {
                err(
                    &format!("key[{j}]"),
                    format!("key column `{k}` appears twice"),
                );
            }
        }
        for (j, p) in route.partition_by.iter().enumerate() {
            if !in_columns(p) {
                err(
                    &format!("partition_by[{j}]"),
                    format!("partition column `{p}` is not among the route's columns"),
                );
            }
        }
        for (col, ty) in &route.types {
            let key = format!("types.{col}");
            if !in_columns(col) {
                err(&key, format!("`{col}` is not among the route's columns"));
            }
            if let Err(e) = ty.parse::<LogicalType>() {
                err(&key, e.to_string());
            }
        }
        if route.max_file_size.0 < 1024 * 1024 {
            err("max_file_size", "must be at least 1MiB".into());
        }
        if route.small_file_limit.0 > route.max_file_size.0 {
            err("small_file_limit", "must not exceed max_file_size".into());
        }
        if route.clean_retain_commits == 0 {
            err(
                "clean_retain_commits",
                "must be at least 1 (the latest commit is always kept)".into(),
            );
        }
    }
    errors
}
