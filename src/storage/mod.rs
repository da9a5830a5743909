//! Object-store plumbing shared by the sinks.

pub mod counting;
