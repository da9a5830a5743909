//! Configuration: the TOML model (the reference for every key), loading with includes, and validation that
//! collects every error with its file, line and key before reporting.

mod error;
mod load;
mod model;
mod units;
mod validate;

pub use error::{ConfigError, ConfigErrors};
pub use load::{load, load_str};
pub use model::*;
pub use units::{ByteSize, DurationText};

#[cfg(test)]
mod tests;
