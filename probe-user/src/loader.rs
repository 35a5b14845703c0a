//! Loads the embedded eBPF object, patches in the kernel's tracepoint layout,
//! attaches every program and exposes the maps. Dropping it detaches everything.

use crate::attach::{self, Existing};
use crate::procfs;
use crate::report::ProgramCost;
use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, IterableMap, MapData, PerCpuArray, RingBuf},
    programs::{
        ProgramError, TracePoint, UProbe,
        uprobe::{UProbeError, UProbeScope},
    },
};
use probe_ebpf::{COPY_WINDOW_NS, Layout, PageKey, PageStat, Pending, Task, counter, libc_fork, marker, task};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

/// The eBPF object, built by build.rs from `probe-ebpf` (empty when it was
/// built without the eBPF toolchain: see [`require_programs`]).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowscope-ebpf"));

/// Fails, saying how to fix it, when this binary was built without its eBPF
/// programs (build.rs stubs them when the pinned nightly or bpf-linker is
/// missing, so the workspace checks on stable Rust).
pub fn require_programs() -> Result<()> {
    check_object(OBJECT)
}

fn check_object(object: &[u8]) -> Result<()> {
    if object.is_empty() {
        anyhow::bail!(
            "this cowscope was built without its eBPF programs (the eBPF toolchain was missing): \
             run `cargo xtask setup`, then rebuild it"
        );
    }
    Ok(())
}

/// Every tracepoint program: (program name, category). Program names are the tracepoint names.
const TRACEPOINTS: &[(&str, &str)] = &[
    ("page_fault_user", "exceptions"),
    ("page_fault_kernel", "exceptions"),
    ("mm_page_alloc", "kmem"),
    ("tlb_flush", "tlb"),
    ("sched_process_fork", "sched"),
    ("sched_process_exit", "sched"),
    ("sched_process_exec", "sched"),
    ("sched_process_free", "sched"),
    ("signal_deliver", "signal"),
    ("signal_generate", "signal"),
    ("sys_enter_clone", "syscalls"),
    ("sys_exit_clone", "syscalls"),
    ("sys_enter_clone3", "syscalls"),
    ("sys_exit_clone3", "syscalls"),
    ("sys_enter_fork", "syscalls"),
    ("sys_exit_fork", "syscalls"),
    ("sys_enter_vfork", "syscalls"),
    ("sys_exit_vfork", "syscalls"),
    ("sys_enter_exit_group", "syscalls"),
    ("sys_enter_fsync", "syscalls"),
    ("sys_exit_fsync", "syscalls"),
    ("sys_enter_fdatasync", "syscalls"),
    ("sys_exit_fdatasync", "syscalls"),
    ("sys_enter_sync_file_range", "syscalls"),
    ("sys_exit_sync_file_range", "syscalls"),
    ("sys_enter_write", "syscalls"),
    ("sys_exit_write", "syscalls"),
    ("sys_enter_close", "syscalls"),
];

/// Sizes of the bounded maps.
pub struct Limits {
    /// Entries of the per-page map.
    pub max_pages: u32,
    /// Bytes of the event ring buffer (a power of two multiple of the page size).
    pub ring_bytes: u32,
}

/// The loaded, attached programs and their maps.
pub struct Probe {
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, u64>,
    tasks: HashMap<MapData, u32, Task>,
    /// Whether the cowstore marker uprobes are attached.
    pub markers: bool,
}

impl Probe {
    /// Loads the object with `layout` and attaches every tracepoint program.
    pub fn load(layout: &Layout, limits: &Limits) -> Result<Probe> {
        let mut ebpf = EbpfLoader::new()
            .override_global("LAYOUT", layout, true)
            .map_max_entries("PAGES", limits.max_pages)
            .map_max_entries("EVENTS", limits.ring_bytes)
            .load(OBJECT)
            .map_err(|e| anyhow!("loading the eBPF programs failed: {}", explain(&e)))?;
        for (name, category) in TRACEPOINTS {
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the object"))?
                .try_into()?;
            prog.load().map_err(|e| anyhow!("the kernel refused program {name}: {}", verifier(&e)))?;
            prog.attach(category, name)
                .map_err(|e| anyhow!("cannot attach tracepoint {category}:{name}: {}", explain(&e)))?;
        }
        // A program added to the object but not to TRACEPOINTS or the markers
        // would silently never run: refuse to start instead.
        let known = |name: &str| {
            TRACEPOINTS.iter().any(|(n, _)| *n == name)
                || marker::SYMBOLS.contains(&name)
                || [libc_fork::ENTRY, libc_fork::RETURN].contains(&name)
        };
        if let Some((name, _)) = ebpf.programs().find(|(name, _)| !known(name)) {
            bail!(
                "program {name} is in the eBPF object but cowscope does not attach it (add it to loader::TRACEPOINTS)"
            );
        }
        let counters = PerCpuArray::try_from(ebpf.take_map("COUNTERS").context("COUNTERS")?)?;
        let tasks = HashMap::try_from(ebpf.take_map("TASKS").context("TASKS")?)?;
        Ok(Probe { ebpf, counters, tasks, markers: false })
    }

