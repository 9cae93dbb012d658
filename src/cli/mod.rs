//! Command implementations. Each submodule owns its clap types and returns an exit code.

pub mod conn;
pub mod logging;
pub mod manager;
pub mod node;
pub mod operator;
pub mod quickstart;
pub mod tier2;
