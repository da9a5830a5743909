//! Object-store plumbing shared by the sinks.

pub mod counting;
pub mod parquet_read;

/// Reads a whole object.
pub async fn read_whole(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    path: &object_store::path::Path,
) -> object_store::Result<bytes::Bytes> {
    use object_store::ObjectStoreExt;
    store.get(path).await?.bytes().await
}
