//! Debezium change events on Kafka, read with librdkafka (rdkafka).
//!
//! lakefold assigns the topics' partitions itself instead of joining a consumer-group rebalance: a table
//! has exactly one writer, so one lakefold reads all partitions of its topics. Each partition starts at the
//! offset the tables' checkpoints give (the oldest among the routes reading it); consumer-group offsets are
//! committed after table commits for lag monitoring only.

use crate::avro::{confluent_schema_id, decode_confluent_avro, WriterSchema};
use crate::decoder::JsonDecoder;
use crate::envelope::Decoding;
use crate::registry::{RegistryError, SchemaRegistry};
use bytes::Bytes;
use lakefold_api::{
    BatchLimits, ChangeBatch, Checkpoint, KafkaCheckpoint, Lag, LagUnit, Position, SourceError,
    SourceRecord, StreamPosition,
};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Routes librdkafka's own logs and errors into tracing at sensible levels: connection failures are what
/// the retry loop reports once per attempt, so librdkafka's repeats of them are debug, not error.
pub struct LogContext {
    source: String,
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(source = %self.source, facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
                tracing::debug!(source = %self.source, facility = fac, "librdkafka: {message}")
            }
            _ => tracing::trace!(source = %self.source, facility = fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(source = %self.source, %error, "librdkafka: {reason}");
    }
}

impl ConsumerContext for LogContext {}

type Kafka = StreamConsumer<LogContext>;

/// How long one metadata request may take before the attempt counts as failed and is retried.
const METADATA_TIMEOUT: Duration = Duration::from_secs(4);

/// Message format on the topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaFormat {
    /// Debezium JsonConverter, with or without schema.
    Json,
    /// Confluent Avro (magic byte, schema id, datum) with a Schema Registry.
    Avro,
}

/// How to read.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// The source's name, for messages.
    pub name: String,
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    pub format: KafkaFormat,
    pub schema_registry: Option<String>,
    /// librdkafka properties passed through (values already resolved from the environment).
    pub properties: Vec<(String, String)>,
    /// Bound on librdkafka's prefetch queue, in KiB (`queued.max.messages.kbytes`).
    pub queue_max_kbytes: usize,
    /// `--once`: stop at each partition's high watermark as of start.
    pub once: bool,
    /// Give up connecting at start after this long (`None`: keep retrying).
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
struct PartitionState {
    /// The next offset to read, once known.
    next: i64,
    /// The high watermark at start (`--once`).
    end: i64,
}

/// A Kafka source positioned at a checkpoint.
pub struct KafkaSource {
    options: KafkaOptions,
    /// When a record last arrived (`--once` gives up after `ONCE_STALL` without one).
    last_progress: Instant,
    consumer: Arc<Kafka>,
    partitions: BTreeMap<(String, i32), PartitionState>,
    registry: Option<SchemaRegistry>,
    /// When the daemon last looked for partitions added to its topics.
    last_refresh: Instant,
    /// JSON messages (schemas parsed once per distinct schema).
    json: JsonDecoder,
    /// The lag last measured, and when (watermarks are a broker round trip per partition).
    lag: Option<(Instant, Vec<Lag>)>,
}

/// How often the high watermarks are fetched for the lag.
const LAG_REFRESH: Duration = Duration::from_secs(15);

/// `--once` stops with an error when no record arrives for this long before the high watermarks are reached
/// (brokers gone, a topic deleted): a cron job must end.
const ONCE_STALL: Duration = Duration::from_secs(300);

/// How often a running daemon looks for partitions added to its topics.
const PARTITION_REFRESH: Duration = Duration::from_secs(60);

fn kafka_error(options: &KafkaOptions, context: &str, e: KafkaError) -> SourceError {
    SourceError::Kafka {
        brokers: options.brokers.clone(),
        context: context.to_string(),
        message: e.to_string(),
    }
}

impl KafkaSource {
    /// Checks that the brokers answer and every topic exists (for `validate`), within `connect_timeout`.
    pub async fn check_topics(options: &KafkaOptions) -> Result<(), SourceError> {
        let consumer = Arc::new(
            client_config(options)
                .create_with_context::<_, Kafka>(LogContext {
                    source: options.name.clone(),
                })
                .map_err(|e| kafka_error(options, "creating the consumer", e))?,
        );
        fetch_partitions(&consumer, options).await.map(|_| ())
    }

