//! Hudi's Avro timeline files (`.clean.requested`, `.clean.inflight`, `.clean`): one record in an Avro
//! object-container file, written against the schemas of the Hudi 0.14 release (`avro/*.avsc`, copied
//! verbatim from `hudi-common/src/main/avro/`, Apache-2.0), namespace `org.apache.hudi.avro.model`.

use apache_avro::types::Value;
use apache_avro::{Reader, Schema, Writer};
use std::collections::HashMap;

const CLEANER_PLAN: &str = include_str!("avro/HoodieCleanerPlan.avsc");
const CLEAN_METADATA: &str = include_str!("avro/HoodieCleanMetadata.avsc");
const CLEAN_PARTITION_METADATA: &str = include_str!("avro/HoodieCleanPartitionMetadata.avsc");

/// `HoodieCleanerPlan.version` / `HoodieCleanMetadata.version` Hudi 0.14 writes.
pub const CLEAN_VERSION: i32 = 2;

/// The `.avsc` text without its `/* ... */` comments (Hudi's files carry a license header and inline
/// comments, which Java's parser allows and JSON does not).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while !rest.is_empty() {
        if !in_string && rest.starts_with("/*") {
            match rest.find("*/") {
                Some(end) => rest = &rest[end + 2..],
                None => break,
            }
            continue;
        }
        let mut chars = rest.chars();
        let c = chars.next().unwrap_or_default();
        if c == '"' {
            in_string = !in_string;
        } else if c == '\\' && in_string {
            out.push(c);
            rest = chars.as_str();
            if let Some(next) = rest.chars().next() {
                out.push(next);
                rest = &rest[next.len_utf8()..];
            }
            continue;
        }
        out.push(c);
        rest = chars.as_str();
    }
    out
}

/// The schema of `HoodieCleanerPlan`.
pub fn cleaner_plan_schema() -> Result<Schema, String> {
    Schema::parse_str(&strip_comments(CLEANER_PLAN)).map_err(|e| format!("Hudi Avro schema: {e}"))
}

/// The schema of `HoodieCleanMetadata`, made self-contained: Hudi's file refers to
/// `HoodieCleanPartitionMetadata` by name (its own file), so its definition is put in place of the first
/// reference; the container header then carries a schema any reader can parse on its own.
fn clean_metadata_schema() -> Result<Schema, String> {
    let json = |text: &str| {
        serde_json::from_str::<serde_json::Value>(&strip_comments(text))
            .map_err(|e| format!("Hudi Avro schema: {e}"))
    };
    let mut meta = json(CLEAN_METADATA)?;
    let partition = json(CLEAN_PARTITION_METADATA)?;
    let values = meta
        .get_mut("fields")
        .and_then(|f| f.as_array_mut())
        .and_then(|fields| {
            fields
                .iter_mut()
                .find(|f| f.get("name").and_then(|n| n.as_str()) == Some("partitionMetadata"))
        })
        .and_then(|f| f.get_mut("type"))
        .and_then(|t| t.get_mut("values"))
        .ok_or_else(|| "HoodieCleanMetadata has no partitionMetadata map".to_string())?;
    *values = partition;
    Schema::parse(&meta).map_err(|e| format!("Hudi Avro schema: {e}"))
}

/// One action instant (`HoodieActionInstant`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionInstant {
    pub timestamp: String,
    pub action: String,
    pub state: String,
}

/// A cleaner plan: which files each partition loses.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerPlan {
    pub earliest_instant_to_retain: Option<ActionInstant>,
    pub last_completed_commit: String,
    pub policy: String,
    /// Partition path → full paths of the files to delete.
    pub files: Vec<(String, Vec<String>)>,
}

/// What one partition's cleaning did.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanPartition {
    pub partition_path: String,
    pub policy: String,
    /// File names (not paths), as Hudi records them.
    pub delete_path_patterns: Vec<String>,
    pub success: Vec<String>,
    pub failed: Vec<String>,
}

/// A completed clean (`HoodieCleanMetadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanMetadata {
    pub start_clean_time: String,
    pub time_taken_ms: i64,
    pub total_files_deleted: i32,
    pub earliest_commit_to_retain: String,
    pub last_completed_commit: String,
    pub partitions: Vec<CleanPartition>,
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| string(s)).collect())
}

impl CleanerPlan {
    fn to_value(&self) -> Value {
        let earliest = match &self.earliest_instant_to_retain {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(i) => Value::Union(
                1,
                Box::new(Value::Record(vec![
                    ("timestamp".into(), string(&i.timestamp)),
                    ("action".into(), string(&i.action)),
                    ("state".into(), string(&i.state)),
                ])),
            ),
        };
        let files: HashMap<String, Value> = self
            .files
            .iter()
            .map(|(partition, paths)| {
                let infos = paths
                    .iter()
                    .map(|p| {
                        Value::Record(vec![
                            ("filePath".into(), Value::Union(1, Box::new(string(p)))),
                            (
                                "isBootstrapBaseFile".into(),
                                Value::Union(1, Box::new(Value::Boolean(false))),
                            ),
                        ])
                    })
                    .collect();
                (partition.clone(), Value::Array(infos))
            })
            .collect();
        Value::Record(vec![
            ("earliestInstantToRetain".into(), earliest),
            (
                "lastCompletedCommitTimestamp".into(),
                string(&self.last_completed_commit),
            ),
            ("policy".into(), string(&self.policy)),
            // Deprecated, left as an empty map (as Hudi 0.14 writes it).
            (
                "filesToBeDeletedPerPartition".into(),
                Value::Union(1, Box::new(Value::Map(HashMap::new()))),
            ),
            (
                "version".into(),
                Value::Union(0, Box::new(Value::Int(CLEAN_VERSION))),
            ),
            (
                "filePathsToBeDeletedPerPartition".into(),
                Value::Union(1, Box::new(Value::Map(files))),
            ),
            (
                "partitionsToBeDeleted".into(),
                Value::Union(1, Box::new(Value::Array(Vec::new()))),
            ),
        ])
    }

