//! `children` (many windows in a row, overlapping) and `child-writes`
//! (copies made by the child, not the parent).

use crate::{child, region::Region, taskstats, truth};
use serde_json::{Value, json};

/// N children, each forked while the one before still lives: fork child
/// k, write pages k×PAGES..(k+1)×PAGES (children k−1 and k alive), then let
/// child k−1 exit. Reports, per child, the process's count just before its
/// fork and just after the pages written while it was the newest.
pub fn run(children: usize, pages: usize) -> Value {
    let region = Region::private(children * pages, false);
    region.write(0..children * pages, 1);
    let before = truth::copies();
    let mut older: Option<child::Held> = None;
    let mut per_child = Vec::with_capacity(children);
    for k in 0..children {
        let at_fork = truth::copies();
        let held = child::fork_held();
        region.write(k * pages..(k + 1) * pages, 2);
        let written = truth::copies();
        per_child.push(json!({
            "pid": held.pid,
            "pages_from": k * pages,
            "wpcopy_fork": at_fork.count,
            "wpcopy_written": written.count,
        }));
        if let Some(c) = older.replace(held) {
            c.release();
        }
    }
    if let Some(c) = older {
        c.release();
    }
    let after = truth::copies();
    json!({
        "child": per_child.iter().map(|c| c["pid"].clone()).collect::<Vec<_>>(),
        "children": per_child,
        "addr": region.addr(),
        "len": region.len(),
        "pages_per_child": pages,
        "wpcopy_before": before.count,
        "wpcopy_after": after.count,
        "wpcopy_delay_ns": after.delay_total_ns - before.delay_total_ns,
    })
}

/// The child writes PAGES pages shared with the parent and reports its own
/// count (by its PID) before and after, through a pipe; the parent idles.
pub fn child_writes(pages: usize) -> Value {
    let region = Region::private(pages, false);
    region.write(0..pages, 1);
    let mut pipe = [0i32; 2];
    // SAFETY: pipe(2) fills the array.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        crate::fail("pipe");
    }
    let before = truth::copies();
    // SAFETY: this process has one thread, so the child may allocate and
    // ask taskstats (no lock can be held by a thread that is gone).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        crate::fail("fork");
    }
    if pid == 0 {
        let me = std::process::id();
        let counts = taskstats::wpcopy(me).and_then(|b| {
            region.write(0..pages, 2);
            Ok([b, taskstats::wpcopy(me)?])
        });
        // SAFETY: writes our own bytes to our pipe, then exits without atexit.
        unsafe {
            match counts {
                Ok(c) => {
                    let words = [c[0].count, c[1].count, c[0].delay_total_ns, c[1].delay_total_ns];
                    libc::write(pipe[1], words.as_ptr().cast(), std::mem::size_of_val(&words));
                    libc::_exit(0)
                }
                Err(e) => {
                    eprintln!("cowscope-groundtruth child: {e}");
                    libc::_exit(3)
                }
            }
        }
    }
    // SAFETY: the write end is the child's.
    unsafe { libc::close(pipe[1]) };
    let mut words = [0u64; 4];
    // SAFETY: reads into our own array.
    let n = unsafe { libc::read(pipe[0], words.as_mut_ptr().cast(), std::mem::size_of_val(&words)) };
    child::reap(pid, "writing child");
    if n != std::mem::size_of_val(&words) as isize {
        crate::fail("the child sent no counts");
    }
    let after = truth::copies();
    json!({
        "child": pid,
        "addr": region.addr(),
        "len": region.len(),
        "pages": pages,
        "child_wpcopy_before": words[0],
        "child_wpcopy_after": words[1],
        "child_wpcopy_delay_ns": words[3] - words[2],
        "wpcopy_before": before.count,
        "wpcopy_after": after.count,
    })
}
