//! Hudi's write markers: before writing the data files of an instant, the writer records each file it is
//! about to create or merge under `.hoodie/.temp/<instant>/`, in the format a Spark writer on S3 uses
//! (`TIMELINE_SERVER_BASED`: a `MARKERS.type` file and `MARKERS0` listing one
//! `<partition>/<file>.marker.<CREATE|MERGE>` per line). A JVM writer that rolls back a crashed lakefold
//! instant deletes exactly the files its markers name; with no markers it would delete nothing. The marker
//! folder is removed when the instant completes or is rolled back.

use super::error::HudiError;
use super::instant::Instant;
use super::table::HudiTable;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;

/// Content of `MARKERS.type`.
pub const MARKER_TYPE: &str = "TIMELINE_SERVER_BASED";

/// Why a data file is written: a new file group, or a merge into an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoType {
    Create,
    Merge,
}

impl IoType {
    fn suffix(self) -> &'static str {
        match self {
            IoType::Create => "CREATE",
            IoType::Merge => "MERGE",
        }
    }
}

/// The marker line of one data file (`relative_path` from the table base).
pub fn marker_line(relative_path: &str, io: IoType) -> String {
    format!("{relative_path}.marker.{}", io.suffix())
}

impl HudiTable {
    pub(super) fn marker_dir(&self, instant: &Instant) -> Path {
        Self::hoodie(&self.base)
            .join(".temp")
            .join(instant.as_str())
    }

    /// Writes the markers of every data file `instant` is about to write.
    pub(super) async fn write_markers(
        &self,
        instant: &Instant,
        files: &[(String, IoType)],
    ) -> Result<(), HudiError> {
        let dir = self.marker_dir(instant);
        let mut text = String::new();
        for (path, io) in files {
            text.push_str(&marker_line(path, *io));
            text.push('\n');
        }
        let put = |name: &str, body: Vec<u8>| {
            let path = dir.clone().join(name);
            async move {
                self.store
                    .put(&path, body.into())
                    .await
                    .map(|_| ())
                    .map_err(self.storage(&path))
            }
        };
        put("MARKERS.type", MARKER_TYPE.as_bytes().to_vec()).await?;
        put("MARKERS0", text.into_bytes()).await
    }

    /// Removes the markers of an instant that completed: its commit is published, so a failure here is
    /// logged and left for the next rollback of leftovers rather than reported as a failed commit.
    pub(super) async fn forget_markers(&self, instant: &Instant) {
        if let Err(e) = self.delete_markers(instant).await {
            tracing::warn!(table = %self.name, %instant, error = %e, "could not remove the markers of a completed instant");
        }
    }

    /// Removes the marker folder of `instant` (whatever marker files a writer left there).
    pub(super) async fn delete_markers(&self, instant: &Instant) -> Result<usize, HudiError> {
        let dir = self.marker_dir(instant);
        let objects: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(self.storage(&dir))?;
        for o in &objects {
            self.delete(&o.location).await?;
        }
        // A local store keeps the emptied folder; one per instant would pile up over months.
        if let Some(dir) = self.local_dir() {
            let _ = std::fs::remove_dir(dir.join(".hoodie").join(".temp").join(instant.as_str()));
        }
        Ok(objects.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines_name_the_file_and_its_io_type() {
        assert_eq!(
            marker_line(
                "ProjectId=3/abc-0_0-1-0_20240101000000000.parquet",
                IoType::Merge
            ),
            "ProjectId=3/abc-0_0-1-0_20240101000000000.parquet.marker.MERGE"
        );
        assert_eq!(
            marker_line("f.parquet", IoType::Create),
            "f.parquet.marker.CREATE"
        );
    }
}
