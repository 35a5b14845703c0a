//! The RDB file format, version 10, as Redis 7.0 writes and reads it.
//!
//! A dump is `REDIS0010`, auxiliary fields (`0xFA key value`), then per
//! non-empty database `0xFE db` `0xFB size expires` and its keys, each as an
//! optional `0xFC <ms LE>` expiry, a type byte, the key and the value; then
//! `0xFF` and a CRC-64 (Jones polynomial, reflected, init 0) of everything
//! before it, little-endian.
//!
//! Lengths use Redis's variable encoding: `00xxxxxx` (6 bits), `01xxxxxx
//! xxxxxxxx` (14 bits), `0x80` + 4 bytes or `0x81` + 8 bytes **big-endian**;
//! `11xxxxxx` introduces a special string encoding: an 8/16/32-bit
//! **little-endian** integer, or LZF-compressed bytes.

pub mod load;
pub mod lzf;
pub mod packed;
pub mod save;

use crc::{CRC_64_REDIS, Crc, Table};

/// The version this writer emits.
pub const VERSION: u32 = 10;
/// The newest version the reader accepts (11 is Redis 7.2, a superset for our types).
pub const MAX_VERSION: u32 = 11;

/// CRC-64/REDIS, slice-by-16 (the `crc` crate's catalogued parameters
/// match Redis's `crc64.c`: check value 0xe9c6d914c4b8d9ca).
pub static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// Type and opcode bytes.
pub mod op {
    /// String.
    pub const STRING: u8 = 0;
    /// Linked list of strings (pre-3.2).
    pub const LIST: u8 = 1;
    /// Set as a list of members.
    pub const SET: u8 = 2;
    /// Sorted set with scores as text (pre-3.0).
    pub const ZSET: u8 = 3;
    /// Hash as field/value pairs.
    pub const HASH: u8 = 4;
    /// Sorted set with binary double scores.
    pub const ZSET_2: u8 = 5;
    /// Hash as a zipmap (pre-2.6).
    pub const HASH_ZIPMAP: u8 = 9;
    /// List as a ziplist (pre-3.2).
    pub const LIST_ZIPLIST: u8 = 10;
    /// Set as an intset.
    pub const SET_INTSET: u8 = 11;
    /// Sorted set as a ziplist (pre-7.0).
    pub const ZSET_ZIPLIST: u8 = 12;
    /// Hash as a ziplist (pre-7.0).
    pub const HASH_ZIPLIST: u8 = 13;
    /// List as a quicklist of ziplists (3.2–6.2).
    pub const LIST_QUICKLIST: u8 = 14;
    /// Hash as a listpack (7.0).
    pub const HASH_LISTPACK: u8 = 16;
    /// Sorted set as a listpack (7.0).
    pub const ZSET_LISTPACK: u8 = 17;
    /// List as a quicklist of listpacks (7.0).
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Set as a listpack (7.2).
    pub const SET_LISTPACK: u8 = 20;
    /// Function library (7.0).
    pub const FUNCTION2: u8 = 0xF5;
    /// Module auxiliary data.
    pub const MODULE_AUX: u8 = 0xF7;
    /// LRU idle time of the next key.
    pub const IDLE: u8 = 0xF8;
    /// LFU frequency of the next key.
    pub const FREQ: u8 = 0xF9;
    /// Auxiliary field.
    pub const AUX: u8 = 0xFA;
    /// Database size hints.
    pub const RESIZEDB: u8 = 0xFB;
    /// Expiry of the next key, milliseconds.
    pub const EXPIRETIME_MS: u8 = 0xFC;
    /// Expiry of the next key, seconds (old).
    pub const EXPIRETIME: u8 = 0xFD;
    /// Database selector.
    pub const SELECTDB: u8 = 0xFE;
    /// End of file.
    pub const EOF: u8 = 0xFF;
}

/// Special string encodings (after a `11xxxxxx` length byte).
pub mod enc {
    /// 8-bit integer.
    pub const INT8: u8 = 0;
    /// 16-bit integer.
    pub const INT16: u8 = 1;
    /// 32-bit integer.
    pub const INT32: u8 = 2;
    /// LZF-compressed string.
    pub const LZF: u8 = 3;
}

/// Quicklist node containers.
pub mod container {
    /// A single element stored as is.
    pub const PLAIN: u64 = 1;
    /// A listpack of elements.
    pub const PACKED: u64 = 2;
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc_matches_redis_check_value() {
        assert_eq!(super::CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
