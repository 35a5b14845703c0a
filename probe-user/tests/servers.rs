//! cowscope attached to a real server doing a BGSAVE under write load: its
//! copy count must agree with the server's own `rdb_last_cow_size`.
//!
//! Each server is a [`Server`] value. cowstore takes Redis's options, so
//! checking it (once it has BGSAVE) is a constant and a three-line test:
//!
//! ```text
//! const COWSTORE: Server = Server { name: "cowstore", binary: || cowstore_path(), args: REDIS.args };
//! #[test]
//! fn cowstore_bgsave_cow_matches_rdb_last_cow_size() { bgsave_cow_agrees(&COWSTORE); }
//! ```
//!
//! where `cowstore_path()` names `target/release/cowstore` (for example from
//! `CARGO_TARGET_DIR`). The server must answer `DEBUG POPULATE`, `BGSAVE` and
//! `INFO persistence` with `rdb_bgsave_in_progress` and `rdb_last_cow_size`.

mod common;

use common::*;
use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A Redis-compatible server to check.
struct Server {
    /// Name in messages.
    name: &'static str,
    /// Its executable.
    binary: fn() -> String,
    /// Arguments to listen on 127.0.0.1:PORT, keep files in DIR, not save on
    /// its own, and accept DEBUG POPULATE.
    args: fn(port: u16, dir: &Path) -> Vec<String>,
}

const REDIS: Server = Server {
    name: "redis-server",
    binary: || "redis-server".to_string(),
    args: |port, dir| {
        [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
            "--dir",
            &dir.display().to_string(),
        ]
        .map(str::to_string)
        .to_vec()
    },
};

/// Sends one command and reads one reply (inline protocol, enough here).
fn command(port: u16, cmd: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    if let Some(len) = first.strip_prefix('$') {
        let len: usize = len.trim().parse().unwrap_or(0);
        let mut body = vec![0u8; len + 2];
        std::io::Read::read_exact(&mut r, &mut body).unwrap();
        return String::from_utf8_lossy(&body).into_owned();
    }
    first
}

/// `INFO persistence` field as a number.
fn info(port: u16, field: &str) -> u64 {
    let text = command(port, "INFO persistence");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO: {text}"))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bgsave_cow_agrees(server: &Server) {
    require_root();
    let dir = scratch(server.name);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let srv = Running(
        Command::new((server.binary)())
            .args((server.args)(port, &dir))
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", server.name)),
    );
    let ready = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(ready.elapsed() < Duration::from_secs(10), "{} did not start", server.name);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(command(port, "DEBUG POPULATE 500000 key 200").starts_with("+OK"));

    let scope = record(srv.0.id(), &[]);
    let load = Running(
        Command::new("redis-benchmark")
            .args(["-p", &port.to_string(), "-t", "set", "-r", "500000", "-d", "200"])
            .args(["-n", "100000000", "-c", "20", "-P", "8", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-benchmark"),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(command(port, "BGSAVE").contains("Background saving started"));
    let started = Instant::now();
    while info(port, "rdb_bgsave_in_progress") == 1 {
        assert!(started.elapsed() < Duration::from_secs(120), "BGSAVE never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(load);
    let report = stop(scope);
    assert_no_drops(&report);

    let their_bytes = info(port, "rdb_last_cow_size");
    let windows = report["forks"]["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 1, "{}: expected one fork, got {windows:?}", server.name);
    let w = &windows[0];
    assert_eq!(w["exit_code"], 0, "{w}");
    // The child reads its smaps right before exit; compare the copies up to then.
    let ours = num(w, "copies_before_exit") * 4096;
    assert!(their_bytes > 8 << 20, "too little copy-on-write to compare: {their_bytes} B");
    let diff = ours.abs_diff(their_bytes) as f64 / their_bytes as f64;
    assert!(
        diff <= 0.05,
        "{}: cowscope {ours} B copied, rdb_last_cow_size {their_bytes} B ({:.1}% apart)",
        server.name,
        diff * 100.0
    );
    // The RDB file was written with sync_file_range and fsync'd.
    let files = report["files"].as_array().expect("files");
    assert!(
        files.iter().any(|f| f["path"].as_str().unwrap_or("").ends_with(".rdb") && num(&f["fsync"], "count") >= 1),
        "no fsync of the RDB file: {files:?}"
    );
}

#[test]
fn redis_server_bgsave_cow_matches_rdb_last_cow_size() {
    bgsave_cow_agrees(&REDIS);
}
