//! The configuration model. Every key lakefold reads is a documented field here; unknown keys are errors.
//!
//! ```toml
//! [lake]
//! uri = "./lake"
//!
//! [sources.sample]
//! type = "debezium-file"
//! path = "config/sample/sales.jsonl"
//!
//! [[route]]
//! table = "agents"
//! source = "sample"
//! from = "dbo.SALES"
//! key = ["AgentId"]
//! columns = ["AgentId", "AgentName"]
//! ```

use super::units::{ByteSize, DurationText};
use indexmap::IndexMap;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main file it was loaded from (included route files are listed in `includes`).
    pub path: PathBuf,
    /// Route files pulled in by `include`.
    pub includes: Vec<PathBuf>,
    pub lake: LakeConfig,
    pub catalog: Option<CatalogConfig>,
    pub commit: CommitConfig,
    pub metrics: Option<MetricsConfig>,
    /// Named sources, in file order.
    pub sources: IndexMap<String, SourceConfig>,
    /// One route per output table.
    pub routes: Vec<RouteConfig>,
}

impl Config {
    pub fn route(&self, table: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.table == table)
    }
}

/// `[lake]`: where tables live.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Base location of all tables: `file:///abs/path`, a plain path (relative paths resolve against the
    /// working directory), or `s3://bucket/prefix` (credentials from the standard AWS chain: environment,
    /// web identity, ECS task role, instance metadata). Each route's table lives at `<uri>/<table>`.
    pub uri: String,
    /// Table format: `hudi` (default; table version 6, copy-on-write) or `delta`.
    #[serde(default)]
    pub format: LakeFormat,
    /// S3 only: region of the bucket (else from `AWS_REGION` / `AWS_DEFAULT_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    /// S3 only: endpoint override, e.g. `http://127.0.0.1:5000` (else `AWS_ENDPOINT_URL`, else AWS).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 only: allow plain-HTTP endpoints (tests, MinIO). Default false (or `AWS_ALLOW_HTTP`).
    #[serde(default)]
    pub allow_http: Option<bool>,
}

/// Table format of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LakeFormat {
    #[default]
    Hudi,
    Delta,
}

/// `[catalog]`: where tables are registered after each commit. Absent = no catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// `glue` or `none`.
    #[serde(rename = "type")]
    pub kind: CatalogKind,
    /// Glue database the tables are created in.
    #[serde(default)]
    pub database: Option<String>,
    /// AWS region of the catalog, e.g. `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (tests: `http://127.0.0.1:5000`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Also register the dead-letter table (`_lakefold_dead_letters`). Default false: it holds raw source
    /// records (personal data, secrets pasted into a column), and everyone who may query the database
    /// would see them; operators read it with `lakefold dead-letters`.
    #[serde(default)]
    pub register_dead_letters: bool,
}

/// Catalog kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    Glue,
    None,
}

/// `[commit]`: when a batch becomes a table commit (whichever limit is reached first).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitConfig {
    /// Longest time between commits while events arrive. Default `"60s"`.
    #[serde(default = "default_commit_interval")]
    pub interval: DurationText,
    /// Most source records in one commit. Default 500000.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Most bytes the folded rows (and dead letters) of one commit may hold in memory: a fold that
    /// reaches it commits early instead of growing. Default `"128MiB"`: with the write that follows it, an
    /// initial load peaks near 300 MiB (see benches/README.md).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// How long the daemon rides out an outage (object store, catalog, broker or database unreachable):
    /// the run is reopened from the tables' checkpoints with backoff until this long has passed without a
    /// successful commit, then it exits 1 (systemd or ECS restart it). Default `"5m"`.
    #[serde(default = "default_retry_deadline")]
    pub retry_deadline: DurationText,
}

fn default_retry_deadline() -> DurationText {
    DurationText(Duration::from_secs(300))
}

fn default_commit_interval() -> DurationText {
    DurationText(Duration::from_secs(60))
}

fn default_max_events() -> usize {
    500_000
}

fn default_max_bytes() -> ByteSize {
    ByteSize(128 * 1024 * 1024)
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            interval: default_commit_interval(),
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            retry_deadline: default_retry_deadline(),
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve `GET /metrics` and `GET /healthz` on, e.g. `127.0.0.1:9464`.
    pub listen: String,
}

