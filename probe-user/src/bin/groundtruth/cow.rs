//! `cow`: one child, one writer, 4 KiB pages or THP, and zero-page copies.

use crate::{
    child,
    region::{PAGE, Region},
    truth,
};
use serde_json::{Value, json};

/// See the crate doc: MIB mapped, PAGES + ZERO written in the window, AFTER after it.
pub fn run(mib: usize, pages: usize, after: usize, zero: usize, thp: bool) -> Value {
    let total = (mib << 20) / PAGE;
    if zero > total || pages + after > total - zero {
        crate::fail(&format!("{mib} MiB holds {total} pages: too few for {pages} + {after} + {zero}"));
    }
    let zeros = total - zero..total;
    let region = Region::private(total, thp);
    region.write(0..zeros.start, 1);
    if region.read(zeros.clone()) != 0 {
        crate::fail("the zero pages read non-zero");
    }
    let huge_bytes = anon_huge_bytes(region.addr());
    let before = truth::copies();
    let held = child::fork_held();
    let pid = held.pid;
    // A snapshot child lives at least this long: a recorder reads it as it
    // was at the fork at its next 100 ms tick, not in the fork's way.
    std::thread::sleep(std::time::Duration::from_millis(250));
    region.write(0..pages, 2);
    region.write(zeros, 2);
    held.release();
    region.write(pages..pages + after, 3);
    let after_count = truth::copies();
    json!({
        "addr": region.addr(),
        "len": region.len(),
        "pages": pages,
        "after": after,
        "zero": zero,
        "child": pid,
        "anon_huge_bytes": huge_bytes,
        "wpcopy_before": before.count,
        "wpcopy_after": after_count.count,
        "wpcopy_delay_ns": after_count.delay_total_ns - before.delay_total_ns,
    })
}

/// `AnonHugePages` of the mapping that starts at or holds `addr`, in bytes.
fn anon_huge_bytes(addr: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((s, e)) = range.split_once('-')
            && let (Ok(s), Ok(e)) = (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16))
        {
            inside = s <= addr && addr < e;
        } else if inside && let Some(v) = line.strip_prefix("AnonHugePages:") {
            return v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0) * 1024;
        }
    }
    0
}
