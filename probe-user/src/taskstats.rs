//! The kernel's own count of copy-on-write copies, from taskstats.
//!
//! Delay accounting times every `wp_page_copy()` (the copy half of a
//! copy-on-write fault) and counts it in `wpcopy_count`, with the time spent
//! in `wpcopy_delay_total` (Linux 6.0+, `struct taskstats` version 13+). We
//! read them with `TASKSTATS_CMD_GET` over generic netlink:
//!
//! - [`wpcopy`] asks for one thread (`TASKSTATS_CMD_ATTR_PID`, a TID).
//! - [`wpcopy_tgid`] asks for a whole process (`TASKSTATS_CMD_ATTR_TGID`).
//!   The kernel adds up the live threads and the threads that have already
//!   exited (each exiting thread of a multi-threaded process folds its counts
//!   into `signal->stats`). Measured on 6.18: 4 threads that wrote 2,048
//!   copied pages each and were then joined still count (+8,217 in all).
//!   Children are other processes and are never included.
//!
//! The counters only move while `kernel.task_delayacct` is 1 ([`DelayAcct`]
//! turns it on), and only for tasks *created* while it was 1: the kernel
//! gives a task its delay record at fork and never later, and taskstats
//! cannot tell such a task from one that copied nothing (its CPU fields are
//! filled either way). Measured on 6.18: a process started with the sysctl
//! at 0 that turned it on itself saw +0 for the 2,048 copies of its main
//! thread, while the threads and children it started afterwards counted
//! theirs. [`DelayAcct::was_on`] says whether tasks already running may be
//! uncounted.
//!
//! Asking needs CAP_NET_ADMIN (the command is `GENL_ADMIN_PERM`). A copy of a
//! page that maps the shared zero page counts too (it is a `wp_page_copy`).
//! No maintained crate speaks taskstats; the generic netlink framing it needs
//! is two request/reply exchanges, written out here.

use serde::Serialize;
use std::{
    fmt, fs, io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// A task's copy-on-write copies as the kernel counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Wpcopy {
    /// `wpcopy_count`: copies made by `wp_page_copy()`.
    pub count: u64,
    /// `wpcopy_delay_total`: nanoseconds spent making them.
    pub delay_total_ns: u64,
}

