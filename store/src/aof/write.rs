//! The write path: commands appended to the buffer, written and fsynced
//! by [`flush`] under the `appendfsync` policy, and the acknowledgement
//! accounting of each event-loop pass.

use super::Aof;
use crate::config::FsyncPolicy;
use crate::server::Server;
use crate::{markers, notice, warning};
use std::io::Write;
use std::time::{Duration, Instant};

impl Aof {
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
}

/// How long a write may wait behind a running fsync under `everysec`.
const MAX_POSTPONE: Duration = Duration::from_secs(2);

/// Logs keys deleted by expiry as DEL (they vanished without a command).
pub fn propagate_expired(srv: &mut Server) {
    if srv.ks.expired_log.is_empty() {
        return;
    }
    for (db, key) in std::mem::take(&mut srv.ks.expired_log) {
        srv.aof.feed(db, [b"DEL".as_slice(), &key].into_iter(), false);
    }
}

/// Logs a command that ran in `db` and changed the keyspace, as its handler
/// declared (see [`crate::cmd::Log`]).
pub fn propagate(srv: &mut Server, db: usize, args: &crate::cmd::Args, log: crate::cmd::Log) {
    match log {
        crate::cmd::Log::Rewritten(cmds) => {
            for c in &cmds {
                srv.aof.feed(db, c.iter().map(|a| a.as_slice()), true);
            }
        }
        crate::cmd::Log::AsReceived => srv.aof.feed(db, args.from(0), true),
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
/// when an everysec fsync is running. Whatever [`write_out`] did, the replies
/// of this pass then acknowledge their writes: [`ack_pass`] runs on this one
/// way out, so the exposure figures and markers never miss a pass.
pub fn flush(srv: &mut Server, force: bool) {
    let synced = write_out(srv, force);
    ack_pass(srv);
    // Under `always` the fdatasync ended before the replies leave: the
    // writes they acknowledge are durable from the moment they are acked.
    if let Some((offset, at)) = synced {
        srv.aof.durability.covered(offset, at);
    }
}

/// The body of [`flush`]: writes (or postpones) the buffer and, under
/// `always`, fdatasyncs it; returns the offset that fsync covers and when it
/// ended. It may return early anywhere: [`flush`] does the accounting.
fn write_out(srv: &mut Server, force: bool) -> Option<(u64, i64)> {
    let aof = &mut srv.aof;
    if !aof.logging() {
        aof.pass_acks = 0;
        return None;
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
        return None;
    }
    if policy == FsyncPolicy::Everysec && !force && aof.fsync_in_progress() {
        match aof.postponed_since {
            None => {
                aof.postponed_since = Some(Instant::now());
                return None;
            }
            Some(t) if t.elapsed() < MAX_POSTPONE => return None,
            Some(_) => {
                aof.delayed_fsync += 1;
                notice!(
                    "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."
                );
            }
        }
    }
    aof.postponed_since = None;
    let file = aof.file.as_mut()?;
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
            return None;
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
            return Some((aof.written, crate::util::now_us()));
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
    None
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
