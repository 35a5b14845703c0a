//! BGREWRITEAOF: a forked child writes a new base from its snapshot of the
//! keyspace while the parent logs new commands into a fresh incr file; on
//! success the manifest switches atomically to the new base plus that incr,
//! and the old files are deleted.
//!
//! The base is an RDB image (`aof-use-rdb-preamble yes`, `.base.rdb`) or a
//! log of commands that rebuild each key (`.base.aof`).

use super::manifest::{AofFile, FileType};
use super::{State, append_command, base_name};
use crate::config::Config;
use crate::fork::{self, ChildKind, Exit};
use crate::keyspace::Keyspace;
use crate::rdb::save::{PROGRESS_EVERY, write_rdb};
use crate::server::Server;
use crate::util::fmt_g17;
use crate::value::Value;
use crate::{fsutil, notice, warning};
use std::io::{self, Write};
use std::path::Path;

/// Elements per command when a collection is rewritten as commands (Redis's AOF_REWRITE_ITEMS_PER_CMD).
const ITEMS_PER_CMD: usize = 64;

/// How a rewrite request was handled.
pub enum Started {
    /// A child is writing the new base.
    Now,
    /// Another child is running; the rewrite starts when it ends.
    Scheduled,
}

/// The temp file a rewrite child with `pid` writes (in the AOF directory).
pub fn temp_name(pid: i32) -> String {
    format!("temp-rewriteaof-bg-{pid}.aof")
}

