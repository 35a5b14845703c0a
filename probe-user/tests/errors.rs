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
    // One child forked while recording, which exited 0.
    assert_eq!(num(&r["forks"], "count"), 1, "{}", r["forks"]);
    assert_eq!(r["forks"]["windows"][0]["exit_code"], 0);
}

#[test]
fn interval_and_count_stop_after_that_many_reports() {
    require_root();
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let out = cowscope()
        .args(["record", "-p", &sleeper.id().to_string(), "-i", "0.3", "-c", "2", "-j"])
        .output()
        .expect("run cowscope");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ended: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON report")["ended_by"].to_string())
        .collect();
    // Two interval reports, then the final one, ended by the count.
    assert_eq!(ended, ["\"interval\"", "\"interval\"", "\"count\""]);
}
