//! Durability exposure: for every acknowledged write, the time from its reply
//! until the fsync that covers it completed. This is "the window" of an fsync
//! policy, measured rather than assumed.
//!
//! Writes are acknowledged in batches (all replies of an event-loop pass
//! leave together, after the AOF write), so one entry per pass records the
//! highest AOF offset of its writes, the ack time and the number of writes.
//! When an fsync covering offset M completes at time T, every pending entry
//! with offset <= M is durable and each of its writes is exposed for
//! `T - ack`. With `always` the fsync precedes the reply: exposure 0. With
//! `no` cowstore never fsyncs the AOF, so the exposure is whatever the
//! kernel's writeback does; those writes are counted but have no figure.

use crate::config::FsyncPolicy;
use crate::protocol::reply::Reply;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::fmt::Write;

const POLICIES: [FsyncPolicy; 3] = [FsyncPolicy::Always, FsyncPolicy::Everysec, FsyncPolicy::No];

fn idx(p: FsyncPolicy) -> usize {
    match p {
        FsyncPolicy::Always => 0,
        FsyncPolicy::Everysec => 1,
        FsyncPolicy::No => 2,
    }
}

/// The config name of a policy.
pub fn policy_name(p: FsyncPolicy) -> &'static str {
    match p {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Everysec => "everysec",
        FsyncPolicy::No => "no",
    }
}

struct Pass {
    offset: u64,
    ack_us: i64,
    writes: u64,
    policy: usize,
    /// Acknowledged since the last reset: its exposure is recorded when it
    /// becomes durable (earlier ones only count as pending until then).
    counted: bool,
}

/// Exposure histograms per policy and the writes still waiting for an fsync.
pub struct Durability {
    pending: VecDeque<Pass>,
    hist: [Histogram<u64>; 3],
    acked: [u64; 3],
}

impl Default for Durability {
    fn default() -> Durability {
        let h = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Durability { pending: VecDeque::new(), hist: [h(), h(), h()], acked: [0; 3] }
    }
}

impl Durability {
    /// Records `writes` writes acknowledged at `now_us`, their AOF bytes ending at `offset`.
    pub fn acked(&mut self, policy: FsyncPolicy, offset: u64, writes: u64, now_us: i64) {
        let i = idx(policy);
        self.acked[i] += writes;
        if policy != FsyncPolicy::No {
            self.pending.push_back(Pass { offset, ack_us: now_us, writes, policy: i, counted: true });
        }
    }

    /// An fsync covering AOF bytes up to `offset` completed at `at_us`.
    pub fn covered(&mut self, offset: u64, at_us: i64) {
        while let Some(p) = self.pending.front() {
            if p.offset > offset {
                break;
            }
            if p.counted {
                let exposure = (at_us - p.ack_us).max(0) as u64;
                let _ = self.hist[p.policy].record_n(exposure.max(1), p.writes);
            }
            self.pending.pop_front();
        }
    }

    /// Forgets writes still pending (the AOF was turned off or replaced).
    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// Acknowledged writes not yet covered by an fsync.
    pub fn pending_writes(&self) -> u64 {
        self.pending.iter().map(|p| p.writes).sum()
    }

    /// Age of the oldest acknowledged write not yet durable, in µs (0 if none).
    pub fn oldest_pending_us(&self, now_us: i64) -> i64 {
        self.pending.front().map_or(0, |p| (now_us - p.ack_us).max(0))
    }

    /// Clears the histograms and counters. Writes acknowledged before the
    /// reset stay pending (they are still not durable) but are not counted
    /// when they become durable, so `durable` never exceeds `acked`.
    pub fn reset(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.iter_mut().for_each(|p| p.counted = false);
        *self = Durability { pending, ..Durability::default() };
    }

