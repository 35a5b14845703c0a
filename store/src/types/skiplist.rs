//! `SkipList`: the ordered half of a large sorted set, after Redis's
//! `zskiplist`, without raw pointers.
//!
//! Entries are ordered by (score, member) and every link carries a *span*
//! (how many entries it jumps over), so rank lookups, rank ranges and "how
//! many entries come before X" are O(log n) like in Redis.
//!
//! Layout: a node is a block of `u32` words in one shared `Vec`, named by its
//! offset there: height, member slot, backward link, the score's two halves,
//! then a (forward, span) pair per level. Keeping the score next to the links
//! means a search touches one cache line per hop; the member (in a separate
//! `Vec<SBytes>`) is only read to break score ties. The header is the block
//! at offset 0, which is never a link target, so 0 doubles as "no node".
//! Freed blocks (per height) and member slots are reused, and the list is
//! rebuilt compactly once most of it has been deleted. An entry costs
//! 16 bytes of member slot plus 20 + 8·h bytes of block (h averages 1.33),
//! with no allocation of its own beyond a member longer than 12 bytes.
//!
//! Limits: blocks are addressed by `u32`, so a list holds at most about
//! 500 million entries (16 GiB of blocks).

use crate::sbytes::SBytes;
use std::cmp::Ordering;

/// Highest node level (as Redis's `ZSKIPLIST_MAXLEVEL`).
const MAX_LEVEL: usize = 32;
/// The header's block; also "no node" in forward and backward links.
const HEAD: u32 = 0;
const NIL: u32 = 0;
/// Block word offsets.
const HEIGHT: usize = 0;
const MEMBER: usize = 1;
const BACK: usize = 2;
const SCORE: usize = 3;
const LEVELS: usize = 5;
/// Lists with at least this many member slots are compacted when under a quarter full.
const COMPACT_MIN_SLOTS: usize = 64;

/// A skiplist of (member, score) entries ordered by score, then member bytes.
#[derive(Clone)]
pub struct SkipList {
    blocks: Vec<u32>,
    members: Vec<SBytes>,
    /// Member slots of deleted entries.
    free_members: Vec<u32>,
    /// Freed blocks by height, chained through their first forward word.
    free_blocks: [u32; MAX_LEVEL + 1],
    /// Number of levels in use (at least 1).
    level: usize,
    len: usize,
    tail: u32,
    rng: u64,
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList::new()
    }
}

