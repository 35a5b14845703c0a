//! `Dict`: the chained hash table behind the keyspace and large collections.
//!
//! It follows Redis's `dict.c` design rather than a general-purpose map,
//! because the snapshot and the protocol need three things a `HashMap` does not
//! give:
//! - **Incremental rehash**: a resize moves one bucket per operation (and more
//!   from the server cron), so growing a table of millions of keys never stalls
//!   the event loop.
//! - **Fork-aware resizing**: while a snapshot child is alive, resizes are held
//!   back ([`set_resize_allowed`]) unless the table is badly overloaded, because
//!   moving every entry would make the kernel copy every page the child shares.
//! - **SCAN cursors**: [`Dict::scan`] uses the reverse-binary cursor, which
//!   visits every entry present for the whole scan at least once even when the
//!   table grows or shrinks between calls.
//!
//! Each entry is one heap node (`next` link, 16-byte key, value). Load factor is
//! kept at most 1, so the bucket array costs 8 to 16 bytes per entry.

use crate::sbytes::SBytes;
use std::hash::BuildHasher;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The per-process hash seed; random, so clients cannot precompute collisions.
static HASHER: LazyLock<foldhash::fast::FixedState> = LazyLock::new(|| {
    let seed = foldhash::fast::RandomState::default().hash_one(std::process::id());
    foldhash::fast::FixedState::with_seed(seed)
});

/// Whether tables may resize freely (false while a fork child shares memory).
static RESIZE_ALLOWED: AtomicBool = AtomicBool::new(true);

/// With resizing held back, a table still grows past this many entries per bucket.
const FORCE_RESIZE_RATIO: usize = 5;
/// Tables shrink when fewer than 1 in this many buckets are used.
const MIN_FILL_DIVISOR: usize = 10;
const INITIAL_SIZE: usize = 4;

/// Holds back (false) or allows (true) table resizes for every dict in the process.
pub fn set_resize_allowed(allowed: bool) {
    RESIZE_ALLOWED.store(allowed, Ordering::Relaxed);
}

/// Hashes a key with the process seed.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    HASHER.hash_one(key)
}

type Link<V> = Option<Box<Node<V>>>;

/// One entry: its key, its value and the next entry of the same bucket.
pub struct Node<V> {
    next: Link<V>,
    /// The entry's key.
    pub key: SBytes,
    /// The entry's value.
    pub val: V,
}

/// A chained hash table with incremental rehash and SCAN cursors.
pub struct Dict<V> {
    tables: [Vec<Link<V>>; 2],
    used: [usize; 2],
    /// Next bucket of `tables[0]` to move; `None` when not rehashing.
    rehash_idx: Option<usize>,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Dict::new()
    }
}

impl<V> Dict<V> {
    /// An empty dict; allocates nothing until the first insert.
    pub const fn new() -> Dict<V> {
        Dict { tables: [Vec::new(), Vec::new()], used: [0, 0], rehash_idx: None }
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.used[0] + self.used[1]
    }

    /// True when the dict holds no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of buckets (both tables while rehashing).
    pub fn buckets(&self) -> usize {
        self.tables[0].len() + self.tables[1].len()
    }

    /// True while a resize is being carried out incrementally.
    pub fn is_rehashing(&self) -> bool {
        self.rehash_idx.is_some()
    }

