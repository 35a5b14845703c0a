//! Hashes: a flat vector of pairs while small (`listpack`), a dict when large.
//!
//! A hash starts compact and becomes a [`Dict`] as soon as it holds more than
//! `hash-max-listpack-entries` fields or any field or value longer than
//! `hash-max-listpack-value` bytes. Like Redis, it never converts back.

use super::Limits;
use crate::dict::Dict;
use crate::sbytes::SBytes;

/// A field→value map.
pub enum Hash {
    /// Small: pairs in insertion order (Redis's listpack).
    Pack(Vec<(SBytes, SBytes)>),
    /// Large: a dict from field to value.
    Table(Dict<SBytes>),
}

impl Default for Hash {
    fn default() -> Hash {
        Hash::new()
    }
}

impl Hash {
    /// An empty hash in the compact encoding.
    pub fn new() -> Hash {
        Hash::Pack(Vec::new())
    }

    /// The encoding `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// A deep copy.
    pub fn duplicate(&self) -> Hash {
        match self {
            Hash::Pack(v) => Hash::Pack(v.clone()),
            Hash::Table(d) => {
                let mut n = Dict::new();
                for e in d.iter() {
                    n.insert_new(e.key.clone(), e.val.clone());
                }
                Hash::Table(n)
            }
        }
    }

    /// Number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(v) => v.len(),
            Hash::Table(d) => d.len(),
        }
    }

    /// True when the hash has no fields (Redis deletes such keys).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (field, value) pair: insertion order when compact, table order when large.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (pack, table) = match self {
            Hash::Pack(v) => (Some(v.iter()), None),
            Hash::Table(d) => (None, Some(d.iter())),
        };
        pack.into_iter()
            .flatten()
            .map(|(f, v)| (f.as_bytes(), v.as_bytes()))
            .chain(table.into_iter().flatten().map(|n| (n.key.as_bytes(), n.val.as_bytes())))
    }

    /// The value of `field`.
    #[inline]
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(v) => v.iter().find(|(f, _)| f.as_bytes() == field).map(|(_, v)| v.as_bytes()),
            Hash::Table(d) => d.get(field).map(SBytes::as_bytes),
        }
    }

    /// Sets `field` to `value`; true if the field is new. Converts to the
    /// table encoding first when either is longer than the limit, and after
    /// the insert when the hash has more entries than the limit (as Redis's
    /// `hashTypeSet` does).
    pub fn insert(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        if field.len() > limits.hash_value || value.len() > limits.hash_value {
            self.convert();
        }
        match self {
            Hash::Pack(v) => {
                if let Some((_, old)) = v.iter_mut().find(|(f, _)| f.as_bytes() == field) {
                    *old = SBytes::new(value);
                    return false;
                }
                v.push((SBytes::new(field), SBytes::new(value)));
                if v.len() > limits.hash_entries {
                    self.convert();
                }
                true
            }
            Hash::Table(d) => match d.get_mut(field) {
                Some(old) => {
                    *old = SBytes::new(value);
                    false
                }
                None => {
                    d.insert_new(SBytes::new(field), SBytes::new(value));
                    true
                }
            },
        }
    }

    /// Removes `field`; true if it was there. A large hash shrinks its table
    /// when it becomes sparse, as Redis's does after HDEL.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Pack(v) => match v.iter().position(|(f, _)| f.as_bytes() == field) {
                Some(i) => {
                    v.remove(i);
                    true
                }
                None => false,
            },
            Hash::Table(d) => {
                let removed = d.remove(field).is_some();
                if removed {
                    d.shrink_if_needed();
                }
                removed
            }
        }
    }

    /// The dict of the large encoding, if that is the encoding.
    pub fn table(&self) -> Option<&Dict<SBytes>> {
        match self {
            Hash::Pack(_) => None,
            Hash::Table(d) => Some(d),
        }
    }

    /// A uniformly chosen pair (the compact encoding) or a dict-random one
    /// (the large encoding), as Redis picks them; `None` when empty.
    pub fn random(&self, rng: &mut crate::util::Rng) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Pack(v) if v.is_empty() => None,
            Hash::Pack(v) => {
                let (f, v) = &v[rng.below(v.len() as u64) as usize];
                Some((f.as_bytes(), v.as_bytes()))
            }
            Hash::Table(d) => d.random(rng).map(|n| (n.key.as_bytes(), n.val.as_bytes())),
        }
    }

    /// Switches the compact encoding to a dict (no-op when already one).
    fn convert(&mut self) {
        if let Hash::Pack(v) = self {
            let mut d = Dict::new();
            for (f, val) in std::mem::take(v) {
                d.insert_new(f, val);
            }
            *self = Hash::Table(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_at_thresholds_and_never_back() {
        let lim = Limits { hash_entries: 3, hash_value: 8, ..Limits::default() };
        let mut h = Hash::new();
        for i in 0..3 {
            assert!(h.insert(format!("f{i}").as_bytes(), b"v", &lim));
        }
        assert_eq!(h.encoding(), "listpack");
        assert!(!h.insert(b"f0", b"w", &lim));
        assert_eq!(h.get(b"f0"), Some(&b"w"[..]));
        assert!(h.insert(b"f3", b"v", &lim));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 4);
        for i in 0..4 {
            assert!(h.remove(format!("f{i}").as_bytes()));
        }
        assert!(h.is_empty());
        assert_eq!(h.encoding(), "hashtable");

        let mut h = Hash::new();
        h.insert(b"a", b"12345678", &lim);
        assert_eq!(h.encoding(), "listpack");
        h.insert(b"a", b"123456789", &lim);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(&b"a"[..], &b"123456789"[..])]);
    }

    #[test]
    fn pack_keeps_insertion_order() {
        let lim = Limits::default();
        let mut h = Hash::new();
        for f in ["c", "a", "b"] {
            h.insert(f.as_bytes(), b"1", &lim);
        }
        h.remove(b"a");
        h.insert(b"a", b"2", &lim);
        let fields: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, [&b"c"[..], b"b", b"a"]);
    }
}
