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

pub mod fsync;
pub mod load;
pub mod manifest;
pub mod rewrite;

use crate::config::FsyncPolicy;
use crate::durability::Durability;
use crate::server::Server;
use crate::{markers, notice, warning};
use fsync::FsyncWorker;
use manifest::{AofFile, FileType, Manifest};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a write may wait behind a running fsync under `everysec`.
const MAX_POSTPONE: Duration = Duration::from_secs(2);

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

    /// Appends a command executed in database `db`. `acked` marks a client
    /// write whose reply will be its acknowledgement (expiry deletions are not).
    pub fn feed<'a>(&mut self, db: usize, args: impl ExactSizeIterator<Item = &'a [u8]>, acked: bool) {
        if !self.logging() {
            return;
        }
        if self.last_db != Some(db) {
            let d = db.to_string();
            append_command(&mut self.buf, [b"SELECT".as_slice(), d.as_bytes()].into_iter());
            self.last_db = Some(db);
        }
        if self.multi_open == Some(false) {
            append_command(&mut self.buf, [b"MULTI".as_slice()].into_iter());
            self.multi_open = Some(true);
        }
        append_command(&mut self.buf, args);
        if acked {
            self.pass_acks += 1;
            self.pass_end = self.written + self.buf.len() as u64;
        }
    }

    /// EXEC is starting: the first logged command will be preceded by MULTI.
    pub fn exec_begin(&mut self) {
        self.multi_open = Some(false);
    }

    /// EXEC ended: closes the MULTI block if one was opened.
    pub fn exec_end(&mut self) {
        if self.multi_open == Some(true) && self.logging() {
            append_command(&mut self.buf, [b"EXEC".as_slice()].into_iter());
            if self.pass_acks > 0 {
                self.pass_end = self.written + self.buf.len() as u64;
            }
        }
        self.multi_open = None;
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

    /// Opens `name` (in the AOF dir) as the file commands are appended to.
    fn open_incr(&mut self, name: &str) -> std::io::Result<()> {
        let f = OpenOptions::new().create(true).append(true).open(self.path(name))?;
        self.incr_size = f.metadata()?.len();
        self.file = Some(f);
        self.last_db = None;
        Ok(())
    }

    /// Writes the manifest durably.
    pub fn persist_manifest(&self, appendfilename: &str) -> std::io::Result<()> {
        self.manifest.persist(&self.dir, &manifest_name(appendfilename))
    }

    /// Starts a new incr file (at rewrite start): the current one is synced and
    /// closed in the background, the manifest lists the new one.
    pub fn switch_to_new_incr(&mut self, appendfilename: &str) -> std::io::Result<()> {
        let seq = self.manifest.last_incr_seq() + 1;
        let name = incr_name(appendfilename, seq);
        // Never truncate: a file of that name with data in it is not ours to reuse.
        let f = OpenOptions::new().create(true).append(true).open(self.path(&name))?;
        if f.metadata()?.len() > 0 {
            return Err(std::io::Error::other(format!("{name} exists and is not empty; refusing to overwrite it")));
        }
        let mut m = self.manifest.clone();
        m.incrs.push(AofFile { name: name.clone(), seq, kind: FileType::Incr });
        m.persist(&self.dir, &manifest_name(appendfilename))?;
        self.manifest = m;
        if let Some(old) = self.file.take() {
            self.submit_fsync_of(&old);
        }
        self.other_size += self.incr_size;
        self.open_incr(&name)
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

/// Logs keys deleted by expiry as DEL (they vanished without a command).
pub fn propagate_expired(srv: &mut Server) {
    if srv.ks.expired_log.is_empty() {
        return;
    }
    for (db, key) in std::mem::take(&mut srv.ks.expired_log) {
        srv.aof.feed(db, [b"DEL".as_slice(), &key].into_iter(), false);
    }
}

/// Logs a command that ran in `db` and changed the keyspace: as received,
/// or as the handler asked with [`Server::propagate_as`].
pub fn propagate(srv: &mut Server, db: usize, args: &crate::cmd::Args) {
    match srv.prop_override.take() {
        Some(cmds) => {
            for c in &cmds {
                srv.aof.feed(db, c.iter().map(|a| a.as_slice()), true);
            }
        }
        None => srv.aof.feed(db, args.from(0), true),
    }
}

/// Appends a command as a RESP array.
pub fn append_command<'a>(buf: &mut Vec<u8>, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    buf.push(b'*');
    crate::util::push_i64(buf, args.len() as i64);
    buf.extend_from_slice(b"\r\n");
    for a in args {
        buf.push(b'$');
        crate::util::push_i64(buf, a.len() as i64);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Writes the buffer to the current incr file according to the fsync policy
/// (called before replies are written, and from the cron). `force` writes even
/// when an everysec fsync is running.
pub fn flush(srv: &mut Server, force: bool) {
    let aof = &mut srv.aof;
    if !aof.logging() {
        aof.pass_acks = 0;
        return;
    }
    aof.collect_fsyncs();
    let policy = srv.config.appendfsync;
    let now_sec = crate::util::now_ms() / 1000;
    let child_saving = srv.child.is_some() && srv.config.no_appendfsync_on_rewrite;
    if aof.buf.is_empty() {
        // Nothing new, but an everysec fsync may still be owed for earlier writes.
        if policy == FsyncPolicy::Everysec
            && aof.written > aof.fsync_submitted
            && now_sec > aof.last_fsync_sec
            && !aof.fsync_in_progress()
            && !child_saving
            && let Some(f) = aof.file.take()
        {
            aof.submit_fsync_of(&f);
            aof.file = Some(f);
            aof.last_fsync_sec = now_sec;
        }
        ack_pass(srv);
        return;
    }
    if policy == FsyncPolicy::Everysec && !force && aof.fsync_in_progress() {
        match aof.postponed_since {
            None => {
                aof.postponed_since = Some(Instant::now());
                ack_pass(srv);
                return;
            }
            Some(t) if t.elapsed() < MAX_POSTPONE => {
                ack_pass(srv);
                return;
            }
            Some(_) => {
                aof.delayed_fsync += 1;
                notice!(
                    "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."
                );
            }
        }
    }
    aof.postponed_since = None;
    let Some(file) = aof.file.as_mut() else {
        ack_pass(srv);
        return;
    };
    let before = aof.incr_size;
    match file.write_all(&aof.buf) {
        Ok(()) => {
            if aof.write_errno != 0 {
                warning!("AOF write error looks solved, Redis can write again.");
                aof.write_errno = 0;
            }
            aof.incr_size += aof.buf.len() as u64;
            aof.written += aof.buf.len() as u64;
            aof.buf.clear();
        }
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            // Undo a partial write so the file never ends in half a command.
            let _ = file.set_len(before);
            if policy == FsyncPolicy::Always {
                warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                std::process::exit(1);
            }
            if aof.write_errno == 0 {
                warning!("Error writing to the AOF file: {e}");
            }
            aof.write_errno = errno;
            ack_pass(srv);
            return;
        }
    }
    match policy {
        FsyncPolicy::Always => {
            // SAFETY: fdatasync on the open AOF descriptor.
            let rc = unsafe { libc::fdatasync(std::os::fd::AsRawFd::as_raw_fd(file)) };
            if rc != 0 {
                warning!(
                    "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {}. Exiting...",
                    std::io::Error::last_os_error()
                );
                std::process::exit(1);
            }
            aof.fsync_submitted = aof.written;
            markers::cowstore_marker_fsync_done(aof.written);
            let at = crate::util::now_us();
            ack_pass(srv);
            srv.aof.durability.covered(srv.aof.written, at);
            return;
        }
        FsyncPolicy::Everysec => {
            if now_sec > aof.last_fsync_sec && !child_saving {
                if !aof.fsync_in_progress()
                    && let Some(f) = aof.file.take()
                {
                    aof.submit_fsync_of(&f);
                    aof.file = Some(f);
                }
                aof.last_fsync_sec = now_sec;
            }
        }
        FsyncPolicy::No => {}
    }
    ack_pass(srv);
}

/// The replies of this pass are about to leave: the writes they acknowledge
/// start their exposure now.
fn ack_pass(srv: &mut Server) {
    let aof = &mut srv.aof;
    if aof.pass_acks == 0 {
        return;
    }
    markers::cowstore_marker_writes_acked(aof.pass_end, aof.pass_acks);
    aof.durability.acked(srv.config.appendfsync, aof.pass_end, aof.pass_acks, crate::util::now_us());
    aof.pass_acks = 0;
}

/// Opens the AOF at startup (after loading): creates the directory, writes an
/// empty base if there is no AOF yet, opens the last incr file, starts the
/// fsync thread.
pub fn open_on_startup(srv: &mut Server) -> Result<(), String> {
    let name = srv.config.appendfilename.clone();
    std::fs::create_dir_all(&srv.aof.dir)
        .map_err(|e| format!("Can't create AOF directory {}: {e}", srv.aof.dir.display()))?;
    // The directory's own entry must be durable too, or a power loss right
    // after the first start takes the whole AOF with it.
    crate::fsutil::fsync_dir(&srv.aof.dir)
        .map_err(|e| format!("Can't fsync the parent of AOF directory {}: {e}", srv.aof.dir.display()))?;
    let aof_err = |e: std::io::Error| format!("Can't open the append-only file: {e}");
    // Files are only created here, never replaced: one that exists already
    // belongs to an AOF no valid manifest describes, and stays as it is.
    let unlisted =
        |p: &std::path::Path| format!("{} exists but no AOF manifest lists it; refusing to overwrite it", p.display());
    let before = srv.aof.manifest.clone();
    if srv.aof.manifest.base.is_none() && srv.aof.manifest.incrs.is_empty() {
        let preamble = srv.config.aof_use_rdb_preamble;
        let base = base_name(&name, 1, preamble);
        if srv.aof.path(&base).exists() {
            return Err(unlisted(&srv.aof.path(&base)));
        }
        rewrite::write_base(&srv.ks, &srv.config, &srv.aof.path(&base), &srv.aof.dir.join(format!("temp-{base}")))
            .map_err(aof_err)?;
        srv.aof.manifest.base = Some(AofFile { name: base, seq: 1, kind: FileType::Base });
    }
    if srv.aof.manifest.incrs.is_empty() {
        let incr = incr_name(&name, 1);
        OpenOptions::new().write(true).create_new(true).open(srv.aof.path(&incr)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists { unlisted(&srv.aof.path(&incr)) } else { aof_err(e) }
        })?;
        srv.aof.manifest.incrs.push(AofFile { name: incr, seq: 1, kind: FileType::Incr });
    }
    // A valid manifest that lists everything is left byte for byte as it is.
    if srv.aof.manifest != before || !srv.aof.path(&manifest_name(&name)).exists() {
        srv.aof.persist_manifest(&name).map_err(aof_err)?;
    }
    let last = srv.aof.manifest.incrs.last().expect("one incr").name.clone();
    srv.aof.other_size = files_size(srv, true);
    srv.aof.open_incr(&last).map_err(aof_err)?;
    srv.aof.base_size = srv.aof.current_size();
    srv.aof.fsync = Some(FsyncWorker::start().map_err(aof_err)?);
    srv.aof.state = State::On;
    srv.ks.log_expired = true;
    Ok(())
}

/// Sum of the sizes of the base and incr files (optionally without the last incr).
fn files_size(srv: &Server, except_last_incr: bool) -> u64 {
    let m = &srv.aof.manifest;
    let n = m.incrs.len() - (except_last_incr && !m.incrs.is_empty()) as usize;
    m.base
        .iter()
        .chain(&m.incrs[..n])
        .filter_map(|f| std::fs::metadata(srv.aof.path(&f.name)).ok())
        .map(|md| md.len())
        .sum()
}

/// `CONFIG SET appendonly yes` at runtime: starts logging into a new incr
/// file and a rewrite that writes the base from the current data.
pub fn turn_on(srv: &mut Server) -> Result<(), String> {
    if srv.aof.logging() {
        return Ok(());
    }
    std::fs::create_dir_all(&srv.aof.dir).map_err(|e| format!("Can't create AOF directory: {e}"))?;
    crate::fsutil::fsync_dir(&srv.aof.dir).map_err(|e| format!("Can't fsync the AOF directory's parent: {e}"))?;
    if srv.aof.fsync.is_none() {
        srv.aof.fsync = Some(FsyncWorker::start().map_err(|e| e.to_string())?);
    }
    if let Ok(text) = std::fs::read_to_string(srv.aof.path(&manifest_name(&srv.config.appendfilename))) {
        srv.aof.manifest = Manifest::parse(&text).map_err(|e| format!("Invalid AOF manifest: {e}"))?;
    }
    srv.aof.state = State::WaitRewrite;
    srv.ks.log_expired = true;
    match rewrite::start(srv) {
        Ok(_) => Ok(()),
        Err(e) => {
            srv.aof.state = State::Off;
            srv.ks.log_expired = false;
            Err(e)
        }
    }
}

/// `CONFIG SET appendonly no`: flushes, syncs and closes the AOF, stops a rewrite.
pub fn turn_off(srv: &mut Server) {
    if !srv.aof.logging() {
        return;
    }
    flush(srv, true);
    if let Some(f) = srv.aof.file.take() {
        let _ = f.sync_data();
    }
    if srv.child.as_ref().is_some_and(|c| c.kind == crate::fork::ChildKind::Aof)
        && let Some(exit) = crate::fork::kill_and_reap(srv)
    {
        let _ = std::fs::remove_file(rewrite::temp_name(exit.child.pid.as_raw()));
    }
    srv.aof.state = State::Off;
    srv.ks.log_expired = false;
    srv.ks.expired_log.clear();
    srv.aof.rewrite.scheduled = false;
    srv.aof.durability.drop_pending();
}

/// The cron's AOF work: retry failed writes, flush postponed ones, start a
/// scheduled or size-triggered rewrite.
pub fn cron(srv: &mut Server) {
    if !srv.aof.logging() {
        return;
    }
    if srv.aof.postponed_since.is_some() || srv.aof.write_errno != 0 || !srv.aof.buf.is_empty() {
        flush(srv, false);
    }
    srv.aof.collect_fsyncs();
    if srv.child.is_some() {
        return;
    }
    let retry_ok = srv.aof.rewrite.last_failure.is_none_or(|t| t.elapsed() > Duration::from_secs(1));
    if srv.aof.rewrite.scheduled && retry_ok {
        let _ = rewrite::start(srv);
        return;
    }
    let c = &srv.config;
    if srv.aof.state == State::On
        && c.auto_aof_rewrite_percentage > 0
        && srv.aof.current_size() > c.auto_aof_rewrite_min_size
        && retry_ok
    {
        let base = srv.aof.base_size.max(1);
        let growth = srv.aof.current_size() * 100 / base - 100;
        if growth >= c.auto_aof_rewrite_percentage {
            notice!("Starting automatic rewriting of AOF on {growth}% growth");
            let _ = rewrite::start(srv);
        }
    }
}

/// On shutdown: writes and fsyncs whatever is buffered.
pub fn shutdown(srv: &mut Server) {
    if !srv.aof.logging() {
        return;
    }
    flush(srv, true);
    if let Some(w) = &srv.aof.fsync {
        w.wait_idle();
    }
    if let Some(f) = &srv.aof.file {
        let _ = f.sync_data();
    }
}

/// Appends the AOF fields of `INFO persistence`.
pub fn info(srv: &Server, out: &mut String) {
    use std::fmt::Write as _;
    let a = &srv.aof;
    let rewriting = srv.child.as_ref().filter(|c| c.kind == crate::fork::ChildKind::Aof);
    let mut f = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    f("aof_enabled", &(a.logging() as u8));
    f("aof_rewrite_in_progress", &(rewriting.is_some() as u8));
    f("aof_rewrite_scheduled", &(a.rewrite.scheduled as u8));
    f("aof_last_rewrite_time_sec", &a.rewrite.last_time_sec);
    f("aof_current_rewrite_time_sec", &rewriting.map_or(-1, |c| c.started.elapsed().as_secs() as i64));
    f("aof_last_bgrewrite_status", &if a.rewrite.last_ok { "ok" } else { "err" });
    f("aof_rewrites", &a.rewrite.count);
    f("aof_rewrites_consecutive_failures", &a.rewrite.consecutive_failures);
    f("aof_last_write_status", &if a.error().is_none() { "ok" } else { "err" });
    f("aof_last_cow_size", &a.rewrite.last_cow_size);
    f("module_fork_in_progress", &0);
    f("module_fork_last_cow_size", &0);
    if a.logging() {
        f("aof_current_size", &a.current_size());
        f("aof_base_size", &a.base_size);
        f("aof_pending_rewrite", &(a.rewrite.scheduled as u8));
        f("aof_buffer_length", &a.buf.len());
        f("aof_pending_bio_fsync", &(a.fsync_in_progress() as u8));
        f("aof_delayed_fsync", &a.delayed_fsync);
    }
}
