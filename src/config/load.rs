//! Loading: parse with spans, deserialize each section on its own (so one bad section does not hide the
//! errors of the others), pull in `include`d route files, then validate.

use super::error::{ConfigError, ConfigErrors};
use super::model::*;
use super::validate::{validate, Site, Sites};
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Reads and validates the configuration at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read the configuration: {e}"),
        }])
    })?;
    load_str(path, &text)
}

/// Parses and validates configuration text as if read from `path` (includes resolve next to `path`).
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut loader = Loader::default();
    let main = loader.parse_main(path, text);
    let config = main.and_then(|(config, sites)| {
        let errors = validate(&config, &sites);
        loader.errors.extend(errors);
        Some(config)
    });
    match config {
        Some(c) if loader.errors.is_empty() => Ok(c),
        _ => Err(ConfigErrors(loader.errors)),
    }
}

/// Text of one file with its line starts, to turn byte spans into line:column.
pub(super) struct SourceText<'a> {
    pub file: PathBuf,
    text: &'a str,
}

impl SourceText<'_> {
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map(|i| before.len() - i)
            .unwrap_or(before.len() + 1);
        (line, col)
    }

    pub fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Where the keys of a table (and the items of its array values) are, for validation messages.
    pub fn site(&self, table: &Spanned<DeValue<'_>>) -> Site {
        let mut keys = HashMap::new();
        if let DeValue::Table(t) = table.get_ref() {
            for (k, v) in t.iter() {
                keys.insert(k.get_ref().to_string(), self.line_col(k.span().start));
                if let DeValue::Array(items) = v.get_ref() {
                    for (i, item) in items.iter().enumerate() {
                        keys.insert(
                            format!("{}[{i}]", k.get_ref()),
                            self.line_col(item.span().start),
                        );
                    }
                }
                if let DeValue::Table(inner) = v.get_ref() {
                    for (ik, _) in inner.iter() {
                        keys.insert(
                            format!("{}.{}", k.get_ref(), ik.get_ref()),
                            self.line_col(ik.span().start),
                        );
                    }
                }
            }
        }
        Site {
            file: self.file.clone(),
            start: self.line_col(table.span().start),
            keys,
        }
    }
}

#[derive(Default)]
struct Loader {
    errors: Vec<ConfigError>,
}

