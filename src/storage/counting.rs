//! An `ObjectStore` that counts the requests it passes on, by kind: what a commit costs on S3 (and what
//! `run` reports at the end). The counts are process-wide atomics; a wrapper adds one relaxed increment per
//! request.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Requests of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    Put,
    Multipart,
    Get,
    /// One `get_ranges` call (a store may serve it with one request per coalesced range).
    GetRanges,
    List,
    Delete,
    Copy,
    Rename,
}

const KINDS: [Request; 8] = [
    Request::Put,
    Request::Multipart,
    Request::Get,
    Request::GetRanges,
    Request::List,
    Request::Delete,
    Request::Copy,
    Request::Rename,
];

impl Request {
    pub fn name(self) -> &'static str {
        match self {
            Request::Put => "put",
            Request::Multipart => "multipart",
            Request::Get => "get",
            Request::GetRanges => "get_ranges",
            Request::List => "list",
            Request::Delete => "delete",
            Request::Copy => "copy",
            Request::Rename => "rename",
        }
    }
}

static COUNTS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn count(kind: Request) {
    COUNTS[kind as usize].fetch_add(1, Ordering::Relaxed);
}

/// Requests made through every [`CountingStore`] so far, by kind.
pub fn requests() -> Vec<(Request, u64)> {
    KINDS
        .iter()
        .map(|&k| (k, COUNTS[k as usize].load(Ordering::Relaxed)))
        .collect()
}

/// `inner`, counted.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        CountingStore { inner }
    }
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        count(Request::Put);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        count(Request::Multipart);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        count(Request::Get);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        count(Request::GetRanges);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        use futures::StreamExt;
        let counted = locations
            .map(|p| {
                count(Request::Delete);
                p
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        count(Request::List);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        count(Request::List);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        count(Request::List);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        count(Request::Copy);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        count(Request::Rename);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn every_request_is_counted_by_kind() {
        let before = requests();
        let store = CountingStore::new(Arc::new(object_store::memory::InMemory::new()));
        let p = Path::from("a/b");
        store
            .put(&p, Bytes::from_static(b"x").into())
            .await
            .unwrap();
        store.get(&p).await.unwrap();
        store.get_range(&p, 0..1).await.unwrap();
        store.list_with_delimiter(None).await.unwrap();
        store.delete(&p).await.unwrap();
        let after = requests();
        let delta = |k: Request| after[k as usize].1 - before[k as usize].1;
        // Other tests may count concurrently: at least ours.
        assert!(delta(Request::Put) >= 1 && delta(Request::Get) >= 2);
        assert!(delta(Request::List) >= 1 && delta(Request::Delete) >= 1);
    }
}
