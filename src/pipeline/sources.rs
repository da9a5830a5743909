//! Opening the sources a run reads: each configured kind becomes a `Box<dyn Source>` here, the one
//! place that knows the kinds.

use super::error::PipelineError;
use crate::config::{
    Config, KafkaFormat as ConfigKafkaFormat, KafkaSourceConfig, OnGap,
    SnapshotMode as ConfigSnapshotMode, SourceConfig, SqlServerSourceConfig,
};
use lakefold_api::{Checkpoint, Source, TableId};
use lakefold_debezium::{FileSource, KafkaFormat, KafkaOptions, KafkaSource};
use lakefold_sqlserver::tds::{ConnectOptions, TdsCdc};
use lakefold_sqlserver::{CdcOptions, GapPolicy, SnapshotMode, SqlServerSource};
use std::path::PathBuf;
use std::time::Duration;

/// An open source.
pub type SourceReader = Box<dyn Source>;

/// Resolves a configured file path: relative to the working directory, else to the config file's folder.
pub fn resolve_source_path(config: &Config, path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() || p.exists() {
        return p;
    }
    match config.path.parent() {
        Some(dir) if dir.join(&p).exists() => dir.join(p),
        _ => p,
    }
}

/// Replaces `${NAME}` in a property value with the environment variable NAME (secrets stay out of the
/// config file and out of logs). The error names the variable, never the value.
pub fn resolve_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${`".to_string())?;
        let name = &after[..end];
        let v =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// librdkafka options of a configured Kafka source.
pub fn kafka_options(
    name: &str,
    k: &KafkaSourceConfig,
    config: &Config,
    once: bool,
) -> Result<KafkaOptions, PipelineError> {
    let mut properties = Vec::new();
    for (key, value) in &k.properties {
        let resolved = resolve_env(value).map_err(|message| PipelineError::SourceConfig {
            name: name.to_string(),
            message: format!("properties.{key}: {message}"),
        })?;
        properties.push((key.clone(), resolved));
    }
    Ok(KafkaOptions {
        name: name.to_string(),
        brokers: k.brokers.clone(),
        topics: k.topics.clone(),
        group_id: k.group_id.clone(),
        format: match k.format {
            ConfigKafkaFormat::Json => KafkaFormat::Json,
            ConfigKafkaFormat::Avro => KafkaFormat::Avro,
        },
        schema_registry: k.schema_registry.clone(),
        properties,
        queue_max_kbytes: ((config.commit.max_bytes.0 / 4 / 1024) as usize).clamp(1024, 65536),
        once,
        connect_timeout: once.then_some(Duration::from_secs(60)),
    })
}

/// Opens the source `name` at `resume`.
pub async fn open_source(
    config: &Config,
    name: &str,
    source: &SourceConfig,
    resume: Option<&Checkpoint>,
    once: bool,
) -> Result<(SourceReader, String, Duration), PipelineError> {
    let source_err = |error| PipelineError::Source {
        name: name.to_string(),
        error,
    };
    match source {
        SourceConfig::DebeziumFile(file) => {
            let resume = match resume {
                Some(Checkpoint::DebeziumFile(_)) => resume,
                Some(other) => {
                    tracing::warn!(source = %name, checkpoint = %other.describe(), "stored checkpoint is not a file checkpoint; reading the file from the start");
                    None
                }
                None => None,
            };
            let path = resolve_source_path(config, &file.path);
            let reader = FileSource::open(&file.path, path, resume, !once)
                .await
                .map_err(source_err)?;
            Ok((
                Box::new(reader) as SourceReader,
                file.path.clone(),
                file.poll_interval.0,
            ))
        }
        SourceConfig::DebeziumKafka(k) => {
            let resume = match resume {
                Some(Checkpoint::DebeziumKafka(cp)) => Some(cp),
                Some(other) => {
                    tracing::warn!(source = %name, checkpoint = %other.describe(), "stored checkpoint is not a kafka checkpoint; reading from the earliest offsets");
                    None
                }
                None => None,
            };
            let options = kafka_options(name, k, config, once)?;
            let reader = KafkaSource::open(options, resume)
                .await
                .map_err(source_err)?;
            Ok((
                Box::new(reader) as SourceReader,
                k.brokers.clone(),
                Duration::from_millis(0),
            ))
        }
        SourceConfig::SqlServerCdc(sql) => {
            let resume = match resume {
                Some(Checkpoint::SqlserverCdc(cp)) => Some(cp),
                Some(other) => {
                    tracing::warn!(source = %name, checkpoint = %other.describe(), "stored checkpoint is not a sqlserver-cdc checkpoint; starting as configured by `snapshot`");
                    None
                }
                None => None,
            };
            let db = sqlserver_database(name, sql)?;
            let reader =
                SqlServerSource::open(Box::new(db), sqlserver_options(config, name, sql), resume)
                    .await
                    .map_err(source_err)?;
            Ok((
                Box::new(reader) as SourceReader,
                sql.connection.clone(),
                sql.poll_interval.0,
            ))
        }
    }
}

/// Decodes a record's raw bytes again as its source did when reading it, without connecting to the
/// source (a dead-letter replay): Debezium JSON from a file or Kafka, Avro through the Schema Registry.
pub enum RecordDecoder {
    Json(lakefold_debezium::JsonDecoder),
    Avro(lakefold_debezium::SchemaRegistry),
    /// The source's raw records cannot be decoded on their own; the reason.
    NotReplayable(String),
}

impl RecordDecoder {
    pub fn for_source(name: &str, source: &SourceConfig) -> Result<RecordDecoder, PipelineError> {
        Ok(match source {
            SourceConfig::DebeziumFile(_) => RecordDecoder::Json(Default::default()),
            SourceConfig::DebeziumKafka(k) => match (k.format, &k.schema_registry) {
                (ConfigKafkaFormat::Json, _) => RecordDecoder::Json(Default::default()),
                (ConfigKafkaFormat::Avro, Some(url)) => RecordDecoder::Avro(
                    lakefold_debezium::SchemaRegistry::new(url).map_err(|error| {
                        PipelineError::Source {
                            name: name.to_string(),
                            error,
                        }
                    })?,
                ),
                (ConfigKafkaFormat::Avro, None) => RecordDecoder::NotReplayable(
                    "an Avro source without `schema_registry` cannot decode its records".into(),
                ),
            },
            SourceConfig::SqlServerCdc(_) => RecordDecoder::NotReplayable(
                "a sqlserver-cdc dead letter holds the change row as text without its column types; \
                 fix the route and re-read the change from the database (reset the table's checkpoint)"
                    .into(),
            ),
        })
    }

    /// The record decoded; `Err` only when the registry cannot be reached (try again later).
    pub async fn decode(
        &mut self,
        name: &str,
        raw: &[u8],
    ) -> Result<lakefold_debezium::Decoding, PipelineError> {
        use lakefold_api::Decoded;
        use lakefold_debezium::{confluent_schema_id, decode_confluent_avro, RegistryError};
        let failed = |message: String| lakefold_debezium::Decoding {
            decoded: Decoded::Failed(message),
            lsn: None,
        };
        match self {
            RecordDecoder::Json(d) => Ok(d.decode(raw)),
            RecordDecoder::Avro(registry) => {
                let id = match confluent_schema_id(raw) {
                    Ok(id) => id,
                    Err(e) => return Ok(failed(e)),
                };
                match registry.get(id).await {
                    Ok(schema) => Ok(decode_confluent_avro(raw, &schema)),
                    Err(RegistryError::Permanent(message)) => Ok(failed(message)),
                    Err(RegistryError::Unavailable(error)) => Err(PipelineError::Source {
                        name: name.to_string(),
                        error,
                    }),
                }
            }
            RecordDecoder::NotReplayable(why) => Ok(failed(why.clone())),
        }
    }
}

/// The tiberius connection of a configured SQL Server source; the password comes from the environment.
pub fn sqlserver_database(
    name: &str,
    sql: &SqlServerSourceConfig,
) -> Result<TdsCdc, PipelineError> {
    let var = sql
        .password_env
        .clone()
        .unwrap_or_else(|| "LAKEFOLD_SQLSERVER_PASSWORD".to_string());
    let password = std::env::var(&var).ok();
    if password.is_none() {
        tracing::warn!(source = %name, variable = %var, "no SQL Server password in the environment; logging in without one");
    }
    TdsCdc::new(ConnectOptions {
        connection: sql.connection.clone(),
        password,
        ca_file: sql.ca_file.clone(),
        trust_server_certificate: sql.trust_server_certificate,
        timeout: sql.statement_timeout.0,
    })
    .map_err(|message| PipelineError::SourceConfig {
        name: name.to_string(),
        message: format!("connection: {message}"),
    })
}

/// What the SQL Server source reads: the tables of the source's routes.
pub fn sqlserver_options(config: &Config, name: &str, sql: &SqlServerSourceConfig) -> CdcOptions {
    CdcOptions {
        name: name.to_string(),
        tables: {
            let mut tables: Vec<TableId> = Vec::new();
            for r in config.routes.iter().filter(|r| r.source == name) {
                let id = TableId::parse(&r.from);
                if !tables.iter().any(|t| t.matches(&id) && id.matches(t)) {
                    tables.push(id);
                }
            }
            tables
        },
        capture_instances: sql.capture_instances.clone(),
        max_transactions_per_window: sql.max_transactions_per_window.max(1),
        on_gap: match sql.on_gap {
            OnGap::Fail => GapPolicy::Fail,
            OnGap::Resnapshot => GapPolicy::Resnapshot,
        },
        snapshot: match sql.snapshot {
            ConfigSnapshotMode::Initial => SnapshotMode::Initial,
            ConfigSnapshotMode::Never => SnapshotMode::Never,
        },
        snapshot_chunk_rows: 10_000,
        max_attempts: 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_are_resolved_and_missing_ones_named() {
        std::env::set_var("LAKEFOLD_TEST_SECRET_X", "s3cr3t");
        assert_eq!(
            resolve_env("user=${LAKEFOLD_TEST_SECRET_X};x").unwrap(),
            "user=s3cr3t;x"
        );
        assert_eq!(resolve_env("plain").unwrap(), "plain");
        let err = resolve_env("${LAKEFOLD_TEST_UNSET_Y}").unwrap_err();
        assert!(err.contains("LAKEFOLD_TEST_UNSET_Y") && !err.contains("s3cr3t"));
        assert!(resolve_env("${oops").is_err());
    }
}
