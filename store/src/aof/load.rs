//! Loading the AOF at startup: the base (an RDB image or commands), then each
//! incr file in manifest order, replayed through the normal command path by
//! an internal client.
//!
//! A last command cut short (a crash mid-write) is dropped with a warning and
//! the file truncated to the last whole command when `aof-load-truncated yes`
//! (likewise a MULTI without its EXEC); anything else malformed stops startup
//! with the file and byte offset named, and no file is changed.
//!
//! Only what the AOF writer emits is replayed: commands that change data,
//! SELECT, and MULTI/EXEC. Anything else (BGREWRITEAOF, SHUTDOWN, CONFIG,
//! DEBUG...) would administer the server while it loads, so a file holding it
//! is refused as corrupt. Bytes that do not start a command (`*`) are corrupt
//! wherever they are, the end of the last file included; only a command cut
//! short is a tail that `aof-load-truncated` may repair.

use super::manifest::{AofFile, FileType, Manifest};
use super::manifest_name;
use crate::client::Client;
use crate::cmd::{Args, dispatch, lookup};
use crate::rdb::load::{LoadOptions, load_rdb};
use crate::server::Server;
use crate::types::Limits;
use crate::{notice, warning};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

enum ReadError {
    /// The file ends inside a command.
    Truncated,
    /// Not valid AOF content at this offset.
    Corrupt(u64, String),
}

/// Loads the AOF described by the manifest (migrating a legacy single-file
/// AOF first). Returns false when there is no AOF at all.
pub fn load_at_startup(srv: &mut Server) -> Result<bool, String> {
    let name = srv.config.appendfilename.clone();
    let dir = srv.aof.dir.clone();
    let manifest_path = dir.join(manifest_name(&name));
    if !manifest_path.exists() {
        if !Path::new(&name).exists() {
            return Ok(false);
        }
        // A Redis < 7 single-file AOF: it becomes the base of a multi-part AOF.
        std::fs::create_dir_all(&dir).map_err(|e| format!("Can't create AOF directory: {e}"))?;
        std::fs::rename(&name, dir.join(&name))
            .map_err(|e| format!("Can't move {name} into {}: {e}", dir.display()))?;
        let m =
            Manifest { base: Some(AofFile { name: name.clone(), seq: 1, kind: FileType::Base }), ..Default::default() };
        m.persist(&dir, &manifest_name(&name)).map_err(|e| format!("Can't write the AOF manifest: {e}"))?;
        notice!("Successfully migrated an old-style AOF into the AOF directory");
    }
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("Can't read the AOF manifest {}: {e}", manifest_path.display()))?;
    let m = Manifest::parse(&text).map_err(|e| format!("Invalid AOF manifest {}: {e}", manifest_path.display()))?;
    if m.base.is_none() && m.incrs.is_empty() {
        // Redis refuses this too: starting empty would overwrite the files.
        return Err(format!("Found an empty AOF manifest: {}", manifest_path.display()));
    }
    let files: Vec<&AofFile> = m.base.iter().chain(&m.incrs).collect();
    let t = std::time::Instant::now();
    for (i, f) in files.iter().enumerate() {
        let path = dir.join(&f.name);
        if !path.exists() {
            return Err(format!("The AOF file {} doesn't exist", path.display()));
        }
        replay_file(srv, &path, i + 1 == files.len())?;
    }
    srv.aof.manifest = m;
    notice!("DB loaded from append only file: {:.3} seconds", t.elapsed().as_secs_f64());
    Ok(true)
}

/// Replays one file; `last` allows repairing a truncated tail.
fn replay_file(srv: &mut Server, path: &Path, last: bool) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("Can't open the append-only file {}: {e}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut pos = 0u64;
    let head = r.fill_buf().map_err(|e| format!("Reading {}: {e}", path.display()))?;
    if head.starts_with(b"REDIS") {
        let opts = LoadOptions {
            verify_checksum: srv.config.rdbchecksum,
            skip_expired: false,
            limits: Limits::of(&srv.config),
        };
        srv.ks.now = crate::util::now_ms();
        let st = load_rdb(&mut r, &mut srv.ks, opts)
            .map_err(|e| format!("Error reading the RDB base of the append only file {}: {e}", path.display()))?;
        pos = st.bytes;
        notice!("Reading RDB base file on AOF loading... ({} keys)", st.keys_loaded);
    }
    let mut client = Client::internal(0);
    let mut valid_up_to = pos;
    let mut before_multi = pos;
    loop {
        match read_command(&mut r, &mut pos) {
            Ok(Some(args)) => {
                let Some(cmd) = lookup(&args[0]) else {
                    return Err(format!(
                        "Unknown command '{}' reading the append only file {} at byte offset {valid_up_to}",
                        String::from_utf8_lossy(&args[0]),
                        path.display()
                    ));
                };
                if !replayable(cmd) {
                    return Err(format!(
                        "Bad file format reading the append only file {} at byte offset {valid_up_to}: '{}' is not a command the AOF writer logs",
                        path.display(),
                        String::from_utf8_lossy(&args[0])
                    ));
                }
                if cmd.name == "multi" {
                    before_multi = valid_up_to;
                }
                let mut buf = Vec::new();
                let mut ranges = Vec::with_capacity(args.len());
                for a in &args {
                    ranges.push((buf.len(), buf.len() + a.len()));
                    buf.extend_from_slice(a);
                }
                dispatch(srv, &mut client, &Args::new(&buf, &ranges));
                client.reply.buf.clear();
                valid_up_to = pos;
            }
            Ok(None) => break,
            Err(ReadError::Corrupt(off, msg)) => {
                return Err(format!(
                    "Bad file format reading the append only file {} at byte offset {off}: {msg}",
                    path.display()
                ));
            }
            Err(ReadError::Truncated) => {
                let cut = if client.multi.is_some() { before_multi } else { valid_up_to };
                return repair_truncated(srv, path, last, cut);
            }
        }
    }
    if client.multi.is_some() {
        // A MULTI whose EXEC never made it to disk: the transaction did not happen.
        return repair_truncated(srv, path, last, before_multi);
    }
    Ok(())
}

