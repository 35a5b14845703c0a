//! The background fsync thread for `appendfsync everysec` (Redis's bio
//! `BIO_AOF_FSYNC` job): the event loop hands it a descriptor and the AOF
//! offset written so far; it runs `fdatasync` and reports when that offset
//! became durable.
//!
//! **Fork safety.** This thread shares only the job channel and the
//! [`Shared`] state with the event loop. A fork child never touches either
//! (it writes its own files and exits), so a lock this thread might hold at
//! the moment of a fork is never needed in the child.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

/// One fsync request: a descriptor of the AOF file and the offset it covers.
struct Job {
    fd: OwnedFd,
    offset: u64,
}

/// State shared between the event loop and the fsync thread.
#[derive(Default)]
struct Shared {
    /// Jobs submitted and not yet finished ("fsync in progress").
    pending: AtomicU32,
    /// errno of the last failed fsync, 0 after a success.
    error: AtomicI32,
    /// (offset, completion time in µs since the epoch) of finished fsyncs.
    done: Mutex<Vec<(u64, i64)>>,
}

/// Handle to the fsync thread.
pub struct FsyncWorker {
    tx: Sender<Job>,
    shared: Arc<Shared>,
}

impl FsyncWorker {
    /// Starts the thread.
    pub fn start() -> std::io::Result<FsyncWorker> {
        let (tx, rx) = channel::<Job>();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::Builder::new().name("aof-fsync".into()).spawn(move || {
            for job in rx {
                // SAFETY: fdatasync on a descriptor the job owns.
                let rc = unsafe { libc::fdatasync(job.fd.as_raw_fd()) };
                let now = crate::util::now_us();
                if rc == 0 {
                    s.error.store(0, Ordering::Relaxed);
                    crate::markers::cowstore_marker_fsync_done(job.offset);
                    s.done.lock().unwrap_or_else(|e| e.into_inner()).push((job.offset, now));
                } else {
                    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
                    s.error.store(errno, Ordering::Relaxed);
                }
                s.pending.fetch_sub(1, Ordering::Release);
            }
        })?;
        Ok(FsyncWorker { tx, shared })
    }

    /// Queues an fdatasync of `fd` covering AOF bytes up to `offset`.
    pub fn submit(&self, fd: OwnedFd, offset: u64) {
        self.shared.pending.fetch_add(1, Ordering::Acquire);
        if self.tx.send(Job { fd, offset }).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::Release);
        }
    }

    /// True while a submitted fsync has not finished.
    pub fn in_progress(&self) -> bool {
        self.shared.pending.load(Ordering::Acquire) > 0
    }

    /// The errno of the last failed fsync (0 if the last one succeeded).
    pub fn error(&self) -> i32 {
        self.shared.error.load(Ordering::Relaxed)
    }

    /// Takes the (offset, time µs) of fsyncs finished since the last call.
    pub fn take_done(&self) -> Vec<(u64, i64)> {
        std::mem::take(&mut *self.shared.done.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Blocks until every submitted fsync has finished.
    pub fn wait_idle(&self) {
        while self.in_progress() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