    /// Looks a key up.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_node(key).map(|n| &n.val)
    }

    /// Looks a key up, returning the stored key too.
    pub fn get_node(&self, key: &[u8]) -> Option<&Node<V>> {
        if self.is_empty() {
            return None;
        }
        let h = hash_key(key);
        for t in 0..self.ntables() {
            let table = &self.tables[t];
            let mut cur = table[h as usize & (table.len() - 1)].as_deref();
            while let Some(n) = cur {
                if n.key.as_bytes() == key {
                    return Some(n);
                }
                cur = n.next.as_deref();
            }
        }
        None
    }

    /// True when the key is present.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get_node(key).is_some()
    }

    /// Looks a key up for update; advances a pending rehash by one bucket.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        if self.is_empty() {
            return None;
        }
        self.rehash_step();
        let h = hash_key(key);
        let nt = self.ntables();
        let (t0, t1) = self.tables.split_at_mut(1);
        for table in t0.iter_mut().chain(t1.iter_mut()).take(nt) {
            let mask = table.len() - 1;
            let mut cur = table[h as usize & mask].as_deref_mut();
            while let Some(n) = cur {
                if n.key.as_bytes() == key {
                    return Some(&mut n.val);
                }
                cur = n.next.as_deref_mut();
            }
        }
        None
    }

    /// Inserts or replaces; returns the previous value when the key existed.
    pub fn insert(&mut self, key: &[u8], val: V) -> Option<V> {
        if let Some(slot) = self.get_mut(key) {
            return Some(std::mem::replace(slot, val));
        }
        self.insert_new(SBytes::new(key), val);
        None
    }

    /// Inserts a key the caller knows is absent.
    pub fn insert_new(&mut self, key: SBytes, val: V) {
        self.rehash_step();
        self.expand_if_needed();
        let h = hash_key(&key);
        let t = if self.is_rehashing() { 1 } else { 0 };
        let table = &mut self.tables[t];
        let idx = h as usize & (table.len() - 1);
        let next = table[idx].take();
        table[idx] = Some(Box::new(Node { next, key, val }));
        self.used[t] += 1;
    }

    /// Removes a key, returning its stored key and value.
    pub fn remove(&mut self, key: &[u8]) -> Option<(SBytes, V)> {
        if self.is_empty() {
            return None;
        }
        self.rehash_step();
        let h = hash_key(key);
        for t in 0..self.ntables() {
            let table = &mut self.tables[t];
            let idx = h as usize & (table.len() - 1);
            let mut link = &mut table[idx];
            while link.as_ref().is_some_and(|n| n.key.as_bytes() != key) {
                link = &mut link.as_mut().expect("checked above").next;
            }
            if let Some(mut node) = link.take() {
                *link = node.next.take();
                self.used[t] -= 1;
                let Node { key, val, .. } = *node;
                return Some((key, val));
            }
        }
        None
    }

    /// Removes every entry and frees the tables.
    pub fn clear(&mut self) {
        *self = Dict::new();
    }

    /// A random entry (uniform over buckets, then over the chain), or `None` if empty.
    pub fn random(&self, rng: &mut crate::util::Rng) -> Option<&Node<V>> {
        if self.is_empty() {
            return None;
        }
        let head = loop {
            let bucket = match self.rehash_idx {
                Some(start) => {
                    let (s0, s1) = (self.tables[0].len(), self.tables[1].len());
                    let h = start + rng.below((s0 + s1 - start) as u64) as usize;
                    if h >= s0 { &self.tables[1][h - s0] } else { &self.tables[0][h] }
                }
                None => &self.tables[0][rng.below(self.tables[0].len() as u64) as usize],
            };
            if let Some(n) = bucket.as_deref() {
                break n;
            }
        };
        let mut chain_len = 0;
        let mut cur = Some(head);
        while let Some(n) = cur {
            chain_len += 1;
            cur = n.next.as_deref();
        }
        let mut n = head;
        for _ in 0..rng.below(chain_len) {
            n = n.next.as_deref().expect("within chain");
        }
        Some(n)
    }

    /// Visits the entries of one cursor step and returns the next cursor
    /// (0 when the scan is complete). Entries present for the whole scan are
    /// visited at least once, even across resizes; some may be visited twice.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&Node<V>)) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let mut emit = |table: &Vec<Link<V>>, idx: u64| {
            let mut cur = table[idx as usize].as_deref();
            while let Some(n) = cur {
                visit(n);
                cur = n.next.as_deref();
            }
        };
        let mut v = cursor;
        if !self.is_rehashing() {
            let m0 = (self.tables[0].len() - 1) as u64;
            emit(&self.tables[0], v & m0);
            v |= !m0;
            v = v.reverse_bits().wrapping_add(1).reverse_bits();
        } else {
            let (small, big) = if self.tables[0].len() <= self.tables[1].len() {
                (&self.tables[0], &self.tables[1])
            } else {
                (&self.tables[1], &self.tables[0])
            };
            let (m0, m1) = ((small.len() - 1) as u64, (big.len() - 1) as u64);
            emit(small, v & m0);
            loop {
                emit(big, v & m1);
                v |= !m1;
                v = v.reverse_bits().wrapping_add(1).reverse_bits();
                if v & (m0 ^ m1) == 0 {
                    break;
                }
            }
        }
        v
    }

    /// Iterates every entry (no particular order).
    pub fn iter(&self) -> Iter<'_, V> {
        Iter { dict: self, table: 0, bucket: 0, node: None }
    }

    /// Moves buckets for up to `budget` (used by the cron); returns true if
    /// rehashing is still unfinished.
    pub fn rehash_for(&mut self, budget: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while self.is_rehashing() {
            for _ in 0..100 {
                self.rehash_step();
            }
            if start.elapsed() >= budget {
                break;
            }
        }
        self.is_rehashing()
    }

    /// Shrinks the table when under 10% full (held back while a child is alive).
    pub fn shrink_if_needed(&mut self) {
        let size = self.tables[0].len();
        if !self.is_rehashing()
            && size > INITIAL_SIZE
            && self.used[0] * MIN_FILL_DIVISOR < size
            && RESIZE_ALLOWED.load(Ordering::Relaxed)
        {
            self.resize_to(self.used[0].max(INITIAL_SIZE));
        }
    }

    fn ntables(&self) -> usize {
        if self.is_rehashing() { 2 } else { 1 }
    }

    fn expand_if_needed(&mut self) {
        if self.is_rehashing() {
            return;
        }
        let size = self.tables[0].len();
        if size == 0 {
            self.tables[0] = empty_table(INITIAL_SIZE);
            return;
        }
        let used = self.used[0];
        if used >= size && (RESIZE_ALLOWED.load(Ordering::Relaxed) || used / size > FORCE_RESIZE_RATIO) {
            self.resize_to(used + 1);
        }
    }

    /// Starts an incremental rehash into a table of at least `n` buckets.
    fn resize_to(&mut self, n: usize) {
        let size = n.next_power_of_two();
        if size == self.tables[0].len() {
            return;
        }
        self.tables[1] = empty_table(size);
        self.used[1] = 0;
        self.rehash_idx = Some(0);
    }

    /// Moves one non-empty bucket (visiting at most 10 empty ones) to the new table.
    fn rehash_step(&mut self) {
        let Some(mut idx) = self.rehash_idx else { return };
        let mut empty_visits = 10;
        let [old, new] = &mut self.tables;
        while idx < old.len() && old[idx].is_none() {
            idx += 1;
            empty_visits -= 1;
            if empty_visits == 0 {
                self.rehash_idx = Some(idx);
                return;
            }
        }
        if idx < old.len() {
            let mask = new.len() - 1;
            let mut chain = old[idx].take();
            while let Some(mut node) = chain {
                chain = node.next.take();
                let slot = &mut new[hash_key(&node.key) as usize & mask];
                node.next = slot.take();
                *slot = Some(node);
                self.used[0] -= 1;
                self.used[1] += 1;
            }
            idx += 1;
        }
        if self.used[0] == 0 {
            self.tables[0] = std::mem::take(&mut self.tables[1]);
            self.used = [self.used[1], 0];
            self.rehash_idx = None;
        } else {
            self.rehash_idx = Some(idx);
        }
    }
}

