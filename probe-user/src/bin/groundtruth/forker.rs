//! `forker`: a long-running target that forks periodically.

use crate::{
    child,
    region::{PAGE, Region},
    truth,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Writes MIB of memory, then every PERIOD_MS forks a child that sleeps
/// PERIOD_MS/2 and exits, and rewrites every page once right after each
/// fork (so each window copies the whole region), for SECONDS in all.
/// Reports the number of forks, their pids and the copies over the run.
pub fn run(mib: usize, period_ms: u64, seconds: u64) -> Value {
    if period_ms == 0 {
        crate::fail("PERIOD_MS must be at least 1");
    }
    let pages = (mib << 20) / PAGE;
    let region = Region::private(pages, false);
    region.write(0..pages, 1);
    let period = Duration::from_millis(period_ms);
    let (start, before) = (Instant::now(), truth::copies());
    let mut pids = Vec::new();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        // SAFETY: one thread; the child only sleeps (nanosleep) and _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            crate::fail(&format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            child::sleep_in_child(period / 2);
            // SAFETY: leaves without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
        region.write(0..pages, pids.len() as u8);
        child::reap(pid, "forked child");
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let after = truth::copies();
    json!({
        "child": pids,
        "forks": pids.len(),
        "addr": region.addr(),
        "len": region.len(),
        "wpcopy_before": before.count,
        "wpcopy_after": after.count,
        "wpcopy_delay_ns": after.delay_total_ns - before.delay_total_ns,
    })
}
