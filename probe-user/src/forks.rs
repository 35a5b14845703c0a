//! Forks of the target: latency, the child's lifetime and exit status, and the
//! snapshot window each child holds open with its copy gauge and vmstat deltas.

use crate::{
    histo::{Latency, Scope, Summary},
    procfs::{self, Vmstat},
    selfcheck::Agreement,
};
use probe_ebpf::{
    CLONE_VM,
    record::{Exit, Exiting, Fork, ForkCall, WindowEnd},
};
use serde::Serialize;
use std::collections::HashMap;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// It called `exit` with this status.
    Exit(u32),
    /// A signal's default action ended it.
    Signal(u32),
    /// It ended without calling `exit` and no fatal signal was seen.
    Unknown,
}

impl Ending {
    /// How an exit record says the process ended.
    pub fn of(e: &Exit) -> Ending {
        match (e.exit_code, e.signal) {
            (Some(code), _) => Ending::Exit(code),
            (None, sig) if sig > 0 => Ending::Signal(sig),
            _ => Ending::Unknown,
        }
    }
}

/// One forked child and the window it held open.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    /// Forking process.
    pub parent: u32,
    /// The child.
    pub child: u32,
    /// Window number in the parent (0: a child sharing its parent's memory,
    /// such as `vfork` or `posix_spawn`'s, which opens no window).
    pub epoch: u32,
    /// The child was already alive when recording started: its fork was not
    /// seen, and what the parent copied before the attach is unknown.
    pub attached_mid_window: bool,
    /// Flags passed to clone (`None` for a child found at attach).
    pub clone_flags: Option<u64>,
    /// Syscall entry to return in the parent, ns (`None`: not seen).
    pub fork_latency_ns: Option<u64>,
    /// libc's `fork()` call to return in the parent, ns: the caller's view,
    /// what Redis's `latest_fork_usec` measures (`None`: not seen, e.g. a
    /// static binary or a direct `clone`).
    pub fork_call_ns: Option<u64>,
    /// When the child appeared, ns since recording started (negative: before it).
    pub start_ns: i64,
    /// How long the child lived, ns (`None`: still alive).
    pub lifetime_ns: Option<u64>,
    /// Status the child passed to `exit`; `None` while alive or if it died without calling it.
    pub exit_code: Option<u32>,
    /// How it ended (`None` while alive).
    pub ending: Option<Ending>,
    /// Whether the child has exited.
    pub exited: bool,
    /// From the child's exit to its memory being released, ns: the window
    /// lasts until then (the parent still copies pages the child holds).
    pub teardown_ns: Option<u64>,
    /// Whether the window is over (the child's memory is gone); always true
    /// once exited for a child sharing memory.
    pub released: bool,
    /// Pages the parent copied from the fork (or the attach) until the child
    /// called `exit`: the span a child's own accounting (Redis's
    /// `rdb_last_cow_size`) can cover.
    pub copies_before_exit: Option<u64>,
    /// `/proc/vmstat` deltas from the last reading before the fork (at most
    /// 100 ms earlier) to the first after the exit (or to now); windows only.
    pub vmstat_delta: Vmstat,
    /// The memory gauge: (ms since fork, pages the parent copied since the fork),
    /// sampled every 100 ms.
    pub copy_gauge: Vec<(u64, u64)>,
    /// The kernel's own count of the parent's copies over the window against
    /// cowscope's (`None` until the window closed, or without delay accounting).
    pub self_check: Option<Agreement>,
    #[serde(skip)]
    vmstat_at_fork: Vmstat,
    #[serde(skip)]
    parent_copies_at_fork: u32,
    #[serde(skip)]
    start_abs: u64,
    #[serde(skip)]
    end_abs: Option<u64>,
}

/// Every fork seen while recording.
#[derive(Default)]
pub struct Forks {
    /// Children in fork order.
    pub windows: Vec<Window>,
    /// Fork latencies (the syscall).
    latency: Latency,
    /// Fork latencies as the caller saw them (libc's `fork()`).
    call_latency: Latency,
    /// Lifetimes of exited children that held a window open.
    lifetime: Latency,
    /// Exits that arrived before their fork record: pid → (time, ending).
    early_exits: HashMap<u32, (u64, Ending)>,
    /// Start of the current interval, ns.
    interval_start: u64,
}

/// Report of [`Forks`].
#[derive(Debug, Serialize)]
pub struct ForksReport {
    /// Number of processes forked in the report's scope (found at attach included).
    pub count: usize,
    /// Fork latency distribution (syscall entry to return in the parent).
    pub latency: Summary,
    /// Fork latency as the caller saw it (libc's `fork()` call to return).
    pub call_latency: Summary,
    /// Snapshot window distribution: fork to the child's memory released, for
    /// children that shared no memory.
    pub lifetime: Summary,
    /// Each child active in the report's scope.
    pub windows: Vec<Window>,
}

impl Forks {
    /// Records a fork; `t0` is the recording start, `vmstat` the last reading
    /// taken before the fork.
    pub fn fork(&mut self, e: &Fork, t0: u64, vmstat: Vmstat) {
        self.latency.record(e.latency_ns);
        let start_abs = if e.child_seen_ns != 0 { e.child_seen_ns } else { e.entry_ns + e.latency_ns };
        let epoch = if e.clone_flags & CLONE_VM != 0 { 0 } else { e.epoch };
        let w = Window::new(e.parent, e.child, epoch, start_abs, t0, vmstat, e.parent_copies);
        self.push(Window { clone_flags: Some(e.clone_flags), fork_latency_ns: Some(e.latency_ns), ..w });
    }

