//! The collection types a key can hold, each with a compact small encoding and
//! a scalable large one, switching at Redis 7.0's thresholds (configurable).

pub mod hash;
pub mod list;
pub mod set;
pub mod skiplist;
pub mod zset;

use crate::config::Config;

/// Size limits below which collections keep their compact encoding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `hash-max-listpack-entries`
    pub hash_entries: usize,
    /// `hash-max-listpack-value`
    pub hash_value: usize,
    /// `set-max-intset-entries`
    pub set_intset_entries: usize,
    /// `zset-max-listpack-entries`
    pub zset_entries: usize,
    /// `zset-max-listpack-value`
    pub zset_value: usize,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn of(c: &Config) -> Limits {
        Limits {
            hash_entries: c.hash_max_listpack_entries,
            hash_value: c.hash_max_listpack_value,
            set_intset_entries: c.set_max_intset_entries,
            zset_entries: c.zset_max_listpack_entries,
            zset_value: c.zset_max_listpack_value,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::of(&Config::default())
    }
}
