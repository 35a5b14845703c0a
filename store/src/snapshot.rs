//! RDB snapshots: SAVE in the server process, BGSAVE in a `fork()`ed child
//! that writes the keyspace as it was at the fork while the parent keeps
//! serving, save points, and loading the dump at startup.
//!
//! The child sees the parent's memory frozen at the instant of the fork: the
//! kernel shares every page and copies one only when either process writes
//! it. A write the parent serves after the fork lands in the parent's copy of
//! the page, so it cannot appear in the snapshot, and everything done before
//! the fork is in the child's view. That is the whole consistency argument;
//! no locks or copying in user space are involved.

use crate::childinfo::Reporter;
use crate::config::Config;
use crate::fork::{self, ChildKind, Exit};
use crate::keyspace::Keyspace;
use crate::rdb::load::{LoadOptions, LoadStats, load_rdb};
use crate::rdb::save::{SaveOptions, write_rdb};
use crate::server::Server;
use crate::types::Limits;
use crate::{fsutil, notice, warning};
use std::path::{Path, PathBuf};

/// Seconds to wait before retrying a failed background save from save points.
const RETRY_DELAY_SECS: i64 = 5;

/// RDB persistence state (the `rdb_*` INFO fields).
pub struct RdbState {
    /// Unix time of the last successful save (`rdb_last_save_time`, LASTSAVE).
    pub lastsave: i64,
    /// Whether the last background save succeeded (`rdb_last_bgsave_status`).
    pub last_bgsave_ok: bool,
    /// Unix time of the last BGSAVE attempt.
    pub last_bgsave_try: i64,
    /// Duration of the last background save (`rdb_last_bgsave_time_sec`), -1 if none.
    pub last_bgsave_time_sec: i64,
    /// Successful saves (`rdb_saves`).
    pub saves: u64,
    /// Peak CoW of the last save child (`rdb_last_cow_size`).
    pub last_cow_size: u64,
    /// `dirty` when the running child forked; subtracted on success.
    pub dirty_at_fork: u64,
    /// A BGSAVE waits for another child to finish (BGSAVE SCHEDULE).
    pub scheduled: bool,
    /// Keys loaded at startup (`rdb_last_load_keys_loaded`).
    pub load_keys_loaded: u64,
    /// Expired keys skipped at startup (`rdb_last_load_keys_expired`).
    pub load_keys_expired: u64,
}

impl Default for RdbState {
    fn default() -> RdbState {
        RdbState {
            lastsave: crate::util::now_ms() / 1000,
            last_bgsave_ok: true,
            last_bgsave_try: 0,
            last_bgsave_time_sec: -1,
            saves: 0,
            last_cow_size: 0,
            dirty_at_fork: 0,
            scheduled: false,
            load_keys_loaded: 0,
            load_keys_expired: 0,
        }
    }
}

/// The `rdbcompression`/`rdbchecksum` settings as writer options.
pub fn save_options(c: &Config, aof_base: bool) -> SaveOptions {
    SaveOptions { compression: c.rdbcompression, checksum: c.rdbchecksum, aof_base, key_delay_us: c.rdb_key_save_delay }
}

/// The dump's path (`dir` is the working directory).
pub fn dump_path(c: &Config) -> PathBuf {
    PathBuf::from(&c.dbfilename)
}

/// Writes the keyspace to `temp-<pid>.rdb`, fsyncs it and renames it over the dump.
pub fn save_file(ks: &Keyspace, c: &Config, mut reporter: Option<&mut Reporter>) -> std::io::Result<u64> {
    let tmp = PathBuf::from(format!("temp-{}.rdb", std::process::id()));
    fsutil::replace_durably(&dump_path(c), &tmp, |w| {
        let mut keys = 0;
        write_rdb(w, ks, save_options(c, false), &mut |n| {
            keys = n;
            if let Some(r) = reporter.as_deref_mut() {
                r.progress(n);
            }
        })?;
        Ok(keys)
    })
}

/// SAVE: writes the dump in the server process, blocking it.
pub fn save(srv: &mut Server) -> Result<(), String> {
    if srv.child.is_some() {
        return Err("ERR Background save already in progress".into());
    }
    match save_file(&srv.ks, &srv.config, None) {
        Ok(_) => {
            notice!("DB saved on disk");
            srv.ks.changes_saved(u64::MAX);
            srv.rdb.lastsave = crate::util::now_ms() / 1000;
            srv.rdb.last_bgsave_ok = true;
            srv.rdb.saves += 1;
            Ok(())
        }
        Err(e) => {
            warning!("Write error saving DB on disk: {e}");
            Err("ERR".into())
        }
    }
}