    /// Records the caller's view of a fork already recorded.
    pub fn fork_call(&mut self, e: &ForkCall) {
        if let Some(w) = self.windows.iter_mut().rev().find(|w| w.child == e.child && w.parent == e.parent) {
            w.fork_call_ns = Some(e.latency_ns);
            self.call_latency.record(e.latency_ns);
        }
    }

    /// Records a child found alive at attach (`epoch` 0 if it shares memory).
    pub fn adopt(&mut self, parent: u32, child: u32, epoch: u32, start_abs: u64, t0: u64, vmstat: Vmstat) {
        let w = Window::new(parent, child, epoch, start_abs, t0, vmstat, 0);
        self.push(Window { attached_mid_window: true, ..w });
    }

    fn push(&mut self, mut w: Window) {
        if let Some((ts, ending)) = self.early_exits.remove(&w.child) {
            w.close(ts, ending);
        }
        self.windows.push(w);
    }

    /// Records the exit of a forked child.
    pub fn exit(&mut self, e: &Exit) {
        let ending = Ending::of(e);
        match self.windows.iter_mut().find(|w| w.child == e.tgid && !w.exited) {
            Some(w) => w.close(e.ts, ending),
            None => {
                self.early_exits.insert(e.tgid, (e.ts, ending));
            }
        }
    }

    /// Records the end of a window (the child's memory released); returns it
    /// as (parent, epoch).
    pub fn window_end(&mut self, e: &WindowEnd) -> Option<(u32, u32)> {
        let w = self.windows.iter_mut().find(|w| w.child == e.child && w.epoch > 0 && !w.released)?;
        w.released = true;
        w.teardown_ns = w.end_abs.map(|end| e.ts.saturating_sub(end));
        self.lifetime.record(e.ts.saturating_sub(w.start_abs));
        Some((w.parent, w.epoch))
    }

    /// Records a window-holding child's call to `exit`; returns its window.
    pub fn exiting(&mut self, e: &Exiting) -> Option<(u32, u32)> {
        let w = self.windows.iter_mut().find(|w| w.child == e.child && !w.exited)?;
        let copied = e.parent_copies.wrapping_sub(w.parent_copies_at_fork);
        w.copies_before_exit = Some(copied as u64);
        Some((w.parent, w.epoch))
    }

    /// Whether a snapshot window is open.
    pub fn open(&self) -> bool {
        self.windows.iter().any(|w| w.epoch > 0 && !w.released)
    }

    /// Whether window `epoch` of `parent` is over.
    pub fn closed(&self, parent: u32, epoch: u32) -> bool {
        self.windows.iter().any(|w| w.parent == parent && w.epoch == epoch && w.released)
    }

    /// The window `epoch` of `parent`.
    pub fn window_mut(&mut self, parent: u32, epoch: u32) -> Option<&mut Window> {
        self.windows.iter_mut().find(|w| w.parent == parent && w.epoch == epoch)
    }

    /// Adds a point to the gauge of every open window; `copies` gives a
    /// process's running copy count (`Task::copies`).
    pub fn sample(&mut self, now: u64, copies: impl Fn(u32) -> Option<u32>) {
        for w in self.windows.iter_mut().filter(|w| w.epoch > 0 && !w.released) {
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

    /// Starts a new interval at `now`.
    pub fn next_interval(&mut self, now: u64) {
        self.latency.next_interval();
        self.call_latency.next_interval();
        self.lifetime.next_interval();
        self.interval_start = now;
    }

    /// The report in `scope`, with vmstat deltas of open windows taken up to now.
    pub fn report(&self, scope: Scope) -> ForksReport {
        let now = procfs::vmstat();
        let since = if scope == Scope::Interval { self.interval_start } else { 0 };
        let windows: Vec<Window> = self
            .windows
            .iter()
            .filter(|w| w.end_abs.is_none_or(|end| end >= since))
            .cloned()
            .map(|mut w| {
                if !w.released && w.epoch > 0 {
                    w.vmstat_delta = procfs::vmstat_delta(&w.vmstat_at_fork, &now);
                }
                w
            })
            .collect();
        let count = windows.iter().filter(|w| w.start_abs >= since).count();
        ForksReport {
            count,
            latency: self.latency.summary(scope),
            call_latency: self.call_latency.summary(scope),
            lifetime: self.lifetime.summary(scope),
            windows,
        }
    }
}

impl Window {
    fn new(parent: u32, child: u32, epoch: u32, start_abs: u64, t0: u64, vmstat: Vmstat, copies: u32) -> Window {
        Window {
            parent,
            child,
            epoch,
            attached_mid_window: false,
            clone_flags: None,
            fork_latency_ns: None,
            fork_call_ns: None,
            start_ns: start_abs as i64 - t0 as i64,
            lifetime_ns: None,
            exit_code: None,
            ending: None,
            exited: false,
            teardown_ns: None,
            released: false,
            copies_before_exit: None,
            vmstat_delta: Vmstat::new(),
            copy_gauge: Vec::new(),
            self_check: None,
            vmstat_at_fork: vmstat,
            parent_copies_at_fork: copies,
            start_abs,
            end_abs: None,
        }
    }

    fn close(&mut self, ts: u64, ending: Ending) {
        self.exited = true;
        self.ending = Some(ending);
        self.exit_code = match ending {
            Ending::Exit(code) => Some(code),
            _ => None,
        };
        self.end_abs = Some(ts);
        self.lifetime_ns = Some(ts.saturating_sub(self.start_abs));
        if self.epoch > 0 {
            self.vmstat_delta = procfs::vmstat_delta(&self.vmstat_at_fork, &procfs::vmstat());
        } else {
            self.released = true;
        }
    }
}
