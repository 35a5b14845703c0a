//! Lists: a ring buffer of elements (Redis 7.0 reports every list as `quicklist`).
//!
//! A `VecDeque<SBytes>` gives O(1) push and pop at both ends and O(1) access by
//! index; each element costs 16 bytes plus, beyond 12 bytes, one exact-size
//! heap block. Insertions and removals in the middle move the shorter side, as
//! a quicklist's are O(n) too. The buffer gives memory back when a list
//! shrinks to a quarter of its capacity.

use crate::sbytes::SBytes;
use std::collections::VecDeque;

/// Capacity below which a list never bothers to shrink its buffer.
const SHRINK_MIN_CAPACITY: usize = 64;

/// A list of byte strings.
#[derive(Default)]
pub struct List {
    items: VecDeque<SBytes>,
}

impl List {
    /// An empty list.
    pub fn new() -> List {
        List::default()
    }

    /// A deep copy.
    pub fn duplicate(&self) -> List {
        List { items: self.items.clone() }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the list has no elements (Redis deletes such keys).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The elements from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(SBytes::as_bytes)
    }

    /// The elements at indexes `start..=end` (which must be in range), head to tail.
    pub fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.range(start..=end).map(SBytes::as_bytes)
    }

    /// Appends an element at the tail.
    #[inline]
    pub fn push_back(&mut self, v: &[u8]) {
        self.items.push_back(SBytes::new(v));
    }

    /// Prepends an element at the head.
    #[inline]
    pub fn push_front(&mut self, v: &[u8]) {
        self.items.push_front(SBytes::new(v));
    }

    /// Adds an element at the head (`front`) or the tail.
    #[inline]
    pub fn push(&mut self, v: &[u8], front: bool) {
        if front { self.push_front(v) } else { self.push_back(v) }
    }

    /// Removes and returns the head (`front`) or tail element.
    #[inline]
    pub fn pop(&mut self, front: bool) -> Option<SBytes> {
        let v = if front { self.items.pop_front() } else { self.items.pop_back() };
        self.shrink_if_sparse();
        v
    }

    /// Adds an already-built element at the head (`front`) or the tail.
    pub fn push_owned(&mut self, v: SBytes, front: bool) {
        if front { self.items.push_front(v) } else { self.items.push_back(v) }
    }

    /// The element at `index` (0 = head).
    #[inline]
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.items.get(index).map(SBytes::as_bytes)
    }

    /// Resolves a Redis index (negative counts from the tail) to a position.
    pub fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let i = if index < 0 { len.checked_add(index)? } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// Replaces the element at `index`; false when out of range.
    pub fn set(&mut self, index: usize, v: &[u8]) -> bool {
        match self.items.get_mut(index) {
            Some(slot) => {
                *slot = SBytes::new(v);
                true
            }
            None => false,
        }
    }

    /// Inserts an element so it ends up at `index` (`index` <= len).
    pub fn insert(&mut self, index: usize, v: &[u8]) {
        self.items.insert(index, SBytes::new(v));
    }

    /// Position of the first element equal to `v`, from the head.
    pub fn position(&self, v: &[u8]) -> Option<usize> {
        self.items.iter().position(|e| e.as_bytes() == v)
    }

    /// Removes up to `limit` elements equal to `v` (0 = all), scanning from
    /// the head, or from the tail when `from_tail`. Returns how many went.
    pub fn remove_matching(&mut self, v: &[u8], limit: usize, from_tail: bool) -> usize {
        let limit = if limit == 0 { usize::MAX } else { limit };
        // The removed elements are the first `limit` matches in scan order;
        // find the boundary index, then drop matches on the scanned side of it.
        let mut seen = 0;
        let mut boundary = None;
        let mut check = |(i, e): (usize, &SBytes)| {
            if e.as_bytes() == v {
                seen += 1;
                if seen == limit {
                    boundary = Some(i);
                    return true;
                }
            }
            false
        };
        if from_tail {
            let _ = self.items.iter().enumerate().rev().any(&mut check);
        } else {
            let _ = self.items.iter().enumerate().any(&mut check);
        }
        if seen == 0 {
            return 0;
        }
        let removed = seen;
        let mut i = 0;
        self.items.retain(|e| {
            let in_scope = match boundary {
                None => true,
                Some(b) if from_tail => i >= b,
                Some(b) => i <= b,
            };
            i += 1;
            !(in_scope && e.as_bytes() == v)
        });
        self.shrink_if_sparse();
        removed
    }

    /// Keeps only the elements at `start..=end` (in range), or none when `None`.
    pub fn retain_range(&mut self, range: Option<(usize, usize)>) {
        match range {
            None => self.items.clear(),
            Some((start, end)) => {
                self.items.truncate(end + 1);
                self.items.drain(..start);
            }
        }
        self.shrink_if_sparse();
    }

    /// Gives memory back once the list uses under a quarter of its buffer.
    #[inline]
    fn shrink_if_sparse(&mut self) {
        let cap = self.items.capacity();
        if cap > SHRINK_MIN_CAPACITY && self.items.len() < cap / 4 {
            self.items.shrink_to(self.items.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> List {
        let mut l = List::new();
        for i in items {
            l.push_back(i.as_bytes());
        }
        l
    }

    fn contents(l: &List) -> Vec<String> {
        l.iter().map(|e| String::from_utf8_lossy(e).into_owned()).collect()
    }

    #[test]
    fn remove_matching_respects_direction_and_limit() {
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert_eq!(l.remove_matching(b"a", 2, true), 2);
        assert_eq!(contents(&l), ["a", "b", "c"]);
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert_eq!(l.remove_matching(b"a", 2, false), 2);
        assert_eq!(contents(&l), ["b", "c", "a"]);
        let mut l = list(&["a", "b", "a"]);
        assert_eq!(l.remove_matching(b"a", 0, false), 2);
        assert_eq!(contents(&l), ["b"]);
        assert_eq!(l.remove_matching(b"zz", 0, true), 0);
    }

    #[test]
    fn resolve_and_trim() {
        let mut l = list(&["a", "b", "c", "d"]);
        assert_eq!(l.resolve(-1), Some(3));
        assert_eq!(l.resolve(-5), None);
        assert_eq!(l.resolve(4), None);
        assert_eq!(l.resolve(i64::MIN), None);
        l.retain_range(Some((1, 2)));
        assert_eq!(contents(&l), ["b", "c"]);
        l.retain_range(None);
        assert!(l.is_empty());
    }

    #[test]
    fn shrinks_after_mass_pop() {
        let mut l = List::new();
        for i in 0..10_000 {
            l.push_back(format!("{i}").as_bytes());
        }
        while l.len() > 10 {
            l.pop(true);
        }
        assert!(l.items.capacity() < 1000);
        assert_eq!(l.get(0), Some(&b"9990"[..]));
    }
}
