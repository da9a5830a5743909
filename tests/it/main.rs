//! Rust integration tests, one binary (one link step).

mod hudi_table;
