//! The append-only file: every write command is appended, as RESP, to a log
//! that is replayed at startup, and made durable by the `appendfsync` policy.
//!
//! The write path is Redis's, exactly:
//! 1. a command changes memory and is appended to the AOF buffer ([`Aof::feed`]);
//! 2. before any reply of that event-loop pass leaves, the buffer is written
//!    to the current incr file ([`flush`]), and with `always` fdatasync'd
//!    (one fdatasync per pass: group commit);
//! 3. with `everysec` a background thread fdatasyncs once per second; if that
//!    fsync is still running, the write is postponed (replies still go out)
//!    for up to 2 s, after which it is written anyway and `aof_delayed_fsync`
//!    counts it; with `no`, cowstore never fsyncs.
//!
//! Files follow Redis 7's multi-part layout (see [`manifest`]), so
//! `redis-check-aof` and redis-server read them, and cowstore reads theirs.
//! This module holds the AOF's state; `write` is the write path above and
//! `lifecycle` opens, switches, turns on and off, and reports it.

pub mod fsync;
mod lifecycle;
pub mod load;
pub mod manifest;
pub mod rewrite;
mod write;

pub use lifecycle::{cron, info, open_on_startup, shutdown, turn_off, turn_on};
pub use write::{append_command, flush, propagate, propagate_expired};

use crate::durability::Durability;
use fsync::FsyncWorker;
use manifest::Manifest;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Instant;

/// Whether commands are being logged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    /// `appendonly no`.
    Off,
    /// Logging.
    On,
    /// Turned on at runtime: logging into a new incr file while the first
    /// rewrite writes the base; on once it succeeds.
    WaitRewrite,
}

/// Rewrite bookkeeping for INFO.
#[derive(Default)]
pub struct RewriteStats {
    /// A rewrite waits for the running child (`aof_rewrite_scheduled`).
    pub scheduled: bool,
    /// Whether the last rewrite succeeded (`aof_last_bgrewrite_status`).
    pub last_ok: bool,
    /// Duration of the last rewrite in seconds, -1 if none.
    pub last_time_sec: i64,
    /// Successful rewrites (`aof_rewrites`).
    pub count: u64,
    /// Failures in a row (`aof_rewrites_consecutive_failures`).
    pub consecutive_failures: u64,
    /// Peak CoW of the last rewrite child (`aof_last_cow_size`).
    pub last_cow_size: u64,
    /// When the last rewrite failed (retries wait a second).
    pub last_failure: Option<Instant>,
}

/// The AOF's state, owned by the event-loop thread.
pub struct Aof {
    /// Off, on, or waiting for the first rewrite.
    pub state: State,
    /// The AOF directory (relative to `dir`).
    pub dir: PathBuf,
    /// The files that make up the AOF.
    pub manifest: Manifest,
    file: Option<File>,
    /// Commands appended but not yet written.
    pub buf: Vec<u8>,
    last_db: Option<usize>,
    /// Logical offset of everything written to files since startup.
    written: u64,
    /// Size of the current incr file.
    pub incr_size: u64,
    /// Size of the base and older incr files.
    pub other_size: u64,
    /// Total size after the last startup or rewrite (`aof_base_size`).
    pub base_size: u64,
    fsync: Option<FsyncWorker>,
    /// Logical offset the last submitted fsync covers.
    fsync_submitted: u64,
    last_fsync_sec: i64,
    postponed_since: Option<Instant>,
    /// Writes done without waiting for a slow fsync (`aof_delayed_fsync`).
    pub delayed_fsync: u64,
    /// errno of the last failed write, 0 when the last write succeeded.
    pub write_errno: i32,
    /// Client writes acknowledged by this pass's replies, and where the AOF
    /// bytes of the last of them end (offsets only grow, so the last is the
    /// furthest).
    pass_acks: u64,
    pass_end: u64,
    multi_open: Option<bool>,
    /// Ack-to-durable exposure of acknowledged writes.
    pub durability: Durability,
    /// Rewrite bookkeeping.
    pub rewrite: RewriteStats,
}

impl Aof {
    /// The AOF of a configuration, not yet opened.
    pub fn new(c: &crate::config::Config) -> Aof {
        Aof {
            state: State::Off,
            dir: PathBuf::from(&c.appenddirname),
            manifest: Manifest::default(),
            file: None,
            buf: Vec::new(),
            last_db: None,
            written: 0,
            incr_size: 0,
            other_size: 0,
            base_size: 0,
            fsync: None,
            fsync_submitted: 0,
            last_fsync_sec: 0,
            postponed_since: None,
            delayed_fsync: 0,
            write_errno: 0,
            pass_acks: 0,
            pass_end: 0,
            multi_open: None,
            durability: Durability::default(),
            rewrite: RewriteStats { last_ok: true, last_time_sec: -1, ..Default::default() },
        }
    }

    /// True when commands are being logged.
    pub fn logging(&self) -> bool {
        self.state != State::Off
    }

    /// Total size of the AOF files (`aof_current_size`).
    pub fn current_size(&self) -> u64 {
        self.other_size + self.incr_size
    }

    /// True while the fsync thread is working.
    pub fn fsync_in_progress(&self) -> bool {
        self.fsync.as_ref().is_some_and(|f| f.in_progress())
    }

    /// The errno that makes writes answer MISCONF (a failed write or fsync), if any.
    pub fn error(&self) -> Option<i32> {
        if !self.logging() {
            return None;
        }
        let fsync_err = self.fsync.as_ref().map_or(0, |f| f.error());
        [self.write_errno, fsync_err].into_iter().find(|&e| e != 0)
    }

    /// Path of a file in the AOF directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn submit_fsync_of(&mut self, f: &File) {
        if let (Some(w), Ok(fd)) = (self.fsync.as_ref(), f.as_fd().try_clone_to_owned()) {
            w.submit(fd, self.written);
            self.fsync_submitted = self.written;
        }
    }

    /// Collects finished background fsyncs into the exposure figures.
    fn collect_fsyncs(&mut self) {
        if let Some(w) = &self.fsync {
            for (offset, at) in w.take_done() {
                self.durability.covered(offset, at);
            }
        }
    }
}

/// The manifest's file name (`appendonly.aof.manifest`).
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

/// The name of incr file `seq`.
pub fn incr_name(appendfilename: &str, seq: u64) -> String {
    format!("{appendfilename}.{seq}.incr.aof")
}

/// The name of base file `seq` (`.rdb` when it is an RDB image).
pub fn base_name(appendfilename: &str, seq: u64, rdb: bool) -> String {
    format!("{appendfilename}.{seq}.base.{}", if rdb { "rdb" } else { "aof" })
}