    /// Log2 buckets of a histogram: (upper bound µs, count) for non-empty ranges.
    fn buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for v in h.iter_recorded() {
            let value = h.highest_equivalent(v.value_iterated_to());
            let upper = value.max(1).next_power_of_two();
            match out.last_mut() {
                Some((u, c)) if *u == upper => *c += v.count_at_value(),
                _ => out.push((upper, v.count_at_value())),
            }
        }
        out
    }

    /// Appends the `# Durability` INFO section's fields.
    pub fn info(&self, policy: FsyncPolicy, now_us: i64, out: &mut String) {
        let _ = write!(out, "durability_policy:{}\r\n", policy_name(policy));
        let _ = write!(out, "durability_pending_writes:{}\r\n", self.pending_writes());
        let _ = write!(out, "durability_oldest_pending_usec:{}\r\n", self.oldest_pending_us(now_us));
        for p in POLICIES {
            let (h, n) = (&self.hist[idx(p)], self.acked[idx(p)]);
            let name = policy_name(p);
            if n == 0 {
                continue;
            }
            if p == FsyncPolicy::No {
                let _ = write!(out, "exposure_{name}:acked={n},durable=0,unbounded=1\r\n");
                continue;
            }
            let _ = write!(
                out,
                "exposure_{name}:acked={n},durable={},p50_usec={},p99_usec={},p999_usec={},max_usec={}\r\n",
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
            let b: Vec<String> = Self::buckets(h).iter().map(|(u, c)| format!("le_{u}={c}")).collect();
            let _ = write!(out, "exposure_{name}_buckets:{}\r\n", b.join(","));
        }
    }

    /// The DURABILITY reply: a map per policy with counts, percentiles and buckets.
    pub fn reply(&self, r: &mut Reply) {
        let used: Vec<FsyncPolicy> = POLICIES.into_iter().filter(|p| self.acked[idx(*p)] > 0).collect();
        r.map(used.len());
        for p in used {
            let h = &self.hist[idx(p)];
            r.bulk(policy_name(p).as_bytes());
            r.map(8);
            for (k, v) in [
                ("acked", self.acked[idx(p)]),
                ("durable", h.len()),
                ("p50_usec", h.value_at_quantile(0.5)),
                ("p99_usec", h.value_at_quantile(0.99)),
                ("p999_usec", h.value_at_quantile(0.999)),
                ("max_usec", h.max()),
            ] {
                r.bulk(k.as_bytes());
                r.int(v as i64);
            }
            r.bulk(b"unbounded");
            r.int((p == FsyncPolicy::No) as i64);
            r.bulk(b"buckets");
            let b = Self::buckets(h);
            r.map(b.len());
            for (u, c) in b {
                r.bulk(format!("le_{u}").as_bytes());
                r.int(c as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_ack_to_covering_fsync() {
        let mut d = Durability::default();
        d.acked(FsyncPolicy::Everysec, 100, 3, 1_000_000);
        d.acked(FsyncPolicy::Everysec, 200, 2, 1_500_000);
        d.covered(150, 1_900_000);
        assert_eq!(d.pending_writes(), 2);
        d.covered(250, 2_100_000);
        let h = &d.hist[1];
        assert_eq!(h.len(), 5);
        assert!(h.equivalent(h.max(), 900_000));
        assert!(h.equivalent(h.min(), 600_000));
        d.acked(FsyncPolicy::No, 300, 7, 3_000_000);
        assert_eq!(d.pending_writes(), 0);
        let mut s = String::new();
        d.info(FsyncPolicy::Everysec, 3_000_000, &mut s);
        assert!(s.contains("exposure_everysec:acked=5,durable=5"), "{s}");
        assert!(s.contains("exposure_no:acked=7,durable=0,unbounded=1"), "{s}");
    }

    #[test]
    fn reset_keeps_pending_writes_out_of_the_new_counts() {
        let mut d = Durability::default();
        d.acked(FsyncPolicy::Everysec, 100, 3, 1_000_000);
        d.reset();
        d.acked(FsyncPolicy::Everysec, 200, 2, 1_500_000);
        assert_eq!(d.pending_writes(), 5);
        d.covered(250, 2_000_000);
        assert_eq!(d.pending_writes(), 0);
        let mut s = String::new();
        d.info(FsyncPolicy::Everysec, 2_000_000, &mut s);
        assert!(s.contains("exposure_everysec:acked=2,durable=2,"), "{s}");
    }
}
