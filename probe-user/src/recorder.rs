//! Turns the record stream and the in-kernel maps into the report's figures.

use crate::{
    attach::Existing,
    cow::{self, CowReport},
    exposure::Exposure,
    files::Files,
    forks::{Ending, Forks},
    histo::Scope,
    loader::Probe,
    procfs::{self, AddressSpace, Vmstat},
    report::{Drops, Report, Resources, TargetInfo},
    selfcheck::{Pair, SelfCheck},
};
use anyhow::Result;
use probe_ebpf::{CLONE_VM, PageKey, PageStat, Record, counter};
use std::collections::HashMap;

/// Current `CLOCK_MONOTONIC` time in ns, the clock the programs stamp events with.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// How often the target's mappings (`/proc/PID/maps` only) are reread while recording.
const REREAD_NS: u64 = 1_000_000_000;
/// How long after a fork its child's address space is read: a large child's
/// smaps takes milliseconds of CPU to read, which on the parent's CPU made
/// the parent's `fork()` return that much later (the first records of the
/// child, such as its `sync_file_range` calls, wake cowscope at once).
const CHILD_READ_DELAY_NS: u64 = 20_000_000;

/// State accumulated over one recording.
pub struct Recorder {
    root: u32,
    target: TargetInfo,
    t0: u64,
    followed_at: u64,
    at_fork: HashMap<(u32, u32), AddressSpace>,
    latest: HashMap<u32, AddressSpace>,
    last_read: u64,
    vmstat_start: Vmstat,
    vmstat_last: Vmstat,
    forks: Forks,
    files: Files,
    exposure: Exposure,
    root_exit: Option<Ending>,
    /// Rows of closed windows, whose entries left the kernel's map.
    folded: cow::Table,
    /// The same, since the previous interval report.
    folded_interval: cow::Table,
    /// Live page entries as the previous interval report saw them.
    seen: HashMap<PageKey, PageStat>,
    selfcheck: SelfCheck,
    /// The self-check pair before each window of the target opened.
    window_pairs: HashMap<u32, Pair>,
    /// Children whose address space is to be read: (child, parent, epoch, when).
    to_read: Vec<(u32, u32, u32, u64)>,
    /// Closed windows of the target waiting for a pair after their exit.
    checks_due: Vec<u32>,
    interval_start: u64,
    interval_pair: Option<Pair>,
    reports: u64,
}

impl Recorder {
    /// Starts a recording of `root` (`comm` is its command name), reading
    /// vmstat now and its address space now if it `runs` already (a command
    /// still held before exec is read a second later). `followed_at` is when
    /// the programs started following it.
    pub fn new(root: u32, target: TargetInfo, runs: bool, followed_at: u64) -> Recorder {
        let now = monotonic_ns();
        let mut rec = Recorder {
            root,
            target,
            t0: now,
            followed_at,
            at_fork: HashMap::new(),
            latest: HashMap::new(),
            last_read: now,
            vmstat_start: procfs::vmstat(),
            vmstat_last: procfs::vmstat(),
            forks: Forks::default(),
            files: Files::default(),
            exposure: Exposure::default(),
            root_exit: None,
            folded: cow::Table::default(),
            folded_interval: cow::Table::default(),
            seen: HashMap::new(),
            selfcheck: SelfCheck::new(root),
            window_pairs: HashMap::new(),
            to_read: Vec::new(),
            checks_due: Vec::new(),
            interval_start: now,
            interval_pair: None,
            reports: 0,
        };
        if runs && let Some(space) = AddressSpace::read(root) {
            rec.latest.insert(root, space);
        }
        rec
    }

    /// Records the children found alive at attach, with the window each holds.
    pub fn adopt(&mut self, adopted: &[(Existing, u32)]) {
        for (c, window) in adopted {
            self.forks.adopt(self.root, c.pid, *window, c.start_ns, self.t0, self.vmstat_last.clone());
            if *window > 0
                && let Some(space) = AddressSpace::read(c.pid)
            {
                self.at_fork.insert((self.root, *window), space);
            }
        }
    }

