//! Latency histograms: exact values in hdrhistogram, printed as BCC-style log2
//! bars plus percentiles.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write;

/// What a report covers: everything since recording started, or only the
/// time since the previous interval report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Since recording started.
    Cumulative,
    /// Since the previous interval report.
    Interval,
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds")
}

/// A latency (or interval) distribution in nanoseconds, kept for the whole
/// recording and for the current interval.
#[derive(Clone)]
pub struct Latency {
    all: Histogram<u64>,
    interval: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { all: histogram(), interval: histogram() }
    }
}

/// A count kept for the whole recording and for the current interval.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count {
    all: u64,
    interval: u64,
}

impl Count {
    /// Adds `n`.
    pub fn add(&mut self, n: u64) {
        self.all += n;
        self.interval += n;
    }

    /// The count in `scope`.
    pub fn get(&self, scope: Scope) -> u64 {
        match scope {
            Scope::Cumulative => self.all,
            Scope::Interval => self.interval,
        }
    }

    /// Starts a new interval.
    pub fn next_interval(&mut self) {
        self.interval = 0;
    }
}

/// One log2 bucket: values in `[low, high)` microseconds.
#[derive(Debug, Serialize)]
pub struct Bucket {
    /// Inclusive lower bound, µs.
    pub low_us: u64,
    /// Exclusive upper bound, µs.
    pub high_us: u64,
    /// Values in the bucket.
    pub count: u64,
}

/// Everything a histogram reports.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Mean, ns.
    pub mean_ns: f64,
    /// Smallest, ns.
    pub min_ns: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
    /// Log2 buckets in µs, as BCC's `print_log2_hist` shows them.
    pub log2_us: Vec<Bucket>,
}

impl Latency {
    /// Adds one value in ns (clamped to the histogram's range).
    pub fn record(&mut self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// Adds `n` occurrences of one value in ns.
    pub fn record_n(&mut self, ns: u64, n: u64) {
        self.all.saturating_record_n(ns.max(1), n);
        self.interval.saturating_record_n(ns.max(1), n);
    }

    /// Starts a new interval.
    pub fn next_interval(&mut self) {
        self.interval.reset();
    }

    /// The report of this distribution in `scope`.
    pub fn summary(&self, scope: Scope) -> Summary {
        let h = match scope {
            Scope::Cumulative => &self.all,
            Scope::Interval => &self.interval,
        };
        let empty = h.is_empty();
        let q = |q: f64| if empty { 0 } else { h.value_at_quantile(q) };
        Summary {
            count: h.len(),
            mean_ns: if empty { 0.0 } else { h.mean() },
            min_ns: if empty { 0 } else { h.min() },
            p50_ns: q(0.5),
            p90_ns: q(0.9),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: if empty { 0 } else { h.max() },
            log2_us: log2(h),
        }
    }
}

fn log2(h: &Histogram<u64>) -> Vec<Bucket> {
    let mut counts = [0u64; 64];
    for v in h.iter_recorded() {
        let us = v.value_iterated_to() / 1000;
        let slot = if us == 0 { 0 } else { 64 - us.leading_zeros() as usize };
        counts[slot] += v.count_at_value();
    }
    let Some(last) = counts.iter().rposition(|&c| c > 0) else {
        return Vec::new();
    };
    let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
    (first..=last)
        .map(|slot| Bucket {
            low_us: if slot == 0 { 0 } else { 1 << (slot - 1) },
            high_us: 1 << slot,
            count: counts[slot],
        })
        .collect()
}

/// Width of the bar column, as in BCC.
const BAR: usize = 40;

impl Summary {
    /// BCC-style text: a header, one `low -> high : count |****|` row per
    /// bucket, then the percentiles.
    pub fn render(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{title}");
        if self.count == 0 {
            let _ = writeln!(out, "  (none)");
            return out;
        }
        let _ = writeln!(out, "{:>24} : {:<8} distribution", "usecs", "count");
        let peak = self.log2_us.iter().map(|b| b.count).max().unwrap_or(1).max(1);
        for b in &self.log2_us {
            let stars = (b.count as usize * BAR).div_ceil(peak as usize);
            let _ = writeln!(
                out,
                "{:>10} -> {:<10} : {:<8} |{:<BAR$}|",
                b.low_us,
                b.high_us - 1,
                b.count,
                "*".repeat(stars)
            );
        }
        let _ = writeln!(
            out,
            "  count {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            self.count,
            human_ns(self.p50_ns),
            human_ns(self.p90_ns),
            human_ns(self.p99_ns),
            human_ns(self.p999_ns),
            human_ns(self.max_ns)
        );
        out
    }
}

/// `123ns`, `4.5us`, `12.3ms`, `1.20s`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets_and_percentiles() {
        let mut h = Latency::default();
        for _ in 0..90 {
            h.record(150_000); // 150 us: bucket 128 -> 255
        }
        for _ in 0..10 {
            h.record(3_000_000); // 3 ms: bucket 2048 -> 4095
        }
        let s = h.summary(Scope::Cumulative);
        assert_eq!(s.count, 100);
        let rows: Vec<(u64, u64)> = s.log2_us.iter().map(|b| (b.low_us, b.count)).collect();
        assert_eq!(rows.first(), Some(&(128, 90)));
        assert_eq!(rows.last(), Some(&(2048, 10)));
        assert!((149_000..=151_000).contains(&s.p50_ns));
        assert!((2_990_000..=3_010_000).contains(&s.p99_ns));
        let text = s.render("x");
        assert!(text.contains("128 -> 255"), "{text}");
        assert!(text.contains("|****************************************|"), "{text}");
        h.next_interval();
        h.record(7);
        assert_eq!(h.summary(Scope::Interval).count, 1);
        assert_eq!(h.summary(Scope::Cumulative).count, 101);
    }
}