/// True when (s1, m1) sorts before (s2, m2). Scores are never NaN; -0 and 0
/// compare equal, as in C.
#[inline]
fn before(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

impl SkipList {
    /// An empty list (the header only).
    pub fn new() -> SkipList {
        let mut blocks = vec![0; LEVELS + 2 * MAX_LEVEL];
        blocks[HEIGHT] = MAX_LEVEL as u32;
        SkipList {
            blocks,
            members: vec![SBytes::empty()],
            free_members: Vec::new(),
            free_blocks: [NIL; MAX_LEVEL + 1],
            level: 1,
            len: 0,
            tail: NIL,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the list has no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn fwd(&self, x: u32, lvl: usize) -> u32 {
        self.blocks[x as usize + LEVELS + 2 * lvl]
    }

    #[inline]
    fn span(&self, x: u32, lvl: usize) -> usize {
        self.blocks[x as usize + LEVELS + 1 + 2 * lvl] as usize
    }

    #[inline]
    fn set_fwd(&mut self, x: u32, lvl: usize, to: u32) {
        self.blocks[x as usize + LEVELS + 2 * lvl] = to;
    }

    #[inline]
    fn set_span(&mut self, x: u32, lvl: usize, span: usize) {
        self.blocks[x as usize + LEVELS + 1 + 2 * lvl] = span as u32;
    }

    #[inline]
    fn back(&self, x: u32) -> u32 {
        self.blocks[x as usize + BACK]
    }

    #[inline]
    fn set_back(&mut self, x: u32, to: u32) {
        self.blocks[x as usize + BACK] = to;
    }

    #[inline]
    fn score(&self, x: u32) -> f64 {
        let o = x as usize + SCORE;
        f64::from_bits(self.blocks[o] as u64 | (self.blocks[o + 1] as u64) << 32)
    }

    #[inline]
    fn set_score(&mut self, x: u32, s: f64) {
        let o = x as usize + SCORE;
        let bits = s.to_bits();
        self.blocks[o] = bits as u32;
        self.blocks[o + 1] = (bits >> 32) as u32;
    }

    #[inline]
    fn member(&self, x: u32) -> &[u8] {
        &self.members[self.blocks[x as usize + MEMBER] as usize]
    }

    #[inline]
    fn entry(&self, x: u32) -> (&[u8], f64) {
        (self.member(x), self.score(x))
    }

    /// True when node `x` sorts before (score, member); reads the member
    /// only on a score tie.
    #[inline]
    fn node_before(&self, x: u32, score: f64, member: &[u8]) -> bool {
        let s = self.score(x);
        s < score || (s == score && self.member(x) < member)
    }

    /// A level for a new node: 1 plus one more with probability 1/4 each time.
    fn random_level(&mut self) -> usize {
        // xorshift64*: levels only affect speed, and no client input steers them.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (1 + (r.trailing_zeros() as usize) / 2).min(MAX_LEVEL)
    }

    fn alloc_node(&mut self, member: SBytes, score: f64, height: usize) -> u32 {
        let x = match self.free_blocks[height] {
            NIL => {
                let off = self.blocks.len();
                self.blocks.resize(off + LEVELS + 2 * height, 0);
                u32::try_from(off).expect("sorted set too large")
            }
            off => {
                let o = off as usize;
                self.free_blocks[height] = self.blocks[o + LEVELS];
                self.blocks[o + LEVELS..o + LEVELS + 2 * height].fill(0);
                off
            }
        };
        let slot = match self.free_members.pop() {
            Some(i) => {
                self.members[i as usize] = member;
                i
            }
            None => {
                self.members.push(member);
                (self.members.len() - 1) as u32
            }
        };
        let o = x as usize;
        self.blocks[o + HEIGHT] = height as u32;
        self.blocks[o + MEMBER] = slot;
        self.blocks[o + BACK] = NIL;
        self.set_score(x, score);
        x
    }

    fn free_node(&mut self, x: u32) -> (SBytes, f64) {
        let o = x as usize;
        let slot = self.blocks[o + MEMBER];
        let member = std::mem::replace(&mut self.members[slot as usize], SBytes::empty());
        self.free_members.push(slot);
        let score = self.score(x);
        let height = self.blocks[o + HEIGHT] as usize;
        self.blocks[o + LEVELS] = self.free_blocks[height];
        self.free_blocks[height] = x;
        (member, score)
    }

    /// Inserts an entry the caller knows is absent.
    pub fn insert(&mut self, member: SBytes, score: f64) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let f = self.fwd(x, i);
                if f == NIL || !self.node_before(f, score, &member) {
                    break;
                }
                rank[i] += self.span(x, i);
                x = f;
            }
            update[i] = x;
        }
        let height = self.random_level();
        if height > self.level {
            for i in self.level..height {
                rank[i] = 0;
                update[i] = HEAD;
                self.set_span(HEAD, i, self.len);
            }
            self.level = height;
        }
        let x = self.alloc_node(member, score, height);
        for i in 0..height {
            let u = update[i];
            self.set_fwd(x, i, self.fwd(u, i));
            self.set_fwd(u, i, x);
            let skipped = rank[0] - rank[i];
            self.set_span(x, i, self.span(u, i) - skipped);
            self.set_span(u, i, skipped + 1);
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(height) {
            self.set_span(u, i, self.span(u, i) + 1);
        }
        self.set_back(x, update[0]);
        match self.fwd(x, 0) {
            NIL => self.tail = x,
            next => self.set_back(next, x),
        }
        self.len += 1;
    }

    /// The update path for (score, member): per level, the last node before it.
    fn path_to(&self, score: f64, member: &[u8]) -> [u32; MAX_LEVEL] {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || !self.node_before(f, score, member) {
                    break;
                }
                x = f;
            }
            update[i] = x;
        }
        update
    }

    /// Unlinks node `x` given its update path.
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &u) in update.iter().enumerate().take(self.level) {
            if self.fwd(u, i) == x {
                let span = self.span(u, i) + self.span(x, i) - 1;
                self.set_span(u, i, span);
                self.set_fwd(u, i, self.fwd(x, i));
            } else {
                self.set_span(u, i, self.span(u, i) - 1);
            }
        }
        let back = self.back(x);
        match self.fwd(x, 0) {
            NIL => self.tail = back,
            next => self.set_back(next, back),
        }
        while self.level > 1 && self.fwd(HEAD, self.level - 1) == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Removes the entry (score, member); returns its member, or `None` if absent.
    pub fn remove(&mut self, member: &[u8], score: f64) -> Option<SBytes> {
        let update = self.path_to(score, member);
        let x = self.fwd(update[0], 0);
        if x == NIL || self.score(x) != score || self.member(x) != member {
            return None;
        }
        self.unlink(x, &update);
        let (m, _) = self.free_node(x);
        self.maybe_compact();
        Some(m)
    }

    /// Changes the score of an existing entry (Redis's `zslUpdateScore`):
    /// in place when the order is unchanged, else by moving the node.
    pub fn update_score(&mut self, member: &[u8], cur: f64, new: f64) {
        let update = self.path_to(cur, member);
        let x = self.fwd(update[0], 0);
        debug_assert!(x != NIL && self.member(x) == member);
        if x == NIL {
            return;
        }
        let (back, next) = (self.back(x), self.fwd(x, 0));
        if (back == NIL || self.score(back) < new) && (next == NIL || self.score(next) > new) {
            self.set_score(x, new);
            return;
        }
        self.unlink(x, &update);
        let (m, _) = self.free_node(x);
        self.insert(m, new);
    }

    /// The 0-based rank of (score, member), if present.
    pub fn rank(&self, member: &[u8], score: f64) -> Option<usize> {
        let mut x = HEAD;
        let mut rank = 0;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL {
                    break;
                }
                let fs = self.score(f);
                if !(fs < score || (fs == score && self.member(f) <= member)) {
                    break;
                }
                rank += self.span(x, i);
                x = f;
            }
            if x != HEAD && self.member(x) == member {
                return Some(rank - 1);
            }
        }
        None
    }

    /// Walks down from the top level moving forward while `pred` holds for
    /// the next entry (Redis's range searches). For a predicate that is true
    /// on a prefix of the list this is the length of that prefix.
    pub fn partition_point(&self, mut pred: impl FnMut(&[u8], f64) -> bool) -> usize {
        let mut x = HEAD;
        let mut traversed = 0;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL {
                    break;
                }
                let (fm, fs) = self.entry(f);
                if !pred(fm, fs) {
                    break;
                }
                traversed += self.span(x, i);
                x = f;
            }
        }
        traversed
    }

    /// The node at 0-based `rank`, or NIL.
    fn node_at(&self, rank: usize) -> u32 {
        if rank >= self.len {
            return NIL;
        }
        if rank + 1 == self.len {
            return self.tail;
        }
        let target = rank + 1;
        let mut x = HEAD;
        let mut traversed = 0;
        for i in (0..self.level).rev() {
            loop {
                let f = self.fwd(x, i);
                if f == NIL || traversed + self.span(x, i) > target {
                    break;
                }
                traversed += self.span(x, i);
                x = f;
            }
            if traversed == target {
                return x;
            }
        }
        NIL
    }

    /// The entry at 0-based `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match self.node_at(rank) {
            NIL => None,
            x => Some(self.entry(x)),
        }
    }

    /// The first entry (lowest score).
    pub fn first(&self) -> Option<(&[u8], f64)> {
        match self.fwd(HEAD, 0) {
            NIL => None,
            x => Some(self.entry(x)),
        }
    }

    /// The last entry (highest score).
    pub fn last(&self) -> Option<(&[u8], f64)> {
        match self.tail {
            NIL => None,
            x => Some(self.entry(x)),
        }
    }

    /// Entries in ascending order from 0-based `rank`.
    pub fn iter_from(&self, rank: usize) -> Iter<'_> {
        let start = if rank == 0 { self.fwd(HEAD, 0) } else { self.node_at(rank) };
        Iter { list: self, cur: start, rev: false }
    }

    /// Entries in descending order from 0-based `rank` (counted from the lowest).
    pub fn iter_rev_from(&self, rank: usize) -> Iter<'_> {
        Iter { list: self, cur: self.node_at(rank), rev: true }
    }

    /// Every entry in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Removes the entries with 0-based ranks in `start..end`, handing each
    /// removed (member, score) to `f`; returns how many were removed.
    pub fn remove_range(&mut self, start: usize, end: usize, mut f: impl FnMut(SBytes, f64)) -> usize {
        let end = end.min(self.len);
        if start >= end {
            return 0;
        }
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        let mut traversed = 0;
        for i in (0..self.level).rev() {
            loop {
                let fw = self.fwd(x, i);
                if fw == NIL || traversed + self.span(x, i) > start {
                    break;
                }
                traversed += self.span(x, i);
                x = fw;
            }
            update[i] = x;
        }
        let mut x = self.fwd(x, 0);
        let mut removed = 0;
        while x != NIL && traversed < end {
            let next = self.fwd(x, 0);
            self.unlink(x, &update);
            let (m, s) = self.free_node(x);
            f(m, s);
            removed += 1;
            traversed += 1;
            x = next;
        }
        self.maybe_compact();
        removed
    }

    /// Rebuilds the list when most of its slots are free, so a list that
    /// shrank gives its memory back.
    fn maybe_compact(&mut self) {
        if self.members.len() < COMPACT_MIN_SLOTS || self.len * 4 >= self.members.len() {
            return;
        }
        let mut entries = Vec::with_capacity(self.len);
        let mut x = self.tail;
        while x != NIL {
            let slot = self.blocks[x as usize + MEMBER] as usize;
            entries.push((std::mem::replace(&mut self.members[slot], SBytes::empty()), self.score(x)));
            x = self.back(x);
        }
        let rng = self.rng;
        *self = SkipList::new();
        self.rng = rng;
        // Highest first: each insert then stops right after the header.
        for (m, s) in entries {
            self.insert(m, s);
        }
    }
}

