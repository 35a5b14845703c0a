//! `threads`: several threads copying at once right after a fork.

use crate::{
    child,
    region::{PAGE, Region},
    truth,
};
use serde_json::{Value, json};
use std::sync::{
    Barrier,
    atomic::{AtomicBool, Ordering},
};

/// N threads (not pinned) each write PAGES disjoint pages of one region at
/// the same time, right after the main thread forked; the child lives until
/// all have written. Reports each thread's own count too.
pub fn run(threads: usize, pages: usize) -> Value {
    let region = Region::private(threads * pages, false);
    region.write(0..threads * pages, 1);
    // `ready`: every thread has read its count; `go`: the fork is done. The
    // threads spin on `go` rather than sleep, so that they are running, on
    // every CPU they can get, when the first copies happen (the mm is live
    // on several CPUs: TLB flushes become remote).
    let (ready, go) = (Barrier::new(threads + 1), AtomicBool::new(false));
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (region, ready, go) = (&region, &ready, &go);
                s.spawn(move || {
                    // SAFETY: gettid(2) has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    let before = truth::thread_copies();
                    ready.wait();
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let start = std::time::Instant::now();
                    region.write(t * pages..(t + 1) * pages, 2);
                    let write_ns = start.elapsed().as_nanos() as u64;
                    let after = truth::thread_copies();
                    json!({
                        "tid": tid,
                        "addr": region.addr() + t * pages * PAGE,
                        "len": pages * PAGE,
                        "wpcopy_before": before.count,
                        "wpcopy_after": after.count,
                        "wpcopy_delay_ns": after.delay_total_ns - before.delay_total_ns,
                        "write_ns": write_ns,
                    })
                })
            })
            .collect();
        ready.wait();
        let before = truth::copies();
        // Fork safety: the held child touches no lock (see child.rs).
        let held = child::fork_held();
        let pid = held.pid;
        go.store(true, Ordering::Release);
        let per_thread: Vec<Value> =
            workers.into_iter().map(|w| w.join().unwrap_or_else(|_| crate::fail("a writer panicked"))).collect();
        let child_private_dirty_kib = truth::private_dirty_kib(pid);
        held.release();
        let after = truth::copies();
        json!({
            "child": pid,
            "addr": region.addr(),
            "len": region.len(),
            "threads": threads,
            "pages_per_thread": pages,
            "per_thread": per_thread,
            "child_private_dirty_kib": child_private_dirty_kib,
            "wpcopy_before": before.count,
            "wpcopy_after": after.count,
            "wpcopy_delay_ns": after.delay_total_ns - before.delay_total_ns,
        })
    })
}
