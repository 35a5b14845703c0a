//! `attach`: a target that `cowscope record -p` attaches to mid-window.
//!
//! 1. Forks a child that lives until told (`wpcopy_before` just before).
//! 2. Writes pages 0..BEFORE (copies before the recorder is there).
//! 3. Writes READY (`"PID CHILD\n"`, whole by rename; `wpcopy_ready` just
//!    before) and waits for the file GO to exist (polled, at most 60 s).
//! 4. Writes pages BEFORE..BEFORE+AFTER (`wpcopy_go` just before,
//!    `wpcopy_written` just after).
//! 5. Lets the child exit and reaps it (`wpcopy_after`), writes the result
//!    file, then lingers until the file DONE exists or 5 s have passed, so a
//!    recorder sees the child's exit before the target's.

use crate::{child, region::Region, truth};
use serde_json::{Value, json};
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// Steps 1–5 up to the result; [`linger`] is step 5's wait.
pub fn run(before: usize, after: usize, ready: &Path, go: &Path) -> Value {
    let region = Region::private(before + after, false);
    region.write(0..before + after, 1);
    let at_fork = truth::copies();
    let held = child::fork_held();
    let pid = held.pid;
    region.write(0..before, 2);
    let at_ready = truth::copies();
    crate::write_file(ready, &format!("{} {pid}\n", std::process::id()));
    if !wait_for(go, Duration::from_secs(60)) {
        crate::fail(&format!("{} did not appear within 60 s", go.display()));
    }
    let at_go = truth::copies();
    region.write(before..before + after, 2);
    let written = truth::copies();
    held.release();
    let at_exit = truth::copies();
    json!({
        "child": pid,
        "addr": region.addr(),
        "len": region.len(),
        "pages_before": before,
        "pages_after": after,
        "wpcopy_before": at_fork.count,
        "wpcopy_ready": at_ready.count,
        "wpcopy_go": at_go.count,
        "wpcopy_written": written.count,
        "wpcopy_after": at_exit.count,
    })
}

/// Waits until `done` exists, for 5 s at most.
pub fn linger(done: &Path) {
    wait_for(done, Duration::from_secs(5));
}

/// Polls every 10 ms until `path` exists; false if `limit` passed first.
fn wait_for(path: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
