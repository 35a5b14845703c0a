//! Sets: a sorted integer vector while small and all-integer (`intset`), a dict otherwise.
//!
//! The switch follows Redis 7.0 exactly (there are no listpack sets in 7.0):
//! a set stays an intset while every member is an integer in Redis's
//! canonical form (`string2ll`: no `+`, no leading zeros, no `-0`) and it has
//! at most `set-max-intset-entries` members; the first other member converts
//! it to a hashtable for good.

use super::Limits;
use crate::dict::Dict;
use crate::sbytes::SBytes;
use crate::util::{Rng, fmt_i64, parse_i64};

/// Redis caps intsets at 2^30 entries whatever the configuration says.
const INTSET_HARD_MAX: usize = 1 << 30;
/// Random picks in a hashtable treat a SCAN step (about one bucket) as
/// holding at most this many entries per entry of average load. Longer
/// chains are rare (at a load of 1, 0.4% of members sit in one), and
/// their members are picked at `FAIR_CHAIN`/length of the normal rate.
const FAIR_CHAIN: u64 = 5;

/// A set of byte strings.
pub enum Set {
    /// Small, all members integers: sorted (Redis's intset).
    Ints(Vec<i64>),
    /// General: a dict with no values.
    Table(Dict<()>),
}

/// One member as the set stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Member<'a> {
    /// A member of an intset.
    Int(i64),
    /// A member of a hashtable set.
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member's bytes (integers are formatted into `scratch`).
    #[inline]
    pub fn bytes<'b>(&'b self, scratch: &'b mut [u8; 20]) -> &'b [u8] {
        match self {
            Member::Int(i) => fmt_i64(*i, scratch),
            Member::Bytes(b) => b,
        }
    }

    /// An owned copy of the member's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes(&mut [0; 20]).to_vec()
    }
}

impl Default for Set {
    fn default() -> Self {
        Set::new()
    }
}

impl Set {
    /// An empty set (an empty intset; the first non-integer member converts it).
    pub fn new() -> Set {
        Set::Ints(Vec::new())
    }

    /// The encoding `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }

    /// A deep copy with the same encoding.
    pub fn duplicate(&self) -> Set {
        match self {
            Set::Ints(v) => Set::Ints(v.clone()),
            Set::Table(d) => {
                let mut n = Dict::new();
                for e in d.iter() {
                    n.insert_new(e.key.clone(), ());
                }
                Set::Table(n)
            }
        }
    }

