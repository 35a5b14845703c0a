//! What the store tests, the probe tests and the benchmark harness (xtask)
//! share when they run a real server: a loopback port no one else in this
//! process was given ([`free_port`]), "ready" meaning "answers PING"
//! ([`answers_ping`], [`start_server`]), and RESP on the wire ([`resp`]).

pub mod resp;

pub use resp::{Raw, Resp, bulk, int, line, read_resp, resp_request};

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after it was spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Ports [`start_server`] tries before giving up: a server exits at startup
/// when another process took its port between [`free_port`] and its bind.
const ATTEMPTS: usize = 5;

/// A free port on loopback (bound then released), never one this process
/// handed out before: the kernel may give a released port to the next bind,
/// and two tests running at once must not start their servers on one port.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port =
            TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().expect("its port").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether a server on `port` answers PING. Any complete reply counts except
/// `-LOADING` (redis-server and cowstore while they read their files):
/// `-NOAUTH` from a server with a password is an answer too. A connection
/// alone proves nothing: until the server binds its port, another thread's
/// [`free_port`] may hold a listener there for a moment, which accepts and
/// then resets ("connection reset by peer" on a server that never saw it).
pub fn answers_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    if s.set_read_timeout(Some(Duration::from_secs(1))).is_err() || s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    BufReader::new(s).read_until(b'\n', &mut reply).is_ok_and(|_| reply.ends_with(b"\r\n"))
        && !reply.starts_with(b"-LOADING")
}

/// Why a server did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// It could not be spawned.
    Spawn(std::io::Error),
    /// It exited before answering PING.
    Exited(ExitStatus),
    /// It did not answer PING within [`READY_TIMEOUT`].
    Timeout,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Spawn(e) => write!(f, "cannot start it: {e}"),
            NotReady::Exited(st) => write!(f, "it exited at startup: {st}"),
            NotReady::Timeout => write!(f, "it did not answer PING within {READY_TIMEOUT:?}"),
        }
    }
}

impl std::error::Error for NotReady {}

/// Waits until `child`, listening on `port`, answers PING.
pub fn wait_ready(child: &mut Child, port: u16) -> Result<(), NotReady> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(NotReady::Exited(st));
        }
        if answers_ping(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(NotReady::Timeout)
}

/// Starts a server with `spawn(port)` on a [`free_port`] and returns it with
/// its port once it answers PING. A server that exits or stays silent is
/// killed and started again on another port, a few times; the error is the
/// last attempt's.
pub fn start_server(mut spawn: impl FnMut(u16) -> std::io::Result<Child>) -> Result<(Child, u16), NotReady> {
    let mut last = NotReady::Timeout;
    for _ in 0..ATTEMPTS {
        let port = free_port();
        let mut child = spawn(port).map_err(NotReady::Spawn)?;
        match wait_ready(&mut child, port) {
            Ok(()) => return Ok((child, port)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                last = e;
            }
        }
    }
    Err(last)
}

/// A child process killed (and reaped) when dropped, so a server or a
/// background load never outlives a failed test or an early error.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The options every harness starts a server (redis-server or cowstore)
/// with: `port` on loopback, persistence off, files in `dir`. Callers add
/// their own after these (later options win).
pub fn server_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    let (port, dir) = (port.to_string(), dir.display().to_string());
    ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", &dir]
        .map(str::to_string)
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn ports_are_handed_out_once() {
        let mut seen: Vec<u16> = (0..200).map(|_| free_port()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 200);
    }

    /// A listener on a fresh port that answers each connection's first
    /// request with `reply` (nothing: closes it at once).
    fn fake_server(reply: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                if !reply.is_empty() {
                    let _ = s.read(&mut [0u8; 64]);
                    let _ = s.write_all(reply);
                }
            }
        });
        port
    }

    #[test]
    fn ready_means_a_reply_other_than_loading() {
        assert!(answers_ping(fake_server(b"+PONG\r\n")));
        assert!(answers_ping(fake_server(b"-NOAUTH Authentication required.\r\n")));
        assert!(!answers_ping(fake_server(b"-LOADING Redis is loading the dataset in memory\r\n")));
        assert!(!answers_ping(fake_server(b"")), "a connection closed without a reply is not ready");
        assert!(!answers_ping(fake_server(b"+PON")), "half a reply is not ready");
    }
}
