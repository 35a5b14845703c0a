//! What the kernel says the workload did: copies, faults, dirty memory.

use crate::taskstats::{self, Wpcopy};

/// This process's copies so far (all its threads, exited ones included);
/// fails loudly when taskstats cannot say.
pub fn copies() -> Wpcopy {
    taskstats::wpcopy_tgid(std::process::id()).unwrap_or_else(|e| crate::fail(&e.to_string()))
}

/// The calling thread's copies so far.
pub fn thread_copies() -> Wpcopy {
    // SAFETY: gettid(2) has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    taskstats::wpcopy(tid).unwrap_or_else(|e| crate::fail(&e.to_string()))
}

/// Minor faults taken by the calling thread so far (`RUSAGE_THREAD`).
pub fn minor_faults() -> u64 {
    // SAFETY: getrusage fills the zeroed struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    usage.ru_minflt as u64
}

/// `Private_Dirty` of process `pid` in KiB, from `/proc/PID/smaps_rollup`.
pub fn private_dirty_kib(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_else(|e| crate::fail(&format!("smaps_rollup of {pid}: {e}")));
    text.lines()
        .find_map(|l| l.strip_prefix("Private_Dirty:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| crate::fail(&format!("no Private_Dirty for {pid}")))
}
