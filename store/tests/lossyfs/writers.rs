//! A write load that knows exactly which writes were acknowledged, and the
//! check of which of them survived a crash.
//!
//! Each client owns a connection and writes `SET w:<tag>:<client>:<seq> <seq>`
//! for seq = 0, 1, 2, ..., one request at a time, recording when each request
//! was sent and when its `+OK` arrived. Because the writes of one client are
//! sequential and the AOF is a log, what survives of a client must be a
//! prefix of its sequence (plus possibly the one unanswered request).

use crate::common::Server;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// No load runs longer than this, whatever happens to the test.
const MAX_RUN: Duration = Duration::from_secs(120);

/// One acknowledged write.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    /// When its request was sent.
    pub sent: Instant,
    /// When its `+OK` arrived.
    pub acked: Instant,
}

/// What one client did.
#[derive(Debug)]
pub struct ClientLog {
    /// Key prefix (`w:<tag>:<client>`); write `seq` is `<prefix>:<seq>`.
    pub prefix: String,
    /// The acknowledged writes, by sequence number.
    pub acks: Vec<Ack>,
    /// A request (number `acks.len()`) was sent and never answered.
    pub unanswered: bool,
    /// A reply other than `+OK` (the load stops at the first).
    pub error: Option<String>,
}

/// Clients writing until stopped or until the server goes away.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<ClientLog>>,
}

impl Load {
    /// Starts `clients` writers against 127.0.0.1:`port`, keys tagged `tag`.
    pub fn start(port: u16, tag: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|c| {
                let prefix = format!("w:{tag}:{c}");
                let stop = stop.clone();
                std::thread::spawn(move || run_client(port, prefix, &stop))
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops the writers (or collects them after the server died).
    pub fn stop(self) -> Vec<ClientLog> {
        self.stop.store(true, Ordering::Relaxed);
        self.clients.into_iter().map(|h| h.join().expect("writer thread")).collect()
    }
}

fn run_client(port: u16, prefix: String, stop: &AtomicBool) -> ClientLog {
    let mut log = ClientLog { prefix, acks: Vec::new(), unanswered: false, error: None };
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect the writer");
    s.set_nodelay(true).expect("nodelay");
    // Generous: a write may wait behind a deliberately slow fsync.
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone the stream"));
    let deadline = Instant::now() + MAX_RUN;
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let seq = log.acks.len().to_string();
        let key = format!("{}:{seq}", log.prefix);
        let req = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{seq}\r\n", key.len(), seq.len());
        let sent = Instant::now();
        line.clear();
        if s.write_all(req.as_bytes()).is_err() || !matches!(r.read_line(&mut line), Ok(n) if n > 0) {
            log.unanswered = true;
            break;
        }
        if line != "+OK\r\n" {
            log.error = Some(line.trim_end().to_string());
            break;
        }
        log.acks.push(Ack { sent, acked: Instant::now() });
    }
    log
}

/// `kill -9`s the server and reaps it; returns the moment of the kill.
pub fn kill_9(s: &mut Server) -> Instant {
    let cut = Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(s.pid() as i32, libc::SIGKILL) }, 0, "kill -9 cowstore");
    assert!(s.wait_exit(Duration::from_secs(30)).is_none(), "cowstore exited by itself: {}", s.log());
    assert!(!s.alive(), "cowstore survived kill -9");
    cut
}

/// A field of `INFO everything` (panics if absent).
pub fn info_field(con: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("everything").query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .trim()
        .to_string()
}

/// An acknowledged write that did not survive.
#[derive(Clone, Copy, Debug)]
pub struct Lost {
    /// Index of the client in the checked logs.
    pub client: usize,
    /// Its sequence number.
    pub seq: usize,
    /// When it was sent and acknowledged.
    pub ack: Ack,
}

/// What survived, per client and in total.
#[derive(Debug)]
pub struct Survival {
    /// Acknowledged writes.
    pub acked: usize,
    /// Per client: how many of its writes (from seq 0) are present.
    pub present: Vec<usize>,
    /// Acknowledged writes that are missing.
    pub lost: Vec<Lost>,
}

impl Survival {
    /// Age at `cut` of the oldest lost write, in ms (0 if none).
    pub fn oldest_lost_age_ms(&self, cut: Instant) -> u128 {
        self.lost.iter().map(|l| cut.saturating_duration_since(l.ack.acked).as_millis()).max().unwrap_or(0)
    }

    /// Time between the first and the last acknowledgement of lost writes, in ms.
    pub fn lost_span_ms(&self) -> u128 {
        let first = self.lost.iter().map(|l| l.ack.acked).min();
        let last = self.lost.iter().map(|l| l.ack.acked).max();
        match (first, last) {
            (Some(a), Some(b)) => b.duration_since(a).as_millis(),
            _ => 0,
        }
    }
}

/// Reads back every write of `logs` and checks what a crash may leave: a
/// prefix per client, with the right values, and nothing that was never
/// sent. Panics on anything else; returns what survived.
pub fn check(con: &mut redis::Connection, logs: &[ClientLog]) -> Survival {
    let mut out = Survival { acked: 0, present: Vec::new(), lost: Vec::new() };
    for (client, log) in logs.iter().enumerate() {
        assert!(log.error.is_none(), "{}: the server answered {:?}", log.prefix, log.error);
        // The acknowledged writes, the unanswered one, and one never sent.
        let n = log.acks.len() + 2;
        let mut values: Vec<Option<String>> = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let mut mget = redis::cmd("MGET");
            for seq in chunk {
                mget.arg(format!("{}:{seq}", log.prefix));
            }
            values.extend(mget.query::<Vec<Option<String>>>(con).expect("MGET"));
        }
        let present = values.iter().take_while(|v| v.is_some()).count();
        for (seq, v) in values.iter().enumerate() {
            match v {
                Some(v) => assert_eq!(v, &seq.to_string(), "{}:{seq} has a wrong value", log.prefix),
                None => assert!(
                    values[seq..].iter().all(Option::is_none),
                    "{}: write {seq} is missing but a later one is present (a hole in the log)",
                    log.prefix
                ),
            }
        }
        let sent = log.acks.len() + log.unanswered as usize;
        assert!(present <= sent, "{}: {present} writes present, only {sent} were sent", log.prefix);
        out.acked += log.acks.len();
        out.lost.extend((present..log.acks.len()).map(|seq| Lost { client, seq, ack: log.acks[seq] }));
        out.present.push(present);
    }
    out
}

/// A small seeded generator for random delays (xorshift64*); the seed is
/// printed so a run can be repeated.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock (printed with `what`).
    pub fn from_clock(what: &str) -> Rng {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        println!("{what}: random seed {seed}");
        Rng(seed)
    }

    /// A duration uniformly in [lo, hi).
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let span = (hi - lo).as_micros().max(1) as u64;
        lo + Duration::from_micros(x % span)
    }
}
