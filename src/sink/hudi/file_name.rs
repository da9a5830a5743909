//! Base file names: `<fileId>_<writeToken>_<instant>.parquet`.

use super::instant::Instant;

/// A parsed base file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseFileName {
    /// `<uuid>-<n>`; a file group keeps it forever.
    pub file_id: String,
    /// `<taskPartitionId>-<stageId>-<attemptId>`.
    pub write_token: String,
    pub instant: Instant,
}

impl BaseFileName {
    /// A name with write token `<task>-<stage>-0` (Spark: task partition, stage, attempt).
    pub fn new(file_id: &str, task: usize, stage: u32, instant: &Instant) -> BaseFileName {
        BaseFileName {
            file_id: file_id.to_string(),
            write_token: format!("{task}-{stage}-0"),
            instant: instant.clone(),
        }
    }

    /// A fresh file id, as Spark Hudi makes them (`<uuid>-0`).
    pub fn new_file_id() -> String {
        format!("{}-0", uuid::Uuid::new_v4())
    }

    pub fn parse(name: &str) -> Option<BaseFileName> {
        let stem = name.strip_suffix(".parquet")?;
        let (rest, instant) = stem.rsplit_once('_')?;
        let (file_id, write_token) = rest.rsplit_once('_')?;
        if file_id.is_empty() || write_token.split('-').count() != 3 {
            return None;
        }
        Some(BaseFileName {
            file_id: file_id.to_string(),
            write_token: write_token.to_string(),
            instant: Instant::parse(instant)?,
        })
    }

    pub fn name(&self) -> String {
        format!(
            "{}_{}_{}.parquet",
            self.file_id, self.write_token, self.instant
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spark_written_names_and_round_trips() {
        let name = "a079bdb3-731c-4894-b855-abfcd6921007-0_0-203-274_20240418173551906.parquet";
        let f = BaseFileName::parse(name).unwrap();
        assert_eq!(f.file_id, "a079bdb3-731c-4894-b855-abfcd6921007-0");
        assert_eq!(f.write_token, "0-203-274");
        assert_eq!(f.instant.as_str(), "20240418173551906");
        assert_eq!(f.name(), name);
        assert!(BaseFileName::parse(".hoodie_partition_metadata").is_none());
        assert!(BaseFileName::parse("x_1_2.parquet").is_none());
    }

    #[test]
    fn new_names_look_like_sparks() {
        let id = BaseFileName::new_file_id();
        assert!(id.ends_with("-0") && id.len() == 38);
        let instant = Instant::parse("20240418173551906").unwrap();
        let name = BaseFileName::new(&id, 3, 77, &instant).name();
        assert_eq!(BaseFileName::parse(&name).unwrap().write_token, "3-77-0");
    }
}
