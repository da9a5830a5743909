//! The lake: an object store (local disk or S3) and where each table lives in it.

use super::error::PipelineError;
use crate::config::{Config, LakeConfig, LakeFormat};
use crate::storage::counting::CountingStore;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::CredentialProvider;
use object_store::ObjectStore;
use std::path::PathBuf;
use std::sync::Arc;

/// Where tables are stored.
#[derive(Debug, Clone)]
pub struct Lake {
    pub store: Arc<dyn ObjectStore>,
    /// The configured URI, for messages.
    pub uri: String,
    /// Local directory of a file lake.
    pub local_root: Option<PathBuf>,
    /// Prefix of every table inside the store (empty for local lakes, whose store is rooted at the folder).
    pub prefix: Path,
    /// Hudi `hoodie.database.name` (the catalog database, else `default`).
    pub database: String,
    /// The lake's table format (`[lake] format`); a route may choose its own.
    pub format: LakeFormat,
}

impl Lake {
    /// Opens the lake of `config` (creating the directory of a local lake).
    pub async fn open(config: &Config) -> Result<Lake, PipelineError> {
        let uri = config.lake.uri.trim().to_string();
        let database = config
            .catalog
            .as_ref()
            .and_then(|c| c.database.clone())
            .unwrap_or_else(|| "default".into());
        let err = |message: String| PipelineError::Lake {
            uri: uri.clone(),
            message,
        };
        if let Some(("s3" | "s3a", rest)) = uri.split_once("://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let store = s3_store(&config.lake, bucket)
                .await
                .map_err(|e| err(e.to_string()))?;
            let prefix = Path::from(prefix.trim_matches('/'));
            return Ok(Lake {
                store: Arc::new(CountingStore::new(Arc::new(store))),
                uri: uri.clone(),
                local_root: None,
                prefix,
                database,
                format: config.lake.format,
            });
        }
        let dir =
            local_path(&uri).ok_or_else(|| err("expected a path, file:// or s3:// URI".into()))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| err(e.to_string()))?;
        Ok(Lake {
            store: Arc::new(CountingStore::new(Arc::new(store))),
            uri,
            local_root: Some(dir),
            prefix: Path::default(),
            database,
            format: config.lake.format,
        })
    }

    /// The base path of `table` inside the store.
    pub fn table_path(&self, table: &str) -> Path {
        self.prefix.clone().join(table)
    }

    /// Where a table is, for people and for catalogs: a local folder or `s3://bucket/prefix/table`.
    pub fn table_location(&self, table: &str) -> String {
        match &self.local_root {
            Some(root) => root.join(table).display().to_string(),
            // Athena and Glue take s3:// only (Hudi's sync rewrites s3a:// the same way).
            None => format!(
                "{}/{table}",
                self.uri
                    .trim_end_matches('/')
                    .replacen("s3a://", "s3://", 1)
            ),
        }
    }
}

impl Lake {
    /// The URI of `table` as Hudi records paths (`file:/abs/path`, `s3://bucket/prefix/table`).
    pub fn table_uri(&self, table: &str) -> String {
        match &self.local_root {
            Some(root) => format!("file:{}", root.join(table).display()),
            None => self.table_location(table),
        }
    }
}

/// S3 with the standard AWS credential chain (environment, shared config/credentials profiles, web identity,
/// ECS task role, instance metadata — the same chain the Glue client uses), `AWS_*` settings such as
/// `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP`, and the `[lake]` overrides on top.
async fn s3_store(
    lake: &LakeConfig,
    bucket: &str,
) -> object_store::Result<object_store::aws::AmazonS3> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(provider) = sdk.credentials_provider() {
        builder = builder.with_credentials(Arc::new(ChainCredentials::new(provider)));
    }
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        if let Some(region) = sdk.region() {
            builder = builder.with_region(region.as_ref());
        }
    }
    if let Some(region) = &lake.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &lake.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(allow) = lake.allow_http {
        builder = builder.with_allow_http(allow);
    }
    builder.build()
}

/// object_store credentials from the AWS SDK's provider chain, cached until five minutes before they expire.
#[derive(Debug)]
struct ChainCredentials {
    provider: aws_credential_types::provider::SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<std::time::SystemTime>)>>,
}

impl ChainCredentials {
    fn new(provider: aws_credential_types::provider::SharedCredentialsProvider) -> Self {
        ChainCredentials {
            provider,
            cached: tokio::sync::Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl CredentialProvider for ChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        use aws_credential_types::provider::ProvideCredentials;
        let mut cached = self.cached.lock().await;
        let margin = std::time::Duration::from_secs(300);
        if let Some((cred, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|e| {
                e.duration_since(std::time::SystemTime::now())
                    .is_ok_and(|left| left > margin)
            });
            if fresh {
                return Ok(cred.clone());
            }
        }
        let c = match self.provider.provide_credentials().await {
            Ok(c) => c,
            Err(e) => {
                // A refresh that fails while the cached credential is still valid keeps using it.
                if let Some((cred, expiry)) = cached.as_ref() {
                    if expiry.is_none_or(|e| e > std::time::SystemTime::now()) {
                        tracing::warn!(error = %e, "refreshing AWS credentials failed; using the cached ones until they expire");
                        return Ok(cred.clone());
                    }
                }
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                });
            }
        };
        let cred = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        *cached = Some((cred.clone(), c.expiry()));
        Ok(cred)
    }
}

/// The directory of a local lake URI (`file:///x`, `/x`, `./x`, `x`); `None` for other schemes.
pub fn local_path(uri: &str) -> Option<PathBuf> {
    let path = match uri.split_once("://") {
        Some(("file", rest)) => PathBuf::from(rest),
        Some(_) => return None,
        None => PathBuf::from(uri),
    };
    if path.is_absolute() {
        Some(path)
    } else {
        std::env::current_dir().ok().map(|cwd| cwd.join(path))
    }
}