/// `[sources.<name>]`: where change events come from. The `type` key selects the kind.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// `type = "debezium-file"`.
    DebeziumFile(FileSourceConfig),
    /// `type = "debezium-kafka"`.
    DebeziumKafka(KafkaSourceConfig),
    /// `type = "sqlserver-cdc"`.
    SqlServerCdc(SqlServerSourceConfig),
}

impl SourceConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::DebeziumFile(_) => "debezium-file",
            SourceConfig::DebeziumKafka(_) => "debezium-kafka",
            SourceConfig::SqlServerCdc(_) => "sqlserver-cdc",
        }
    }
}

/// A Debezium JSON-lines file: each line is one Kafka message value exactly as Debezium's JsonConverter
/// writes it (envelope with or without `schema`, or the ExtractNewRecordState form); blank lines and
/// `null` tombstones are skipped. Read append-only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file. Relative paths resolve against the working directory (then the config file's directory).
    pub path: String,
    /// How often `run` (without `--once`) looks for new lines. Default `"1s"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: DurationText,
}

fn default_poll_interval() -> DurationText {
    DurationText(Duration::from_secs(1))
}

/// Debezium change events on Kafka.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topics to read, e.g. `["mssql.dbo.SALES"]`.
    pub topics: Vec<String>,
    /// Consumer group (offsets committed there are advisory; the table commits hold the truth).
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// `json` (with or without schema) or `avro` (Confluent wire format).
    #[serde(default)]
    pub format: KafkaFormat,
    /// Schema Registry URL (avro only).
    #[serde(default)]
    pub schema_registry: Option<String>,
    /// Extra librdkafka properties passed through (e.g. `security.protocol`).
    #[serde(default)]
    pub properties: IndexMap<String, String>,
}

fn default_group_id() -> String {
    "lakefold".to_string()
}

/// Message format on Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaFormat {
    #[default]
    Json,
    Avro,
}

/// SQL Server CDC read directly.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlServerSourceConfig {
    /// ADO.NET connection string without the password:
    /// `server=tcp:host,1433;database=MYCOMPANY;user=cdc;encrypt=true|false|strict`. `encrypt=false` means
    /// no TLS at all (servers and fixtures without a certificate); `strict` is TDS 8.
    pub connection: String,
    /// The environment variable holding the password. Default `LAKEFOLD_SQLSERVER_PASSWORD`.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Capture instances to read, e.g. `["dbo_SALES"]`. Default: every instance that captures a table
    /// the source's routes read from (`cdc.change_tables`).
    #[serde(default)]
    pub capture_instances: Vec<String>,
    /// How often to poll for new changes when caught up. Default `"1s"`.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: DurationText,
    /// Transactions per LSN window (Debezium's `max.iteration.transactions`). Default 500.
    #[serde(default = "default_max_transactions")]
    pub max_transactions_per_window: u32,
    /// What to do when changes after the stored LSN were cleaned up before they were read (the capture
    /// instance's min LSN is past it): `fail` (default; stop, exit 1) or `resnapshot` (read that table
    /// again at the max LSN, then go on streaming; rows deleted during the gap stay in the lake table).
    #[serde(default)]
    pub on_gap: OnGap,
    /// `initial` (snapshot the tables first when no checkpoint is stored) or `never` (stream from the
    /// instances' minimum LSN).
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// A PEM CA certificate file to trust for TLS.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Accept any server certificate. Only when set explicitly; never the default.
    #[serde(default)]
    pub trust_server_certificate: bool,
    /// Time allowed to connect and for each statement. Default `"60s"`. A change query that times out
    /// halves the LSN window (down to one transaction) instead of asking the same question again.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: DurationText,
}

fn default_max_transactions() -> u32 {
    500
}

