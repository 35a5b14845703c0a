//! Ground-truth workloads for cowscope's tests: each does a known amount of
//! work and writes what it did (and the kernel's own counts) to a JSON file.
//!
//! - `cow MIB PAGES AFTER ZERO THP RESULT`: maps MIB of private anonymous
//!   memory (with `MADV_HUGEPAGE` if THP is 1), writes it but for its last
//!   ZERO pages, which it only reads (they map the shared zero page), forks,
//!   writes PAGES distinct pages and the ZERO pages while the child lives,
//!   lets the child exit, then writes AFTER other pages. Reports its
//!   `wpcopy_count` from taskstats before and after.
//! - `sync PATH COUNT RESULT`: COUNT × (write + fsync), then COUNT × (write + fdatasync).
//! - `markers WRITES RESULT`: calls cowstore's marker functions as cowstore would.

use std::{fs::File, io::Write, os::fd::AsRawFd, time::Instant};

const PAGE: usize = 4096;
const HUGE: usize = 2 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str { args.get(i).map(String::as_str).unwrap_or_else(|| usage()) };
    let num = |i: usize| -> usize { arg(i).parse().unwrap_or_else(|_| usage()) };
    let result = match arg(0) {
        "cow" => cow(num(1), num(2), num(3), num(4), num(5) == 1),
        "sync" => sync(arg(1), num(2)),
        "markers" => markers(num(1)),
        _ => usage(),
    };
    let path = args.last().unwrap_or_else(|| usage());
    std::fs::write(path, result.to_string()).expect("write the result file");
}

fn usage() -> ! {
    eprintln!(
        "usage: cowscope-groundtruth cow MIB PAGES AFTER ZERO THP RESULT | sync PATH COUNT RESULT | markers WRITES RESULT"
    );
    std::process::exit(2)
}

fn cow(mib: usize, pages: usize, after: usize, zero: usize, thp: bool) -> serde_json::Value {
    let len = mib << 20;
    let zeros = len / PAGE - zero..len / PAGE;
    assert!(pages + after <= zeros.start, "region too small");
    // SAFETY: a fresh private anonymous mapping, used only through `base`.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len + HUGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(raw, libc::MAP_FAILED, "mmap");
    let base = (raw as usize).next_multiple_of(HUGE) as *mut u8;
    let advice = if thp { libc::MADV_HUGEPAGE } else { libc::MADV_NOHUGEPAGE };
    // SAFETY: base..base+len lies inside the mapping.
    unsafe {
        assert_eq!(libc::madvise(base.cast(), len, advice), 0, "madvise");
    }
    let write = |page: usize, v: u8| unsafe { base.add(page * PAGE).write_volatile(v) };
    for p in 0..zeros.start {
        write(p, 1);
    }
    // SAFETY: inside the mapping.
    let read: u32 = zeros.clone().map(|p| u32::from(unsafe { base.add(p * PAGE).read_volatile() })).sum();
    assert_eq!(read, 0);
    let huge_bytes = anon_huge_bytes(base as usize);
    let before = wpcopy_count();
    let mut gate = [0i32; 2];
    // SAFETY: plain pipe(2) and fork(2) in a single-threaded process.
    unsafe { assert_eq!(libc::pipe(gate.as_mut_ptr()), 0) };
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        // The child holds the snapshot window open until the parent closes the pipe.
        let mut b = [0u8; 1];
        unsafe {
            libc::close(gate[1]);
            libc::read(gate[0], b.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    unsafe { libc::close(gate[0]) };
    for p in (0..pages).chain(zeros) {
        write(p, 2);
    }
    let mut status = 0;
    unsafe {
        libc::close(gate[1]);
        libc::waitpid(child, &mut status, 0);
    }
    for p in pages..pages + after {
        write(p, 3);
    }
    let after_count = wpcopy_count();
    serde_json::json!({
        "addr": base as usize,
        "len": len,
        "pages": pages,
        "after": after,
        "zero": zero,
        "child": child,
        "anon_huge_bytes": huge_bytes,
        "wpcopy_before": before,
        "wpcopy_after": after_count,
    })
}

/// `AnonHugePages` of the mapping that starts at or holds `addr`, in bytes.
fn anon_huge_bytes(addr: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((s, e)) = range.split_once('-')
            && let (Ok(s), Ok(e)) = (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16))
        {
            inside = s <= addr && addr < e;
        } else if inside && let Some(v) = line.strip_prefix("AnonHugePages:") {
            return v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0) * 1024;
        }
    }
    0
}

