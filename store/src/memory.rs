//! Memory figures for INFO: what the allocator holds, what the kernel maps,
//! and how much of it is backed by transparent huge pages.

use tikv_jemalloc_ctl::{epoch, stats};

/// One reading of the process's memory.
pub struct MemorySample {
    /// Bytes allocated by the program (`used_memory`).
    pub allocated: u64,
    /// Bytes in pages the allocator has active.
    pub active: u64,
    /// Bytes the allocator keeps resident.
    pub resident: u64,
    /// Resident set size (`used_memory_rss`).
    pub rss: u64,
    /// Physical memory of the machine.
    pub total_system: u64,
    /// Anonymous memory backed by huge pages (`AnonHugePages` in smaps_rollup).
    pub anon_huge_pages: u64,
    /// True when `PR_SET_THP_DISABLE` is in effect for this process.
    pub thp_disabled: bool,
}

/// Bytes currently allocated (cheap: used by the cron for the peak).
pub fn allocated() -> u64 {
    let _ = epoch::advance();
    stats::allocated::read().unwrap_or(0) as u64
}

/// Takes a full reading (reads /proc; meant for INFO, not hot paths).
pub fn sample() -> MemorySample {
    let allocated = allocated();
    MemorySample {
        allocated,
        active: stats::active::read().unwrap_or(0) as u64,
        resident: stats::resident::read().unwrap_or(0) as u64,
        rss: rss(),
        total_system: meminfo_total(),
        anon_huge_pages: smaps_rollup_field("AnonHugePages:"),
        // SAFETY: PR_GET_THP_DISABLE takes no pointers.
        thp_disabled: unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1,
    }
}

/// Resident set size in bytes, from /proc/self/statm.
pub fn rss() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn meminfo_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).and_then(kb_value))
        .unwrap_or(0)
}

/// A `Name:   N kB` field of /proc/self/smaps_rollup, in bytes.
pub fn smaps_rollup_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(name)).and_then(kb_value))
        .unwrap_or(0)
}

fn kb_value(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}
