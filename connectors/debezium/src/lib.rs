//! Debezium change events: decoding of the JSON and Avro envelopes (sans-io: bytes in, a decoded record
//! out), the JSON-lines file source used for local runs, and the Kafka source.

mod avro;
mod borrowed;
mod connect;
mod decoder;
mod envelope;
mod file_source;
mod kafka;
mod registry;

pub use avro::{confluent_schema_id, decode_confluent_avro, WriterSchema};
pub use connect::{ConnectKind, ConnectSchema};
pub use decoder::JsonDecoder;
pub use envelope::{decode_json, Decoding};
pub use file_source::FileSource;
pub use kafka::{KafkaFormat, KafkaOptions, KafkaSource};
pub use registry::{RegistryError, SchemaRegistry};