/// BGSAVE: forks a child that writes the dump. Errors are the reply text.
pub fn bgsave(srv: &mut Server) -> Result<(), String> {
    if let Some(c) = &srv.child {
        return Err(match c.kind {
            ChildKind::Rdb => "ERR Background save already in progress".into(),
            ChildKind::Aof => "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.".into(),
        });
    }
    srv.rdb.last_bgsave_try = crate::util::now_ms() / 1000;
    srv.rdb.dirty_at_fork = srv.ks.dirty();
    let started = fork::start(srv, ChildKind::Rdb, |srv, rep| match save_file(&srv.ks, &srv.config, Some(&mut *rep)) {
        Ok(keys) => {
            notice!("DB saved on disk");
            rep.finish(keys, "RDB");
            0
        }
        Err(e) => {
            warning!("Write error saving DB on disk: {e}");
            1
        }
    });
    match started {
        Ok(pid) => {
            notice!("Background saving started by pid {pid}");
            Ok(())
        }
        Err(e) => {
            srv.rdb.last_bgsave_ok = false;
            warning!("Can't save in background: fork: {e}");
            Err(format!("ERR Can't save in background: fork: {e}"))
        }
    }
}

/// Records the result of a finished BGSAVE child.
pub fn on_exit(srv: &mut Server, exit: Exit) {
    let st = &mut srv.rdb;
    st.last_bgsave_time_sec = exit.child.started.elapsed().as_secs() as i64;
    st.last_cow_size = exit.child.cow_peak;
    if exit.ok() {
        notice!("Background saving terminated with success");
        srv.ks.changes_saved(st.dirty_at_fork);
        st.lastsave = crate::util::now_ms() / 1000;
        st.last_bgsave_ok = true;
        st.saves += 1;
        return;
    }
    if let Some(sig) = exit.signal {
        warning!("Background saving terminated by signal {}", sig as i32);
        // The child could not clean up after itself.
        let _ = std::fs::remove_file(format!("temp-{}.rdb", exit.child.pid));
        // SIGUSR1 is how the server itself cancels a save: not an error.
        if sig != nix::sys::signal::Signal::SIGUSR1 {
            st.last_bgsave_ok = false;
        }
    } else {
        warning!("Background saving error");
        st.last_bgsave_ok = false;
    }
}

/// The cron's persistence work: child progress, reaping, save points.
pub fn cron(srv: &mut Server) {
    if let Some(c) = srv.child.as_mut() {
        fork::receive_info(c);
    }
    if let Some(exit) = fork::try_reap(srv) {
        match exit.child.kind {
            ChildKind::Rdb => on_exit(srv, exit),
            ChildKind::Aof => crate::aof::rewrite::on_exit(srv, exit),
        }
    }
    if srv.child.is_some() {
        return;
    }
    let now = crate::util::now_ms() / 1000;
    let due = srv.config.save.iter().find(|&&(secs, changes)| {
        srv.ks.dirty() >= changes
            && now - srv.rdb.lastsave > secs as i64
            && (now - srv.rdb.last_bgsave_try > RETRY_DELAY_SECS || srv.rdb.last_bgsave_ok)
    });
    if let Some(&(secs, changes)) = due {
        notice!("{changes} changes in {secs} seconds. Saving...");
        let _ = bgsave(srv);
    } else if srv.rdb.scheduled {
        srv.rdb.scheduled = false;
        let _ = bgsave(srv);
    }
}

/// True when writes must be refused because the last background save failed
/// (`stop-writes-on-bgsave-error`).
pub fn writes_denied(srv: &Server) -> bool {
    srv.config.stop_writes_on_bgsave_error && !srv.config.save.is_empty() && !srv.rdb.last_bgsave_ok
}

/// Loads `path` into the (empty) keyspace.
pub fn load_file(path: &Path, srv: &mut Server) -> Result<LoadStats, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("Can't open '{}': {e}", path.display()))?;
    let opts =
        LoadOptions { verify_checksum: srv.config.rdbchecksum, skip_expired: true, limits: Limits::of(&srv.config) };
    srv.ks.now = crate::util::now_ms();
    load_rdb(std::io::BufReader::with_capacity(1 << 20, f), &mut srv.ks, opts)
        .map_err(|e| format!("Error loading RDB file '{}': {e}", path.display()))
}

