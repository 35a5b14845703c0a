//! Test support: starts a real `cowstore` process on a free loopback port and
//! stops it when dropped; talks to it with the `redis` crate and redis-cli.
#![allow(dead_code, unused_imports)] // each test binary uses its own subset

pub mod data;

pub use test_support::{Raw, Resp, answers_ping, bulk, free_port, int, line, read_resp, resp_request};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cowstore.
pub struct Server {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory (a fresh temp dir).
    pub dir: PathBuf,
    child: Child,
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("cowstore-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Server {
    /// Starts cowstore with persistence off plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        let dir = temp_dir("srv");
        Server::start_in(dir, extra)
    }

    /// Starts cowstore in `dir` with `extra` arguments (persistence off unless overridden).
    pub fn start_in(dir: PathBuf, extra: &[&str]) -> Server {
        let started = test_support::start_server(|port| {
            let mut args: Vec<String> = vec![
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--enable-debug-command".into(),
                "yes".into(),
                "--dir".into(),
                dir.display().to_string(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let log = std::fs::File::create(dir.join("cowstore.log"))?;
            Command::new(env!("CARGO_BIN_EXE_cowstore")).args(&args).stdout(log.try_clone()?).stderr(log).spawn()
        });
        match started {
            Ok((child, port)) => Server { port, dir, child },
            Err(e) => panic!("cowstore did not start ({e}); log in {}", dir.display()),
        }
    }

    /// A `redis` crate connection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap().get_connection().unwrap()
    }

    /// Runs redis-cli with `args` against this server; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").arg("-p").arg(self.port.to_string()).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends raw bytes on a new connection and returns what came back before
    /// the server closed it or `wait` passed.
    pub fn raw(&self, bytes: &[u8], wait: Duration) -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(bytes).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        out
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("cowstore.log")).unwrap_or_default()
    }

    /// Waits for the process to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one command and returns the reply as a `redis::Value`.
pub fn cmd(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| redis::Value::SimpleString(format!("ERROR:{e}")))
}

/// Runs one command expecting an error; returns the error text (code and message).
pub fn err(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")).trim().to_string(),
    }
}

/// Runs one command and converts the reply.
pub fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A Debian `redis-server` 7.0 on a free loopback port, stopped when dropped.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory.
    pub dir: PathBuf,
    child: Child,
}

impl RedisServer {
    /// Starts redis-server with persistence off plus `extra` arguments.
    pub fn start(extra: &[&str]) -> RedisServer {
        Self::start_in(temp_dir("redis"), extra)
    }

    /// Starts redis-server in `dir` with persistence off plus `extra` arguments.
    pub fn start_in(dir: PathBuf, extra: &[&str]) -> RedisServer {
        let started = test_support::start_server(|port| {
            let mut args = test_support::server_args(port, &dir);
            args.extend(["--enable-debug-command", "yes", "--daemonize", "no"].map(str::to_string));
            args.extend(extra.iter().map(|s| s.to_string()));
            Command::new("redis-server").args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
        });
        match started {
            Ok((child, port)) => RedisServer { port, dir, child },
            Err(e) => panic!("redis-server did not start ({e}); is it installed (apt-get install redis-server)?"),
        }
    }

    /// A `redis` crate connection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits an inline test line into arguments: whitespace separated, with
/// "double quotes" for arguments containing spaces (\n, \r, \t, \", \\ and
/// \xHH escapes inside them).
pub fn split_line(line: &str) -> Vec<Vec<u8>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut arg = Vec::new();
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        b'n' => arg.push(b'\n'),
                        b'r' => arg.push(b'\r'),
                        b't' => arg.push(b'\t'),
                        b'x' if i + 2 < b.len() => {
                            arg.push(u8::from_str_radix(&line[i + 1..i + 3], 16).unwrap());
                            i += 2;
                        }
                        c => arg.push(c),
                    }
                } else {
                    arg.push(b[i]);
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                arg.push(b[i]);
                i += 1;
            }
        }
        out.push(arg);
    }
    out
}

/// `OBJECT ENCODING key`.
pub fn encoding(c: &mut redis::Connection, key: &str) -> String {
    q(c, &["OBJECT", "ENCODING", key])
}

/// A field of INFO (all sections), read through the `redis` crate.
pub fn info_field(con: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("everything").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .trim()
        .to_string()
}

/// Starts cowstore on an existing directory; returns (exit code, log) if it
/// exits within a few seconds, or None if it is still running (then kills it).
pub fn start_expect_exit(dir: &Path, extra: &[&str]) -> Option<(Option<i32>, String)> {
    let log = dir.join("start.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cowstore"))
        .args(["--port", &free_port().to_string(), "--save", "", "--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return Some((st.code(), std::fs::read_to_string(&log).unwrap()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
