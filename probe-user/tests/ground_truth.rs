//! cowscope against workloads whose fork, copy-on-write and sync behaviour is
//! known exactly, cross-checked with the kernel's own delay accounting.

mod common;

use common::*;
use serde_json::Value;

const MIB: u64 = 64;
const WINDOW_PAGES: u64 = 4096;
const AFTER_PAGES: u64 = 2048;
/// Pages only read before the fork (4 KiB run): written in the window, they are zero-page fills.
const ZERO_PAGES: u64 = 512;

/// The region row of the report that holds `addr`.
fn region(report: &Value, addr: u64) -> Value {
    report["cow"]["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| num(r, "start") <= addr && addr < num(r, "end"))
        .cloned()
        .unwrap_or_else(|| panic!("no region holds {addr:#x}: {}", report["cow"]["regions"]))
}

/// Runs the copy-on-write workload and checks everything that must hold for
/// both page sizes; returns (report, workload result).
fn cow(thp: bool) -> (Value, Value) {
    let zero = if thp { 0 } else { ZERO_PAGES };
    require_root();
    enable_delayacct();
    let dir = scratch(if thp { "cow-thp" } else { "cow-4k" });
    let result = dir.join("result.json");
    let gt = groundtruth();
    let report = run_json(&[
        gt.to_str().unwrap(),
        "cow",
        &MIB.to_string(),
        &WINDOW_PAGES.to_string(),
        &AFTER_PAGES.to_string(),
        &zero.to_string(),
        if thp { "1" } else { "0" },
        result.to_str().unwrap(),
    ]);
    let truth = read_json(&result);
    assert_no_drops(&report);
    assert_eq!(report["target_exit_code"], 0);

    // One fork, with the child's lifetime and status.
    let forks = &report["forks"];
    assert_eq!(num(forks, "count"), 1, "{forks}");
    let w = &forks["windows"][0];
    assert_eq!(num(w, "child"), num(&truth, "child"));
    assert_eq!(num(w, "epoch"), 1);
    assert_eq!(w["exit_code"], 0);
    assert!(num(w, "lifetime_ns") > 0 && num(w, "fork_latency_ns") > 0);

    // Exactly the written pages were copied inside the window, in the mapping;
    // the pages only read before were zero-page fills, not copies.
    let r = region(&report, num(&truth, "addr"));
    let inside = &r["parent_window"];
    assert_eq!(num(inside, "copies"), WINDOW_PAGES, "{r}");
    assert_eq!(num(inside, "zero_fills"), zero, "{r}");
    assert_eq!(num(inside, "faults"), WINDOW_PAGES + zero, "{r}");
    assert_eq!(num(inside, "copied_pages"), WINDOW_PAGES, "{r}");
    assert_eq!(num(inside, "bytes_copied"), WINDOW_PAGES * 4096, "{r}");
    // After the child exited, writes reuse pages: faults, but no copies.
    let outside = &r["parent_outside"];
    assert_eq!(num(outside, "copies"), 0, "{r}");
    assert!(num(outside, "faults") > 0, "{r}");
    assert_eq!(num(outside, "reuses"), num(outside, "faults"), "{r}");

    // The kernel's own count (delay accounting, which counts zero-page fills
    // as copies) agrees within 1%.
    let kernel = num(&truth, "wpcopy_after") - num(&truth, "wpcopy_before");
    let window = &report["cow"]["total"]["parent_window"];
    let ours = num(window, "copies");
    let diff = (ours + num(window, "zero_fills")).abs_diff(kernel) as f64;
    assert!(diff <= kernel as f64 * 0.01, "cowscope {ours} copies + zero fills {window}, wpcopy_count {kernel}");
    let before_exit = num(w, "copies_before_exit");
    assert!(before_exit.abs_diff(ours) <= ours / 100, "{before_exit} before exit vs {ours}: {w}");
    (report, truth)
}

#[test]
fn cow_4k_pages_copies_match_ground_truth_and_taskstats() {
    let (report, _) = cow(false);
    let r = &report["cow"];
    // Every copy was of a 4 KiB page (the workload's, plus a few of its stack and libc).
    let base = num(&r["base_pages"]["parent_window"], "copies");
    assert!((WINDOW_PAGES..WINDOW_PAGES + 16).contains(&base), "{base} 4 KiB copies");
    assert_eq!(num(&r["huge_pages"]["parent_window"], "faults"), 0);
}

#[test]
fn cow_thp_splits_and_copies_4k_not_2m() {
    let (report, truth) = cow(true);
    assert!(num(&truth, "anon_huge_bytes") > 0, "the region got no transparent huge pages (THP disabled?): {truth}");
    let r = &report["cow"];
    // Every copy was a 4 KiB copy out of a huge page, one per written page.
    assert_eq!(num(&r["huge_pages"]["parent_window"], "copies"), WINDOW_PAGES, "{r}");
    let splits = num(&report["forks"]["windows"][0]["vmstat_delta"], "thp_split_pmd");
    assert!(splits >= WINDOW_PAGES / 512, "thp_split_pmd +{splits}");
    // After the child exited, the huge pages it no longer shares are reused,
    // never copied. How many faults that takes varies from host to host: one
    // per 2 MiB where the whole PMD is reused at once (seen on an earlier
    // machine), up to a few hundred per 2 MiB on others (seen here, without
    // cowscope attached too), never more than one per page written.
    let region = region(&report, num(&truth, "addr"));
    let post = &region["parent_outside"];
    let faults = num(post, "faults");
    assert!((1..=AFTER_PAGES).contains(&faults), "{faults} post-exit faults: {post}");
    assert_eq!(num(post, "copies"), 0, "post-exit faults copied: {post}");
    assert_eq!(num(post, "reuses"), faults, "{post}");
}

#[test]
fn syncs_counted_exactly_per_path_with_plausible_latency() {
    require_root();
    const M: u64 = 50;
    let dir = scratch("sync");
    let file = dir.join("synced.dat");
    let result = dir.join("result.json");
    let gt = groundtruth();
    let report =
        run_json(&[gt.to_str().unwrap(), "sync", file.to_str().unwrap(), &M.to_string(), result.to_str().unwrap()]);
    assert_no_drops(&report);
    let truth = read_json(&result);
    let path = truth["path"].as_str().expect("path");
    let files = report["files"].as_array().expect("files");
    let f = files.iter().find(|f| f["path"] == path).unwrap_or_else(|| panic!("{path} not in {files:?}"));
    assert_eq!(num(&f["fsync"], "count"), M);
    assert_eq!(num(&f["fdatasync"], "count"), M);
    assert_eq!(num(&f["sync_file_range"], "count"), 0);
    assert_eq!(num(&f["interval"], "count"), 2 * M - 1);
    // Every write but the first follows a sync of the file.
    assert_eq!(num(&f["write"], "count"), 2 * M - 1);
    assert_eq!(files.len(), 1, "syncs attributed to other paths: {files:?}");
    // The workload timed the same calls from userspace: the kernel-side
    // latency sits a little below it.
    for (kind, own) in [("fsync", "fsync_ns"), ("fdatasync", "fdatasync_ns")] {
        let mut own: Vec<u64> = truth[own].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        own.sort_unstable();
        let own_p50 = own[own.len() / 2] as f64;
        let ours = num(&f[kind], "p50_ns") as f64;
        assert!(
            ours <= own_p50 * 1.1 && ours >= own_p50 * 0.5,
            "{kind}: cowscope p50 {ours} ns, workload's own p50 {own_p50} ns"
        );
    }
}

#[test]
fn markers_give_ack_to_durable_exposure() {
    require_root();
    let dir = scratch("markers");
    let result = dir.join("result.json");
    let gt = groundtruth();
    let report = run_json(&[gt.to_str().unwrap(), "markers", "200", result.to_str().unwrap()]);
    let truth = read_json(&result);
    let x = &report["exposure"];
    assert_eq!(num(x, "writes_acked"), 200, "{x}");
    assert_eq!(num(x, "fsyncs_done"), 20, "{x}");
    assert_eq!(num(x, "durable_offset"), 200 * 100);
    assert_eq!(num(x, "still_exposed"), 0);
    assert_eq!(num(&x["exposure"], "count"), 200);
    assert_eq!(x["forks"][0], truth["child"]);
    assert_eq!(num(x, "snapshots_ok"), 1);
    let ours = num(&x["exposure"], "p50_ns") as f64;
    let own = num(&truth, "exposure_p50_ns") as f64;
    assert!((ours - own).abs() <= own * 0.2, "exposure p50: cowscope {ours} ns, workload {own} ns");
}
