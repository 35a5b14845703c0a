//! Sorted sets: a sorted vector while small (`listpack`), a dict plus a
//! skiplist when large (`skiplist`).
//!
//! Both encodings order entries by (score, member bytes) and follow Redis
//! 7.0's algorithms closely enough that replies match even where Redis's
//! results depend on its data structure (lexicographic ranges over members
//! with different scores). The switch to `skiplist` happens when an insert
//! would make the set longer than `zset-max-listpack-entries` or the member
//! is longer than `zset-max-listpack-value`; like Redis, a set never goes
//! back to `listpack` by shrinking.
//!
//! A listpack stores a whole-number score as an integer, which turns `-0`
//! into `0`; `Pack` does the same so `ZSCORE` answers as Redis does.

use super::Limits;
use super::skiplist::{self, SkipList};
use crate::dict::Dict;
use crate::sbytes::SBytes;
use std::cmp::Ordering;

/// A set of members ordered by (score, member).
pub enum ZSet {
    /// Small: (member, score) sorted by score then member.
    Pack(Vec<(SBytes, f64)>),
    /// Large: member → score for lookups, and a skiplist for order and ranks.
    Skip(Box<Sorted>),
}

/// The `skiplist` encoding: both structures always hold the same entries.
pub struct Sorted {
    /// Member → score.
    pub dict: Dict<f64>,
    /// Entries in (score, member) order.
    pub list: SkipList,
}

/// ZADD's option flags.
#[derive(Clone, Copy, Default, Debug)]
pub struct AddFlags {
    /// Add the score to the current one (absent = 0).
    pub incr: bool,
    /// Only add new members.
    pub nx: bool,
    /// Only update existing members.
    pub xx: bool,
    /// Only update when the new score is greater.
    pub gt: bool,
    /// Only update when the new score is less.
    pub lt: bool,
}

/// ZADD's rules for a member already present with score `cur`: the score to
/// store, or the outcome when the member must stay as it is (NX, or GT/LT
/// against the new score) or INCR makes NaN.
fn existing_score(f: &AddFlags, cur: f64, score: f64) -> Result<f64, AddOutcome> {
    if f.nx {
        return Err(AddOutcome::Skipped);
    }
    let score = if f.incr { score + cur } else { score };
    if score.is_nan() {
        return Err(AddOutcome::NotANumber);
    }
    if (f.lt && score >= cur) || (f.gt && score <= cur) {
        return Err(AddOutcome::Skipped);
    }
    Ok(score)
}

/// What [`ZSet::add`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AddOutcome {
    /// Nothing, because of NX, XX, GT or LT.
    Skipped,
    /// The increment made the score NaN; nothing changed.
    NotANumber,
    /// The member was added, or its score was set (possibly to the same value).
    Done {
        /// The member was not in the set before.
        added: bool,
        /// An existing member's score changed.
        updated: bool,
        /// The resulting score.
        score: f64,
    },
}

/// C's `strtod` over `b` up to its first NUL byte: the value, the number of
/// bytes it consumed, and whether it set `ERANGE`.
pub fn strtod(b: &[u8]) -> (f64, usize, bool) {
    let mut stack = [0u8; 64];
    let heap;
    let buf: &[u8] = if b.len() < stack.len() {
        stack[..b.len()].copy_from_slice(b);
        &stack[..=b.len()]
    } else {
        heap = [b, &[0][..]].concat();
        &heap
    };
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `buf` is NUL-terminated and outlives the call; `end` receives a
    // pointer into it. errno is thread-local.
    unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtod(buf.as_ptr().cast(), &mut end);
        let erange = *libc::__errno_location() == libc::ERANGE;
        (v, end.cast_const().cast::<u8>().offset_from(buf.as_ptr()) as usize, erange)
    }
}

/// A score interval, as ZRANGEBYSCORE parses it.
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    /// Lower bound.
    pub min: f64,
    /// Upper bound.
    pub max: f64,
    /// The lower bound is exclusive.
    pub minex: bool,
    /// The upper bound is exclusive.
    pub maxex: bool,
}