fn sync(path: &str, count: usize) -> serde_json::Value {
    let mut f = File::create(path).expect("create the file");
    let block = [7u8; PAGE];
    let mut timed = |call: fn(i32) -> i32| -> Vec<u64> {
        (0..count)
            .map(|_| {
                f.write_all(&block).expect("write");
                let t = Instant::now();
                assert_eq!(call(f.as_raw_fd()), 0, "sync call failed");
                t.elapsed().as_nanos() as u64
            })
            .collect()
    };
    let fsync = timed(|fd| unsafe { libc::fsync(fd) });
    let fdatasync = timed(|fd| unsafe { libc::fdatasync(fd) });
    serde_json::json!({ "path": std::fs::canonicalize(path).ok(), "fsync_ns": fsync, "fdatasync_ns": fdatasync })
}

// Each marker's body differs (and is opaque to the optimizer): identical bodies
// would be folded into one address, where a uprobe on one fires for all.
/// Keeps the markers as named functions in the executable: fat LTO would
/// otherwise inline them into their callers and drop the symbols.
#[used]
static MARKERS: (extern "C" fn(u64, u64), extern "C" fn(u64), extern "C" fn(u32), extern "C" fn(u32, u32)) =
    (cowstore_marker_writes_acked, cowstore_marker_fsync_done, cowstore_marker_fork, cowstore_marker_snapshot_end);

/// `cowstore_marker_writes_acked(aof_offset, count)`, as cowstore exports it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_writes_acked(aof_offset: u64, count: u64) {
    std::hint::black_box((aof_offset, count, 1u8));
}

/// `cowstore_marker_fsync_done(aof_offset)`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_fsync_done(aof_offset: u64) {
    std::hint::black_box((aof_offset, 2u8));
}

/// `cowstore_marker_fork(child_pid)`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_fork(child_pid: u32) {
    std::hint::black_box((child_pid, 3u8));
}

/// `cowstore_marker_snapshot_end(child_pid, ok)`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_snapshot_end(child_pid: u32, ok: u32) {
    std::hint::black_box((child_pid, ok, 4u8));
}

fn markers(writes: usize) -> serde_json::Value {
    let mut offset = 0u64;
    let mut acked: Vec<Instant> = Vec::new();
    let mut exposure_ns: Vec<u64> = Vec::new();
    // Writes are acknowledged in batches of 1, 2, 3 and 4 (ten per fsync),
    // as cowstore acknowledges the writes of an event-loop pass together.
    for i in 1..=writes {
        // The batch that ends with write i, if one does.
        let batch: u64 = match i % 10 {
            1 => 1,
            3 => 2,
            6 => 3,
            0 => 4,
            _ => continue,
        };
        offset += 100 * batch;
        let now = Instant::now();
        acked.extend(std::iter::repeat_n(now, batch as usize));
        cowstore_marker_writes_acked(offset, batch);
        if i % 10 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            cowstore_marker_fsync_done(offset);
            let done = Instant::now();
            exposure_ns.extend(acked.drain(..).map(|t| (done - t).as_nanos() as u64));
        }
    }
    // SAFETY: fork(2) in a single-threaded process; the child exits at once.
    let child = unsafe { libc::fork() };
    if child == 0 {
        unsafe { libc::_exit(0) };
    }
    cowstore_marker_fork(child as u32);
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    cowstore_marker_snapshot_end(child as u32, 1);
    exposure_ns.sort_unstable();
    serde_json::json!({
        "writes": writes,
        "fsyncs": writes / 10,
        "child": child,
        "exposure_p50_ns": exposure_ns.get(exposure_ns.len() / 2),
        "exposure_max_ns": exposure_ns.last(),
    })
}

/// This task's `wpcopy_count` from taskstats over generic netlink (needs
/// `kernel.task_delayacct=1` and CAP_NET_ADMIN).
fn wpcopy_count() -> u64 {
    taskstats::wpcopy_count(std::process::id()).unwrap_or_else(|e| {
        eprintln!("taskstats: {e}");
        std::process::exit(3)
    })
}

