//! Error paths (one clear line and a non-zero exit, never a panic) and how a
//! recording ends.

mod common;

use common::*;
use std::process::{Command, Output};

fn one_line_error(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cowscope succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "cowscope panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("cowscope: "), "{stderr}");
    assert!(lines[0].contains(expected), "expected `{expected}` in: {stderr}");
}

#[test]
fn not_root_says_so() {
    require_root();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_cowscope"))
        .args(["record", "-p", "1", "-d", "1"])
        .output()
        .expect("run setpriv");
    one_line_error(&out, "needs root");
}

#[test]
fn bad_pid_says_so() {
    require_root();
    let mut gone = Command::new("true").spawn().expect("spawn true");
    let pid = gone.id();
    gone.wait().expect("reap true");
    let out = cowscope().args(["record", "-p", &pid.to_string()]).output().expect("run cowscope");
    one_line_error(&out, &format!("no process with PID {pid}"));
}

#[test]
fn run_without_sudo_user_asks_for_as_user() {
    require_root();
    let out = cowscope()
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .args(["run", "--", "true"])
        .output()
        .expect("run cowscope");
    one_line_error(&out, "--as-user");
}

#[test]
fn run_as_sudo_user_drops_root() {
    require_root();
    let dir = scratch("as-user");
    let out_file = dir.join("id");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let script = format!("id -u > {}", out_file.display());
    let out = cowscope()
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .args(["run", "--json", "--", "sh", "-c", &script])
        .output()
        .expect("run cowscope");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap().trim(), "65534");
}

#[test]
fn target_exiting_mid_recording_ends_the_report_cleanly() {
    require_root();
    // The shell forks the second `sleep` two seconds in, well after cowscope attached.
    let mut sleeper = Command::new("sh").args(["-c", "sleep 2; sleep 0.5; exit 7"]).spawn().expect("spawn");
    let started = std::time::Instant::now();
    let out = cowscope()
        .args(["record", "-p", &sleeper.id().to_string(), "-d", "30", "--json"])
        .output()
        .expect("run cowscope");
    let status = sleeper.wait().expect("reap");
    assert_eq!(status.code(), Some(7));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed().as_secs() < 15, "cowscope did not stop when the target exited");
    let r = report(&out);
    assert_eq!(r["ended_by"], "target exit");
    assert_eq!(r["target_exited"], true);
    assert_eq!(r["target_exit_code"], 7);
    // The first `sleep`, alive at attach, holds a window that was already
    // open (attached mid-window); the second, forked while recording, exited 0.
    let windows = &r["forks"]["windows"];
    assert_eq!(num(&r["forks"], "count"), 2, "{}", r["forks"]);
    assert_eq!(windows[0]["attached_mid_window"], true, "{windows}");
    assert_eq!(windows[0]["exit_code"], 0);
    assert_eq!(windows[1]["attached_mid_window"], false, "{windows}");
    assert_eq!(windows[1]["exit_code"], 0);
}

#[test]
fn interval_and_count_print_that_many_reports_each_of_its_interval() {
    require_root();
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let out = cowscope()
        .args(["record", "-p", &sleeper.id().to_string(), "-i", "0.3", "-c", "2", "-j"])
        .output()
        .expect("run cowscope");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line a JSON report"))
        .collect();
    // Exactly two, as BCC's `interval count`: the second ended by the count.
    let ended: Vec<&str> = reports.iter().map(|r| r["ended_by"].as_str().unwrap()).collect();
    assert_eq!(ended, ["interval", "count"]);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["scope"], "interval");
        assert_eq!(num(r, "report_number"), i as u64 + 1);
        let covers = r["covers_s"].as_f64().unwrap();
        assert!((0.2..0.6).contains(&covers), "report {i} covers {covers} s");
    }
}