impl ScoreRange {
    /// Parses `min max` as ZRANGEBYSCORE does (Redis's `zslParseRange`).
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        let (min, minex) = parse_score_bound(min)?;
        let (max, maxex) = parse_score_bound(max)?;
        Some(ScoreRange { min, max, minex, maxex })
    }

    /// True when `s` is not below the lower bound.
    #[inline]
    pub fn gte_min(&self, s: f64) -> bool {
        if self.minex { s > self.min } else { s >= self.min }
    }

    /// True when `s` is not above the upper bound.
    #[inline]
    pub fn lte_max(&self, s: f64) -> bool {
        if self.maxex { s < self.max } else { s <= self.max }
    }
}

/// One end of a score range: `[(]number`, with Redis's `zslParseRange` rules.
fn parse_score_bound(b: &[u8]) -> Option<(f64, bool)> {
    let (s, ex) = match b.first() {
        Some(b'(') => (&b[1..], true),
        _ => (b, false),
    };
    let (v, n, _) = strtod(s);
    // strtod stops at a NUL byte, and C then sees the end of the string.
    (s.get(n).is_none_or(|&c| c == 0) && !v.is_nan()).then_some((v, ex))
}

/// One end of a lexicographic range: `-`, `+`, `[value` or `(value`.
fn parse_lex_bound(b: &[u8]) -> Option<LexBound> {
    let alone = b.get(1).is_none_or(|&c| c == 0);
    match b.first() {
        Some(b'+') if alone => Some(LexBound::PosInf),
        Some(b'-') if alone => Some(LexBound::NegInf),
        Some(b'(') => Some(LexBound::Value(b[1..].to_vec(), true)),
        Some(b'[') => Some(LexBound::Value(b[1..].to_vec(), false)),
        _ => None,
    }
}

/// One end of a lexicographic range.
#[derive(Clone, Debug, PartialEq)]
pub enum LexBound {
    /// `-`: below every string.
    NegInf,
    /// `+`: above every string.
    PosInf,
    /// `[value` (inclusive) or `(value` (exclusive).
    Value(Vec<u8>, bool),
}

impl LexBound {
    fn exclusive(&self) -> bool {
        match self {
            LexBound::NegInf | LexBound::PosInf => true,
            LexBound::Value(_, ex) => *ex,
        }
    }

    /// Compares a member with this bound.
    fn cmp_member(&self, m: &[u8]) -> Ordering {
        match self {
            LexBound::NegInf => Ordering::Greater,
            LexBound::PosInf => Ordering::Less,
            LexBound::Value(v, _) => m.cmp(v),
        }
    }
}

/// A lexicographic interval, as ZRANGEBYLEX parses it.
#[derive(Clone, Debug)]
pub struct LexRange {
    /// Lower bound.
    pub min: LexBound,
    /// Upper bound.
    pub max: LexBound,
}

impl LexRange {
    /// Parses `min max` as ZRANGEBYLEX does (Redis's `zslParseLexRange`).
    pub fn parse(min: &[u8], max: &[u8]) -> Option<LexRange> {
        Some(LexRange { min: parse_lex_bound(min)?, max: parse_lex_bound(max)? })
    }

    /// True when `m` is not below the lower bound.
    #[inline]
    pub fn gte_min(&self, m: &[u8]) -> bool {
        let c = self.min.cmp_member(m);
        if self.min.exclusive() { c == Ordering::Greater } else { c != Ordering::Less }
    }

    /// True when `m` is not above the upper bound.
    #[inline]
    pub fn lte_max(&self, m: &[u8]) -> bool {
        let c = self.max.cmp_member(m);
        if self.max.exclusive() { c == Ordering::Less } else { c != Ordering::Greater }
    }

    /// True when no string can be in the range (min above max, or equal and
    /// either end exclusive).
    fn is_void(&self) -> bool {
        use LexBound::*;
        let c = match (&self.min, &self.max) {
            (NegInf, NegInf) | (PosInf, PosInf) => Ordering::Equal,
            (NegInf, _) | (_, PosInf) => Ordering::Less,
            (PosInf, _) | (_, NegInf) => Ordering::Greater,
            (Value(a, _), Value(b, _)) => a.cmp(b),
        };
        c == Ordering::Greater || (c == Ordering::Equal && (self.min.exclusive() || self.max.exclusive()))
    }
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

/// A listpack stores whole-number scores as integers, so `-0` comes back as `0`.
#[inline]
fn pack_score(s: f64) -> f64 {
    if s == 0.0 { 0.0 } else { s }
}

impl ZSet {
    /// An empty sorted set (listpack encoded).
    pub fn new() -> ZSet {
        ZSet::Pack(Vec::new())
    }

