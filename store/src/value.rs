//! `Value`: what a key holds, in 24 bytes.
//!
//! Strings are stored the way Redis encodes them, because memory is what a
//! snapshot copies:
//! - integers that print back to the same text as `Int` (no allocation);
//! - up to [`EMBED_MAX`] bytes inline (`Embed`, Redis's embstr idea);
//! - longer strings as one exact-size heap block (`Raw`).
//!
//! Collections live behind a `Box` so the common case (a string) keeps the
//! keyspace node at 48 bytes, one jemalloc size class.

use crate::types::{hash::Hash, list::List, set::Set, zset::ZSet};
use crate::util::{fmt_i64, parse_i64};

/// Longest string stored inline in the value itself.
pub const EMBED_MAX: usize = 22;

/// The value of a key.
pub enum Value {
    /// A string that is the decimal form of this integer.
    Int(i64),
    /// A short string stored inline.
    Embed {
        /// Number of bytes used in `buf`.
        len: u8,
        /// The bytes.
        buf: [u8; EMBED_MAX],
    },
    /// A string in its own heap block.
    Raw(Box<[u8]>),
    /// A list.
    List(Box<List>),
    /// A hash.
    Hash(Box<Hash>),
    /// A set.
    Set(Box<Set>),
    /// A sorted set.
    ZSet(Box<ZSet>),
}

const _: () = assert!(std::mem::size_of::<Value>() == 24);

/// A key's data type, as `TYPE` names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `string`
    String,
    /// `list`
    List,
    /// `hash`
    Hash,
    /// `set`
    Set,
    /// `zset`
    ZSet,
}

impl Kind {
    /// The name `TYPE` and `SCAN ... TYPE` use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }
}

impl Value {
    /// Stores a string with the most compact encoding (Redis's `tryObjectEncoding`).
    pub fn string(b: &[u8]) -> Value {
        if b.len() <= 20
            && let Some(i) = parse_i64(b)
        {
            return Value::Int(i);
        }
        Value::string_no_int(b)
    }

    /// Stores a string without trying the integer encoding.
    pub fn string_no_int(b: &[u8]) -> Value {
        if b.len() <= EMBED_MAX {
            let mut buf = [0u8; EMBED_MAX];
            buf[..b.len()].copy_from_slice(b);
            Value::Embed { len: b.len() as u8, buf }
        } else {
            Value::Raw(b.into())
        }
    }

    /// Stores an owned string, reusing its allocation when it is long.
    pub fn string_from_vec(v: Vec<u8>) -> Value {
        if v.len() <= EMBED_MAX { Value::string(&v) } else { Value::Raw(v.into_boxed_slice()) }
    }

    /// The key's data type.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Int(_) | Value::Embed { .. } | Value::Raw(_) => Kind::String,
            Value::List(_) => Kind::List,
            Value::Hash(_) => Kind::Hash,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
        }
    }

    /// The string's bytes, or `None` if the value is not a string.
    /// Integers are formatted into `scratch`.
    #[inline]
    pub fn as_str<'a>(&'a self, scratch: &'a mut [u8; 20]) -> Option<&'a [u8]> {
        match self {
            Value::Int(i) => Some(fmt_i64(*i, scratch)),
            Value::Embed { len, buf } => Some(&buf[..*len as usize]),
            Value::Raw(b) => Some(b),
            _ => None,
        }
    }

    /// The string's length in bytes, or `None` if the value is not a string.
    pub fn str_len(&self) -> Option<usize> {
        match self {
            Value::Int(i) => Some(fmt_i64(*i, &mut [0; 20]).len()),
            Value::Embed { len, .. } => Some(*len as usize),
            Value::Raw(b) => Some(b.len()),
            _ => None,
        }
    }

    /// The encoding `OBJECT ENCODING` reports, as Redis 7.0 names it.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Embed { .. } => "embstr",
            Value::Raw(b) if b.len() <= 44 => "embstr",
            Value::Raw(_) => "raw",
            Value::List(_) => "quicklist",
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
        }
    }

    /// A deep copy (for `COPY`).
    pub fn duplicate(&self) -> Value {
        match self {
            Value::Int(i) => Value::Int(*i),
            Value::Embed { len, buf } => Value::Embed { len: *len, buf: *buf },
            Value::Raw(b) => Value::Raw(b.clone()),
            Value::List(l) => Value::List(Box::new(l.duplicate())),
            Value::Hash(h) => Value::Hash(Box::new(h.duplicate())),
            Value::Set(s) => Value::Set(Box::new(s.duplicate())),
            Value::ZSet(z) => Value::ZSet(Box::new(z.duplicate())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_pick_compact_encodings() {
        let mut s = [0; 20];
        for (text, enc) in [
            (&b"12345"[..], "int"),
            (b"-9223372036854775808", "int"),
            (b"012", "embstr"),
            (b"hello", "embstr"),
            (&[b'x'; 30][..], "embstr"),
            (&[b'x'; 100][..], "raw"),
        ] {
            let v = Value::string(text);
            assert_eq!(v.encoding(), enc);
            assert_eq!(v.as_str(&mut s).unwrap(), text);
            assert_eq!(v.str_len(), Some(text.len()));
        }
    }
}
