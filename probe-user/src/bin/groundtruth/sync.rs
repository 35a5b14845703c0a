//! `sync`: timed fsync and fdatasync calls on one file.

use crate::region::PAGE;
use std::{fs::File, io::Write, os::fd::AsRawFd, time::Instant};

/// COUNT × (write + fsync), then COUNT × (write + fdatasync), each timed.
pub fn run(path: &str, count: usize) -> serde_json::Value {
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