    /// Connects (retrying with backoff while the brokers are unreachable), checks the topics exist,
    /// and assigns every partition at `resume` (or the earliest offset).
    pub async fn open(
        options: KafkaOptions,
        resume: Option<&KafkaCheckpoint>,
    ) -> Result<KafkaSource, SourceError> {
        let consumer: Kafka = client_config(&options)
            .create_with_context(LogContext {
                source: options.name.clone(),
            })
            .map_err(|e| kafka_error(&options, "creating the consumer", e))?;
        let consumer = Arc::new(consumer);

        let partitions_of = fetch_partitions(&consumer, &options).await?;
        let mut partitions = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for (topic, ids) in &partitions_of {
            for &p in ids {
                let (low, high) = watermarks(&consumer, &options, topic, p).await?;
                let start = match resume.and_then(|cp| cp.next_offset(topic, p)) {
                    Some(next) if next < low => {
                        tracing::error!(source = %options.name, %topic, partition = p, checkpoint = next, earliest = low,
                            "offsets below the partition's earliest were deleted by retention before lakefold read them");
                        low
                    }
                    Some(next) => next,
                    None => low,
                };
                assignment
                    .add_partition_offset(topic, p, Offset::Offset(start))
                    .map_err(|e| kafka_error(&options, "building the assignment", e))?;
                partitions.insert(
                    (topic.clone(), p),
                    PartitionState {
                        next: start,
                        end: high,
                    },
                );
            }
        }
        consumer
            .assign(&assignment)
            .map_err(|e| kafka_error(&options, "assigning partitions", e))?;
        tracing::info!(source = %options.name, partitions = partitions.len(), topics = ?options.topics, "kafka partitions assigned");
        let registry = match (options.format, &options.schema_registry) {
            (KafkaFormat::Avro, Some(url)) => Some(SchemaRegistry::new(url)?),
            _ => None,
        };
        Ok(KafkaSource {
            options,
            consumer,
            partitions,
            registry,
            last_refresh: Instant::now(),
            last_progress: Instant::now(),
            json: JsonDecoder::new(),
            lag: None,
        })
    }

    /// The offsets read so far, for the table commits.
    pub fn checkpoint(&self) -> KafkaCheckpoint {
        let mut cp = KafkaCheckpoint::default();
        for ((topic, p), state) in &self.partitions {
            cp.offsets
                .entry(topic.clone())
                .or_default()
                .insert(*p, state.next);
        }
        cp
    }

