//! cowstore's markers: the time from a write's acknowledgement to the fsync
//! that makes it durable, measured independently of cowstore's own figure.

use crate::histo::{Count, Latency, Scope, Summary};
use probe_ebpf::{marker, record::Marker};
use serde::Serialize;
use std::collections::VecDeque;

/// Acknowledged writes waiting for a covering fsync, and what has been measured.
#[derive(Default)]
pub struct Exposure {
    /// (offset, time, count) of acknowledged writes not yet durable.
    waiting: VecDeque<(u64, u64, u64)>,
    exposure: Latency,
    acked: Count,
    fsyncs: Count,
    durable_offset: u64,
    forks: Vec<(u64, u32)>,
    snapshots_ok: Count,
    snapshots_failed: Count,
    interval_start: u64,
}

/// Report of [`Exposure`].
#[derive(Debug, Serialize)]
pub struct ExposureReport {
    /// Writes acknowledged to clients.
    pub writes_acked: u64,
    /// fsyncs cowstore reported done.
    pub fsyncs_done: u64,
    /// Highest AOF offset known durable.
    pub durable_offset: u64,
    /// Acknowledged writes not yet covered by an fsync when the report was made.
    pub still_exposed: u64,
    /// Acknowledgement to covering fsync, per write.
    pub exposure: Summary,
    /// Children cowstore said it forked (in the report's scope).
    pub forks: Vec<u32>,
    /// Snapshots cowstore reported finished successfully.
    pub snapshots_ok: u64,
    /// Snapshots cowstore reported failed.
    pub snapshots_failed: u64,
}

impl Exposure {
    /// Records a marker hit.
    pub fn marker(&mut self, e: &Marker) {
        match e.kind {
            marker::WRITES_ACKED => {
                let n = e.b;
                self.acked.add(n);
                if e.a <= self.durable_offset {
                    // Made durable before their replies (`appendfsync always`,
                    // or an everysec fsync that finished first): never exposed.
                    self.exposure.record_n(0, n);
                } else {
                    self.waiting.push_back((e.a, e.ts, n));
                }
            }
            marker::FSYNC_DONE => {
                self.fsyncs.add(1);
                self.durable_offset = self.durable_offset.max(e.a);
                while let Some(&(offset, ts, n)) = self.waiting.front() {
                    if offset > e.a {
                        break;
                    }
                    self.exposure.record_n(e.ts.saturating_sub(ts), n);
                    self.waiting.pop_front();
                }
            }
            marker::FORK => self.forks.push((e.ts, e.a as u32)),
            marker::SNAPSHOT_END if e.b as u32 != 0 => self.snapshots_ok.add(1),
            marker::SNAPSHOT_END => self.snapshots_failed.add(1),
            _ => {}
        }
    }

    /// Starts a new interval.
    pub fn next_interval(&mut self, now: u64) {
        self.exposure.next_interval();
        for c in [&mut self.acked, &mut self.fsyncs, &mut self.snapshots_ok, &mut self.snapshots_failed] {
            c.next_interval();
        }
        self.interval_start = now;
    }

    /// The report in `scope`.
    pub fn report(&self, scope: Scope) -> ExposureReport {
        let since = if scope == Scope::Interval { self.interval_start } else { 0 };
        ExposureReport {
            writes_acked: self.acked.get(scope),
            fsyncs_done: self.fsyncs.get(scope),
            durable_offset: self.durable_offset,
            still_exposed: self.waiting.iter().map(|w| w.2).sum(),
            exposure: self.exposure.summary(scope),
            forks: self.forks.iter().filter(|(ts, _)| *ts >= since).map(|(_, pid)| *pid).collect(),
            snapshots_ok: self.snapshots_ok.get(scope),
            snapshots_failed: self.snapshots_failed.get(scope),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(kind: u32, ts: u64, a: u64, b: u64) -> Marker {
        Marker { tgid: 1, tid: 1, kind, ts, a, b }
    }

    #[test]
    fn fsync_covers_writes_up_to_its_offset() {
        let mut x = Exposure::default();
        x.marker(&hit(marker::WRITES_ACKED, 1_000, 100, 1));
        x.marker(&hit(marker::WRITES_ACKED, 2_000, 200, 3));
        x.marker(&hit(marker::WRITES_ACKED, 3_000, 300, 2));
        x.marker(&hit(marker::FSYNC_DONE, 10_000, 200, 0));
        let r = x.report(Scope::Cumulative);
        assert_eq!((r.writes_acked, r.exposure.count, r.still_exposed), (6, 4, 2));
        assert!((8_000..8_010).contains(&r.exposure.p50_ns), "{:?}", r.exposure);
        assert!((9_000..9_010).contains(&r.exposure.max_ns), "{:?}", r.exposure);
        assert_eq!(r.durable_offset, 200);
    }

    #[test]
    fn writes_acked_after_their_fsync_are_not_exposed() {
        // `appendfsync always`: fdatasync, fsync_done, then the replies.
        let mut x = Exposure::default();
        x.marker(&hit(marker::FSYNC_DONE, 1_000, 300, 0));
        x.marker(&hit(marker::WRITES_ACKED, 2_000, 300, 5));
        x.marker(&hit(marker::WRITES_ACKED, 2_200, 400, 2));
        let r = x.report(Scope::Cumulative);
        assert_eq!((r.writes_acked, r.exposure.count, r.still_exposed), (7, 5, 2));
        assert!(r.exposure.max_ns <= 1, "{:?}", r.exposure);
    }
}
