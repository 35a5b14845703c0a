//! Turns the event stream and the in-kernel maps into the report's figures.

use crate::{
    cow,
    exposure::Exposure,
    files::Files,
    forks::Forks,
    loader::Probe,
    procfs::{self, AddressSpace, Vmstat},
    report::{Drops, Report, TargetInfo},
};
use anyhow::Result;
use probe_ebpf::{CLONE_VM, Event, counter, event};
use std::collections::HashMap;

/// Current `CLOCK_MONOTONIC` time in ns, the clock the programs stamp events with.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// How often the target's address space is reread while recording.
const REREAD_NS: u64 = 1_000_000_000;

/// State accumulated over one recording.
pub struct Recorder {
    root: u32,
    target: TargetInfo,
    t0: u64,
    at_fork: HashMap<(u32, u32), AddressSpace>,
    latest: HashMap<u32, AddressSpace>,
    last_read: u64,
    vmstat_start: Vmstat,
    vmstat_last: Vmstat,
    forks: Forks,
    files: Files,
    exposure: Exposure,
    root_exit: Option<Option<u32>>,
}

impl Recorder {
    /// Starts a recording of `root` (`comm` is its command name), reading
    /// vmstat now and its address space now if it `runs` already (a command
    /// still held before exec is read a second later).
    pub fn new(root: u32, comm: String, exe: String, runs: bool) -> Recorder {
        let mut rec = Recorder {
            root,
            target: TargetInfo { pid: root, comm, exe },
            t0: monotonic_ns(),
            at_fork: HashMap::new(),
            latest: HashMap::new(),
            last_read: 0,
            vmstat_start: procfs::vmstat(),
            vmstat_last: procfs::vmstat(),
            forks: Forks::default(),
            files: Files::default(),
            exposure: Exposure::default(),
            root_exit: None,
        };
        if runs {
            rec.reread(monotonic_ns());
        } else {
            rec.last_read = monotonic_ns();
        }
        rec
    }

    /// Rereads the target's address space, so regions mapped and unmapped
    /// later are still resolved after it exits.
    fn reread(&mut self, now: u64) {
        self.last_read = now;
        if let Some(space) = AddressSpace::read(self.root) {
            self.latest.insert(self.root, space);
        }
    }

    /// Whether the target has exited.
    pub fn target_exited(&self) -> bool {
        self.root_exit.is_some()
    }

    /// Takes one ring buffer record.
    pub fn handle(&mut self, e: &Event) {
        match e.kind {
            event::FORK => {
                // The child's address space is the parent's as it was at the fork:
                // the parent's own copies and THP splits have not touched it.
                if e.a & CLONE_VM == 0
                    && let Some(space) = AddressSpace::read(e.aux).or_else(|| AddressSpace::read(e.tgid))
                {
                    self.at_fork.insert((e.tgid, e.b as u32), space);
                }
                self.forks.fork(e, self.t0, self.vmstat_last.clone());
            }
            event::EXIT if e.tgid == self.root => {
                self.root_exit = Some((e.a != u64::MAX).then_some(e.a as u32));
            }
            event::EXIT => self.forks.exit(e),
            event::EXITING => self.forks.exiting(e),
            event::SYNC => self.files.sync(e),
            event::WRITE => self.files.write(e),
            event::CLOSE => self.files.close(e),
            event::FIRST_SYNC => self.files.first_sync(e),
            event::MARKER => self.exposure.marker(e),
            _ => log::warn!("unknown event kind {}", e.kind),
        }
    }

    /// Reads vmstat (the baseline of the next fork's window), adds a point to
    /// the memory gauge of open windows, and rereads the target's address
    /// space every [`REREAD_NS`].
    pub fn sample(&mut self, probe: &Probe) {
        let now = monotonic_ns();
        self.vmstat_last = procfs::vmstat();
        if self.root_exit.is_none() && now.saturating_sub(self.last_read) >= REREAD_NS {
            self.reread(now);
        }
        if self.forks.open() {
            self.forks.sample(now, |pid| probe.copies(pid));
        }
    }

    /// Builds the report from what has been seen and the maps as they are now.
    pub fn report(&mut self, probe: &Probe, ended_by: &str) -> Result<Report> {
        let counters = probe.counters()?;
        let pages = probe.pages()?;
        if self.root_exit.is_none() {
            self.reread(monotonic_ns());
        }
        let forks = self.forks.report();
        let children = forks.windows.iter().map(|w| (w.child, (w.parent, w.epoch))).collect();
        let ctx = cow::Context { children, at_fork: &self.at_fork, latest: &self.latest };
        let c = |i: u32| counters[i as usize];
        Ok(Report {
            target: self.target.clone(),
            elapsed_s: monotonic_ns().saturating_sub(self.t0) as f64 / 1e9,
            ended_by: ended_by.to_string(),
            target_exited: self.root_exit.is_some(),
            target_exit_code: self.root_exit.flatten(),
            threads_created: c(counter::THREADS),
            cow: cow::table(&ctx, &pages, &counters),
            forks,
            vmstat_delta: procfs::vmstat_delta(&self.vmstat_start, &procfs::vmstat()),
            files: self.files.report(),
            exposure: probe.markers.then(|| self.exposure.report()),
            drops: Drops {
                ring_buffer: c(counter::DROP_RING),
                page_map: c(counter::DROP_PAGES),
                task_map: c(counter::DROP_TASKS),
                inflight_map: c(counter::DROP_INFLIGHT),
            },
            programs: probe.program_costs(),
        })
    }
}