    /// Starts following `pid` (and, from then on, what it forks), adopting
    /// its `children` found alive at attach: each that shares no memory opens
    /// a window (numbered 1.. in their order). Returns the children adopted
    /// with their window (0 for none) and the time the target was followed.
    ///
    /// The children go in first and the target last, so its window count is
    /// right from its first fault. A child that exits between the liveness
    /// check and the target's insertion closes no window in the kernel: the
    /// recorder sees its exit record from before that time and calls
    /// [`Probe::close_lost_window`].
    pub fn follow(&mut self, pid: u32, children: &[Existing]) -> Result<(Vec<(Existing, u32)>, u64)> {
        let mut adopted = Vec::new();
        let mut windows = 0;
        for c in children {
            let window = if c.shares_memory { 0 } else { windows + 1 };
            let flags = task::CHILD | task::ATTACHED | if window > 0 { task::WINDOW } else { 0 };
            let t = Task { parent: pid, window, flags, ..Task::default() };
            if self.tasks.insert(c.pid, t, 0).is_err() {
                continue;
            }
            if !attach::alive(c.pid) {
                let _ = self.tasks.remove(&c.pid);
                continue;
            }
            windows = windows.max(window);
            adopted.push((*c, window));
        }
        let task = Task { live_children: windows, epoch: windows, ..Task::default() };
        let at = crate::recorder::monotonic_ns();
        self.tasks.insert(pid, task, 0).with_context(|| format!("cannot follow PID {pid}"))?;
        Ok((adopted, at))
    }

    /// Closes a window in the kernel whose child exited before its parent was
    /// followed (see [`Probe::follow`]). Rewrites the parent's entry: a copy
    /// counted in the same microseconds would be lost, which the self-check shows.
    pub fn close_lost_window(&mut self, parent: u32) {
        if let Ok(mut t) = self.tasks.get(&parent, 0)
            && t.live_children > 0
        {
            t.live_children -= 1;
            let _ = self.tasks.insert(parent, t, 0);
        }
    }

    /// Attaches uprobes to cowstore's marker functions in `exe`; returns false,
    /// attaching nothing, when `exe` does not export the first of them.
    pub fn attach_markers(&mut self, exe: &Path) -> Result<bool> {
        for (i, symbol) in marker::SYMBOLS.into_iter().enumerate() {
            let prog: &mut UProbe = self
                .ebpf
                .program_mut(symbol)
                .with_context(|| format!("program {symbol} missing from the object"))?
                .try_into()?;
            prog.load().map_err(|e| anyhow!("the kernel refused program {symbol}: {}", verifier(&e)))?;
            match prog.attach(symbol, exe, UProbeScope::AllProcesses) {
                Ok(_) => {}
                Err(ProgramError::UProbeError(UProbeError::SymbolError { .. })) if i == 0 => {
                    return Ok(false);
                }
                Err(e) => {
                    let exe = exe.display();
                    return Err(anyhow!("cannot attach a uprobe to {symbol} in {exe}: {e}"));
                }
            }
        }
        self.markers = true;
        Ok(true)
    }

    /// Attaches the uprobe pair on `fork()` in the libc that `pid` maps (for
    /// the fork as its caller sees it); returns the libc, `None` if `pid` maps
    /// none (a static binary: then only the syscall is timed).
    pub fn attach_libc_fork(&mut self, pid: u32) -> Result<Option<std::path::PathBuf>> {
        let Some(libc) = procfs::libc_of(pid) else {
            return Ok(None);
        };
        for name in [libc_fork::ENTRY, libc_fork::RETURN] {
            let prog: &mut UProbe = self
                .ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the object"))?
                .try_into()?;
            prog.load().map_err(|e| anyhow!("the kernel refused program {name}: {}", verifier(&e)))?;
            prog.attach(libc_fork::SYMBOL, &libc, UProbeScope::AllProcesses)
                .map_err(|e| anyhow!("cannot attach a uprobe to fork in {}: {}", libc.display(), explain(&e)))?;
        }
        Ok(Some(libc))
    }

    /// Pages `pid` has copied since it was followed, while it is followed.
    pub fn copies(&self, pid: u32) -> Option<u32> {
        self.tasks.get(&pid, 0).ok().map(|t| t.copies)
    }