    /// The Avro object-container bytes of `<t>.clean.requested` / `<t>.clean.inflight`.
    pub fn to_avro(&self) -> Result<Vec<u8>, String> {
        let schema = cleaner_plan_schema()?;
        container(&schema, self.to_value())
    }
}

impl CleanMetadata {
    fn to_value(&self) -> Value {
        let partitions: HashMap<String, Value> = self
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_path.clone(),
                    Value::Record(vec![
                        ("partitionPath".into(), string(&p.partition_path)),
                        ("policy".into(), string(&p.policy)),
                        (
                            "deletePathPatterns".into(),
                            strings(&p.delete_path_patterns),
                        ),
                        ("successDeleteFiles".into(), strings(&p.success)),
                        ("failedDeleteFiles".into(), strings(&p.failed)),
                        (
                            "isPartitionDeleted".into(),
                            Value::Union(1, Box::new(Value::Boolean(false))),
                        ),
                    ]),
                )
            })
            .collect();
        Value::Record(vec![
            ("startCleanTime".into(), string(&self.start_clean_time)),
            ("timeTakenInMillis".into(), Value::Long(self.time_taken_ms)),
            (
                "totalFilesDeleted".into(),
                Value::Int(self.total_files_deleted),
            ),
            (
                "earliestCommitToRetain".into(),
                string(&self.earliest_commit_to_retain),
            ),
            (
                "lastCompletedCommitTimestamp".into(),
                string(&self.last_completed_commit),
            ),
            ("partitionMetadata".into(), Value::Map(partitions)),
            (
                "version".into(),
                Value::Union(0, Box::new(Value::Int(CLEAN_VERSION))),
            ),
            (
                "bootstrapPartitionMetadata".into(),
                Value::Union(1, Box::new(Value::Map(HashMap::new()))),
            ),
        ])
    }

    /// The Avro object-container bytes of `<t>.clean`.
    pub fn to_avro(&self) -> Result<Vec<u8>, String> {
        container(&clean_metadata_schema()?, self.to_value())
    }

    /// Reads `earliestCommitToRetain` back from a `.clean` file.
    pub fn earliest_commit_to_retain(bytes: &[u8]) -> Result<String, String> {
        let reader = Reader::new(bytes).map_err(|e| format!("not an Avro container: {e}"))?;
        for value in reader {
            let value = value.map_err(|e| format!("unreadable clean metadata: {e}"))?;
            if let Value::Record(fields) = value {
                for (name, v) in fields {
                    if name == "earliestCommitToRetain" {
                        if let Value::String(s) = v {
                            return Ok(s);
                        }
                    }
                }
            }
        }
        Err("clean metadata without earliestCommitToRetain".into())
    }
}

/// An Avro object-container file (no codec, as Hudi writes them) holding `value`.
fn container(schema: &Schema, value: Value) -> Result<Vec<u8>, String> {
    let err = |e: apache_avro::Error| format!("encoding {}: {e}", schema_name(schema));
    let mut writer = Writer::new(schema, Vec::new()).map_err(err)?;
    writer.append_value(value).map_err(err)?;
    writer.into_inner().map_err(err)
}

fn schema_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(None),
        _ => "record".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hudi_schemas_parse_with_their_namespace() {
        let plan = cleaner_plan_schema().unwrap();
        assert_eq!(
            schema_name(&plan),
            "org.apache.hudi.avro.model.HoodieCleanerPlan"
        );
        let meta = clean_metadata_schema().unwrap();
        assert_eq!(
            schema_name(&meta),
            "org.apache.hudi.avro.model.HoodieCleanMetadata"
        );
    }

    #[test]
    fn clean_files_round_trip_through_an_avro_reader() {
        let plan = CleanerPlan {
            earliest_instant_to_retain: Some(ActionInstant {
                timestamp: "20240101000000000".into(),
                action: "commit".into(),
                state: "COMPLETED".into(),
            }),
            last_completed_commit: "20240101000000009".into(),
            policy: "KEEP_LATEST_COMMITS".into(),
            files: vec![("p=1".into(), vec!["file:/t/p=1/a.parquet".into()])],
        };
        let bytes = plan.to_avro().unwrap();
        assert_eq!(Reader::new(&bytes[..]).unwrap().count(), 1);
        let meta = CleanMetadata {
            start_clean_time: "20240101000000010".into(),
            time_taken_ms: 5,
            total_files_deleted: 1,
            earliest_commit_to_retain: "20240101000000000".into(),
            last_completed_commit: "20240101000000009".into(),
            partitions: vec![CleanPartition {
                partition_path: "p=1".into(),
                policy: "KEEP_LATEST_COMMITS".into(),
                delete_path_patterns: vec!["a.parquet".into()],
                success: vec!["a.parquet".into()],
                failed: vec![],
            }],
        };
        let bytes = meta.to_avro().unwrap();
        assert_eq!(
            CleanMetadata::earliest_commit_to_retain(&bytes).unwrap(),
            "20240101000000000"
        );
    }
}
