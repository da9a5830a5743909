//! Rust integration tests, one binary (one link step).

mod hudi_bloom_golden;
mod hudi_table;