#[test]
fn zero_intervals_durations_and_sizes_are_refused() {
    for args in [["-i", "0"], ["-d", "0"], ["--max-pages", "0"]] {
        let out = cowscope().args(["record", "-p", "1"]).args(args).output().expect("run cowscope");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]) && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_thread_id_records_its_process_and_says_so() {
    require_root();
    // This test runs on a thread of the test binary: its ID is not the process's.
    let tid = nix::unistd::gettid().as_raw() as u32;
    let pid = std::process::id();
    assert_ne!(tid, pid, "the test harness runs tests on threads");
    let out = cowscope().args(["record", "-p", &tid.to_string(), "-d", "0.3", "--json"]).output().expect("cowscope");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("PID {tid} is a thread of process {pid}")), "{stderr}");
    assert_eq!(num(&report(&out)["target"], "pid"), pid as u64);
}

#[test]
fn a_kernel_thread_is_refused() {
    require_root();
    let out = cowscope().args(["record", "-p", "2", "-d", "0.3"]).output().expect("run cowscope");
    one_line_error(&out, "kernel thread");
}

#[test]
fn no_markers_needs_no_executable() {
    require_root();
    // PID 1's executable may be out of reach; with --no-markers it is never read.
    let out = cowscope().args(["record", "-p", "1", "--no-markers", "-d", "0.3", "--json"]).output().expect("cowscope");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(num(&report(&out)["target"], "pid"), 1);
}

#[test]
fn run_json_keeps_the_command_s_output_off_stdout() {
    require_root();
    let out =
        cowscope().args(["run", "--as-user", "root", "--json", "--", "/bin/echo", "hi"]).output().expect("cowscope");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("stdout is one JSON report");
    assert_eq!(r["target_exit_code"], 0);
    assert!(String::from_utf8_lossy(&out.stderr).lines().any(|l| l == "hi"));
}

#[test]
fn output_file_takes_the_report() {
    require_root();
    let dir = scratch("output");
    let file = dir.join("report.json");
    let out = cowscope()
        .args(["run", "--as-user", "root", "-j", "-o", file.to_str().unwrap(), "--", "/bin/echo", "hi"])
        .output()
        .expect("cowscope");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).expect("JSON report");
    assert_eq!(r["ended_by"], "target exit");
}

#[test]
fn a_command_that_cannot_run_is_an_error_without_a_report() {
    require_root();
    // A text file without execute permission: no shell fallback runs it.
    let dir = scratch("not-a-program");
    let file = dir.join("notes.txt");
    std::fs::write(&file, "echo not a program\n").unwrap();
    let file = file.to_str().unwrap();
    let out = cowscope().args(["run", "--as-user", "root", "--json", "--", file]).output().expect("cowscope");
    one_line_error(&out, &format!("cannot run {file}: Permission denied"));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Records `sleep 30` (with `args`) and SIGKILLs it once attached.
fn record_killed_sleeper(args: &[&str]) -> Output {
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let pid = sleeper.id().to_string();
    let rec = start(&[&["record", "-p", &pid], args].concat());
    sleeper.kill().expect("SIGKILL");
    let _ = sleeper.wait();
    let out = rec.wait_with_output().expect("cowscope");
    assert!(out.status.success(), "{:?}", out.status);
    out
}

#[test]
fn a_target_killed_by_a_signal_says_which() {
    require_root();
    let r = report(&record_killed_sleeper(&["--json"]));
    assert_eq!(r["ended_by"], "target exit");
    assert_eq!(r["target_ending"], serde_json::json!({"signal": 9}));
    assert_eq!(r["target_exit_code"], serde_json::Value::Null);
    let text = String::from_utf8_lossy(&record_killed_sleeper(&[]).stdout).into_owned();
    assert!(text.contains("target killed by signal 9 (SIGKILL)"), "{text}");
}

#[test]
fn sighup_ends_with_a_report() {
    require_root();
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let rec = record(sleeper.id(), &[]);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.id() as i32), nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    let out = rec.wait_with_output().expect("cowscope");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(report(&out)["ended_by"], "SIGHUP");
}

#[test]
fn the_header_follows_an_exec() {
    require_root();
    let mut target = Command::new("sh").args(["-c", "sleep 1; exec sleep 1"]).spawn().expect("spawn sh");
    let rec = record(target.id(), &[]);
    let _ = target.wait();
    let out = rec.wait_with_output().expect("cowscope");
    let r = report(&out);
    assert_eq!(r["target"]["comm"], "sleep", "{}", r["target"]);
    assert_eq!(r["target"]["exe"], "/usr/bin/sleep");
}
