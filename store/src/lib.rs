//! cowstore: a Redis-compatible in-memory store that persists the way Redis
//! does (fork()-based snapshots and an fsync-policy append-only file).
//!
//! Layout: `protocol` (RESP parsing and replies), `event_loop` (the single
//! thread that serves clients), `cmd` (the command table, one module per
//! family), `keyspace`/`dict`/`value`/`types` (the data), `expire`, `cron`,
//! `config`, `log`.

pub mod admission;
pub mod aof;
pub mod childinfo;
pub mod client;
pub mod client_limits;
pub mod cmd;
pub mod config;
pub mod cron;
pub mod dict;
pub mod durability;
pub mod event_loop;
pub mod expire;
pub mod fdlimit;
pub mod fork;
pub mod fsutil;
pub mod glob;
pub mod keyspace;
pub mod log;
pub mod markers;
pub mod memory;
pub mod protocol;
pub mod query_buffer;
pub mod rdb;
pub mod sbytes;
pub mod server;
pub mod snapshot;
pub mod types;
pub mod util;
pub mod value;

/// The Redis version cowstore speaks (INFO `redis_version`, HELLO): clients
/// pick features by it, and cowstore implements 7.0's behaviour.
pub const REDIS_VERSION: &str = "7.0.15";