/// Writes the keyspace as an AOF base (RDB image or commands) into `w`.
fn write_base_to<W: Write>(w: &mut W, ks: &Keyspace, c: &Config, progress: &mut dyn FnMut(u64)) -> io::Result<u64> {
    if c.aof_use_rdb_preamble {
        let mut keys = 0;
        write_rdb(&mut *w, ks, crate::snapshot::save_options(c, true), &mut |n| {
            keys = n;
            progress(n);
        })?;
        return Ok(keys);
    }
    let mut keys = 0u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    for (i, db) in ks.dbs.iter().enumerate() {
        if db.dict.is_empty() {
            continue;
        }
        let n = i.to_string();
        append_command(&mut buf, [b"SELECT".as_slice(), n.as_bytes()].into_iter());
        for node in db.dict.iter() {
            rewrite_key(&mut buf, &node.key, &node.val);
            if let Some(&ms) = db.expires.get(&node.key) {
                let t = ms.to_string();
                append_command(&mut buf, [b"PEXPIREAT".as_slice(), &node.key, t.as_bytes()].into_iter());
            }
            keys += 1;
            if keys.is_multiple_of(PROGRESS_EVERY) {
                progress(keys);
            }
            if buf.len() >= 64 * 1024 {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    w.write_all(&buf)?;
    progress(keys);
    Ok(keys)
}

/// Appends the commands that recreate one key.
fn rewrite_key(buf: &mut Vec<u8>, key: &[u8], val: &Value) {
    let mut batch = |cmd: &[u8], items: &mut dyn Iterator<Item = Vec<u8>>| {
        let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(ITEMS_PER_CMD);
        loop {
            let next = items.next();
            let full = chunk.len() >= ITEMS_PER_CMD;
            if (next.is_none() || full) && !chunk.is_empty() {
                let args = [cmd, key].into_iter().chain(chunk.iter().map(|v| v.as_slice()));
                append_command(buf, args.collect::<Vec<_>>().into_iter());
                chunk.clear();
            }
            match next {
                Some(v) => chunk.push(v),
                None => break,
            }
        }
    };
    match val {
        Value::List(l) => batch(b"RPUSH", &mut l.iter().map(<[u8]>::to_vec)),
        Value::Hash(h) => batch(b"HSET", &mut h.iter().flat_map(|(f, v)| [f.to_vec(), v.to_vec()])),
        Value::Set(s) => {
            let mut members = Vec::with_capacity(s.len());
            s.for_each(|m| members.push(m.to_vec()));
            batch(b"SADD", &mut members.into_iter())
        }
        Value::ZSet(z) => {
            batch(b"ZADD", &mut z.iter().flat_map(|(m, score)| [fmt_g17(score).into_bytes(), m.to_vec()]))
        }
        other => {
            let mut s = [0u8; 20];
            let bytes = other.as_str(&mut s).unwrap_or_default();
            append_command(buf, [b"SET".as_slice(), key, bytes].into_iter());
        }
    }
}

/// Writes a base file synchronously (startup, when there is no AOF yet).
pub fn write_base(ks: &Keyspace, c: &Config, target: &Path, tmp: &Path) -> io::Result<u64> {
    fsutil::replace_durably(target, tmp, |w| write_base_to(w, ks, c, &mut |_| {}))
}

/// BGREWRITEAOF: forks a child that writes a new base; the parent switches to
/// a new incr file first so every later command lands after the new base.
pub fn start(srv: &mut Server) -> Result<Started, String> {
    if let Some(c) = &srv.child {
        if c.kind == ChildKind::Aof {
            return Err("ERR Background append only file rewriting already in progress".into());
        }
        srv.aof.rewrite.scheduled = true;
        return Ok(Started::Scheduled);
    }
    srv.aof.rewrite.scheduled = false;
    super::flush(srv, true);
    let name = srv.config.appendfilename.clone();
    if let Err(e) = srv.aof.switch_to_new_incr(&name) {
        warning!("Can't open new incr AOF for rewrite: {e}");
        return Err(format!("ERR Can't open a new AOF file: {e}"));
    }
    let dir = srv.aof.dir.clone();
    let started = fork::start(srv, ChildKind::Aof, |srv, rep| {
        let tmp = dir.join(temp_name(std::process::id() as i32));
        let res = std::fs::File::create(&tmp).and_then(|f| {
            let mut w = io::BufWriter::with_capacity(1 << 20, fsutil::AutosyncFile::new(f));
            let keys = write_base_to(&mut w, &srv.ks, &srv.config, &mut |n| rep.progress(n))?;
            w.flush()?;
            w.into_inner().map_err(|e| e.into_error())?.file().sync_all()?;
            Ok(keys)
        });
        match res {
            Ok(keys) => {
                notice!("Successfully created the temporary AOF base file {}", tmp.display());
                rep.finish(keys, "AOF rewrite");
                0
            }
            Err(e) => {
                warning!("Write error writing append only file on disk: {e}");
                let _ = std::fs::remove_file(&tmp);
                1
            }
        }
    });
    match started {
        Ok(pid) => {
            notice!("Background append only file rewriting started by pid {pid}");
            Ok(Started::Now)
        }
        Err(e) => {
            warning!("Can't rewrite append only file in background: fork: {e}");
            Err(format!("ERR Can't rewrite append only file in background: fork: {e}"))
        }
    }
}

/// Records a finished rewrite child: installs the new base or cleans up.
pub fn on_exit(srv: &mut Server, exit: Exit) {
    let tmp = srv.aof.dir.join(temp_name(exit.child.pid.as_raw()));
    let logging = srv.aof.logging();
    let st = &mut srv.aof.rewrite;
    st.last_time_sec = exit.child.started.elapsed().as_secs() as i64;
    st.last_cow_size = exit.child.cow_peak;
    if !exit.ok() || !logging {
        let _ = std::fs::remove_file(&tmp);
        if logging {
            warning!("Background AOF rewrite failed");
            st.last_ok = false;
            st.consecutive_failures += 1;
            st.last_failure = Some(std::time::Instant::now());
            if srv.aof.state == State::WaitRewrite {
                st.scheduled = true;
            }
        }
        return;
    }
    match install_new_base(srv, &tmp) {
        Ok(()) => {
            let st = &mut srv.aof.rewrite;
            st.last_ok = true;
            st.count += 1;
            st.consecutive_failures = 0;
            st.last_failure = None;
            srv.aof.state = State::On;
            srv.aof.base_size = srv.aof.current_size();
            notice!("Background AOF rewrite finished successfully");
        }
        Err(e) => {
            warning!("Error installing the rewritten AOF base: {e}");
            let _ = std::fs::remove_file(&tmp);
            let st = &mut srv.aof.rewrite;
            st.last_ok = false;
            st.consecutive_failures += 1;
            st.last_failure = Some(std::time::Instant::now());
        }
    }
}

/// Renames the child's file to the next base name and switches the manifest
/// to it plus the incr files opened since the fork; deletes the old files.
fn install_new_base(srv: &mut Server, tmp: &Path) -> io::Result<()> {
    let name = srv.config.appendfilename.clone();
    let aof = &mut srv.aof;
    let seq = aof.manifest.base.as_ref().map_or(1, |b| b.seq + 1);
    let base = base_name(&name, seq, srv.config.aof_use_rdb_preamble);
    std::fs::rename(tmp, aof.path(&base))?;
    let current = aof.manifest.incrs.last().cloned().expect("the incr opened at rewrite start");
    let mut m = aof.manifest.clone();
    let mut old: Vec<AofFile> = m.base.take().into_iter().collect();
    old.extend(m.incrs.drain(..).filter(|f| f.seq != current.seq));
    m.base = Some(AofFile { name: base.clone(), seq, kind: FileType::Base });
    m.incrs = vec![current];
    m.history = old.into_iter().map(|f| AofFile { kind: FileType::History, ..f }).collect();
    m.persist(&aof.dir, &super::manifest_name(&name))?;
    aof.manifest = m;
    let history = std::mem::take(&mut aof.manifest.history);
    for f in &history {
        let _ = std::fs::remove_file(aof.path(&f.name));
    }
    aof.persist_manifest(&name)?;
    aof.other_size = std::fs::metadata(aof.path(&base)).map(|m| m.len()).unwrap_or(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_rewrite_as_set() {
        let mut buf = Vec::new();
        rewrite_key(&mut buf, b"k", &Value::Int(-5));
        assert_eq!(buf, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n-5\r\n");
    }
}
