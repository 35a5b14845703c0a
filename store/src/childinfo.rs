//! The child-info pipe: how a fork child tells the parent its progress and how
//! much memory copy-on-write has cost so far, as Redis's `childinfo.c` does.
//!
//! The child measures copy-on-write as the sum of `Private_Dirty` in its own
//! `/proc/self/smaps_rollup`: every page either process wrote since the fork
//! is private to the child. Reading it costs time proportional to the
//! mapping, so the child re-reads only when the previous read cost less than
//! 1% of the time since (Redis's CHILD_COW_DUTY_CYCLE), and at the end.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// One record: keys processed, CoW bytes, whether this is the final report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Record {
    /// Keys written so far.
    pub keys: u64,
    /// Private dirty bytes in the child now.
    pub cow: u64,
    /// Set on the report sent when the child finished its work.
    pub last: bool,
}

const RECORD_LEN: usize = 24;
const DUTY_CYCLE: u32 = 100;

impl Record {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..8].copy_from_slice(&self.keys.to_le_bytes());
        b[8..16].copy_from_slice(&self.cow.to_le_bytes());
        b[16..24].copy_from_slice(&(self.last as u64).to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Record {
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Record { keys: u(0), cow: u(8), last: u(16) != 0 }
    }
}

/// The child's end: throttled CoW sampling and reporting.
pub struct Reporter {
    pipe: std::fs::File,
    last_report: Instant,
    last_read: Instant,
    read_cost: Duration,
    cow: u64,
    /// Highest CoW sample taken.
    pub peak: u64,
    sum: u64,
    samples: u64,
}

impl Reporter {
    /// Wraps the pipe's write end.
    pub fn new(fd: OwnedFd) -> Reporter {
        let now = Instant::now();
        Reporter {
            pipe: std::fs::File::from(fd),
            last_report: now,
            last_read: now,
            read_cost: Duration::ZERO,
            cow: 0,
            peak: 0,
            sum: 0,
            samples: 0,
        }
    }

    /// Called as keys are written; reports at most once a second.
    pub fn progress(&mut self, keys: u64) {
        if self.last_report.elapsed() < Duration::from_secs(1) {
            return;
        }
        if self.last_read.elapsed() > self.read_cost * DUTY_CYCLE {
            self.sample();
        }
        self.send(Record { keys, cow: self.cow, last: false });
        self.last_report = Instant::now();
    }

    /// Takes a final sample, sends it, and logs the CoW summary as Redis 7 does.
    pub fn finish(&mut self, keys: u64, what: &str) {
        self.sample();
        self.send(Record { keys, cow: self.cow, last: true });
        let mb = |b: u64| b / (1024 * 1024);
        crate::notice!(
            "Fork CoW for {what}: current {} MB, peak {} MB, average {} MB",
            mb(self.cow),
            mb(self.peak),
            mb(self.sum / self.samples.max(1))
        );
    }

    fn sample(&mut self) {
        let t = Instant::now();
        self.cow = crate::memory::smaps_rollup_field("Private_Dirty:");
        self.read_cost = t.elapsed();
        self.last_read = Instant::now();
        self.peak = self.peak.max(self.cow);
        self.sum += self.cow;
        self.samples += 1;
    }

    fn send(&mut self, r: Record) {
        // Non-blocking: if the parent is behind and the pipe is full, the record is dropped.
        let _ = self.pipe.write(&r.encode());
    }
}

/// Reads every complete record waiting in the parent's end of the pipe.
pub fn drain(fd: &OwnedFd, pending: &mut Vec<u8>) -> Vec<Record> {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a live buffer from a descriptor we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n as usize]);
    }
    let whole = pending.len() / RECORD_LEN * RECORD_LEN;
    let out = pending[..whole].chunks_exact(RECORD_LEN).map(Record::decode).collect();
    pending.drain(..whole);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_cross_the_pipe() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        let mut rep = Reporter::new(w);
        rep.send(Record { keys: 5, cow: 4096, last: false });
        rep.send(Record { keys: 9, cow: 8192, last: true });
        let mut pending = Vec::new();
        let got = drain(&r, &mut pending);
        assert_eq!(got, vec![Record { keys: 5, cow: 4096, last: false }, Record { keys: 9, cow: 8192, last: true }]);
    }
}
