//! `markers`: cowstore's uprobe markers, called as cowstore calls them.

use std::time::Instant;

// Each marker's body differs (and is opaque to the optimizer): identical bodies
// would be folded into one address, where a uprobe on one fires for all.
/// Keeps the markers as named functions in the executable: fat LTO would
/// otherwise inline them into their callers and drop the symbols.
#[used]
static MARKERS: (extern "C" fn(u64, u64), extern "C" fn(u64), extern "C" fn(u32), extern "C" fn(u32, u32)) =
    (cowstore_marker_writes_acked, cowstore_marker_fsync_done, cowstore_marker_fork, cowstore_marker_snapshot_end);

/// `cowstore_marker_writes_acked(aof_offset, count)`, as cowstore exports it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_writes_acked(aof_offset: u64, count: u64) {
    std::hint::black_box((aof_offset, count, 1u8));
}

/// `cowstore_marker_fsync_done(aof_offset)`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_fsync_done(aof_offset: u64) {
    std::hint::black_box((aof_offset, 2u8));
}

/// `cowstore_marker_fork(child_pid)`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_fork(child_pid: u32) {
    std::hint::black_box((child_pid, 3u8));
}

/// `cowstore_marker_snapshot_end(child_pid, ok)`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_snapshot_end(child_pid: u32, ok: u32) {
    std::hint::black_box((child_pid, ok, 4u8));
}

/// Acknowledges WRITES writes in batches, marks fsyncs, then one fork.
pub fn run(writes: usize) -> serde_json::Value {
    let mut offset = 0u64;
    let mut acked: Vec<Instant> = Vec::new();
    let mut exposure_ns: Vec<u64> = Vec::new();
    // Writes are acknowledged in batches of 1, 2, 3 and 4 (ten per fsync),
    // as cowstore acknowledges the writes of an event-loop pass together.
    for i in 1..=writes {
        // The batch that ends with write i, if one does.
        let batch: u64 = match i % 10 {
            1 => 1,
            3 => 2,
            6 => 3,
            0 => 4,
            _ => continue,
        };
        offset += 100 * batch;
        let now = Instant::now();
        acked.extend(std::iter::repeat_n(now, batch as usize));
        cowstore_marker_writes_acked(offset, batch);
        if i % 10 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            cowstore_marker_fsync_done(offset);
            let done = Instant::now();
            exposure_ns.extend(acked.drain(..).map(|t| (done - t).as_nanos() as u64));
        }
    }
    // SAFETY: fork(2) in a single-threaded process; the child exits at once.
    let child = unsafe { libc::fork() };
    if child == 0 {
        unsafe { libc::_exit(0) };
    }
    cowstore_marker_fork(child as u32);
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    cowstore_marker_snapshot_end(child as u32, 1);
    exposure_ns.sort_unstable();
    serde_json::json!({
        "writes": writes,
        "fsyncs": writes / 10,
        "child": child,
        "exposure_p50_ns": exposure_ns.get(exposure_ns.len() / 2),
        "exposure_max_ns": exposure_ns.last(),
    })
}
