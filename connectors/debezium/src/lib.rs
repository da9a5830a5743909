//! Debezium change events: decoding of the JSON envelope (sans-io: bytes in, a decoded record out) and the
//! JSON-lines file source used for local runs.

mod connect;
mod envelope;
mod file_source;

pub use connect::{ConnectKind, ConnectSchema};
pub use envelope::{decode_json, Decoding};
pub use file_source::FileSource;
