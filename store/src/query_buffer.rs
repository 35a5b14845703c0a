//! The query buffer: where a client's bytes wait until a whole command is in.
//!
//! Memory follows what arrived, never what a client announced:
//! - reads go straight into the buffer's spare capacity, which is never
//!   zero-filled, so untouched capacity costs no resident memory;
//! - small requests share a buffer that grows with the bytes received;
//! - a bulk of [`BIG_ARG`] bytes or more gets, once its `$` header is in, one
//!   allocation of its final size (the bulk, its CRLF and a little room for
//!   what follows), made fallibly. The bulk starts that allocation: the
//!   command's earlier bytes wait aside ([`Conn::prefix`]) and are appended
//!   behind it when the command is complete. The rest of the bulk is read
//!   into it with no further copy, and a SET adopts the allocation as its
//!   value ([`adopt`]): a 512 MB SET costs about 512 MB, and no pass of the
//!   loop copies it.

use crate::client::Conn;
use std::collections::TryReserveError;
use std::io;
use std::os::fd::AsRawFd;

/// Bytes read per call when nothing bigger is pending.
pub const READ_CHUNK: usize = 16 * 1024;
/// A bulk at least this long is read into its own final allocation (Redis's PROTO_MBULK_BIG_ARG).
pub const BIG_ARG: usize = 32 * 1024;
/// Room kept after a big bulk for the rest of its command.
const AFTER_BIG: usize = 4 * 1024;

/// Makes room for the next read and returns how many bytes it may take.
/// An error means the allocation for an announced bulk failed.
pub fn make_room(conn: &mut Conn) -> Result<usize, TryReserveError> {
    let big = conn.parser.pending_bulk().filter(|&n| n >= BIG_ARG);
    let keep = conn.parser.keep_from(conn.qpos);
    match big {
        Some(len) => {
            // The bulk's data starts at `qpos`; the command starts at `keep`.
            let prefix = conn.qpos - keep;
            let need = prefix + len + 2 + AFTER_BIG;
            if conn.qbuf.capacity() - keep >= need {
                compact(conn, keep);
            } else {
                let mut fresh = Vec::new();
                fresh.try_reserve_exact(need)?;
                if conn.parser.detached() == 0 {
                    // The bulk goes first; the command's earlier bytes wait aside.
                    conn.prefix = conn.qbuf[keep..conn.qpos].to_vec();
                    conn.parser.detach_prefix(keep);
                    fresh.extend_from_slice(&conn.qbuf[conn.qpos..conn.qlen]);
                    conn.qlen -= conn.qpos;
                    conn.qpos = 0;
                } else {
                    fresh.extend_from_slice(&conn.qbuf[keep..conn.qlen]);
                    shift(conn, keep);
                }
                conn.qbuf = fresh;
            }
        }
        None => {
            if conn.qbuf.capacity() - conn.qlen >= READ_CHUNK {
                return Ok(conn.qbuf.capacity() - conn.qlen);
            }
            compact(conn, keep);
            if conn.qbuf.capacity() - conn.qlen < READ_CHUNK {
                conn.qbuf.try_reserve(READ_CHUNK)?;
            }
        }
    }
    Ok(conn.qbuf.capacity() - conn.qlen)
}

/// Moves the bytes from `keep` on to the front.
fn compact(conn: &mut Conn, keep: usize) {
    if keep > 0 {
        conn.qbuf.copy_within(keep..conn.qlen, 0);
        conn.qbuf.truncate(conn.qlen - keep);
        shift(conn, keep);
    }
}

/// Adjusts positions after `n` bytes left the front of the buffer.
fn shift(conn: &mut Conn, n: usize) {
    conn.parser.shift(n);
    conn.qlen -= n;
    conn.qpos -= n;
}

/// Reads at most `max` bytes from the socket into the spare capacity.
pub fn read_into(conn: &mut Conn, max: usize) -> io::Result<usize> {
    let spare = conn.qbuf.spare_capacity_mut();
    let max = max.min(spare.len());
    // SAFETY: read(2) writes at most `max` bytes into the spare capacity,
    // which is ours; only the bytes it reports are then counted as initialised.
    let n = unsafe { libc::read(conn.stream.as_raw_fd(), spare.as_mut_ptr().cast(), max) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the first `n` spare bytes were just written by read(2).
    unsafe { conn.qbuf.set_len(conn.qlen + n) };
    conn.qlen += n;
    Ok(n)
}

/// A value the running command asked to take over from the query buffer
/// instead of copying it (see [`adopt`]).
pub struct Adoption {
    /// Database of the key.
    pub db: usize,
    /// The key.
    pub key: Vec<u8>,
    /// Where the value's bytes lie in the query buffer.
    pub range: (usize, usize),
}

/// Whether the argument `arg` of the running command lies in the network
/// query buffer `window` and is big enough to be adopted rather than copied.
pub fn adoptable(window: Option<(usize, usize)>, arg: &[u8]) -> bool {
    let p = arg.as_ptr() as usize;
    arg.len() >= BIG_ARG && window.is_some_and(|(start, end)| p >= start && p + arg.len() <= end)
}

/// Turns the query buffer into the value's storage, shrunk in place to fit
/// (a value not at the front, which a big bulk normally is, is moved there
/// first). Returns the value and, in a new buffer, the received bytes after
/// the command (`qpos..qlen`).
pub fn adopt(qbuf: &mut Vec<u8>, qpos: usize, qlen: usize, range: (usize, usize)) -> (Box<[u8]>, Vec<u8>) {
    let rest = qbuf[qpos..qlen].to_vec();
    let (a, b) = range;
    if a > 0 {
        qbuf.copy_within(a..b, 0);
    }
    qbuf.truncate(b - a);
    (std::mem::take(qbuf).into_boxed_slice(), rest)
}