    /// Assigns partitions that were added to the topics since start (daemon only), from their earliest
    /// offset: no table has read them yet.
    async fn refresh_partitions(&mut self) -> Result<(), SourceError> {
        self.last_refresh = Instant::now();
        let options = KafkaOptions {
            connect_timeout: Some(Duration::from_secs(5)),
            ..self.options.clone()
        };
        let found = match fetch_partitions(&self.consumer, &options).await {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(source = %self.options.name, error = %e, "partition refresh failed; trying again later");
                return Ok(());
            }
        };
        let mut added = Vec::new();
        for (topic, ids) in found {
            for p in ids {
                if !self.partitions.contains_key(&(topic.clone(), p)) {
                    let (low, _) = watermarks(&self.consumer, &self.options, &topic, p).await?;
                    added.push((topic.clone(), p, low));
                }
            }
        }
        if added.is_empty() {
            return Ok(());
        }
        for (topic, p, low) in &added {
            self.partitions.insert(
                (topic.clone(), *p),
                PartitionState {
                    next: *low,
                    end: *low,
                },
            );
        }
        let mut assignment = TopicPartitionList::new();
        for ((topic, p), state) in &self.partitions {
            assignment
                .add_partition_offset(topic, *p, Offset::Offset(state.next))
                .map_err(|e| kafka_error(&self.options, "building the assignment", e))?;
        }
        self.consumer
            .assign(&assignment)
            .map_err(|e| kafka_error(&self.options, "assigning partitions", e))?;
        tracing::info!(source = %self.options.name, added = ?added.iter().map(|(t, p, _)| format!("{t}/{p}")).collect::<Vec<_>>(), "new partitions assigned");
        Ok(())
    }

    /// Moves each partition's next offset up to the consumer's position (never down).
    fn advance_to_positions(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for elem in positions.elements() {
            if let Offset::Offset(pos) = elem.offset() {
                if let Some(state) = self
                    .partitions
                    .get_mut(&(elem.topic().to_string(), elem.partition()))
                {
                    state.next = state.next.max(pos);
                }
            }
        }
    }

    fn all_done(&self) -> bool {
        self.options.once && self.partitions.values().all(|s| s.next >= s.end)
    }

    /// Reads up to `limits`. `caught_up`: with `--once`, every partition reached its start-time high
    /// watermark; otherwise, nothing arrived within the poll wait.
    pub async fn poll(&mut self, limits: BatchLimits) -> Result<ChangeBatch, SourceError> {
        if !self.options.once && self.last_refresh.elapsed() >= PARTITION_REFRESH {
            self.refresh_partitions().await?;
        }
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut caught_up = false;
        while records.len() < limits.max_records && bytes < limits.max_bytes {
            if self.all_done() {
                caught_up = true;
                break;
            }
            let wait = if records.is_empty() {
                Duration::from_millis(500)
            } else {
                Duration::from_millis(20)
            };
            let message = match tokio::time::timeout(wait, self.consumer.recv()).await {
                Err(_) => {
                    if self.options.once {
                        self.advance_to_positions();
                        if !self.all_done() && self.last_progress.elapsed() >= ONCE_STALL {
                            return Err(SourceError::Kafka {
                                brokers: self.options.brokers.clone(),
                                context: "--once".into(),
                                message: format!("no record for {} s before reaching the high watermarks of the start", ONCE_STALL.as_secs()),
                            });
                        }
                    }
                    caught_up = !self.options.once || self.all_done();
                    break;
                }
                Ok(Err(KafkaError::PartitionEOF(_))) => {
                    // The end of a partition: the consumer's position may be past offsets that are never
                    // delivered (transaction markers, aborted records), so take it as read up to there.
                    self.advance_to_positions();
                    continue;
                }
                Ok(Err(e)) => {
                    // librdkafka reconnects by itself; report, back off, and let the caller poll again.
                    tracing::warn!(source = %self.options.name, error = %e, "kafka consumer error; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
                Ok(Ok(m)) => m,
            };
            self.last_progress = Instant::now();
            let topic = message.topic().to_string();
            let (partition, offset) = (message.partition(), message.offset());
            let payload = message.payload().map(Bytes::copy_from_slice);
            drop(message);
            let decoding = match &payload {
                None => Decoding {
                    decoded: lakefold_api::Decoded::Skipped("tombstone"),
                    lsn: None,
                },
                Some(p) => self.decode(p).await?,
            };
            bytes += payload.as_ref().map_or(0, Bytes::len);
            if let Some(state) = self.partitions.get_mut(&(topic.clone(), partition)) {
                state.next = state.next.max(offset + 1);
            }
            records.push(SourceRecord {
                position: Position {
                    lsn: decoding.lsn,
                    stream: StreamPosition::Kafka {
                        topic,
                        partition,
                        offset,
                    },
                },
                raw: payload.unwrap_or_default(),
                decoded: decoding.decoded,
            });
        }
        Ok(ChangeBatch {
            records,
            checkpoint: Some(lakefold_api::Checkpoint::DebeziumKafka(self.checkpoint())),
            caught_up,
        })
    }

    async fn decode(&mut self, payload: &[u8]) -> Result<Decoding, SourceError> {
        let Some(registry) = self.registry.as_mut() else {
            return Ok(self.json.decode(payload));
        };
        let id = match confluent_schema_id(payload) {
            Ok(id) => id,
            Err(e) => return Ok(Decoding::failed(e)),
        };
        let schema: Arc<WriterSchema> = match registry.get(id).await {
            Ok(s) => s,
            Err(RegistryError::Permanent(message)) => return Ok(Decoding::failed(message)),
            Err(RegistryError::Unavailable(e)) => return Err(e),
        };
        Ok(decode_confluent_avro(payload, &schema))
    }

    /// Stops fetching while a commit is written (bounded memory: nothing piles up behind a slow commit).
    pub fn pause(&self) {
        if let Ok(assignment) = self.consumer.assignment() {
            if let Err(e) = self.consumer.pause(&assignment) {
                tracing::debug!(error = %e, "pausing partitions");
            }
        }
    }

    pub fn resume(&self) {
        if let Ok(assignment) = self.consumer.assignment() {
            if let Err(e) = self.consumer.resume(&assignment) {
                tracing::debug!(error = %e, "resuming partitions");
            }
        }
    }

    /// Commits `checkpoint` to the consumer group, for lag monitoring only (the tables hold the truth).
    /// `wait`: synchronously (at the end of a run, so the last commit is not lost at exit).
    pub fn commit_group_offsets(&self, checkpoint: &KafkaCheckpoint, wait: bool) {
        let mut tpl = TopicPartitionList::new();
        for (topic, parts) in &checkpoint.offsets {
            for (p, o) in parts {
                let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*o));
            }
        }
        if tpl.count() > 0 {
            let mode = if wait {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            if let Err(e) = self.consumer.commit(&tpl, mode) {
                tracing::debug!(source = %self.options.name, error = %e, "advisory consumer-group commit failed");
            }
        }
    }
}