/// Iterator over a skiplist's entries, ascending or descending.
pub struct Iter<'a> {
    list: &'a SkipList,
    cur: u32,
    rev: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        if self.cur == NIL {
            return None;
        }
        let x = self.cur;
        self.cur = if self.rev { self.list.back(x) } else { self.list.fwd(x, 0) };
        Some(self.list.entry(x))
    }
}

/// Compares (score, member) pairs in sorted-set order.
pub fn cmp_entries(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    if before(s1, m1, s2, m2) {
        Ordering::Less
    } else if before(s2, m2, s1, m1) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(l: &SkipList, model: &[(Vec<u8>, f64)]) {
        assert_eq!(l.len(), model.len());
        let got: Vec<(Vec<u8>, f64)> = l.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, model);
        let rev: Vec<(Vec<u8>, f64)> =
            l.iter_rev_from(model.len().saturating_sub(1)).map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(rev.len(), model.len());
        for (i, (m, s)) in model.iter().enumerate() {
            assert_eq!(l.rank(m, *s), Some(i));
            assert_eq!(l.get(i), Some((&m[..], *s)));
            assert_eq!(rev[model.len() - 1 - i], (m.clone(), *s));
        }
    }

    fn sort(model: &mut [(Vec<u8>, f64)]) {
        model.sort_by(|a, b| cmp_entries(a.1, &a.0, b.1, &b.0));
    }

    #[test]
    fn insert_remove_rank_and_compact() {
        let mut l = SkipList::new();
        let mut model = Vec::new();
        let mut seed = 12345u64;
        for i in 0..3000u32 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let score = ((seed >> 33) % 500) as f64;
            let m = format!("m{i}").into_bytes();
            l.insert(SBytes::new(&m), score);
            model.push((m, score));
        }
        sort(&mut model);
        check(&l, &model);
        // Update scores, in place and with moves.
        for i in (0..model.len()).step_by(7) {
            let (m, s) = model[i].clone();
            let new = if i % 2 == 0 { s + 0.0 } else { 1000.0 - s };
            l.update_score(&m, s, new);
            model[i].1 = new;
        }
        sort(&mut model);
        check(&l, &model);
        // Remove by rank ranges and by entry, enough to trigger compaction.
        let mut removed = Vec::new();
        assert_eq!(l.remove_range(10, 1010, |m, s| removed.push((m.to_vec(), s))), 1000);
        assert_eq!(removed, model.drain(10..1010).collect::<Vec<_>>());
        for _ in 0..1500 {
            let (m, s) = model.remove(model.len() / 2);
            assert!(l.remove(&m, s).is_some());
            assert!(l.remove(&m, s).is_none());
        }
        check(&l, &model);
        assert!(l.members.len() < 2000, "compacted: {}", l.members.len());
        assert_eq!(l.partition_point(|_, s| s < 250.0), model.iter().filter(|e| e.1 < 250.0).count());
        let slots = l.members.len();
        l.remove_range(0, 1, |_, _| {});
        l.insert(SBytes::new(b"again"), 1.0);
        assert_eq!(l.members.len(), slots, "freed slot reused");
        assert!(l.get(l.len()).is_none());
    }

    #[test]
    fn equal_scores_order_by_member() {
        let mut l = SkipList::new();
        for m in ["b", "a", "c", "ab"] {
            l.insert(SBytes::new(m.as_bytes()), 1.0);
        }
        l.insert(SBytes::new(b"z"), -0.0);
        let order: Vec<&[u8]> = l.iter().map(|(m, _)| m).collect();
        assert_eq!(order, [&b"z"[..], b"a", b"ab", b"b", b"c"]);
        assert_eq!(l.first().map(|e| e.0), Some(&b"z"[..]));
        assert_eq!(l.last().map(|e| e.0), Some(&b"c"[..]));
    }
}