mod taskstats {
    //! Just enough generic netlink to ask taskstats about one task.

    use std::io::{Error, Result};

    const NETLINK_GENERIC: i32 = 16;
    const GENL_ID_CTRL: u16 = 0x10;
    const CTRL_CMD_GETFAMILY: u8 = 3;
    const CTRL_ATTR_FAMILY_ID: u16 = 1;
    const CTRL_ATTR_FAMILY_NAME: u16 = 2;
    const TASKSTATS_CMD_GET: u8 = 1;
    const TASKSTATS_CMD_ATTR_PID: u16 = 1;
    const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
    const TASKSTATS_TYPE_STATS: u16 = 3;
    /// Offset of `wpcopy_count` in `struct taskstats` (version 13 and later).
    const WPCOPY_COUNT: usize = 400;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    fn request(fd: i32, family: u16, cmd: u8, attrs: &[u8]) -> Result<Vec<u8>> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&((16 + 4 + attrs.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&family.to_ne_bytes());
        msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        msg.extend_from_slice(&[0u8; 8]);
        msg.extend_from_slice(&[cmd, 1, 0, 0]);
        msg.extend_from_slice(attrs);
        // SAFETY: plain send/recv on a socket this function owns the buffers of.
        unsafe {
            if libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) < 0 {
                return Err(Error::last_os_error());
            }
            let mut buf = vec![0u8; 8192];
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n < 0 {
                return Err(Error::last_os_error());
            }
            buf.truncate(n as usize);
            if buf.len() >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
                let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
                return Err(Error::from_raw_os_error(-code));
            }
            Ok(buf)
        }
    }

    /// Attributes after the netlink and genetlink headers.
    fn attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        let mut i = 20;
        while i + 4 <= buf.len() {
            let len = u16::from_ne_bytes([buf[i], buf[i + 1]]) as usize;
            let kind = u16::from_ne_bytes([buf[i + 2], buf[i + 3]]) & 0x3fff;
            if len < 4 || i + len > buf.len() {
                break;
            }
            out.push((kind, &buf[i + 4..i + len]));
            i += len.next_multiple_of(4);
        }
        out
    }

    fn nested(payload: &[u8]) -> Vec<(u16, &[u8])> {
        let mut padded = vec![0u8; 20];
        padded.extend_from_slice(payload);
        attrs(&padded)
            .into_iter()
            .map(|(k, v)| {
                let off = v.as_ptr() as usize - padded.as_ptr() as usize - 20;
                (k, &payload[off..off + v.len()])
            })
            .collect()
    }

    /// `wpcopy_count` of task `pid`.
    pub fn wpcopy_count(pid: u32) -> Result<u64> {
        // SAFETY: a netlink socket closed below.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, NETLINK_GENERIC) };
        if fd < 0 {
            return Err(Error::last_os_error());
        }
        let result = (|| {
            let reply = request(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"))?;
            let family = attrs(&reply)
                .into_iter()
                .find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID)
                .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
                .ok_or_else(|| Error::other("no TASKSTATS family"))?;
            let reply = request(fd, family, TASKSTATS_CMD_GET, &attr(TASKSTATS_CMD_ATTR_PID, &pid.to_ne_bytes()))?;
            let aggr = attrs(&reply)
                .into_iter()
                .find(|(k, _)| *k == TASKSTATS_TYPE_AGGR_PID)
                .ok_or_else(|| Error::other("no per-PID stats"))?;
            let stats = nested(aggr.1)
                .into_iter()
                .find(|(k, _)| *k == TASKSTATS_TYPE_STATS)
                .map(|(_, v)| v)
                .ok_or_else(|| Error::other("no stats"))?;
            let version = u16::from_ne_bytes([stats[0], stats[1]]);
            if version < 13 || stats.len() < WPCOPY_COUNT + 8 {
                return Err(Error::other(format!("taskstats version {version} lacks wpcopy_count")));
            }
            let mut word = [0u8; 8];
            word.copy_from_slice(&stats[WPCOPY_COUNT..WPCOPY_COUNT + 8]);
            Ok(u64::from_ne_bytes(word))
        })();
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        result
    }
}