    /// Whether the target has exited.
    pub fn target_exited(&self) -> bool {
        self.root_exit.is_some()
    }

    /// Takes one ring buffer record.
    pub fn handle(&mut self, record: &Record, probe: &mut Probe) {
        match record {
            Record::Fork(e) => {
                if e.clone_flags & CLONE_VM == 0 {
                    let due = e.entry_ns + e.latency_ns + CHILD_READ_DELAY_NS;
                    self.to_read.push((e.child, e.parent, e.epoch, due));
                    if e.parent == self.root
                        && let Some(pair) = self.selfcheck.before(e.entry_ns)
                    {
                        self.window_pairs.insert(e.epoch, pair);
                    }
                }
                self.forks.fork(e, self.t0, self.vmstat_last.clone());
            }
            Record::Exit(e) if e.tgid == self.root => self.root_exit = Some(Ending::of(e)),
            Record::Exit(e) => self.forks.exit(e),
            Record::WindowEnd(e) => {
                self.read_children(u64::MAX);
                let attached = self.forks.windows.iter().any(|w| w.child == e.child && w.attached_mid_window);
                if let Some((parent, epoch)) = self.forks.window_end(e) {
                    if attached && e.ts < self.followed_at {
                        probe.close_lost_window(parent);
                    }
                    if parent == self.root {
                        self.selfcheck.sample(monotonic_ns(), probe.copies_and_fills(self.root));
                        self.checks_due.push(epoch);
                        self.check_windows();
                    }
                    self.fold(probe);
                }
            }
            Record::Exiting(e) => {
                // The child is leaving (a record that wakes cowscope): while
                // the target surely lives, a self-check pair and, if the
                // child's own read missed, the target's mappings.
                if e.parent == self.root {
                    self.selfcheck.sample(monotonic_ns(), probe.copies_and_fills(self.root));
                }
                self.read_children(u64::MAX);
                if let Some((parent, epoch)) = self.forks.exiting(e)
                    && !self.at_fork.contains_key(&(parent, epoch))
                {
                    self.reread_maps(parent);
                }
            }
            Record::ForkCall(e) => self.forks.fork_call(e),
            Record::Sync(e) => self.files.sync(e),
            Record::Write(e) => self.files.write(e),
            Record::Close(e) => self.files.close(e),
            Record::FirstSync(e) => self.files.first_sync(e),
            Record::Marker(e) => self.exposure.marker(e),
            Record::Exec(e) if e.tgid == self.root => {
                let pid = self.root;
                if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                    self.target.comm = comm.trim().to_string();
                }
                if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
                    self.target.exe = exe.display().to_string();
                }
                self.latest.remove(&pid);
                self.reread_maps(pid);
            }
            Record::Exec(_) => {}
        }
    }

    /// Folds the page entries of closed windows into userspace and removes
    /// them from the kernel's map: they can no longer change, and the map
    /// stays as small as the windows still open (plus pages written outside
    /// any window, at most one entry per page of the target).
    fn fold(&mut self, probe: &mut Probe) {
        let Ok(pages) = probe.pages() else { return };
        let closed: Vec<(PageKey, PageStat)> =
            pages.into_iter().filter(|(k, _)| k.epoch > 0 && self.forks.closed(k.owner, k.epoch)).collect();
        if closed.is_empty() {
            return;
        }
        let ctx = context(&self.forks, &self.at_fork, &self.latest);
        let zero = PageStat::default();
        for (k, s) in &closed {
            self.folded.add(&ctx, k, &zero, s);
            let before = self.seen.remove(k).unwrap_or_default();
            self.folded_interval.add(&ctx, k, &before, s);
        }
        let keys: Vec<PageKey> = closed.iter().map(|(k, _)| *k).collect();
        if let Err(e) = probe.remove_pages(&keys) {
            log::warn!("cannot prune the page map: {e:#}");
        }
        // Folded pages were resolved against these; later ones use the
        // newest read of the process's mappings, which this may be.
        let mut done: Vec<(u32, u32)> =
            self.at_fork.keys().filter(|(pid, epoch)| self.forks.closed(*pid, *epoch)).copied().collect();
        done.sort_unstable();
        for key in done {
            if let Some(space) = self.at_fork.remove(&key)
                && self.latest.get(&key.0).is_none_or(|l| l.read_at < space.read_at)
            {
                self.latest.insert(key.0, space);
            }
        }
    }

    /// Reads vmstat (the baseline of the next fork's window), a self-check
    /// pair, adds a point to the memory gauge of open windows, and rereads the
    /// target's mappings every [`REREAD_NS`].
    pub fn sample(&mut self, probe: &Probe) {
        let now = monotonic_ns();
        self.vmstat_last = procfs::vmstat();
        self.selfcheck.sample(now, probe.copies_and_fills(self.root));
        self.check_windows();
        self.read_children(now);
        if self.root_exit.is_none() && now.saturating_sub(self.last_read) >= REREAD_NS {
            self.last_read = now;
            self.reread_maps(self.root);
        }
        if self.forks.open() {
            self.forks.sample(now, |pid| probe.copies(pid));
        }
    }

    /// Reads the address space of each child due by `now`: the parent's as it
    /// was at the fork (the parent's copies and THP splits have not touched
    /// it), and reading it does not hold up the parent. A child already gone
    /// leaves the parent's mappings (not a walk of its page tables) to place
    /// its pages.
    fn read_children(&mut self, now: u64) {
        let (due, later): (Vec<_>, Vec<_>) = self.to_read.drain(..).partition(|r| r.3 <= now);
        self.to_read = later;
        for (child, parent, epoch, _) in due {
            match AddressSpace::read(child) {
                Some(space) => {
                    self.at_fork.insert((parent, epoch), space);
                }
                None => self.reread_maps(parent),
            }
        }
    }

    /// Rereads `pid`'s mappings (not its page tables), keeping what is known
    /// of their THP backing.
    fn reread_maps(&mut self, pid: u32) {
        if let Some(space) = AddressSpace::reread_maps(pid, self.latest.get(&pid)) {
            self.latest.insert(pid, space);
        }
    }

    /// Compares the kernel's count with cowscope's over each closed window of
    /// the target: from the pair before its fork to the latest pair, taken
    /// when its child left (or later). Both counts cover the same span, so
    /// the agreement holds whatever the span.
    fn check_windows(&mut self) {
        let Some(after) = self.selfcheck.latest() else { return };
        for epoch in std::mem::take(&mut self.checks_due) {
            let before = self.window_pairs.remove(&epoch).or(self.selfcheck.before(0));
            let check = before.and_then(|before| self.selfcheck.between(before, after));
            if let Some(w) = self.forks.window_mut(self.root, epoch) {
                w.self_check = check;
            }
        }
    }

    /// The copy-on-write table of `scope`, from the live entries read once:
    /// cumulative, the folded rows plus every live entry; for an interval,
    /// what the entries gained since the previous interval report. Returns
    /// it with the number of live entries.
    fn cow(&mut self, probe: &Probe, scope: Scope) -> Result<(CowReport, usize)> {
        let mut pages = probe.pages()?;
        // The cut: a fault still being resolved has not happened yet (it is
        // counted with its outcome in the next report).
        let pending = probe.pending_pages();
        if !pending.is_empty() {
            for (k, s) in &mut pages {
                let unresolved = s.faults.saturating_sub(s.copies + s.zero_fills);
                let n = pending.iter().filter(|p| *p == k).count() as u32;
                s.faults -= n.min(unresolved);
            }
        }
        let ctx = context(&self.forks, &self.at_fork, &self.latest);
        let zero = PageStat::default();
        let report = match scope {
            Scope::Cumulative => {
                let mut table = self.folded.clone();
                for (k, s) in &pages {
                    table.add(&ctx, k, &zero, s);
                }
                table.report(&ctx)
            }
            Scope::Interval => {
                let mut table = std::mem::take(&mut self.folded_interval);
                for (k, s) in &pages {
                    table.add(&ctx, k, self.seen.get(k).unwrap_or(&zero), s);
                }
                self.seen = pages.iter().copied().collect();
                table.report(&ctx)
            }
        };
        Ok((report, pages.len()))
    }

    /// Builds a report. `Scope::Interval` covers the time since the previous
    /// interval report (or the start) and starts the next interval; a `final_read`
    /// rereads the target's THP backing first (its last chance).
    pub fn report(&mut self, probe: &Probe, ended_by: &str, scope: Scope, final_read: bool) -> Result<Report> {
        let now = monotonic_ns();
        if final_read && self.root_exit.is_none() {
            // Not periodically: the walk holds the target's mmap lock, which its fork needs.
            if let Some(space) = AddressSpace::read(self.root) {
                self.latest.insert(self.root, space);
            }
        }
        self.read_children(now);
        let counters = probe.counters()?;
        let (cow, entries) = self.cow(probe, scope)?;
        let c = |i: u32| counters[i as usize];
        let (since, self_check) = match scope {
            Scope::Cumulative => (self.t0, self.selfcheck.whole()),
            Scope::Interval => {
                let start = self.interval_pair.or(self.selfcheck.before(0));
                let check = start.zip(self.selfcheck.latest()).and_then(|(a, b)| self.selfcheck.between(a, b));
                (self.interval_start, check)
            }
        };
        self.reports += 1;
        let report = Report {
            target: self.target.clone(),
            scope,
            report_number: self.reports,
            covers_s: now.saturating_sub(since) as f64 / 1e9,
            elapsed_s: now.saturating_sub(self.t0) as f64 / 1e9,
            ended_by: ended_by.to_string(),
            target_exited: self.root_exit.is_some(),
            target_exit_code: match self.root_exit {
                Some(Ending::Exit(code)) => Some(code),
                _ => None,
            },
            target_ending: self.root_exit,
            threads_created: c(counter::THREADS),
            cow,
            forks: self.forks.report(scope),
            vmstat_delta: procfs::vmstat_delta(&self.vmstat_start, &procfs::vmstat()),
            files: self.files.report(scope),
            exposure: probe.markers.then(|| self.exposure.report(scope)),
            self_check,
            self_check_unavailable: self.selfcheck.why_not(),
            drops: Drops {
                ring_buffer: c(counter::DROP_RING),
                page_map: c(counter::DROP_PAGES),
                task_map: c(counter::DROP_TASKS),
                inflight_map: c(counter::DROP_INFLIGHT),
            },
            resources: Resources { page_map_entries: entries as u64, maps: probe.map_memory(), rss_bytes: own_rss() },
            programs: probe.program_costs(),
        };
        if scope == Scope::Interval {
            self.forks.next_interval(now);
            self.files.next_interval();
            self.exposure.next_interval(now);
            self.interval_start = now;
            self.interval_pair = self.selfcheck.latest();
        }
        Ok(report)
    }
}

/// What the copy-on-write table needs to place a page.
fn context<'a>(
    forks: &Forks,
    at_fork: &'a HashMap<(u32, u32), AddressSpace>,
    latest: &'a HashMap<u32, AddressSpace>,
) -> cow::Context<'a> {
    let children = forks.windows.iter().filter(|w| w.epoch > 0).map(|w| ((w.parent, w.epoch), w.child)).collect();
    cow::Context { children, at_fork, latest }
}

/// cowscope's own resident memory, bytes.
fn own_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
