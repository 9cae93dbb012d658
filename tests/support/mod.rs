//! Shared support code for the integration tests.
//!
//! Use it from a test crate (a file directly under `tests/`) with `mod support;`.
//!
//! - [`cluster`]: the real-cluster harness (Patroni ×N + etcd + PostgreSQL 15, RabbitMQ ×N)
//!   on free loopback ports, driven by the scripts in `tests/lab/`.
pub mod cluster;