    /// The encoding `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Pack(_) => "listpack",
            ZSet::Skip(_) => "skiplist",
        }
    }

    /// A deep copy with the same encoding.
    pub fn duplicate(&self) -> ZSet {
        match self {
            ZSet::Pack(v) => ZSet::Pack(v.clone()),
            ZSet::Skip(z) => {
                let mut dict = Dict::new();
                for n in z.dict.iter() {
                    dict.insert_new(n.key.clone(), n.val);
                }
                ZSet::Skip(Box::new(Sorted { dict, list: z.list.clone() }))
            }
        }
    }

    /// Number of members.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            ZSet::Pack(v) => v.len(),
            ZSet::Skip(z) => z.list.len(),
        }
    }

    /// True when the set has no members.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (member, score) in ascending (score, member) order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// Entries in ascending order starting at 0-based rank `rank`.
    pub fn iter_from(&self, rank: usize) -> Iter<'_> {
        match self {
            ZSet::Pack(v) => Iter::Pack(v.get(rank..).unwrap_or(&[]).iter()),
            ZSet::Skip(z) => Iter::Skip(z.list.iter_from(rank)),
        }
    }

    /// Entries in descending order starting at 0-based rank `rank` (counted
    /// from the lowest) and going down.
    pub fn iter_rev_from(&self, rank: usize) -> Iter<'_> {
        match self {
            ZSet::Pack(v) => Iter::PackRev(v[..(rank + 1).min(v.len())].iter().rev()),
            ZSet::Skip(z) => Iter::Skip(z.list.iter_rev_from(rank)),
        }
    }

    /// Adds `member` with `score`, or sets the score of an existing member;
    /// true if it was new. Converts to `skiplist` as the limits require.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: &Limits) -> bool {
        matches!(self.add(member, score, AddFlags::default(), limits), AddOutcome::Done { added: true, .. })
    }

    /// ZADD for one member (Redis's `zsetAdd`): applies the flags and
    /// reports what happened. `score` must not be NaN.
    pub fn add(&mut self, member: &[u8], score: f64, f: AddFlags, limits: &Limits) -> AddOutcome {
        if let ZSet::Pack(v) = self {
            if let Some(pos) = v.iter().position(|e| e.0.as_bytes() == member) {
                let cur = v[pos].1;
                let score = match existing_score(&f, cur, score) {
                    Ok(s) => s,
                    Err(outcome) => return outcome,
                };
                let updated = score != cur;
                if updated {
                    let (m, _) = v.remove(pos);
                    pack_insert(v, m, score);
                }
                return AddOutcome::Done { added: false, updated, score };
            }
            if f.xx {
                return AddOutcome::Skipped;
            }
            if v.len() < limits.zset_entries && member.len() <= limits.zset_value {
                pack_insert(v, SBytes::new(member), score);
                return AddOutcome::Done { added: true, updated: false, score };
            }
            self.convert();
        }
        let ZSet::Skip(z) = self else { unreachable!("converted above") };
        if let Some(cur_ref) = z.dict.get_mut(member) {
            let cur = *cur_ref;
            let score = match existing_score(&f, cur, score) {
                Ok(s) => s,
                Err(outcome) => return outcome,
            };
            let updated = score != cur;
            if updated {
                *cur_ref = score;
                z.list.update_score(member, cur, score);
            }
            return AddOutcome::Done { added: false, updated, score };
        }
        if f.xx {
            return AddOutcome::Skipped;
        }
        z.dict.insert_new(SBytes::new(member), score);
        z.list.insert(SBytes::new(member), score);
        AddOutcome::Done { added: true, updated: false, score }
    }

    /// Converts a listpack to the skiplist encoding.
    fn convert(&mut self) {
        if let ZSet::Pack(v) = self {
            let mut dict = Dict::new();
            let mut list = SkipList::new();
            // Highest first, so each skiplist insert stops right after the header.
            for (m, s) in std::mem::take(v).into_iter().rev() {
                dict.insert_new(m.clone(), s);
                list.insert(m, s);
            }
            *self = ZSet::Skip(Box::new(Sorted { dict, list }));
        }
    }

    /// The member's score.
    #[inline]
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Pack(v) => v.iter().find(|e| e.0.as_bytes() == member).map(|e| e.1),
            ZSet::Skip(z) => z.dict.get(member).copied(),
        }
    }

    /// The member's 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match self {
            ZSet::Pack(v) => v.iter().position(|e| e.0.as_bytes() == member),
            ZSet::Skip(z) => z.dict.get(member).and_then(|&s| z.list.rank(member, s)),
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            ZSet::Pack(v) => match v.iter().position(|e| e.0.as_bytes() == member) {
                Some(pos) => {
                    v.remove(pos);
                    true
                }
                None => false,
            },
            ZSet::Skip(z) => match z.dict.remove(member) {
                Some((_, score)) => {
                    z.list.remove(member, score);
                    z.dict.shrink_if_needed();
                    true
                }
                None => false,
            },
        }
    }

    /// Removes and returns the lowest (`max` false) or highest entry.
    pub fn pop(&mut self, max: bool) -> Option<(SBytes, f64)> {
        if self.is_empty() {
            return None;
        }
        match self {
            ZSet::Pack(v) => Some(if max { v.pop()? } else { v.remove(0) }),
            ZSet::Skip(z) => {
                let rank = if max { z.list.len() - 1 } else { 0 };
                let mut out = None;
                z.list.remove_range(rank, rank + 1, |m, s| out = Some((m, s)));
                let (m, s) = out?;
                z.dict.remove(&m);
                z.dict.shrink_if_needed();
                Some((m, s))
            }
        }
    }

    /// Removes the entries with 0-based ranks in `start..end`; returns how many.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match self {
            ZSet::Pack(v) => v.drain(start..end).count(),
            ZSet::Skip(z) => {
                let Sorted { dict, list } = &mut **z;
                let n = list.remove_range(start, end, |m, _| {
                    dict.remove(&m);
                });
                dict.shrink_if_needed();
                n
            }
        }
    }

    /// The 0-based ranks `lo..hi` of the entries whose scores are in `r`.
    pub fn score_ranks(&self, r: &ScoreRange) -> (usize, usize) {
        let (lo, hi) = match self {
            ZSet::Pack(v) => (v.partition_point(|e| !r.gte_min(e.1)), v.partition_point(|e| r.lte_max(e.1))),
            ZSet::Skip(z) => {
                (z.list.partition_point(|_, s| !r.gte_min(s)), z.list.partition_point(|_, s| r.lte_max(s)))
            }
        };
        (lo, hi.max(lo))
    }

    /// The first and last entries' members, if any.
    fn ends(&self) -> Option<(&[u8], &[u8])> {
        match self {
            ZSet::Pack(v) => Some((v.first()?.0.as_bytes(), v.last()?.0.as_bytes())),
            ZSet::Skip(z) => Some((z.list.first()?.0, z.list.last()?.0)),
        }
    }

    /// Whether some part of the set can be in `r` (Redis's `zslIsInLexRange`).
    fn lex_overlaps(&self, r: &LexRange) -> bool {
        !r.is_void() && self.ends().is_some_and(|(first, last)| r.gte_min(last) && r.lte_max(first))
    }

    /// The 0-based rank of the first entry in the lexicographic range, found
    /// the way Redis does for this encoding (members are assumed to share
    /// one score; otherwise the answer is Redis's, not a mathematical one).
    pub fn lex_first(&self, r: &LexRange) -> Option<usize> {
        if !self.lex_overlaps(r) {
            return None;
        }
        let (rank, member) = match self {
            ZSet::Pack(v) => {
                let pos = v.iter().position(|e| r.gte_min(&e.0))?;
                (pos, v[pos].0.as_bytes())
            }
            ZSet::Skip(z) => {
                let pos = z.list.partition_point(|m, _| !r.gte_min(m));
                (pos, z.list.get(pos)?.0)
            }
        };
        r.lte_max(member).then_some(rank)
    }

    /// The 0-based rank of the last entry in the lexicographic range (see
    /// [`lex_first`](Self::lex_first)).
    pub fn lex_last(&self, r: &LexRange) -> Option<usize> {
        if !self.lex_overlaps(r) {
            return None;
        }
        let (rank, member) = match self {
            ZSet::Pack(v) => {
                let pos = v.iter().rposition(|e| r.lte_max(&e.0))?;
                (pos, v[pos].0.as_bytes())
            }
            ZSet::Skip(z) => {
                let pos = z.list.partition_point(|m, _| r.lte_max(m)).checked_sub(1)?;
                (pos, z.list.get(pos)?.0)
            }
        };
        r.gte_min(member).then_some(rank)
    }

    /// Removes the entries in a lexicographic range (ZREMRANGEBYLEX); returns how many.
    pub fn remove_lex(&mut self, r: &LexRange) -> usize {
        let start = match self {
            ZSet::Pack(_) => self.lex_first(r),
            // Redis's skiplist deletion skips the overlap test.
            ZSet::Skip(z) => Some(z.list.partition_point(|m, _| !r.gte_min(m))),
        };
        let Some(start) = start else { return 0 };
        let n = self.iter_from(start).take_while(|(m, _)| r.lte_max(m)).count();
        self.remove_ranks(start, start + n)
    }

    /// One ZSCAN step: calls `f` with the entries under `cursor` and returns
    /// the next cursor. A listpack is returned whole with cursor 0.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match self {
            ZSet::Pack(v) => {
                v.iter().for_each(|(m, s)| f(m, *s));
                0
            }
            ZSet::Skip(z) => z.dict.scan(cursor, |n| f(&n.key, n.val)),
        }
    }
}

