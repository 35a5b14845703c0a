//! Forks of the target: latency, the child's lifetime and exit status, and the
//! snapshot window each child holds open with its copy gauge and vmstat deltas.

use crate::{
    histo::{Latency, Summary},
    procfs::{self, Vmstat},
};
use probe_ebpf::{CLONE_VM, Event};
use serde::Serialize;
use std::collections::HashMap;

/// One forked child and the window it held open.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    /// Forking process.
    pub parent: u32,
    /// The child.
    pub child: u32,
    /// Window number in the parent (0: a `CLONE_VM` child, which opens no window).
    pub epoch: u32,
    /// Flags passed to clone.
    pub clone_flags: u64,
    /// Syscall entry to return in the parent, ns.
    pub fork_latency_ns: u64,
    /// When the child appeared, ns since recording started.
    pub start_ns: u64,
    /// How long the child lived, ns (`None`: still alive).
    pub lifetime_ns: Option<u64>,
    /// Status the child passed to `exit`; `None` while alive or if it died without calling it.
    pub exit_code: Option<u32>,
    /// Whether the child has exited.
    pub exited: bool,
    /// Pages the parent copied from the fork until the child called `exit`: the
    /// span a child's own accounting (Redis's `rdb_last_cow_size`) can cover.
    pub copies_before_exit: Option<u64>,
    /// `/proc/vmstat` deltas from the last reading before the fork (at most
    /// 100 ms earlier) to the first after the exit (or to now).
    pub vmstat_delta: Vmstat,
    /// The memory gauge: (ms since fork, pages the parent copied since the fork),
    /// sampled every 100 ms.
    pub copy_gauge: Vec<(u64, u64)>,
    #[serde(skip)]
    vmstat_at_fork: Vmstat,
    #[serde(skip)]
    parent_copies_at_fork: u32,
    #[serde(skip)]
    start_abs: u64,
}

/// Every fork seen while recording.
#[derive(Default)]
pub struct Forks {
    /// Children in fork order.
    pub windows: Vec<Window>,
    /// Fork latencies.
    pub latency: Latency,
    /// Lifetimes of exited children.
    pub lifetime: Latency,
    /// Exits that arrived before their fork record: pid → (time, code).
    early_exits: HashMap<u32, (u64, Option<u32>)>,
}

/// Report of [`Forks`].
#[derive(Debug, Serialize)]
pub struct ForksReport {
    /// Number of processes forked.
    pub count: usize,
    /// Fork latency distribution.
    pub latency: Summary,
    /// Child lifetime (snapshot window) distribution.
    pub lifetime: Summary,
    /// Each child.
    pub windows: Vec<Window>,
}

fn exit_code(e: &Event) -> Option<u32> {
    (e.a != u64::MAX).then_some(e.a as u32)
}

impl Forks {
    /// Records a fork; `t0` is the recording start, `vmstat` the last reading
    /// taken before the fork.
    pub fn fork(&mut self, e: &Event, t0: u64, vmstat: Vmstat) {
        self.latency.record(e.dur);
        let start_abs = if e.c != 0 { e.c } else { e.ts + e.dur };
        let mut w = Window {
            parent: e.tgid,
            child: e.aux,
            epoch: if e.a & CLONE_VM != 0 { 0 } else { e.b as u32 },
            copies_before_exit: None,
            clone_flags: e.a,
            fork_latency_ns: e.dur,
            start_ns: start_abs.saturating_sub(t0),
            lifetime_ns: None,
            exit_code: None,
            exited: false,
            vmstat_delta: Vmstat::new(),
            copy_gauge: Vec::new(),
            vmstat_at_fork: vmstat,
            parent_copies_at_fork: (e.b >> 32) as u32,
            start_abs,
        };
        if let Some((ts, code)) = self.early_exits.remove(&e.aux) {
            w.close(ts, code);
            self.lifetime.record(w.lifetime_ns.unwrap_or(0));
        }
        self.windows.push(w);
    }

    /// Records the exit of a forked child (`e.aux` is its parent, 0 for the target).
    pub fn exit(&mut self, e: &Event) {
        if e.aux == 0 {
            return;
        }
        match self.windows.iter_mut().find(|w| w.child == e.tgid && !w.exited) {
            Some(w) => {
                w.close(e.ts, exit_code(e));
                self.lifetime.record(w.lifetime_ns.unwrap_or(0));
            }
            None => {
                self.early_exits.insert(e.tgid, (e.ts, exit_code(e)));
            }
        }
    }

    /// Records a window-holding child's call to `exit`.
    pub fn exiting(&mut self, e: &Event) {
        if let Some(w) = self.windows.iter_mut().find(|w| w.child == e.tgid && !w.exited) {
            let copied = (e.a as u32).wrapping_sub(w.parent_copies_at_fork);
            w.copies_before_exit = Some(copied as u64);
        }
    }

    /// Whether a snapshot window is open.
    pub fn open(&self) -> bool {
        self.windows.iter().any(|w| w.epoch > 0 && !w.exited)
    }

    /// Adds a point to the gauge of every open window; `copies` gives a
    /// process's running copy count (`Task::copies`).
    pub fn sample(&mut self, now: u64, copies: impl Fn(u32) -> Option<u32>) {
        for w in self.windows.iter_mut().filter(|w| w.epoch > 0 && !w.exited) {
            let Some(total) = copies(w.parent) else {
                continue;
            };
            let ms = now.saturating_sub(w.start_abs) / 1_000_000;
            let copied = total.wrapping_sub(w.parent_copies_at_fork) as u64;
            if w.copy_gauge.last() != Some(&(ms, copied)) {
                w.copy_gauge.push((ms, copied));
            }
        }
    }

    /// The report, with vmstat deltas of open windows taken up to now.
    pub fn report(&self) -> ForksReport {
        let now = procfs::vmstat();
        let windows = self
            .windows
            .iter()
            .cloned()
            .map(|mut w| {
                if !w.exited {
                    w.vmstat_delta = procfs::vmstat_delta(&w.vmstat_at_fork, &now);
                }
                w
            })
            .collect();
        ForksReport {
            count: self.windows.len(),
            latency: self.latency.summary(),
            lifetime: self.lifetime.summary(),
            windows,
        }
    }
}

impl Window {
    fn close(&mut self, ts: u64, code: Option<u32>) {
        self.exited = true;
        self.exit_code = code;
        self.lifetime_ns = Some(ts.saturating_sub(self.start_abs));
        self.vmstat_delta = procfs::vmstat_delta(&self.vmstat_at_fork, &procfs::vmstat());
    }
}