    /// Number of members.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Set::Ints(v) => v.len(),
            Set::Table(d) => d.len(),
        }
    }

    /// True when the set has no members.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members, sorted, when the set is an intset (for the RDB writer).
    pub fn as_intset(&self) -> Option<&[i64]> {
        match self {
            Set::Ints(v) => Some(v),
            Set::Table(_) => None,
        }
    }

    /// Calls `f` with every member's bytes (intset members formatted as decimal).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        let mut scratch = [0u8; 20];
        match self {
            Set::Ints(v) => v.iter().for_each(|&i| f(fmt_i64(i, &mut scratch))),
            Set::Table(d) => d.iter().for_each(|n| f(&n.key)),
        }
    }

    /// Every member, in the set's own order (ascending for an intset).
    pub fn iter(&self) -> Iter<'_> {
        match self {
            Set::Ints(v) => Iter::Ints(v.iter()),
            Set::Table(d) => Iter::Table(d.iter()),
        }
    }

    /// True when `member` is in the set.
    #[inline]
    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => parse_i64(member).is_some_and(|i| v.binary_search(&i).is_ok()),
            Set::Table(d) => d.contains_key(member),
        }
    }

    /// True when the member `m` (as another set stores it) is in this set.
    #[inline]
    pub fn contains_member(&self, m: Member) -> bool {
        match (self, m) {
            (Set::Ints(v), Member::Int(i)) => v.binary_search(&i).is_ok(),
            (Set::Table(d), Member::Int(i)) => d.contains_key(fmt_i64(i, &mut [0; 20])),
            (_, Member::Bytes(b)) => self.contains(b),
        }
    }

    /// Adds `member`; true if it was not there. Converts an intset to a
    /// hashtable when the member is not an integer or the set outgrows
    /// `set-max-intset-entries`.
    pub fn insert(&mut self, member: &[u8], limits: &Limits) -> bool {
        match self {
            Set::Ints(v) => match parse_i64(member) {
                Some(i) => match v.binary_search(&i) {
                    Ok(_) => false,
                    Err(pos) => {
                        v.insert(pos, i);
                        if v.len() > limits.set_intset_entries.min(INTSET_HARD_MAX) {
                            self.convert();
                        }
                        true
                    }
                },
                None => {
                    self.convert();
                    let Set::Table(d) = self else { unreachable!("just converted") };
                    d.insert_new(SBytes::new(member), ());
                    true
                }
            },
            Set::Table(d) => {
                if d.contains_key(member) {
                    return false;
                }
                d.insert_new(SBytes::new(member), ());
                true
            }
        }
    }

    /// Adds a member given as another set stores it; true if it was new.
    pub fn insert_member(&mut self, m: Member, limits: &Limits) -> bool {
        match (&mut *self, m) {
            (Set::Ints(v), Member::Int(i)) => match v.binary_search(&i) {
                Ok(_) => false,
                Err(pos) => {
                    v.insert(pos, i);
                    if v.len() > limits.set_intset_entries.min(INTSET_HARD_MAX) {
                        self.convert();
                    }
                    true
                }
            },
            (_, m) => self.insert(m.bytes(&mut [0; 20]), limits),
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match parse_i64(member).map(|i| v.binary_search(&i)) {
                Some(Ok(pos)) => {
                    v.remove(pos);
                    true
                }
                _ => false,
            },
            Set::Table(d) => {
                let removed = d.remove(member).is_some();
                if removed {
                    tidy(d);
                }
                removed
            }
        }
    }

    /// Removes a member given as another set stores it; true if it was there.
    pub fn remove_member(&mut self, m: Member) -> bool {
        match (&mut *self, m) {
            (Set::Ints(v), Member::Int(i)) => match v.binary_search(&i) {
                Ok(pos) => {
                    v.remove(pos);
                    true
                }
                Err(_) => false,
            },
            (_, m) => self.remove(m.bytes(&mut [0; 20])),
        }
    }

    /// Calls `f` with a random member and returns its result, or `None`
    /// when the set is empty. Every member is equally likely (but see
    /// [`FAIR_CHAIN`]).
    ///
    /// An intset picks an index. A hashtable cannot just pick a random
    /// bucket and then a random entry of its chain (members alone in their
    /// bucket would come up more often), so it samples by rejection: a random
    /// SCAN step (one bucket's worth of the hash space) is accepted with
    /// probability `entries / bound`, then one of its entries is taken
    /// uniformly. Each member's chance per try is then the same.
    /// Expected tries: `FAIR_CHAIN` / load factor (removals keep that above
    /// 0.1, see [`tidy`]).
    pub fn random_with<R>(&self, rng: &mut Rng, f: impl FnOnce(Member) -> R) -> Option<R> {
        match self {
            Set::Ints(v) if v.is_empty() => None,
            Set::Ints(v) => Some(f(Member::Int(v[rng.below(v.len() as u64) as usize]))),
            Set::Table(d) if d.is_empty() => None,
            Set::Table(d) => {
                // Cursors below the smaller table's size each cover one equal
                // slice of the hash space, also while the dict is rehashing
                // (then it has two power-of-two tables; the lowest set bit of
                // the bucket count is the smaller one's size).
                let slices = 1u64 << d.buckets().trailing_zeros();
                // Above one entry per slice (a growing dict mid-rehash, or one
                // held back during a fork) slices hold proportionally more.
                let chain = FAIR_CHAIN * (d.len() as u64).div_ceil(slices);
                let (cursor, mut k) = loop {
                    let cursor = rng.below(slices);
                    let mut n = 0u64;
                    d.scan(cursor, |_| n += 1);
                    // A longer slice than `chain` is accepted outright.
                    let k = rng.below(n.max(chain));
                    if k < n {
                        break (cursor, k);
                    }
                };
                let mut f = Some(f);
                let mut out = None;
                d.scan(cursor, |node| {
                    if k == 0
                        && let Some(f) = f.take()
                    {
                        out = Some(f(Member::Bytes(&node.key)));
                    }
                    k = k.wrapping_sub(1);
                });
                out
            }
        }
    }

    /// Removes and returns a random member's bytes, or `None` when empty.
    pub fn pop_random(&mut self, rng: &mut Rng) -> Option<Vec<u8>> {
        match self {
            Set::Ints(v) if v.is_empty() => None,
            Set::Ints(v) => {
                let i = v.remove(rng.below(v.len() as u64) as usize);
                Some(fmt_i64(i, &mut [0; 20]).to_vec())
            }
            Set::Table(_) => {
                let key = self.random_with(rng, |m| m.to_vec())?;
                let Set::Table(d) = self else { unreachable!("matched above") };
                d.remove(&key);
                tidy(d);
                Some(key)
            }
        }
    }

    /// One SSCAN step: calls `f` for the members under `cursor` and returns
    /// the next cursor. An intset is returned whole with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8])) -> u64 {
        match self {
            Set::Ints(_) => {
                self.for_each(f);
                0
            }
            Set::Table(d) => d.scan(cursor, |n| f(&n.key)),
        }
    }

    /// Converts an intset to a hashtable.
    fn convert(&mut self) {
        if let Set::Ints(v) = self {
            let mut d = Dict::new();
            let mut s = [0u8; 20];
            for &i in v.iter() {
                d.insert_new(SBytes::new(fmt_i64(i, &mut s)), ());
            }
            *self = Set::Table(d);
        }
    }
}

