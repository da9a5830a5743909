//! Opening the sources a run reads: each configured kind becomes a `Box<dyn Source>` here, the one
//! place that knows the kinds.

use super::error::PipelineError;
use crate::config::{Config, KafkaFormat as ConfigKafkaFormat, KafkaSourceConfig, SourceConfig};
use lakefold_api::{Checkpoint, Source};
use lakefold_debezium::{FileSource, KafkaFormat, KafkaOptions, KafkaSource};
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
        SourceConfig::SqlServerCdc(_) => Err(PipelineError::UnsupportedSource {
            name: name.to_string(),
            kind: source.type_name(),
        }),
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