/// Startup: loads the dump if it exists. An unreadable or corrupt dump is an
/// error (the server must not start with data missing), and the file is left as it was.
pub fn load_at_startup(srv: &mut Server) -> Result<(), String> {
    let path = dump_path(&srv.config);
    if !path.exists() {
        return Ok(());
    }
    let t = std::time::Instant::now();
    let st = load_file(&path, srv)?;
    if let Some(v) = &st.redis_ver {
        notice!("Loading RDB produced by version {v}");
    }
    if let Some(ct) = st.ctime {
        notice!("RDB age {} seconds", (crate::util::now_ms() / 1000 - ct).max(0));
    }
    notice!("Done loading RDB, keys loaded: {}, keys expired: {}.", st.keys_loaded, st.keys_expired);
    notice!("DB loaded from disk: {:.3} seconds", t.elapsed().as_secs_f64());
    srv.rdb.load_keys_loaded = st.keys_loaded;
    srv.rdb.load_keys_expired = st.keys_expired;
    Ok(())
}

/// Before exiting (SHUTDOWN or SIGTERM): stops a running child and saves
/// when asked to (or by default when save points are configured). An error
/// means the server must keep running, as Redis does.
pub fn prepare_shutdown(srv: &mut Server, mode: crate::server::ShutdownSave) -> Result<(), String> {
    use crate::server::ShutdownSave;
    notice!("User requested shutdown...");
    if let Some(exit) = fork::kill_and_reap(srv) {
        match exit.child.kind {
            ChildKind::Rdb => {
                warning!("There is a child saving an .rdb. Killing it!");
                let _ = std::fs::remove_file(format!("temp-{}.rdb", exit.child.pid));
            }
            ChildKind::Aof => {
                warning!("There is a child rewriting the AOF. Killing it!");
                let _ = std::fs::remove_file(srv.aof.path(&crate::aof::rewrite::temp_name(exit.child.pid.as_raw())));
            }
        }
    }
    crate::aof::shutdown(srv);
    let want_save = match mode {
        ShutdownSave::Save => true,
        ShutdownSave::NoSave => false,
        ShutdownSave::Default => !srv.config.save.is_empty(),
    };
    if want_save {
        notice!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = save_file(&srv.ks, &srv.config, None) {
            warning!("Error trying to save the DB, can't exit: {e}");
            return Err("ERR Errors trying to SHUTDOWN. Check logs.".into());
        }
        notice!("DB saved on disk");
    }
    notice!("cowstore is now ready to exit, bye bye...");
    Ok(())
}

/// Appends the `# Persistence` INFO fields, with Redis 7.0's names and meanings.
pub fn info(srv: &Server, out: &mut String) {
    use std::fmt::Write;
    let mut f = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    let child = srv.child.as_ref();
    let rdb_child = child.filter(|c| c.kind == ChildKind::Rdb);
    let (cow, cow_peak, cow_age, keys_done, keys_total) = match child {
        Some(c) => (c.last.cow, c.cow_peak, c.last_at.map_or(0, |t| t.elapsed().as_secs()), c.last.keys, c.keys_total),
        None => (0, 0, 0, 0, 0),
    };
    let perc = if keys_total > 0 { keys_done as f64 * 100.0 / keys_total as f64 } else { 0.0 };
    let st = &srv.rdb;
    f("loading", &0);
    f("async_loading", &0);
    f("current_cow_peak", &cow_peak);
    f("current_cow_size", &cow);
    f("current_cow_size_age", &cow_age);
    f("current_fork_perc", &format!("{perc:.2}"));
    f("current_save_keys_processed", &keys_done);
    f("current_save_keys_total", &keys_total);
    f("rdb_changes_since_last_save", &srv.ks.dirty());
    f("rdb_bgsave_in_progress", &(rdb_child.is_some() as u8));
    f("rdb_last_save_time", &st.lastsave);
    f("rdb_last_bgsave_status", &if st.last_bgsave_ok { "ok" } else { "err" });
    f("rdb_last_bgsave_time_sec", &st.last_bgsave_time_sec);
    f("rdb_current_bgsave_time_sec", &rdb_child.map_or(-1, |c| c.started.elapsed().as_secs() as i64));
    f("rdb_saves", &st.saves);
    f("rdb_last_cow_size", &st.last_cow_size);
    f("rdb_last_load_keys_expired", &st.load_keys_expired);
    f("rdb_last_load_keys_loaded", &st.load_keys_loaded);
    crate::aof::info(srv, out);
}
