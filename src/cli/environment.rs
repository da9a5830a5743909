//! Environment checks of `validate` (skipped with `--no-environment`) and of `run` at start.

use crate::config::{Config, ConfigError, SourceConfig};
use crate::pipeline::run::resolve_source_path;

/// Problems with what the configuration points at: missing source files, an unusable lake directory.
pub fn check(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let at = |key: &str, message: String| ConfigError {
        file: config.path.clone(),
        line: None,
        column: None,
        key: key.to_string(),
        message,
    };
    for (name, source) in &config.sources {
        if let SourceConfig::DebeziumFile(f) = source {
            let path = resolve_source_path(config, &f.path);
            if let Err(e) = std::fs::File::open(&path) {
                errors.push(at(
                    &format!("sources.{name}.path"),
                    format!("cannot open {}: {e}", path.display()),
                ));
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