    /// Copies and zero-page fills of `pid` since it was followed (what delay
    /// accounting counts as copies), while it is followed.
    pub fn copies_and_fills(&self, pid: u32) -> Option<u64> {
        self.tasks.get(&pid, 0).ok().map(|t| t.copies as u64 + t.zero_fills as u64)
    }

    /// Sums each counter over the CPUs.
    pub fn counters(&self) -> Result<[u64; counter::COUNT as usize]> {
        let mut out = [0u64; counter::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.counters.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    /// Every entry of the per-page map.
    pub fn pages(&self) -> Result<Vec<(PageKey, PageStat)>> {
        let map = self.ebpf.map("PAGES").context("PAGES")?;
        let pages: HashMap<&MapData, PageKey, PageStat> = HashMap::try_from(map)?;
        Ok(pages.iter().filter_map(|e| e.ok()).collect())
    }

    /// The pages of write faults still being resolved (counted as faults,
    /// their copy or reuse not known yet): at most one per thread, younger
    /// than [`COPY_WINDOW_NS`] (an older one can only be a reuse).
    pub fn pending_pages(&self) -> Vec<PageKey> {
        let Some(map) = self.ebpf.map("PENDING") else { return Vec::new() };
        let Ok(pending) = HashMap::<&MapData, u32, Pending>::try_from(map) else { return Vec::new() };
        let since = crate::recorder::monotonic_ns().saturating_sub(COPY_WINDOW_NS);
        pending.iter().filter_map(|e| e.ok()).filter(|(_, p)| p.ts >= since).map(|(_, p)| p.key).collect()
    }

    /// Removes entries of the per-page map (folded into userspace).
    pub fn remove_pages(&mut self, keys: &[PageKey]) -> Result<()> {
        let map = self.ebpf.map_mut("PAGES").context("PAGES")?;
        let mut pages: HashMap<&mut MapData, PageKey, PageStat> = HashMap::try_from(map)?;
        for k in keys {
            let _ = pages.remove(k);
        }
        Ok(())
    }

    /// Kernel memory of each map, as the kernel accounts it (`memlock` in the
    /// map's fdinfo: what its elements use now, for maps that allocate on demand).
    pub fn map_memory(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .ebpf
            .maps()
            .filter_map(|(name, map)| Some((name.to_string(), fdinfo_memlock(map_fd(map)?)?)))
            .collect();
        let taken = [("COUNTERS", IterableMap::map(&self.counters)), ("TASKS", IterableMap::map(&self.tasks))];
        for (name, fd) in taken.map(|(name, m)| (name, m.fd().as_fd())) {
            if let Some(bytes) = fdinfo_memlock(fd.as_raw_fd()) {
                out.push((name.to_string(), bytes));
            }
        }
        out.sort();
        out
    }

    /// Takes the event ring buffer (once).
    pub fn events(&mut self) -> Result<RingBuf<MapData>> {
        Ok(RingBuf::try_from(self.ebpf.take_map("EVENTS").context("EVENTS")?)?)
    }

    /// Starts forwarding the programs' aya-log records to `log`.
    pub fn logger(&mut self) -> Result<aya_log::EbpfLogger<&'static dyn log::Log>> {
        aya_log::EbpfLogger::init(&mut self.ebpf).map_err(|e| anyhow!("aya-log: {e}"))
    }

    /// Run counts and times of the programs that ran, as
    /// `kernel.bpf_stats_enabled` accounts them (empty when it is off).
    pub fn program_costs(&self) -> Vec<ProgramCost> {
        self.ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                Some(ProgramCost {
                    name: name.to_string(),
                    runs: info.run_count(),
                    run_time_ns: info.run_time().as_nanos() as u64,
                })
            })
            .filter(|c| c.runs > 0)
            .collect()
    }
}

fn map_fd(map: &aya::maps::Map) -> Option<i32> {
    use aya::maps::Map;
    let data = match map {
        Map::HashMap(m) | Map::LruHashMap(m) | Map::PerCpuHashMap(m) => m,
        Map::RingBuf(m) | Map::Array(m) | Map::PerCpuArray(m) => m,
        _ => return None,
    };
    Some(data.fd().as_fd().as_raw_fd())
}

fn fdinfo_memlock(fd: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("memlock:")).and_then(|v| v.trim().parse().ok())
}

/// An error's text, with what to do about it when the kernel said EPERM.
fn explain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    if text.contains("Operation not permitted") {
        text.push_str(
            " (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; \
             kernel lockdown or a security policy may also forbid it)",
        );
    }
    text
}

/// The verifier's last lines, or the error itself.
fn verifier(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            format!("{io_error}; verifier: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
        }
        other => explain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stub_object_is_refused_with_the_fix() {
        let e = check_object(&[]).unwrap_err().to_string();
        assert!(e.contains("built without its eBPF programs") && e.contains("cargo xtask setup"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(check_object(b"\x7fELF").is_ok());
    }
}