fn empty_table<V>(n: usize) -> Vec<Link<V>> {
    let mut v = Vec::with_capacity(n);
    v.resize_with(n, || None);
    v
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        // Unlink chains iteratively so a long chain cannot overflow the stack.
        for table in &mut self.tables {
            for slot in table.iter_mut() {
                let mut cur = slot.take();
                while let Some(mut n) = cur {
                    cur = n.next.take();
                }
            }
        }
    }
}

/// Iterator over a dict's entries.
pub struct Iter<'a, V> {
    dict: &'a Dict<V>,
    table: usize,
    bucket: usize,
    node: Option<&'a Node<V>>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = &'a Node<V>;

    fn next(&mut self) -> Option<&'a Node<V>> {
        loop {
            if let Some(n) = self.node {
                self.node = n.next.as_deref();
                return Some(n);
            }
            let table = self.dict.tables.get(self.table)?;
            if self.bucket >= table.len() {
                self.table += 1;
                self.bucket = 0;
                continue;
            }
            self.node = table[self.bucket].as_deref();
            self.bucket += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn insert_get_remove_through_rehash() {
        let mut d = Dict::new();
        for i in 0..10_000u32 {
            assert!(d.insert(format!("k{i}").as_bytes(), i).is_none());
        }
        assert_eq!(d.len(), 10_000);
        for i in 0..10_000u32 {
            assert_eq!(d.get(format!("k{i}").as_bytes()), Some(&i));
        }
        for i in (0..10_000u32).step_by(2) {
            assert_eq!(d.remove(format!("k{i}").as_bytes()).map(|(_, v)| v), Some(i));
        }
        assert_eq!(d.len(), 5_000);
        assert_eq!(d.iter().count(), 5_000);
        assert!(d.get(b"k0").is_none());
        assert_eq!(d.get(b"k1"), Some(&1));
    }

    #[test]
    fn scan_visits_everything_across_growth() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            d.insert(format!("a{i}").as_bytes(), ());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            cursor = d.scan(cursor, |n| {
                seen.insert(n.key.as_bytes().to_vec());
            });
            // Grow the table in the middle of the scan.
            if step == 3 {
                for i in 0..5000u32 {
                    d.insert(format!("b{i}").as_bytes(), ());
                }
            }
            step += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000u32 {
            assert!(seen.contains(format!("a{i}").as_bytes()), "a{i} missed");
        }
    }

    #[test]
    fn random_returns_members() {
        let mut d = Dict::new();
        let mut rng = crate::util::Rng::new(7);
        assert!(d.random(&mut rng).is_none());
        for i in 0..100u32 {
            d.insert(format!("k{i}").as_bytes(), i);
        }
        let mut seen = HashSet::new();
        for _ in 0..5000 {
            let n = d.random(&mut rng).expect("non-empty");
            assert_eq!(d.get(&n.key), Some(&n.val));
            seen.insert(n.val);
        }
        assert!(seen.len() > 90);
    }
}