/// After a removal: shrinks the dict when it is mostly empty, and finishes
/// a shrink quickly (one call moves up to 100 buckets). While the old table
/// lingers, the new one fills up less and less as members go, and random
/// picks need more tries; the total work of the rehash is the same either way.
fn tidy(d: &mut Dict<()>) {
    d.shrink_if_needed();
    if d.is_rehashing() {
        d.rehash_for(std::time::Duration::ZERO);
    }
}

/// Iterator over a set's members.
pub enum Iter<'a> {
    /// Over an intset.
    Ints(std::slice::Iter<'a, i64>),
    /// Over a hashtable.
    Table(crate::dict::Iter<'a, ()>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;

    #[inline]
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            Iter::Ints(it) => it.next().map(|&i| Member::Int(i)),
            Iter::Table(it) => it.next().map(|n| Member::Bytes(n.key.as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws `draws` random members from a hashtable set of `n`; returns the
    /// chi-square statistic and the smallest and largest count.
    fn histogram(n: usize, draws: usize) -> (f64, usize, usize) {
        let mut s = Set::new();
        for i in 0..n {
            s.insert(format!("m{i}").as_bytes(), &limits(0));
        }
        let mut rng = Rng::new(7);
        let mut hist = std::collections::HashMap::new();
        for _ in 0..draws {
            *hist.entry(s.random_with(&mut rng, |m| m.to_vec()).unwrap()).or_insert(0usize) += 1;
        }
        assert_eq!(hist.len(), n);
        let expected = draws as f64 / n as f64;
        let chi2 = hist.values().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        (chi2, *hist.values().min().unwrap(), *hist.values().max().unwrap())
    }

    #[test]
    fn random_members_of_a_hashtable_are_fair() {
        // Redis's own test: 10 members, 1000 draws, chi-square (df 9) < 40.
        assert!(histogram(10, 1000).0 < 40.0);
        // df 49: 110 has a probability far below 1e-5. (Redis 7.0's own
        // sampling scores in the thousands here.)
        let (chi2, min, max) = histogram(50, 50_000);
        assert!(chi2 < 110.0, "chi-square {chi2}, counts {min}..{max}");
        // df 1999: mean 1999, standard deviation 63.
        let (chi2, min, max) = histogram(2000, 200_000);
        assert!(chi2 < 2400.0, "chi-square {chi2}, counts {min}..{max}");
    }

    fn limits(n: usize) -> Limits {
        Limits { set_intset_entries: n, ..Limits::default() }
    }

    #[test]
    fn intset_until_threshold_or_non_integer() {
        let l = limits(3);
        let mut s = Set::new();
        assert!(s.insert(b"3", &l));
        assert!(s.insert(b"-1", &l));
        assert!(!s.insert(b"3", &l));
        assert!(s.insert(b"2", &l));
        assert_eq!(s.as_intset(), Some(&[-1, 2, 3][..]));
        assert!(s.insert(b"10", &l));
        assert_eq!(s.encoding(), "hashtable");
        let mut t = Set::new();
        t.insert(b"1", &l);
        t.insert(b"01", &l);
        assert_eq!(t.encoding(), "hashtable");
        assert!(t.contains(b"1") && t.contains(b"01") && !t.contains(b"001"));
        let mut all = Vec::new();
        s.for_each(|m| all.push(m.to_vec()));
        all.sort();
        assert_eq!(all, [&b"-1"[..], b"10", b"2", b"3"]);
    }

    #[test]
    fn remove_pop_and_random() {
        let l = limits(512);
        let mut s = Set::new();
        for i in 0..100 {
            s.insert(i.to_string().as_bytes(), &l);
        }
        assert!(s.remove(b"5") && !s.remove(b"5") && !s.remove(b"x"));
        let mut rng = Rng::new(1);
        assert!(s.random_with(&mut rng, |m| m.to_vec()).is_some());
        let mut n = 0;
        while let Some(m) = s.pop_random(&mut rng) {
            assert!(!s.contains(&m));
            n += 1;
        }
        assert_eq!(n, 99);
        assert!(s.random_with(&mut rng, |_| ()).is_none());
    }
}