/// Why the kernel's count could not be read.
#[derive(Debug)]
pub enum Error {
    /// No taskstats here (no generic netlink family, missing privilege, or
    /// no `/proc/sys/kernel/task_delayacct`); the text says which.
    Unavailable(String),
    /// The kernel's `struct taskstats` predates `wpcopy_count` (version 13).
    TooOld(u16),
    /// No task (or process) with this id: it never existed or has exited.
    NoSuchTask(u32),
    /// Any other failure talking to the kernel.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(why) => write!(f, "taskstats unavailable: {why}"),
            Error::TooOld(v) => {
                write!(f, "taskstats version {v} has no wpcopy_count (version 13, Linux 6.0, added it)")
            }
            Error::NoSuchTask(id) => write!(f, "taskstats: no task {id}"),
            Error::Io(e) => write!(f, "taskstats: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Copies made by thread `tid` (a PID for a single-threaded process).
pub fn wpcopy(tid: u32) -> Result<Wpcopy, Error> {
    query(TASKSTATS_CMD_ATTR_PID, TASKSTATS_TYPE_AGGR_PID, tid)
}

/// Copies made by every thread of process `tgid`, exited threads included.
pub fn wpcopy_tgid(tgid: u32) -> Result<Wpcopy, Error> {
    query(TASKSTATS_CMD_ATTR_TGID, TASKSTATS_TYPE_AGGR_TGID, tgid)
}

const DELAYACCT: &str = "/proc/sys/kernel/task_delayacct";

/// Keeps `kernel.task_delayacct` on; dropping it restores the value found.
///
/// The sysctl is global: guards in several processes must nest (the last
/// enabled is the first dropped), or one may turn accounting off under
/// another. A process that exits without dropping it leaves accounting on.
#[derive(Debug)]
pub struct DelayAcct {
    previous: String,
}

impl DelayAcct {
    /// Turns delay accounting on.
    pub fn enable() -> Result<DelayAcct, Error> {
        let previous = fs::read_to_string(DELAYACCT)
            .map_err(|e| Error::Unavailable(format!("{DELAYACCT}: {e} (kernel without CONFIG_TASK_DELAY_ACCT?)")))?;
        let previous = previous.trim().to_owned();
        if previous != "1" {
            fs::write(DELAYACCT, "1").map_err(|e| Error::Unavailable(format!("cannot enable {DELAYACCT}: {e}")))?;
        }
        Ok(DelayAcct { previous })
    }

    /// Whether accounting was already on. If not, every task that existed
    /// before [`DelayAcct::enable`] counts no copies, ever.
    pub fn was_on(&self) -> bool {
        self.previous == "1"
    }
}

impl Drop for DelayAcct {
    fn drop(&mut self) {
        if !self.was_on()
            && let Err(e) = fs::write(DELAYACCT, &self.previous)
        {
            eprintln!("warning: could not restore {DELAYACCT} to {}: {e}", self.previous);
        }
    }
}

const NETLINK_GENERIC: i32 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
/// `struct nlmsghdr` (16 bytes) + `struct genlmsghdr` (4 bytes).
const HEADERS: usize = 20;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const TASKSTATS_CMD_GET: u8 = 1;
const TASKSTATS_CMD_ATTR_PID: u16 = 1;
const TASKSTATS_CMD_ATTR_TGID: u16 = 2;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
const TASKSTATS_TYPE_AGGR_TGID: u16 = 5;
/// First `struct taskstats` version with the wpcopy fields.
const WPCOPY_VERSION: u16 = 13;
/// Offsets in `struct taskstats` (include/uapi/linux/taskstats.h, v13+;
/// later versions only append fields).
const WPCOPY_COUNT: usize = 400;
const WPCOPY_DELAY_TOTAL: usize = 408;

/// Asks taskstats about `id` with command attribute `cmd_attr`; the reply
/// carries the stats nested in an attribute of kind `aggr`.
fn query(cmd_attr: u16, aggr: u16, id: u32) -> Result<Wpcopy, Error> {
    // SAFETY: socket(2) has no memory preconditions; the fd is owned below.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_GENERIC) };
    if raw < 0 {
        return Err(Error::Unavailable(format!("generic netlink socket: {}", io::Error::last_os_error())));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let reply =
        exchange(&fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0")).map_err(|e| {
            match e {
                Error::NoSuchTask(_) | Error::Io(_) => {
                    Error::Unavailable("no TASKSTATS netlink family (kernel without CONFIG_TASKSTATS?)".into())
                }
                other => other,
            }
        })?;
    let family = family_id(&reply)?;
    let reply = exchange(&fd, family, TASKSTATS_CMD_GET, &attr(cmd_attr, &id.to_ne_bytes())).map_err(|e| match e {
        Error::NoSuchTask(_) => Error::NoSuchTask(id),
        other => other,
    })?;
    parse_stats(&reply, aggr)
}

/// One netlink attribute: length, kind, payload, padded to 4 bytes.
fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + payload.len() + 3);
    a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

/// A generic netlink request for `family`/`cmd` carrying `attrs`.
fn message(family: u16, cmd: u8, attrs: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADERS + attrs.len());
    msg.extend_from_slice(&((HEADERS + attrs.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&family.to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]); // sequence number and port: unused
    msg.extend_from_slice(&[cmd, 1, 0, 0]); // genl command, version 1
    msg.extend_from_slice(attrs);
    msg
}

/// Bytes received per reply: a taskstats reply is about 500 bytes.
const REPLY: usize = 2048;

/// Sends one request and returns the reply, or the error the kernel sent.
fn exchange(fd: &OwnedFd, family: u16, cmd: u8, attrs: &[u8]) -> Result<Vec<u8>, Error> {
    let msg = message(family, cmd, attrs);
    // SAFETY: `msg` is valid for its length; the socket is open.
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    // On the stack: it writes no new heap memory, which after a fork would
    // itself be copied and show in the very counts being read.
    let mut buf = [0u8; REPLY];
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
    if n < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    if n as usize > REPLY {
        return Err(Error::Io(io::Error::other(format!("taskstats reply of {n} bytes exceeds {REPLY}"))));
    }
    let reply = &buf[..n as usize];
    check_error(reply)?;
    Ok(reply.to_vec())
}

/// Turns a netlink error message into an [`Error`]; other replies pass.
fn check_error(reply: &[u8]) -> Result<(), Error> {
    if reply.len() < 20 || u16::from_ne_bytes([reply[4], reply[5]]) != NLMSG_ERROR {
        return Ok(());
    }
    let errno = -i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    match errno {
        0 => Ok(()),
        libc::ESRCH => Err(Error::NoSuchTask(0)),
        libc::EPERM | libc::EACCES => Err(Error::Unavailable("asking taskstats needs CAP_NET_ADMIN".into())),
        _ => Err(Error::Io(io::Error::from_raw_os_error(errno))),
    }
}

/// The netlink attributes laid end to end in `buf`: (kind, payload) pairs.
fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff; // drop the nested/byte-order flags
        if len < 4 || len > rest.len() {
            return None;
        }
        let payload = &rest[4..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        Some((kind, payload))
    })
}

