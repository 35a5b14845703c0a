//! cowscope checks itself against the kernel's own count of copies: delay
//! accounting's `wpcopy_count` (taskstats), which the kernel bumps in
//! `wp_page_copy` for every copy and zero-page fill.
//!
//! Every gauge tick reads the target's `wpcopy_count` (all its threads, exited
//! ones included) and cowscope's running count for it (`Task::copies +
//! zero_fills`, kept by the programs) back to back, so each pair describes one
//! moment. A window's agreement compares both counts between the last pair
//! before its fork and the first pair after its child's exit; the recording's
//! compares the first pair with the last.

use probe_user::taskstats;
use serde::Serialize;
use std::collections::VecDeque;

/// Above this disagreement cowscope warns that its figure cannot be trusted.
pub const TOLERANCE: f64 = 0.01;
/// Disagreements of at most this many pages never warn: a page copied between
/// the two reads of one pair shows in only one of them.
const SLACK: u64 = 2;
/// Pairs kept to find the one before a window's fork (at 10 a second).
const KEPT: usize = 600;

/// The kernel's and cowscope's counts of one process's copies over one span.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Agreement {
    /// Copies and zero-page fills per taskstats `wpcopy_count`.
    pub kernel: u64,
    /// Copies and zero-page fills cowscope counted.
    pub cowscope: u64,
    /// `cowscope / kernel` in percent (100 when both are 0).
    pub percent: f64,
    /// Whether they agree within [`TOLERANCE`].
    pub trusted: bool,
}

impl Agreement {
    /// Compares two counts.
    pub fn new(kernel: u64, cowscope: u64) -> Agreement {
        let percent = if kernel == 0 {
            if cowscope == 0 { 100.0 } else { f64::INFINITY }
        } else {
            cowscope as f64 * 100.0 / kernel as f64
        };
        let diff = kernel.abs_diff(cowscope);
        let trusted = diff <= SLACK || diff as f64 <= kernel.max(cowscope) as f64 * TOLERANCE;
        Agreement { kernel, cowscope, percent, trusted }
    }

    /// `kernel says 8,202 copies; cowscope 8,198: 99.95%`, with a warning when untrusted.
    pub fn line(&self) -> String {
        let text = format!(
            "kernel says {} copies; cowscope {}: {:.2}%",
            thousands(self.kernel),
            thousands(self.cowscope),
            self.percent
        );
        if self.trusted {
            text
        } else {
            format!(
                "{text}  WARNING: differs by more than {:.0}%, cowscope's figures are not exact here",
                TOLERANCE * 100.0
            )
        }
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One moment: the kernel's count and cowscope's, read back to back.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    /// When, `CLOCK_MONOTONIC` ns.
    pub ts: u64,
    kernel: u64,
    ours: u64,
}

/// The pairs read so far for the target.
pub struct SelfCheck {
    tgid: u32,
    first: Option<Pair>,
    recent: VecDeque<Pair>,
    /// Why no pair could be read, once that happened.
    unavailable: Option<String>,
}

impl SelfCheck {
    /// Checks `tgid` (the target).
    pub fn new(tgid: u32) -> SelfCheck {
        SelfCheck { tgid, first: None, recent: VecDeque::new(), unavailable: None }
    }

    /// Reads a pair: `ours` is cowscope's running count for the target.
    pub fn sample(&mut self, ts: u64, ours: Option<u64>) {
        let (Some(ours), None) = (ours, &self.unavailable) else {
            return;
        };
        match taskstats::wpcopy_tgid(self.tgid) {
            Ok(w) => {
                let pair = Pair { ts, kernel: w.count, ours };
                self.first.get_or_insert(pair);
                if self.recent.len() == KEPT {
                    self.recent.pop_front();
                }
                self.recent.push_back(pair);
            }
            // The target is gone: its last pair stands.
            Err(_) if !std::path::Path::new(&format!("/proc/{}", self.tgid)).exists() => {}
            Err(e) => self.unavailable = Some(format!("{e:#}")),
        }
    }

    /// The last pair read at or before `ts` (the first one if none was).
    pub fn before(&self, ts: u64) -> Option<Pair> {
        self.recent.iter().rev().find(|p| p.ts <= ts).or(self.recent.front()).copied()
    }

    /// The newest pair.
    pub fn latest(&self) -> Option<Pair> {
        self.recent.back().copied()
    }

    /// Agreement between two pairs, `None` if the kernel keeps no count for the target.
    pub fn between(&self, from: Pair, to: Pair) -> Option<Agreement> {
        self.kernel_counts()
            .then(|| Agreement::new(to.kernel.saturating_sub(from.kernel), to.ours.saturating_sub(from.ours)))
    }

    /// Agreement over the whole recording so far.
    pub fn whole(&self) -> Option<Agreement> {
        self.between(self.first?, self.latest()?)
    }

    /// Whether the kernel counts the target's copies: delay accounting keeps
    /// counts only for tasks created while `kernel.task_delayacct` was 1. A
    /// count that never moved while cowscope's did says it keeps none.
    fn kernel_counts(&self) -> bool {
        match (self.first, self.latest()) {
            (Some(first), Some(last)) => first.kernel > 0 || last.kernel > 0 || last.ours - first.ours <= SLACK,
            _ => false,
        }
    }

    /// Why there is no self-check, if there is none.
    pub fn why_not(&self) -> Option<String> {
        if let Some(why) = &self.unavailable {
            return Some(why.clone());
        }
        (!self.kernel_counts() && self.first.is_some()).then(|| {
            format!(
                "the kernel keeps no copy count for PID {}: it started while kernel.task_delayacct was 0 \
                 (enable it before starting the target, or start it with `cowscope run`)",
                self.tgid
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_within_one_percent_or_two_pages() {
        let a = Agreement::new(8202, 8198);
        assert!(a.trusted);
        assert_eq!(a.line(), "kernel says 8,202 copies; cowscope 8,198: 99.95%");
        assert!(Agreement::new(3, 1).trusted);
        let bad = Agreement::new(8202, 2048);
        assert!(!bad.trusted);
        assert!(bad.line().contains("WARNING"), "{}", bad.line());
        assert!(Agreement::new(0, 0).trusted);
    }

    #[test]
    fn pairs_before_a_moment() {
        let mut c = SelfCheck::new(0);
        for (ts, k, o) in [(10, 5, 5), (20, 9, 9), (30, 20, 19)] {
            c.recent.push_back(Pair { ts, kernel: k, ours: o });
        }
        c.first = c.recent.front().copied();
        assert_eq!(c.before(25).map(|p| p.ts), Some(20));
        assert_eq!(c.before(5).map(|p| p.ts), Some(10));
        let w = c.whole().expect("pairs");
        assert_eq!((w.kernel, w.cowscope), (15, 14));
        assert_eq!(c.why_not(), None);
        let mut blind = SelfCheck::new(0);
        for (ts, o) in [(10, 0), (20, 500)] {
            blind.recent.push_back(Pair { ts, kernel: 0, ours: o });
        }
        blind.first = blind.recent.front().copied();
        assert_eq!(blind.whole(), None);
        assert!(blind.why_not().expect("a reason").contains("task_delayacct"));
    }
}