/// Inserts into a listpack-encoded vector at the (score, member) position.
fn pack_insert(v: &mut Vec<(SBytes, f64)>, member: SBytes, score: f64) {
    let score = pack_score(score);
    let pos = v.partition_point(|e| skiplist::cmp_entries(e.1, &e.0, score, &member) == Ordering::Less);
    v.insert(pos, (member, score));
}

/// Iterator over a sorted set's (member, score) entries.
pub enum Iter<'a> {
    /// Over a listpack, ascending.
    Pack(std::slice::Iter<'a, (SBytes, f64)>),
    /// Over a listpack, descending.
    PackRev(std::iter::Rev<std::slice::Iter<'a, (SBytes, f64)>>),
    /// Over a skiplist.
    Skip(skiplist::Iter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match self {
            Iter::Pack(it) => it.next().map(|(m, s)| (m.as_bytes(), *s)),
            Iter::PackRev(it) => it.next().map(|(m, s)| (m.as_bytes(), *s)),
            Iter::Skip(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(entries: usize, value: usize) -> Limits {
        Limits { zset_entries: entries, zset_value: value, ..Limits::default() }
    }

    #[test]
    fn converts_at_thresholds_and_keeps_order() {
        let l = limits(4, 8);
        let mut z = ZSet::new();
        for (i, m) in ["d", "c", "b", "a"].iter().enumerate() {
            assert!(z.insert(m.as_bytes(), i as f64, &l));
        }
        assert_eq!(z.encoding(), "listpack");
        assert!(!z.insert(b"a", 10.0, &l));
        assert_eq!(z.encoding(), "listpack");
        assert!(z.insert(b"e", 1.5, &l));
        assert_eq!(z.encoding(), "skiplist");
        let order: Vec<(&[u8], f64)> = z.iter().collect();
        assert_eq!(order, [(&b"d"[..], 0.0), (b"c", 1.0), (b"e", 1.5), (b"b", 2.0), (b"a", 10.0)]);
        let mut long = ZSet::new();
        long.insert(b"123456789", 1.0, &l);
        assert_eq!(long.encoding(), "skiplist");
    }

    #[test]
    fn add_flags_follow_zsetadd() {
        let l = Limits::default();
        for mut z in [ZSet::new(), ZSet::Skip(Box::new(Sorted { dict: Dict::new(), list: SkipList::new() }))] {
            let f = AddFlags::default();
            assert_eq!(z.add(b"a", 1.0, f, &l), AddOutcome::Done { added: true, updated: false, score: 1.0 });
            let nx = AddFlags { nx: true, ..f };
            assert_eq!(z.add(b"a", 2.0, nx, &l), AddOutcome::Skipped);
            let gt = AddFlags { gt: true, ..f };
            assert_eq!(z.add(b"a", 0.5, gt, &l), AddOutcome::Skipped);
            assert_eq!(z.add(b"a", 3.0, gt, &l), AddOutcome::Done { added: false, updated: true, score: 3.0 });
            let incr = AddFlags { incr: true, ..f };
            assert_eq!(z.add(b"a", 1.0, incr, &l), AddOutcome::Done { added: false, updated: true, score: 4.0 });
            z.add(b"b", f64::INFINITY, f, &l);
            assert_eq!(z.add(b"b", f64::NEG_INFINITY, incr, &l), AddOutcome::NotANumber);
            let xx = AddFlags { xx: true, ..f };
            assert_eq!(z.add(b"c", 1.0, xx, &l), AddOutcome::Skipped);
            assert_eq!(z.rank(b"b"), Some(1));
            assert_eq!(z.score(b"a"), Some(4.0));
            assert!(z.remove(b"a") && !z.remove(b"a"));
            assert_eq!(z.pop(true).map(|e| e.1), Some(f64::INFINITY));
            assert!(z.pop(false).is_none());
        }
    }

    #[test]
    fn negative_zero_is_zero_in_a_listpack() {
        let l = Limits::default();
        let mut z = ZSet::new();
        z.insert(b"a", -0.0, &l);
        assert!(z.score(b"a").unwrap().is_sign_positive());
    }

    #[test]
    fn range_bounds_parse_like_redis() {
        assert_eq!(parse_score_bound(b"(1.5"), Some((1.5, true)));
        assert_eq!(parse_score_bound(b" 2"), Some((2.0, false)));
        assert_eq!(parse_score_bound(b""), Some((0.0, false)));
        assert_eq!(parse_score_bound(b"1\x00junk"), Some((1.0, false)));
        assert_eq!(parse_score_bound(b"1e999"), Some((f64::INFINITY, false)));
        assert_eq!(parse_score_bound(b"nan"), None);
        assert_eq!(parse_score_bound(b"1x"), None);
        assert_eq!(parse_lex_bound(b"+"), Some(LexBound::PosInf));
        assert_eq!(parse_lex_bound(b"-"), Some(LexBound::NegInf));
        assert_eq!(parse_lex_bound(b"(a"), Some(LexBound::Value(b"a".to_vec(), true)));
        assert_eq!(parse_lex_bound(b"["), Some(LexBound::Value(Vec::new(), false)));
        for bad in [&b""[..], b"a", b"+a", b"-1"] {
            assert_eq!(parse_lex_bound(bad), None);
        }
    }

    #[test]
    fn lex_ranges() {
        let l = limits(2, 64);
        for entries in [128, 2] {
            let l = Limits { zset_entries: entries, ..l };
            let mut z = ZSet::new();
            for m in ["a", "b", "c", "d", "e"] {
                z.insert(m.as_bytes(), 0.0, &l);
            }
            let r = LexRange { min: LexBound::Value(b"b".to_vec(), true), max: LexBound::Value(b"d".to_vec(), false) };
            assert_eq!((z.lex_first(&r), z.lex_last(&r)), (Some(2), Some(3)));
            let all = LexRange { min: LexBound::NegInf, max: LexBound::PosInf };
            assert_eq!((z.lex_first(&all), z.lex_last(&all)), (Some(0), Some(4)));
            let void = LexRange { min: LexBound::PosInf, max: LexBound::NegInf };
            assert_eq!(z.lex_first(&void), None);
            assert_eq!(z.remove_lex(&r), 2);
            assert_eq!(z.iter().map(|e| e.0.to_vec()).collect::<Vec<_>>(), [b"a", b"b", b"e"]);
        }
    }
}
