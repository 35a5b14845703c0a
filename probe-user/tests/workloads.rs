//! The ground-truth workloads checked against the kernel alone (no
//! cowscope), so that cowscope is measured against workloads known to do
//! what they say. Root only: taskstats needs CAP_NET_ADMIN.
//!
//! A few copies beyond the pages written are the workload's own stack, heap
//! and libc data touched after a fork: each bound below allows `SLACK` per
//! fork window.

mod common;

use common::{enable_delayacct, groundtruth, num, read_json, require_root, scratch, wait_for};
use serde_json::Value;
use std::{
    path::Path,
    process::{Command, Stdio},
};

/// Copies allowed per fork window beyond the pages written.
const SLACK: u64 = 16;

/// Runs `cowscope-groundtruth ARGS... RESULT` with delay accounting on and
/// returns its result, failing the test unless it exits 0.
fn run(name: &str, args: &[&str]) -> Value {
    require_root();
    enable_delayacct();
    let dir = scratch(name);
    let result = dir.join("result.json");
    let out = Command::new(groundtruth()).args(args).arg(&result).output().expect("start the workload");
    assert!(out.status.success(), "{args:?} failed: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let v = read_json(&result);
    let _ = std::fs::remove_dir_all(&dir);
    v
}

/// `wpcopy_after - wpcopy_before`.
fn copies(v: &Value) -> u64 {
    num(v, "wpcopy_after") - num(v, "wpcopy_before")
}

/// Asserts `got` is `want` plus at most `slack`.
fn about(what: &str, got: u64, want: u64, slack: u64) {
    assert!((want..=want + slack).contains(&got), "{what}: {got}, expected {want} (+ at most {slack})");
}

/// The workload's pages are counted exactly once each, per thread and in
/// total; the child keeps one private copy of each (`Private_Dirty`); and
/// `wpcopy_delay_total` (read at its offset) is a plausible part of the
/// time each thread spent writing.
fn threads(n: u64, pages: u64) {
    let v = run(&format!("threads-{n}"), &["threads", &n.to_string(), &pages.to_string()]);
    let total = copies(&v);
    about("process copies", total, n * pages, n * pages / 100);
    let per_thread = v["per_thread"].as_array().expect("per_thread");
    assert_eq!(per_thread.len() as u64, n);
    let mut sum = 0;
    for t in per_thread {
        let c = num(t, "wpcopy_after") - num(t, "wpcopy_before");
        about("thread copies", c, pages, SLACK);
        let ns = num(t, "wpcopy_delay_ns");
        assert!(ns <= num(t, "write_ns"), "copying took longer than writing: {t}");
        assert!((100 * c..100_000 * c).contains(&ns), "{ns} ns for {c} copies: {t}");
        assert_eq!(num(t, "len"), pages * 4096);
        sum += c;
    }
    assert!(sum <= total, "threads counted {sum}, the process {total}");
    assert!(num(&v, "child_private_dirty_kib") / 4 >= n * pages, "{v}");
}

#[test]
fn threads_4_by_2048_pages_copy_each_page_once() {
    threads(4, 2048);
}

#[test]
fn threads_2_by_4096_pages_copy_each_page_once() {
    threads(2, 4096);
}

#[test]
fn children_50_in_a_row_copy_their_windows_pages() {
    let (n, pages) = (50u64, 256u64);
    let v = run("children", &["children", &n.to_string(), &pages.to_string()]);
    about("process copies", copies(&v), n * pages, SLACK * n + 64);
    let children = v["children"].as_array().expect("children");
    assert_eq!(children.len() as u64, n);
    let mut pids: Vec<u64> = children.iter().map(|c| num(c, "pid")).collect();
    for c in children {
        about("window copies", num(c, "wpcopy_written") - num(c, "wpcopy_fork"), pages, SLACK);
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len() as u64, n, "pids repeat: {v}");
}

#[test]
fn child_writes_its_own_copies() {
    let pages = 4096;
    let v = run("child-writes", &["child-writes", &pages.to_string()]);
    about("child copies", num(&v, "child_wpcopy_after") - num(&v, "child_wpcopy_before"), pages, SLACK);
    assert!(num(&v, "child_wpcopy_delay_ns") > 0);
    assert!(copies(&v) <= SLACK, "the idle parent copied: {v}");
}

#[test]
fn madvise_dontfork_and_wipeonfork_regions_neither_copy_nor_fault() {
    let pages = 2048;
    let v = run("madvise", &["madvise", &pages.to_string()]);
    let r = &v["regions"];
    about("normal copies", num(&r["normal"], "wpcopy"), pages, 8);
    about("normal faults", num(&r["normal"], "minor_faults"), pages, 4);
    for name in ["dontfork", "wipeonfork"] {
        assert_eq!(num(&r[name], "minor_faults"), 0, "{name}: {v}");
        assert!(num(&r[name], "wpcopy") <= 4, "{name}: {v}");
    }
    about("process copies", copies(&v), pages, SLACK);
}

#[test]
fn shared_mappings_fault_without_copying() {
    let pages = 2048;
    // A disk file system: tmpfs does no dirty tracking, so takes no faults.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let v = run("shared", &["shared", dir.to_str().expect("utf-8 path"), &pages.to_string()]);
    let r = &v["regions"];
    assert_eq!(num(&r["shared_anon"], "minor_faults"), 0, "{v}");
    assert!(num(&r["shared_file"], "minor_faults") >= pages, "{v}");
    for name in ["shared_anon", "shared_file"] {
        assert!(num(&r[name], "wpcopy") <= 4, "{name}: {v}");
    }
    about("private copies", num(&r["private"], "wpcopy"), pages, 8);
    about("process copies", copies(&v), pages, SLACK);
    assert!(!Path::new(v["file"].as_str().expect("file")).exists(), "the file was left behind");
}

#[test]
fn spawn_children_share_memory_and_exit_0() {
    let v = run("spawn", &["spawn"]);
    let (spawned, vforked) = (num(&v, "posix_spawn"), num(&v, "vfork"));
    assert!(spawned > 0 && vforked > 0 && spawned != vforked, "{v}");
    assert_eq!(v["child"], serde_json::json!([spawned, vforked]));
    assert!(copies(&v) <= 4, "no window, yet copies: {v}");
}

#[test]
fn attach_target_waits_for_go_and_counts_each_phase() {
    require_root();
    enable_delayacct();
    let dir = scratch("attach");
    let [ready, go, done, result] = ["ready", "go", "done", "result.json"].map(|f| dir.join(f));
    let (before, after) = (1000u64, 2000u64);
    let target = Command::new(groundtruth())
        .args(["attach", &before.to_string(), &after.to_string()])
        .args([&ready, &go, &done, &result])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the workload");
    wait_for(&ready);
    let text = std::fs::read_to_string(&ready).expect("read READY");
    let pids: Vec<u32> = text.split_whitespace().map(|p| p.parse().expect("a pid")).collect();
    assert_eq!(pids.len(), 2, "READY holds {text:?}");
    assert_eq!(pids[0], target.id());
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[1])).expect("the child lives");
    let ppid = stat.rsplit(')').next().and_then(|s| s.split_whitespace().nth(1)).expect("ppid");
    assert_eq!(ppid, pids[0].to_string(), "the child's parent");
    assert!(!result.exists(), "finished before GO");
    std::fs::write(&go, "").expect("create GO");
    wait_for(&result);
    std::fs::write(&done, "").expect("create DONE");
    let out = target.wait_with_output().expect("wait for the workload");
    assert!(out.status.success(), "attach failed: {}", String::from_utf8_lossy(&out.stderr));
    let v = read_json(&result);
    assert_eq!(num(&v, "child"), u64::from(pids[1]));
    about("copies before READY", num(&v, "wpcopy_ready") - num(&v, "wpcopy_before"), before, SLACK);
    about("copies after GO", num(&v, "wpcopy_written") - num(&v, "wpcopy_go"), after, SLACK);
    assert!(num(&v, "wpcopy_after") - num(&v, "wpcopy_written") <= 4, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forker_forks_periodically_and_copies_at_most_its_region_per_fork() {
    let (mib, period_ms, seconds) = (16u64, 100u64, 1u64);
    let v = run("forker", &["forker", &mib.to_string(), &period_ms.to_string(), &seconds.to_string()]);
    let forks = num(&v, "forks");
    assert!((1..=seconds * 1000 / period_ms + 1).contains(&forks), "{forks} forks");
    assert_eq!(v["child"].as_array().map(Vec::len), Some(forks as usize));
    let pages = mib * 256;
    let c = copies(&v);
    assert!(c > 0 && c <= forks * (pages + SLACK), "{c} copies in {forks} windows of {pages} pages");
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    for args in [&["threads", "4"][..], &["nope", "x"], &["threads", "four", "8", "r"], &[]] {
        let out = Command::new(groundtruth()).args(args).output().expect("start");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"), "{args:?}");
    }
}
