//! The AOF's lifecycle: opening at startup, switching to a new incr file,
//! turning on and off at runtime, the cron's work, shutdown, and the INFO
//! fields.

use super::fsync::FsyncWorker;
use super::manifest::{AofFile, FileType, Manifest};
use super::{Aof, State, base_name, flush, incr_name, manifest_name, rewrite};
use crate::notice;
use crate::server::Server;
use std::fs::OpenOptions;
use std::time::Duration;

impl Aof {
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