#[async_trait::async_trait]
impl lakefold_api::Source for KafkaSource {
    async fn poll(&mut self, limits: BatchLimits) -> Result<ChangeBatch, SourceError> {
        KafkaSource::poll(self, limits).await
    }

    fn before_commit(&mut self) {
        self.pause();
    }

    fn after_commit(&mut self, checkpoint: Option<&Checkpoint>) {
        if let Some(Checkpoint::DebeziumKafka(cp)) = checkpoint {
            self.commit_group_offsets(cp, false);
        }
        self.resume();
    }

    /// High watermark minus the next offset to read, per partition (refreshed every [`LAG_REFRESH`]; a
    /// partition whose watermarks cannot be fetched within 2 s is left out).
    async fn lag(&mut self) -> Vec<Lag> {
        if let Some((at, lag)) = &self.lag {
            if at.elapsed() < LAG_REFRESH {
                return lag.clone();
            }
        }
        let mut out = Vec::new();
        for ((topic, partition), state) in &self.partitions {
            let (c, t, p) = (self.consumer.clone(), topic.clone(), *partition);
            let fetched = tokio::task::spawn_blocking(move || {
                c.fetch_watermarks(&t, p, Duration::from_secs(2))
            })
            .await;
            if let (Ok(Ok((_, high))), true) = (fetched, state.next >= 0) {
                out.push(Lag {
                    partition: Some(p),
                    value: (high - state.next).max(0) as f64,
                    unit: LagUnit::Messages,
                });
            }
        }
        self.lag = Some((Instant::now(), out.clone()));
        out
    }

    async fn finish(self: Box<Self>, checkpoint: Option<Checkpoint>) {
        if let Some(Checkpoint::DebeziumKafka(cp)) = checkpoint {
            let _ = tokio::task::spawn_blocking(move || self.commit_group_offsets(&cp, true)).await;
        }
    }
}

fn client_config(options: &KafkaOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set(
            "queued.max.messages.kbytes",
            options.queue_max_kbytes.to_string(),
        );
    for (k, v) in &options.properties {
        config.set(k, v);
    }
    config
}

/// Topic → partition ids, retrying with backoff while the brokers are unreachable.
async fn fetch_partitions(
    consumer: &Arc<Kafka>,
    options: &KafkaOptions,
) -> Result<BTreeMap<String, Vec<i32>>, SourceError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(500);
    loop {
        let c = consumer.clone();
        let result = tokio::task::spawn_blocking(move || c.fetch_metadata(None, METADATA_TIMEOUT))
            .await
            .map_err(|e| SourceError::Kafka {
                brokers: options.brokers.clone(),
                context: "metadata".into(),
                message: e.to_string(),
            })?;
        match result {
            Ok(metadata) => {
                let mut out = BTreeMap::new();
                for topic in &options.topics {
                    let found = metadata.topics().iter().find(|t| {
                        t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                    });
                    match found {
                        Some(t) => {
                            out.insert(
                                topic.clone(),
                                t.partitions().iter().map(|p| p.id()).collect(),
                            );
                        }
                        None => {
                            return Err(SourceError::TopicNotFound {
                                topic: topic.clone(),
                                brokers: options.brokers.clone(),
                            })
                        }
                    }
                }
                return Ok(out);
            }
            Err(e) => {
                if options
                    .connect_timeout
                    .is_some_and(|limit| started.elapsed() >= limit)
                {
                    return Err(kafka_error(
                        options,
                        "fetching metadata (brokers unreachable)",
                        e,
                    ));
                }
                tracing::warn!(source = %options.name, brokers = %options.brokers, error = %e, waited = ?started.elapsed(), retry_in = ?backoff, "kafka brokers unreachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn watermarks(
    consumer: &Arc<Kafka>,
    options: &KafkaOptions,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), SourceError> {
    let c = consumer.clone();
    let t = topic.to_string();
    let mut backoff = Duration::from_millis(500);
    for _ in 0..8 {
        let (c2, t2) = (c.clone(), t.clone());
        let result = tokio::task::spawn_blocking(move || {
            c2.fetch_watermarks(&t2, partition, Duration::from_secs(10))
        })
        .await
        .map_err(|e| SourceError::Kafka {
            brokers: options.brokers.clone(),
            context: "watermarks".into(),
            message: e.to_string(),
        })?;
        match result {
            Ok(w) => return Ok(w),
            Err(e) => {
                tracing::warn!(source = %options.name, %topic, partition, error = %e, "fetching watermarks; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    Err(SourceError::Kafka {
        brokers: options.brokers.clone(),
        context: format!("fetching watermarks of {topic}/{partition}"),
        message: "no answer after 8 attempts".into(),
    })
}
