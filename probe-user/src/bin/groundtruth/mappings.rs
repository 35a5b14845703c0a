//! `madvise` and `shared`: mappings whose writes after a fork copy nothing.

use crate::{
    child,
    region::{PAGE, Region},
    truth,
};
use serde_json::{Value, json};
use std::{os::fd::AsRawFd, path::Path};

/// Writes every page of `region` (fork window open) and returns its JSON
/// with the copies and minor faults that writing took (the faults counted
/// around the writes alone).
fn phase(region: &Region, value: u8) -> Value {
    let copies = truth::copies();
    let faults = truth::minor_faults();
    region.write(0..region.len() / PAGE, value);
    let faults_after = truth::minor_faults();
    let copies_after = truth::copies();
    let mut v = region.json();
    v["wpcopy"] = json!(copies_after.count - copies.count);
    v["minor_faults"] = json!(faults_after - faults);
    v
}

/// Three regions of PAGES pages, all written before the fork: `normal`
/// (private: copies after the fork), `dontfork` (`MADV_DONTFORK`: the child
/// has no such mapping) and `wipeonfork` (`MADV_WIPEONFORK`: the child's is
/// empty). The kernel write-protects only `normal`, so writing the other
/// two after the fork takes no fault at all; each region reports its
/// `wpcopy` and `minor_faults` deltas.
pub fn madvise(pages: usize) -> Value {
    let normal = Region::private(pages, false);
    let dontfork = Region::private(pages, false);
    dontfork.advise(libc::MADV_DONTFORK, "MADV_DONTFORK");
    let wipeonfork = Region::private(pages, false);
    wipeonfork.advise(libc::MADV_WIPEONFORK, "MADV_WIPEONFORK");
    for r in [&normal, &dontfork, &wipeonfork] {
        r.write(0..pages, 1);
    }
    let before = truth::copies();
    let held = child::fork_held();
    let pid = held.pid;
    // The first count after the fork copies the stack and heap pages it
    // writes; taking it here keeps those copies out of the phases.
    truth::copies();
    let regions = json!({
        "normal": phase(&normal, 2),
        "dontfork": phase(&dontfork, 2),
        "wipeonfork": phase(&wipeonfork, 2),
    });
    held.release();
    let after = truth::copies();
    json!({
        "child": pid,
        "pages": pages,
        "regions": regions,
        "wpcopy_before": before.count,
        "wpcopy_after": after.count,
    })
}

/// Three regions of PAGES pages, all written before the fork, written again
/// after it: `shared_anon` (`MAP_SHARED|MAP_ANONYMOUS`: no copy, no fault),
/// `shared_file` (`MAP_SHARED` on DIR/cowscope-shared-PID, flushed with
/// `msync(MS_SYNC)` so its pages are clean and write-protected: one
/// dirty-tracking write fault per page on a disk file system, none on
/// tmpfs, no copies) and `private` (the only copies). Each region reports
/// its `wpcopy` and `minor_faults` deltas; the file is removed at the end.
pub fn shared(dir: &Path, pages: usize) -> Value {
    let anon = Region::map(pages, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1);
    anon.advise(libc::MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE");
    let path = dir.join(format!("cowscope-shared-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|f| f.set_len((pages * PAGE) as u64).map(|()| f))
        .unwrap_or_else(|e| crate::fail(&format!("{}: {e}", path.display())));
    let mapped = Region::map(pages, libc::MAP_SHARED, file.as_raw_fd());
    let private = Region::private(pages, false);
    for r in [&anon, &mapped, &private] {
        r.write(0..pages, 1);
    }
    mapped.sync();
    let before = truth::copies();
    let held = child::fork_held();
    let pid = held.pid;
    // The first count after the fork copies the stack and heap pages it
    // writes; taking it here keeps those copies out of the phases.
    truth::copies();
    let regions = json!({
        "shared_anon": phase(&anon, 2),
        "shared_file": phase(&mapped, 2),
        "private": phase(&private, 2),
    });
    held.release();
    let after = truth::copies();
    let _ = std::fs::remove_file(&path);
    json!({
        "child": pid,
        "pages": pages,
        "file": path,
        "regions": regions,
        "wpcopy_before": before.count,
        "wpcopy_after": after.count,
    })
}
