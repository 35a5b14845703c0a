//! cowscope on every shape of target users meet in the field, each figure
//! held to the kernel's own count (taskstats `wpcopy_count`, which the
//! workloads read themselves): threads writing at once, many children with
//! overlapping windows, a child writing, `MADV_DONTFORK`/`MADV_WIPEONFORK`,
//! shared mappings, children that share memory, attaching mid-window, and
//! interval reports of a running target. Root only.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};

/// Runs `cowscope run -- cowscope-groundtruth ARGS... RESULT`; returns
/// cowscope's report and the workload's result.
fn recorded(name: &str, args: &[&str]) -> (Value, Value) {
    require_root();
    enable_delayacct();
    let dir = scratch(name);
    let result = dir.join("result.json");
    let gt = groundtruth();
    let mut all = vec![gt.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push(result.to_str().unwrap());
    let report = run_json(&all);
    let truth = read_json(&result);
    assert_no_drops(&report);
    assert_eq!(report["target_exit_code"], 0, "{}", report["target"]);
    (report, truth)
}

/// Asserts `ours` is within 1% of `kernel`.
fn within_1pct(what: &str, ours: u64, kernel: u64) {
    let diff = ours.abs_diff(kernel) as f64;
    assert!(diff <= kernel as f64 * 0.01, "{what}: cowscope {ours}, kernel {kernel}");
}

/// The kernel's copies over the workload's windows.
fn kernel_copies(truth: &Value) -> u64 {
    num(truth, "wpcopy_after") - num(truth, "wpcopy_before")
}

/// Copies and zero-page fills the target made while a window was open (what
/// the kernel counts as copies).
fn window_copies(report: &Value) -> u64 {
    let w = &report["cow"]["total"]["parent_window"];
    num(w, "copies") + num(w, "zero_fills")
}

/// The report's self-check exists and agrees within 1%.
fn self_check_trusted(report: &Value) {
    let c = &report["self_check"];
    assert_eq!(c["trusted"], true, "self-check: {c} ({})", report["self_check_unavailable"]);
    within_1pct("self-check", num(c, "cowscope"), num(c, "kernel"));
}

/// Every total equals the sum of its breakdown: 4 KiB + THP, regions, and
/// the windows' rows for the in-window faults.
fn consistent(report: &Value) {
    let cow = &report["cow"];
    let fields = ["faults", "copies", "reuses", "zero_fills", "pages", "copied_pages", "bytes_copied"];
    for role in ["parent_window", "parent_outside", "child"] {
        for f in fields {
            let total = num(&cow["total"][role], f);
            let by_size = num(&cow["base_pages"][role], f) + num(&cow["huge_pages"][role], f);
            let by_region: u64 = cow["regions"].as_array().unwrap().iter().map(|r| num(&r[role], f)).sum();
            assert_eq!(by_size, total, "{role}.{f}: 4K + THP vs total: {cow}");
            assert_eq!(by_region, total, "{role}.{f}: regions vs total: {cow}");
        }
    }
    for (role, row) in [("parent_window", "parent_faults"), ("child", "child_faults")] {
        for f in fields {
            let by_window: u64 = cow["windows"].as_array().unwrap().iter().map(|w| num(&w[row], f)).sum();
            assert_eq!(by_window, num(&cow["total"][role], f), "windows' {row}.{f} vs total {role}: {cow}");
        }
    }
}

fn threads(n: u64, pages: u64) {
    let (report, truth) = recorded(&format!("threads-{n}"), &["threads", &n.to_string(), &pages.to_string()]);
    consistent(&report);
    within_1pct("threads' copies in the window", window_copies(&report), kernel_copies(&truth));
    self_check_trusted(&report);
    let w = &report["forks"]["windows"][0];
    assert_eq!(w["self_check"]["trusted"], true, "{w}");
    // What the child kept private: the parent's copies before its exit plus its own.
    let child = &report["cow"]["windows"][0]["child_faults"];
    let private = num(w, "copies_before_exit") + num(child, "copied_pages") + num(child, "zero_fills");
    within_1pct("private to the child", private, num(&truth, "child_private_dirty_kib") / 4);
}

#[test]
fn four_threads_writing_at_once_on_two_cpus() {
    threads(4, 2048);
}

#[test]
fn two_threads_writing_4096_pages_each() {
    threads(2, 4096);
}

#[test]
fn fifty_children_with_overlapping_windows() {
    let (report, truth) = recorded("children", &["children", "50", "256"]);
    consistent(&report);
    let forks = &report["forks"];
    assert_eq!(num(forks, "count"), 50);
    let windows = forks["windows"].as_array().unwrap();
    assert!(windows.iter().all(|w| w["exit_code"] == 0 && num(w, "epoch") > 0), "{forks}");
    assert_eq!(num(&forks["lifetime"], "count"), 50);
    within_1pct("copies over 50 windows", window_copies(&report), kernel_copies(&truth));
    self_check_trusted(&report);
    assert_eq!(report["cow"]["windows"].as_array().unwrap().len(), 50);
}

#[test]
fn a_child_writing_pages_itself() {
    let (report, truth) = recorded("child-writes", &["child-writes", "4096"]);
    consistent(&report);
    let child = &report["cow"]["total"]["child"];
    let kernel = num(&truth, "child_wpcopy_after") - num(&truth, "child_wpcopy_before");
    within_1pct("the child's own copies", num(child, "copies") + num(child, "zero_fills"), kernel);
    assert!(num(&report["cow"]["total"]["parent_window"], "copies") <= 16, "{}", report["cow"]["total"]);
    self_check_trusted(&report);
}

/// The region row of the report that holds `addr`, if any.
fn region_at(report: &Value, addr: u64) -> Option<Value> {
    report["cow"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| num(r, "start") <= addr && addr < num(r, "end"))
        .cloned()
}

#[test]
fn dontfork_and_wipeonfork_regions_copy_nothing() {
    let (report, truth) = recorded("madvise", &["madvise", "2048"]);
    consistent(&report);
    let regions = &truth["regions"];
    let normal = region_at(&report, num(&regions["normal"], "addr")).expect("the normal region has a row");
    assert_eq!(num(&normal["parent_window"], "copies"), 2048, "{normal}");
    for name in ["dontfork", "wipeonfork"] {
        let row = region_at(&report, num(&regions[name], "addr"));
        assert!(row.as_ref().is_none_or(|r| num(&r["parent_window"], "faults") == 0), "{name}: {row:?}");
    }
    within_1pct("copies", window_copies(&report), kernel_copies(&truth));
    self_check_trusted(&report);
}

#[test]
fn shared_mappings_are_counted_apart_not_as_copy_on_write() {
    // A disk file system: on tmpfs shared file pages take no dirty-tracking faults.
    let dir = std::env::current_dir().unwrap().join("target").join("cowscope-shared");
    std::fs::create_dir_all(&dir).unwrap();
    let (report, truth) = recorded("shared", &["shared", dir.to_str().unwrap(), "2048"]);
    consistent(&report);
    let regions = &truth["regions"];
    for name in ["shared_anon", "shared_file"] {
        let row = region_at(&report, num(&regions[name], "addr"));
        assert!(row.is_none(), "{name} appears in the copy-on-write table: {row:?}");
    }
    let shared = &report["cow"]["shared_mappings"];
    // The workload's own fault count has one more: its first write to the file.
    let file_faults = num(&regions["shared_file"], "minor_faults");
    assert!((file_faults - 2..=file_faults).contains(&num(shared, "faults")), "{shared} vs {file_faults}");
    let private = region_at(&report, num(&regions["private"], "addr")).expect("private row");
    assert_eq!(num(&private["parent_window"], "copies"), 2048, "{private}");
    assert!(num(&report["cow"]["total"]["parent_window"], "reuses") < 16, "{}", report["cow"]["total"]);
    within_1pct("copies", window_copies(&report), kernel_copies(&truth));
}

#[test]
fn children_sharing_memory_open_no_window() {
    let (report, truth) = recorded("spawn", &["spawn"]);
    let forks = &report["forks"];
    assert_eq!(num(forks, "count"), 2, "{forks}");
    for (w, pid) in forks["windows"].as_array().unwrap().iter().zip(truth["child"].as_array().unwrap()) {
        assert_eq!(w["child"], *pid);
        assert_eq!(num(w, "epoch"), 0, "{w}");
        assert!(w["vmstat_delta"].as_object().unwrap().is_empty(), "{w}");
        assert_eq!(w["copy_gauge"].as_array().unwrap().len(), 0, "{w}");
    }
    assert_eq!(num(&forks["lifetime"], "count"), 0, "no window, no snapshot-window histogram: {forks}");
    assert_eq!(num(&report["cow"]["total"]["parent_window"], "faults"), 0);
}

#[test]
fn attaching_mid_window_counts_every_copy_after_the_attach() {
    require_root();
    enable_delayacct();
    let dir = scratch("attach");
    let [ready, go, done, result] = ["ready", "go", "done", "result.json"].map(|f| dir.join(f));
    let mut target = Command::new(groundtruth())
        .args(["attach", "1000", "3000"])
        .args([&ready, &go, &done, &result])
        .stdout(Stdio::null())
        .spawn()
        .expect("start the workload");
    wait_for(&ready);
    let rec = record(target.id(), &[]);
    std::fs::write(&go, "").unwrap();
    wait_for(&result);
    std::fs::write(&done, "").unwrap();
    assert!(target.wait().unwrap().success());
    let out = rec.wait_with_output().expect("cowscope");
    assert!(out.status.success(), "{:?}", out.status);
    let report = report(&out);
    let truth = read_json(&result);
    assert_no_drops(&report);
    consistent(&report);
    let w = &report["forks"]["windows"][0];
    assert_eq!(w["attached_mid_window"], true, "{w}");
    assert_eq!(w["child"], truth["child"]);
    assert_eq!(w["fork_latency_ns"], Value::Null, "the fork was not seen: {w}");
    assert!(w["start_ns"].as_i64().unwrap() < 0, "{w}");
    // Every copy after the attach, none of the 1,000 before it.
    let kernel = num(&truth, "wpcopy_after") - num(&truth, "wpcopy_ready");
    within_1pct("copies after the attach", window_copies(&report), kernel);
    assert_eq!(w["self_check"]["trusted"], true, "{w}");
    self_check_trusted(&report);
}

/// Runs `cowscope run --json -i INTERVAL -- cowscope-groundtruth forker ARGS`;
/// returns its reports and the workload's result.
fn forker_intervals(name: &str, interval: &str, args: &[&str]) -> (Vec<Value>, Value) {
    require_root();
    enable_delayacct();
    let result = scratch(name).join("result.json");
    let out = cowscope()
        .args(["run", "--as-user", "root", "--json", "-i", interval, "--"])
        .arg(groundtruth())
        .arg("forker")
        .args(args)
        .arg(&result)
        .output()
        .expect("cowscope");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    (reports, read_json(&result))
}

#[test]
fn interval_reports_of_a_running_target_are_consistent_and_add_up() {
    let (reports, truth) = forker_intervals("intervals", "0.5", &["64", "400", "3"]);
    assert!(reports.len() >= 5, "{} reports", reports.len());
    let mut copies = 0;
    for r in &reports {
        assert_eq!(r["scope"], "interval");
        consistent(r);
        copies += window_copies(r);
    }
    // The intervals partition the recording: their copies add up to the kernel's.
    within_1pct("copies summed over the intervals", copies, kernel_copies(&truth));
    assert_eq!(reports.iter().map(|r| num(&r["forks"], "count")).sum::<u64>(), num(&truth, "forks"));
}

#[test]
fn the_page_map_holds_only_open_windows() {
    // 64 MiB = 16,384 pages, rewritten after each of 12 forks.
    let (reports, truth) = forker_intervals("bounded", "1", &["64", "500", "6"]);
    assert!(num(&truth, "forks") >= 10, "{truth}");
    for r in &reports {
        // One open window and the pages written outside any: never the closed ones.
        let entries = num(&r["resources"], "page_map_entries");
        assert!(entries <= 2 * 16_384 + 1_000, "{entries} page map entries: {}", r["resources"]);
    }
}