/// The attributes after the netlink and genetlink headers of a reply.
fn top_attrs(reply: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    attrs(reply.get(HEADERS..).unwrap_or_default())
}

/// The family id in a `CTRL_CMD_GETFAMILY` reply.
fn family_id(reply: &[u8]) -> Result<u16, Error> {
    top_attrs(reply)
        .find(|(k, v)| *k == CTRL_ATTR_FAMILY_ID && v.len() >= 2)
        .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
        .ok_or_else(|| Error::Unavailable("no TASKSTATS family id in the controller's reply".into()))
}

/// The wpcopy fields of the `struct taskstats` nested in attribute `aggr`.
fn parse_stats(reply: &[u8], aggr: u16) -> Result<Wpcopy, Error> {
    let malformed = |what: &str| Error::Io(io::Error::other(format!("malformed taskstats reply: {what}")));
    let (_, nested) = top_attrs(reply).find(|(k, _)| *k == aggr).ok_or_else(|| malformed("no aggregate"))?;
    let (_, stats) = attrs(nested).find(|(k, _)| *k == TASKSTATS_TYPE_STATS).ok_or_else(|| malformed("no stats"))?;
    let version =
        u16::from_ne_bytes(stats.get(..2).ok_or_else(|| malformed("short stats"))?.try_into().unwrap_or([0; 2]));
    if version < WPCOPY_VERSION {
        return Err(Error::TooOld(version));
    }
    let word = |at: usize| -> Result<u64, Error> {
        let bytes = stats.get(at..at + 8).ok_or_else(|| malformed("stats shorter than version 13"))?;
        Ok(u64::from_ne_bytes(bytes.try_into().unwrap_or([0; 8])))
    };
    Ok(Wpcopy { count: word(WPCOPY_COUNT)?, delay_total_ns: word(WPCOPY_DELAY_TOTAL)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as the kernel shapes it: headers, then `aggr` { id, stats }.
    fn reply(aggr: u16, version: u16, stats_len: usize) -> Vec<u8> {
        let mut stats = vec![0u8; stats_len];
        stats[..2].copy_from_slice(&version.to_ne_bytes());
        if stats_len >= WPCOPY_DELAY_TOTAL + 8 {
            stats[WPCOPY_COUNT..WPCOPY_COUNT + 8].copy_from_slice(&8202u64.to_ne_bytes());
            stats[WPCOPY_DELAY_TOTAL..WPCOPY_DELAY_TOTAL + 8].copy_from_slice(&16_404_000u64.to_ne_bytes());
        }
        let mut nested = attr(1, &42u32.to_ne_bytes());
        nested.extend(attr(TASKSTATS_TYPE_STATS, &stats));
        message(27, TASKSTATS_CMD_GET, &attr(aggr | 0x8000, &nested))
    }

    #[test]
    fn reads_count_and_delay_at_their_offsets() {
        for version in [13, 16] {
            let got = parse_stats(&reply(TASKSTATS_TYPE_AGGR_TGID, version, 448), TASKSTATS_TYPE_AGGR_TGID).unwrap();
            assert_eq!(got, Wpcopy { count: 8202, delay_total_ns: 16_404_000 });
        }
    }

    #[test]
    fn refuses_old_versions_short_stats_and_other_aggregates() {
        assert!(matches!(parse_stats(&reply(4, 12, 400), 4), Err(Error::TooOld(12))));
        assert!(matches!(parse_stats(&reply(4, 13, 404), 4), Err(Error::Io(_))));
        assert!(matches!(parse_stats(&reply(4, 13, 416), 5), Err(Error::Io(_))));
        assert!(matches!(parse_stats(&[1, 2, 3], 4), Err(Error::Io(_))));
    }

    #[test]
    fn reads_the_family_id() {
        let mut attrs = attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0");
        attrs.extend(attr(CTRL_ATTR_FAMILY_ID, &27u16.to_ne_bytes()));
        assert_eq!(family_id(&message(GENL_ID_CTRL, 1, &attrs)).unwrap(), 27);
        assert!(matches!(family_id(&message(GENL_ID_CTRL, 1, &[])), Err(Error::Unavailable(_))));
    }

    #[test]
    fn maps_kernel_errors() {
        let error = |errno: i32| {
            let mut m = vec![0u8; 36];
            m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m[16..20].copy_from_slice(&(-errno).to_ne_bytes());
            check_error(&m)
        };
        assert!(matches!(error(libc::ESRCH), Err(Error::NoSuchTask(_))));
        assert!(matches!(error(libc::EPERM), Err(Error::Unavailable(_))));
        assert!(matches!(error(libc::EINVAL), Err(Error::Io(_))));
        assert!(error(0).is_ok());
    }

    /// Needs root: a thread's and its process's own counts, before and
    /// after copying pages it shares with a child. The thread is started
    /// after accounting is on: the test harness's threads may predate it.
    #[test]
    fn counts_own_copies_when_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let _on = DelayAcct::enable().unwrap();
        std::thread::spawn(copy_and_count).join().unwrap();
    }

    fn copy_and_count() {
        // SAFETY: gettid(2) has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let pid = std::process::id();
        let pages = 256;
        let mut buf = vec![1u8; (pages + 1) * 4096];
        let tid_before = wpcopy(tid).unwrap();
        let tgid_before = wpcopy_tgid(pid).unwrap();
        // SAFETY: the child only sleeps and exits: async-signal-safe calls,
        // no lock another thread of the harness may hold.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            unsafe {
                libc::usleep(300_000);
                libc::_exit(0);
            }
        }
        for b in buf.iter_mut().step_by(4096) {
            // SAFETY: a byte of our own buffer; volatile so the write happens.
            unsafe { std::ptr::write_volatile(b, 2) };
        }
        let tid_after = wpcopy(tid).unwrap();
        let tgid_after = wpcopy_tgid(pid).unwrap();
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        let copies = tid_after.count - tid_before.count;
        assert!((pages as u64..pages as u64 + 64).contains(&copies), "{copies} copies");
        let ns = tid_after.delay_total_ns - tid_before.delay_total_ns;
        // A copy takes ~2 µs here; 0.1–100 µs per copy rules out reading a
        // neighbouring field.
        assert!((100 * copies..100_000 * copies).contains(&ns), "{ns} ns for {copies} copies");
        assert!(tgid_after.count - tgid_before.count >= copies);
        assert!(matches!(wpcopy(child as u32), Err(Error::NoSuchTask(id)) if id == child as u32));
    }
}