/// Whether the AOF writer can have logged `cmd`: a data command, SELECT, or
/// the MULTI/EXEC around a transaction.
fn replayable(cmd: &crate::cmd::Command) -> bool {
    cmd.flags & crate::cmd::flags::WRITE != 0 || matches!(cmd.name, "select" | "multi" | "exec")
}

fn repair_truncated(srv: &Server, path: &Path, last: bool, cut: u64) -> Result<(), String> {
    if !last || !srv.config.aof_load_truncated {
        return Err(format!(
            "Unexpected end of file reading the append only file {} (valid up to byte offset {cut}); use redis-check-aof --fix or aof-load-truncated yes",
            path.display()
        ));
    }
    warning!("!!! Warning: short read while loading the AOF file {}!!!", path.display());
    warning!("!!! Truncating the AOF {} at offset {cut} !!!", path.display());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("Can't open {} to truncate it: {e}", path.display()))?;
    f.set_len(cut).and_then(|_| f.sync_all()).map_err(|e| format!("Can't truncate {}: {e}", path.display()))?;
    warning!("AOF {} loaded anyway because aof-load-truncated is enabled", path.display());
    Ok(())
}

/// Reads one RESP command (skipping `#` annotation lines); `Ok(None)` at a clean end.
fn read_command(r: &mut BufReader<File>, pos: &mut u64) -> Result<Option<Vec<Vec<u8>>>, ReadError> {
    let io = |off: u64| move |e: std::io::Error| ReadError::Corrupt(off, format!("read error: {e}"));
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().map_err(io(*pos))?;
        if buf.is_empty() {
            return Ok(None);
        }
        if buf[0] != b'#' {
            break;
        }
        line.clear();
        *pos += r.read_until(b'\n', &mut line).map_err(io(*pos))? as u64;
    }
    let start = *pos;
    let n = read_header(r, pos, b'*')?;
    if n < 1 {
        return Err(ReadError::Corrupt(start, "invalid multibulk length".into()));
    }
    let mut args = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let at = *pos;
        let len = read_header(r, pos, b'$')?;
        if len < 0 {
            return Err(ReadError::Corrupt(at, "invalid bulk length".into()));
        }
        let mut data = Vec::with_capacity((len as usize + 2).min(1 << 20));
        let got = r.by_ref().take(len as u64 + 2).read_to_end(&mut data).map_err(io(at))?;
        *pos += got as u64;
        if (got as i64) < len + 2 {
            return Err(ReadError::Truncated);
        }
        if &data[len as usize..] != b"\r\n" {
            return Err(ReadError::Corrupt(*pos - 2, "bulk string not terminated by CRLF".into()));
        }
        data.truncate(len as usize);
        args.push(data);
    }
    Ok(Some(args))
}

/// Reads a `*N` or `$N` line.
fn read_header(r: &mut BufReader<File>, pos: &mut u64, kind: u8) -> Result<i64, ReadError> {
    let at = *pos;
    let mut line = Vec::new();
    let got = r.read_until(b'\n', &mut line).map_err(|e| ReadError::Corrupt(at, format!("read error: {e}")))?;
    *pos += got as u64;
    // The first byte decides, as in Redis: trailing bytes that do not start
    // a command are corrupt even when the file ends in them.
    match line.first() {
        None => return Err(ReadError::Truncated),
        Some(&c) if c != kind => {
            return Err(ReadError::Corrupt(at, format!("expected '{}', got '{}'", kind as char, c.escape_ascii())));
        }
        Some(_) => {}
    }
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Truncated);
    }
    let body =
        line[1..].strip_suffix(b"\r\n").ok_or_else(|| ReadError::Corrupt(at, "line not terminated by CRLF".into()))?;
    crate::util::parse_i64(body).ok_or_else(|| ReadError::Corrupt(at, "invalid length".into()))
}
