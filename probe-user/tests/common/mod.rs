//! Helpers for the end-to-end tests: they run the real `cowscope` binary as
//! root against real processes.
#![allow(dead_code)] // each test binary uses its own subset

use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
};

/// The cowscope binary under test.
pub fn cowscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cowscope"))
}

/// The ground-truth workload binary.
pub fn groundtruth() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cowscope-groundtruth"))
}

/// Fails the test early, with a reason, unless it runs as root.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "cowscope's end-to-end tests load eBPF programs and must run as root");
}

/// A scratch directory unique to this test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cowscope-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Parses the last JSON line cowscope printed.
pub fn report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
        panic!(
            "no JSON report; status {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).expect("cowscope printed invalid JSON")
}

/// Runs `cowscope run --as-user root --json -- ARGS` and returns its report.
pub fn run_json(args: &[&str]) -> Value {
    let out =
        cowscope().args(["run", "--as-user", "root", "--json", "--"]).args(args).output().expect("start cowscope");
    assert!(out.status.success(), "cowscope failed: {}", String::from_utf8_lossy(&out.stderr));
    report(&out)
}

/// Reads a JSON file a workload wrote.
pub fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read result")).expect("parse result")
}

/// `value[key]` as u64, failing the test with context when absent.
pub fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no number `{key}` in {v}"))
}

/// Asserts the kernel side dropped nothing.
pub fn assert_no_drops(report: &Value) {
    let d = &report["drops"];
    for k in ["ring_buffer", "page_map", "task_map", "inflight_map"] {
        assert_eq!(num(d, k), 0, "cowscope dropped {k} entries: {d}");
    }
}

/// Starts `cowscope record -p PID --json EXTRA...` and waits until it is attached.
pub fn record(pid: u32, extra: &[&str]) -> Child {
    let pid = pid.to_string();
    let mut args = vec!["record", "-p", &pid, "--json"];
    args.extend_from_slice(extra);
    start(&args)
}

/// Starts `cowscope ARGS...` and waits until it is attached.
pub fn start(args: &[&str]) -> Child {
    let mut child =
        cowscope().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start cowscope");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("Tracing PID") => break,
            Some(Ok(_)) => continue,
            _ => panic!("cowscope exited before attaching: {:?}", child.wait()),
        }
    }
    // Keep draining stderr so cowscope never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Sends SIGINT (as Ctrl-C would) and collects the report.
pub fn stop(child: Child) -> Value {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .expect("signal cowscope");
    let out = child.wait_with_output().expect("wait for cowscope");
    assert!(out.status.success(), "cowscope failed: {:?}", out.status);
    report(&out)
}

/// Turns on delay accounting so taskstats carries `wpcopy_count`.
pub fn enable_delayacct() {
    std::fs::write("/proc/sys/kernel/task_delayacct", "1").expect("enable kernel.task_delayacct");
}

/// Waits for `path` to exist (at most 30 s).
pub fn wait_for(path: &std::path::Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
