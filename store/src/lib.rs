//! cowstore: a Redis-compatible in-memory store that persists the way Redis
//! does (fork()-based snapshots and an fsync-policy append-only file).
//!
//! # Map
//!
//! Every module, in the order a request meets them. Start here, then read
//! the header of the module you change; `cmd`'s header says how to add a
//! command.
//!
//! **Protocol**: bytes in, bytes out.
//! - [`protocol`]: the request parser (RESP multibulk and inline) and the
//!   RESP2/RESP3 reply encoder.
//!
//! **Event loop**: one thread serves everyone.
//! - [`event_loop`]: accepts, reads, runs commands, writes the AOF before any
//!   reply of the pass, then writes replies (Redis's `ae` loop).
//! - [`client`]: one connection's session state and buffers.
//! - [`server`]: `Server`, what the loop and every command share.
//! - [`cron`]: the `hz` tick (active expiry, rehashing, idle timeouts, stats).
//! - [`expire`]: active expiry, sampling keys with a TTL.
//! - [`config`]: redis.conf files, `--name value` options, CONFIG's table.
//! - [`log`]: log lines in redis-server's format.
//!
//! **Commands**: what a request does.
//! - [`cmd`]: the command table, dispatch and propagation rules; one module
//!   per family (string, list, hash, set, zset, keys, server, ...).
//! - [`glob`]: Redis's glob matching (KEYS, SCAN MATCH, CONFIG GET).
//!
//! **Keyspace and types**: the data.
//! - [`keyspace`]: numbered databases, lazy expiry, change tracking (`dirty`,
//!   WATCH).
//! - [`dict`]: the incrementally rehashed hash table under the keyspace and
//!   large collections.
//! - [`value`]: what a key holds, with Redis's string encodings.
//! - [`types`]: hashes, lists, sets and sorted sets, each small and large.
//! - [`sbytes`]: the 16-byte inline-or-heap byte string for keys and members.
//! - [`memory`]: allocator and kernel memory figures for INFO.
//! - [`util`]: numbers parsed and printed with Redis's rules, time, an RNG.
//!
//! **Persistence**: getting it to disk, and measuring how well.
//! - [`rdb`]: the RDB v10 format (save, load, LZF, listpack/intset blobs).
//! - [`snapshot`]: SAVE, BGSAVE in a forked child, save points, loading the
//!   dump at startup.
//! - [`aof`]: the append-only file: appending, fsync policies, the multi-part
//!   manifest, loading, and BGREWRITEAOF.
//! - [`fork`]: starting, following and reaping fork children (fork safety
//!   is explained there).
//! - [`childinfo`]: the pipe on which a child reports progress and its
//!   copy-on-write cost.
//! - [`fsutil`]: durable file replacement (temp, fsync, rename, fsync dir).
//! - [`durability`]: exposure, the time from a write's reply until the fsync
//!   that covers it (INFO durability).
//! - [`markers`]: no-inline functions at those moments, for cowscope's
//!   uprobes.

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
