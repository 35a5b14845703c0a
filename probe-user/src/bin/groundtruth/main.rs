//! Ground-truth workloads for cowscope's tests: each does a known amount of
//! work and writes what it did, and the kernel's own counts, to a JSON file
//! (its last argument, written whole by rename). Failures exit non-zero
//! with a message. Pages are 4 KiB (`MADV_NOHUGEPAGE`) unless said.
//!
//! Every workload but `sync` and `markers` needs `kernel.task_delayacct` on
//! *before* it starts (the kernel counts only tasks created while it is on:
//! started with it off, a workload turns it on, says so and fails) and
//! reports taskstats' `wpcopy_count` of the whole process (all threads,
//! exited ones included): `wpcopy_before` just before the (first) fork and
//! `wpcopy_after` once the last window has closed (most also give
//! `wpcopy_delay_ns`, the time spent copying in between). A few copies
//! beyond the pages written (about 4 per fork) are the process's own stack,
//! heap and libc data.
//!
//! - `cow MIB PAGES AFTER ZERO THP RESULT`: maps MIB of private anonymous
//!   memory (`MADV_HUGEPAGE` if THP is 1), writes it but for its last ZERO
//!   pages, which it only reads (they map the shared zero page), forks,
//!   writes PAGES distinct pages and the ZERO pages while the child lives,
//!   lets the child exit, then writes AFTER other pages.
//! - `sync PATH COUNT RESULT`: COUNT × (write + fsync), then COUNT × (write + fdatasync).
//! - `markers WRITES RESULT`: calls cowstore's marker functions as cowstore would.
//! - `threads N PAGES RESULT`: N unpinned threads each write PAGES disjoint
//!   pages at the same time, right after the main thread forked; the child
//!   exits once all have written.
//! - `children N PAGES RESULT`: N children in a row with overlapping
//!   windows: child k+1 is forked while child k lives, then the parent
//!   writes PAGES new pages (both children alive), then child k exits.
//! - `child-writes PAGES RESULT`: the child writes PAGES shared pages (its
//!   own copies) while the parent idles, and reports its own count.
//! - `madvise PAGES RESULT`: after a fork, writes PAGES pages in each of a
//!   normal, a `MADV_DONTFORK` and a `MADV_WIPEONFORK` region; only the
//!   first copies (or faults at all).
//! - `shared DIR PAGES RESULT`: after a fork, writes PAGES pages of a
//!   `MAP_SHARED` anonymous region, of a `MAP_SHARED` file in DIR (clean
//!   after `msync`: dirty-tracking faults, no copies) and of a private region
//!   (the only copies).
//! - `spawn RESULT`: `posix_spawn` and `vfork`+`exec` of `/bin/true`
//!   (children that share memory: no window).
//! - `attach BEFORE AFTER READY GO DONE RESULT`: a target for
//!   `cowscope record -p` started mid-window (see `attach.rs`).
//! - `forker MIB PERIOD_MS SECONDS RESULT`: forks every PERIOD_MS for
//!   SECONDS and rewrites its MIB each time (a long recording's target).

use probe_user::taskstats;

mod attach;
mod child;
mod children;
mod cow;
mod forker;
mod mappings;
mod markers;
mod region;
mod spawn;
mod sync;
mod threads;
mod truth;

use std::{path::Path, str::FromStr};

const USAGE: &str = "usage: cowscope-groundtruth WORKLOAD ARGS... RESULT, one of
  cow MIB PAGES AFTER ZERO THP RESULT | sync PATH COUNT RESULT | markers WRITES RESULT
  threads N PAGES RESULT | children N PAGES RESULT | child-writes PAGES RESULT
  madvise PAGES RESULT | shared DIR PAGES RESULT | spawn RESULT
  attach BEFORE AFTER READY GO DONE RESULT | forker MIB PERIOD_MS SECONDS RESULT";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else { usage() };
    let Some((result, rest)) = rest.split_last() else { usage() };
    let wanted = match name.as_str() {
        "spawn" => 0,
        "markers" | "child-writes" | "madvise" => 1,
        "sync" | "threads" | "children" | "shared" => 2,
        "forker" => 3,
        "cow" | "attach" => 5,
        _ => usage(),
    };
    if rest.len() != wanted {
        usage();
    }
    let str = |i: usize| rest[i].as_str();
    let num = |i: usize| parse::<usize>(&rest[i]);
    let _delayacct = (!matches!(name.as_str(), "sync" | "markers")).then(delay_accounting);
    let value = match name.as_str() {
        "cow" => cow::run(num(0), num(1), num(2), num(3), num(4) == 1),
        "sync" => sync::run(str(0), num(1)),
        "markers" => markers::run(num(0)),
        "threads" => threads::run(num(0), num(1)),
        "children" => children::run(num(0), num(1)),
        "child-writes" => children::child_writes(num(0)),
        "madvise" => mappings::madvise(num(0)),
        "shared" => mappings::shared(Path::new(str(0)), num(1)),
        "spawn" => spawn::run(),
        "attach" => {
            let value = attach::run(num(0), num(1), Path::new(str(2)), Path::new(str(3)));
            write_result(result, &value);
            attach::linger(Path::new(str(4)));
            return;
        }
        "forker" => forker::run(num(0), num(1) as u64, num(2) as u64),
        _ => usage(),
    };
    write_result(result, &value);
}

/// Turns delay accounting on for the run, and fails unless it already was:
/// the kernel counts only tasks created while it is on, so this process's
/// own thread would count nothing.
fn delay_accounting() -> taskstats::DelayAcct {
    let on = taskstats::DelayAcct::enable().unwrap_or_else(|e| fail(&e.to_string()));
    if !on.was_on() {
        fail(
            "kernel.task_delayacct was 0 when this workload started, so the kernel does not count its copies; \
             it is 1 now (left on): run the workload again",
        );
    }
    on
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn parse<T: FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("cowscope-groundtruth: not a number: {s:?}");
        usage()
    })
}

/// Prints why the workload cannot go on and exits with status 1 (held
/// children die with it: they have `PR_SET_PDEATHSIG`).
pub fn fail(why: &str) -> ! {
    eprintln!("cowscope-groundtruth: {why}");
    std::process::exit(1)
}

/// Writes `text` to `path` whole: a reader sees no file or all of it.
pub fn write_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .unwrap_or_else(|e| fail(&format!("write {}: {e}", path.display())));
}

fn write_result(path: &str, value: &serde_json::Value) {
    write_file(Path::new(path), &value.to_string());
}
