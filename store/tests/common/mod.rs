//! Test support: starts a real `cowstore` process on a free loopback port and
//! stops it when dropped; talks to it with the `redis` crate and redis-cli.
#![allow(dead_code)]

pub mod data;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
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

/// A free port on loopback (bound then released), never one this process
/// handed out before: the kernel may give a released port to the next bind,
/// and two tests running at once must not start their servers on one port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether a server on `port` answers PING (NOAUTH counts; -LOADING, while it
/// reads its files, does not). A connection alone proves nothing: until the
/// server binds its port, another thread's `free_port` may hold a listener
/// there for a moment, which accepts and then resets (seen in the tests as
/// "connection reset by peer" on a server that never saw the connection).
pub fn answers_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let mut buf = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(1))).is_ok()
        && s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf).is_ok_and(|n| n > 0 && !buf[..n].starts_with(b"-LOADING"))
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
        for _ in 0..5 {
            let port = free_port();
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
            let log = std::fs::File::create(dir.join("cowstore.log")).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_cowstore"))
                .args(&args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start cowstore");
            let mut s = Server { port, dir: dir.clone(), child };
            if s.wait_ready() {
                return s;
            }
        }
        panic!("cowstore did not start; log in {}", dir.display());
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if answers_ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
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
        for _ in 0..5 {
            let port = free_port();
            let mut args: Vec<String> = [
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
                "--daemonize",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            let child = Command::new("redis-server")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server)");
            let mut r = RedisServer { port, dir: dir.clone(), child };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = r.child.try_wait() {
                    break;
                }
                if answers_ping(port) {
                    return r;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start");
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

/// Encodes arguments as a RESP multibulk request.
pub fn resp_request(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A parsed RESP2/RESP3 reply, kept close to the wire form for comparisons.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resp {
    /// `+...`, `-...`, `:...`, `,...`, `#...`, `_` and other one-line replies, with their type byte.
    Line(u8, Vec<u8>),
    /// `$n` / `=n` / `!n` bulk with its type byte.
    Bulk(u8, Vec<u8>),
    /// `$-1`
    NullBulk,
    /// `*-1`
    NullArray,
    /// `*n`, `%n`, `~n`, `>n` aggregates with their type byte.
    Agg(u8, Vec<Resp>),
}

/// Reads one complete reply from a buffered stream.
pub fn read_resp(r: &mut impl std::io::BufRead) -> std::io::Result<Resp> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.len() < 3 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    let kind = line[0];
    let body = line[1..line.len() - 2].to_vec();
    let num = || String::from_utf8_lossy(&body).parse::<i64>().unwrap_or(-1);
    Ok(match kind {
        b'$' | b'=' | b'!' => {
            let n = num();
            if n < 0 {
                return Ok(Resp::NullBulk);
            }
            let mut data = vec![0u8; n as usize + 2];
            r.read_exact(&mut data)?;
            data.truncate(n as usize);
            Resp::Bulk(kind, data)
        }
        b'*' | b'%' | b'~' | b'>' => {
            let n = num();
            if n < 0 {
                return Ok(Resp::NullArray);
            }
            let items = if kind == b'%' { 2 * n } else { n };
            let mut v = Vec::new();
            for _ in 0..items {
                v.push(read_resp(r)?);
            }
            Resp::Agg(kind, v)
        }
        _ => Resp::Line(kind, body),
    })
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

/// A raw RESP connection, for exact replies (RESP3 included) and wire shapes.
pub struct Raw {
    /// The socket, for writing.
    pub w: TcpStream,
    /// The same socket, buffered for reading replies.
    pub r: std::io::BufReader<TcpStream>,
}

impl Raw {
    /// Connects to 127.0.0.1:`port` (replies time out after 10 s).
    pub fn new(port: u16) -> Raw {
        let w = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { r: std::io::BufReader::new(w.try_clone().unwrap()), w }
    }

    /// Sends one command of binary arguments and reads its reply.
    pub fn call_bytes(&mut self, args: &[Vec<u8>]) -> Resp {
        self.w.write_all(&resp_request(args)).unwrap();
        read_resp(&mut self.r).unwrap_or_else(|e| panic!("no reply to {args:?}: {e}"))
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&str]) -> Resp {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        self.call_bytes(&args)
    }

    /// The reply's text: a simple string, error, bulk or verbatim string.
    pub fn text(&mut self, args: &[&str]) -> String {
        match self.call(args) {
            Resp::Line(_, b) | Resp::Bulk(_, b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("{args:?}: unexpected {other:?}"),
        }
    }
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