impl Loader {
    fn parse_main(&mut self, path: &Path, text: &str) -> Option<(Config, Sites)> {
        let src = SourceText {
            file: path.to_path_buf(),
            text,
        };
        let (root, parse_errors) = DeTable::parse_recoverable(text);
        let had_parse_errors = !parse_errors.is_empty();
        for e in parse_errors {
            self.errors
                .push(src.error(e.span(), "", e.message().to_string()));
        }
        if had_parse_errors {
            return None;
        }
        let mut sites = Sites::default();
        let mut lake = None;
        let mut catalog = None;
        let mut commit = None;
        let mut metrics = None;
        let mut sources = IndexMap::new();
        let mut routes = Vec::new();
        let mut includes = Vec::new();
        let mut include_patterns: Vec<(String, Range<usize>)> = Vec::new();

        for (key, value) in root.get_ref().iter() {
            let name = key.get_ref().as_ref();
            match name {
                "lake" => {
                    sites.lake = Some(src.site(value));
                    lake = self.section::<LakeConfig>(&src, value, "lake");
                }
                "catalog" => {
                    sites.catalog = Some(src.site(value));
                    catalog = self.section::<CatalogConfig>(&src, value, "catalog");
                }
                "commit" => {
                    sites.commit = Some(src.site(value));
                    commit = self.section::<CommitConfig>(&src, value, "commit");
                }
                "metrics" => {
                    sites.metrics = Some(src.site(value));
                    metrics = self.section::<MetricsConfig>(&src, value, "metrics");
                }
                "sources" => match value.get_ref() {
                    DeValue::Table(t) => {
                        for (sname, svalue) in t.iter() {
                            let sname = sname.get_ref().to_string();
                            sites.sources.insert(sname.clone(), src.site(svalue));
                            if let Some(s) = self.source(&src, svalue, &sname) {
                                sources.insert(sname, s);
                            }
                        }
                    }
                    _ => self.errors.push(src.error(Some(value.span()), "sources", "must be a table of named sources")),
                },
                "route" => self.routes(&src, value, "route", &mut routes, &mut sites),
                "include" => match value.get_ref() {
                    DeValue::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            match item.get_ref() {
                                DeValue::String(s) => include_patterns.push((s.to_string(), item.span())),
                                _ => self.errors.push(src.error(Some(item.span()), &format!("include[{i}]"), "must be a glob string")),
                            }
                        }
                    }
                    _ => self.errors.push(src.error(Some(value.span()), "include", "must be an array of glob strings")),
                },
                other => self.errors.push(src.error(
                    Some(key.span()),
                    other,
                    "unknown key (expected one of include, lake, catalog, commit, metrics, sources, route)",
                )),
            }
        }

        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (pattern, span) in include_patterns {
            let full = if Path::new(&pattern).is_absolute() {
                pattern.clone()
            } else {
                base_dir.join(&pattern).to_string_lossy().into_owned()
            };
            let paths = match glob::glob(&full) {
                Ok(p) => p,
                Err(e) => {
                    self.errors.push(src.error(
                        Some(span),
                        "include",
                        format!("bad glob `{pattern}`: {e}"),
                    ));
                    continue;
                }
            };
            let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            matched.sort();
            if matched.is_empty() {
                self.errors.push(src.error(
                    Some(span),
                    "include",
                    format!("`{pattern}` matches no file"),
                ));
            }
            for file in matched {
                self.include_file(&file, &mut routes, &mut sites);
                includes.push(file);
            }
        }

        if sites.lake.is_none() {
            self.errors.push(src.error(
                None,
                "lake",
                "missing required section [lake] (with `uri`)",
            ));
        }
        // A missing or broken [lake] is already reported; a placeholder lets every other check run.
        let lake = lake.unwrap_or(LakeConfig {
            uri: ".".into(),
            format: LakeFormat::Hudi,
            region: None,
            endpoint: None,
            allow_http: None,
        });
        Some((
            Config {
                path: path.to_path_buf(),
                includes,
                lake,
                catalog,
                commit: commit.unwrap_or_default(),
                metrics,
                sources,
                routes,
            },
            sites,
        ))
    }

    fn include_file(&mut self, file: &Path, routes: &mut Vec<RouteConfig>, sites: &mut Sites) {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(ConfigError {
                    file: file.to_path_buf(),
                    line: None,
                    column: None,
                    key: String::new(),
                    message: format!("cannot read included file: {e}"),
                });
                return;
            }
        };
        let src = SourceText {
            file: file.to_path_buf(),
            text: &text,
        };
        let (root, parse_errors) = DeTable::parse_recoverable(&text);
        if !parse_errors.is_empty() {
            for e in parse_errors {
                self.errors
                    .push(src.error(e.span(), "", e.message().to_string()));
            }
            return;
        }
        match root.get_ref().get("route") {
            Some(value) => {
                for (key, _) in root
                    .get_ref()
                    .iter()
                    .filter(|(k, _)| k.get_ref() != "route")
                {
                    self.errors.push(src.error(Some(key.span()), key.get_ref(), "unknown key in a route file (expected [[route]] tables or one route's keys)"));
                }
                self.routes(&src, value, "route", routes, sites);
            }
            None => {
                let whole = Spanned::new(root.span(), DeValue::Table(root.get_ref().clone()));
                self.one_route(&src, &whole, "route", routes, sites);
            }
        }
    }

    fn routes(
        &mut self,
        src: &SourceText<'_>,
        value: &Spanned<DeValue<'_>>,
        key: &str,
        routes: &mut Vec<RouteConfig>,
        sites: &mut Sites,
    ) {
        match value.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    self.one_route(src, item, key, routes, sites);
                }
            }
            _ => self.errors.push(src.error(
                Some(value.span()),
                key,
                "must be an array of tables ([[route]])",
            )),
        }
    }

    fn one_route(
        &mut self,
        src: &SourceText<'_>,
        value: &Spanned<DeValue<'_>>,
        key: &str,
        routes: &mut Vec<RouteConfig>,
        sites: &mut Sites,
    ) {
        let label = format!("{key}[{}]", sites.routes.len());
        sites.routes.push(src.site(value));
        match self.section::<RouteConfig>(src, value, &label) {
            Some(r) => routes.push(r),
            None => sites
                .routes
                .pop()
                .into_iter()
                .for_each(|s| sites.failed_routes.push(s)),
        }
    }

    fn source(
        &mut self,
        src: &SourceText<'_>,
        value: &Spanned<DeValue<'_>>,
        name: &str,
    ) -> Option<SourceConfig> {
        let label = format!("sources.{name}");
        let DeValue::Table(table) = value.get_ref() else {
            self.errors
                .push(src.error(Some(value.span()), &label, "must be a table"));
            return None;
        };
        let Some(ty) = table.get("type") else {
            self.errors.push(src.error(
                Some(value.span()),
                &format!("{label}.type"),
                "missing `type` (debezium-file, debezium-kafka or sqlserver-cdc)",
            ));
            return None;
        };
        let ty_name = match ty.get_ref() {
            DeValue::String(s) => s.to_string(),
            _ => {
                self.errors.push(src.error(
                    Some(ty.span()),
                    &format!("{label}.type"),
                    "must be a string",
                ));
                return None;
            }
        };
        let mut rest = table.clone();
        rest.remove("type");
        let rest = Spanned::new(value.span(), DeValue::Table(rest));
        match ty_name.as_str() {
            "debezium-file" => self
                .section(src, &rest, &label)
                .map(SourceConfig::DebeziumFile),
            "debezium-kafka" => self
                .section(src, &rest, &label)
                .map(SourceConfig::DebeziumKafka),
            "sqlserver-cdc" => self
                .section(src, &rest, &label)
                .map(SourceConfig::SqlServerCdc),
            other => {
                self.errors.push(src.error(
                    Some(ty.span()),
                    &format!("{label}.type"),
                    format!("unknown source type `{other}` (expected debezium-file, debezium-kafka or sqlserver-cdc)"),
                ));
                None
            }
        }
    }

    fn section<T: DeserializeOwned>(
        &mut self,
        src: &SourceText<'_>,
        value: &Spanned<DeValue<'_>>,
        label: &str,
    ) -> Option<T> {
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.errors
                .push(src.error(Some(value.span()), label, "must be a table"));
            return None;
        }
        let mut owned = value.clone();
        owned.get_mut().make_owned();
        match T::deserialize(toml::de::ValueDeserializer::from(owned)) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().or(Some(value.span()));
                self.errors
                    .push(src.error(span, label, e.message().to_string()));
                None
            }
        }
    }
}