fn default_statement_timeout() -> DurationText {
    DurationText(std::time::Duration::from_secs(60))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnGap {
    #[default]
    Fail,
    Resnapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    #[default]
    Initial,
    Never,
}

/// `[[route]]`: one output table fed from one source table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Output table name (letters, digits, `_`); the table lives at `<lake.uri>/<table>`.
    pub table: String,
    /// Name of the source (a key of `[sources]`).
    pub source: String,
    /// Source table, `schema.table` (Debezium `source.schema`/`source.table`). Events that carry no table
    /// identity (the flattened form without `__table`) belong to every route of their source.
    pub from: String,
    /// Record key columns (output names). One column → Hudi SimpleKeyGenerator, several → ComplexKeyGenerator.
    pub key: Vec<String>,
    /// Projection in output order: a list of column names, or a table `{ out = "in" }` that renames.
    pub columns: Columns,
    /// Type overrides by output column, e.g. `{ ContractSubtotal = "decimal(18,4)" }`. Names: boolean, int,
    /// bigint, float, double, decimal(p,s), string, binary, date, timestamp_ms, timestamp_us.
    #[serde(default)]
    pub types: IndexMap<String, String>,
    /// What a source delete does: `ignore` (default; dimensions outlive facts), `delete` (remove the row) or
    /// `soft` (keep the row's last image with `_lakefold_deleted = true`).
    #[serde(default)]
    pub on_delete: OnDelete,
    /// Partition columns (output names); hive-style paths `col=value/`.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Parquet compression: `snappy`, `gzip`, `zstd` or `none`. Default: `gzip` for Hudi tables (as
    /// Hudi), `snappy` for Delta tables (as Spark and delta-rs write Delta).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Table format of this route's table (`hudi` or `delta`); default `[lake] format`.
    #[serde(default)]
    pub format: Option<LakeFormat>,
    /// Largest base file written (Hudi `hoodie.parquet.max.file.size`). Default `"120MiB"`.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// Base files smaller than this receive new inserts (Hudi `hoodie.parquet.small.file.limit`). Default
    /// `"100MiB"`.
    #[serde(default = "default_small_file_limit")]
    pub small_file_limit: ByteSize,
    /// Cleaner retention (Hudi `hoodie.cleaner.commits.retained`, policy KEEP_LATEST_COMMITS): every file
    /// slice that the snapshot of one of the last N completed commits needs is kept; older slices are
    /// deleted after each commit. Default 10. Queries and incremental reads older than N commits fail.
    #[serde(default = "default_clean_retain_commits")]
    pub clean_retain_commits: u32,
    /// A replaced file slice is kept at least this long after the commit that replaced it, whatever
    /// `clean_retain_commits` says (for queries that outlast N commit intervals). Default `"0s"`, as Hudi.
    #[serde(default = "default_clean_min_age")]
    pub clean_min_age: DurationText,
}

fn default_clean_retain_commits() -> u32 {
    10
}

fn default_clean_min_age() -> DurationText {
    DurationText(Duration::ZERO)
}

fn default_max_file_size() -> ByteSize {
    ByteSize(120 * 1024 * 1024)
}

fn default_small_file_limit() -> ByteSize {
    ByteSize(100 * 1024 * 1024)
}

impl RouteConfig {
    /// The route's table format: its own `format`, else the lake's.
    pub fn table_format(&self, lake: &LakeConfig) -> LakeFormat {
        self.format.unwrap_or(lake.format)
    }

    /// The route's Parquet codec in a table of `format`: its own `compression`, else the format's usual
    /// one.
    pub fn codec(&self, format: LakeFormat) -> Compression {
        self.compression.unwrap_or(match format {
            LakeFormat::Hudi => Compression::Gzip,
            LakeFormat::Delta => Compression::Snappy,
        })
    }

    /// `(output name, source name)` pairs in output order.
    pub fn projection(&self) -> Vec<(String, String)> {
        match &self.columns {
            Columns::List(names) => names.iter().map(|n| (n.clone(), n.clone())).collect(),
            Columns::Renames(map) => map
                .iter()
                .map(|(out, input)| (out.clone(), input.clone()))
                .collect(),
        }
    }
}

/// A route's projection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Columns {
    /// `["AgentId", "AgentName"]`
    List(Vec<String>),
    /// `{ agent_id = "AgentId", agent_name = "AgentName" }` (output = input)
    Renames(IndexMap<String, String>),
}

/// What a source delete does to a route's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    #[default]
    Ignore,
    Delete,
    Soft,
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Snappy,
    #[default]
    Gzip,
    Zstd,
    None,
}
