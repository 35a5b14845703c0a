//! Fork children: starting one with a real `fork()`, following its progress
//! over the child-info pipe, and reaping it without blocking the event loop.
//!
//! **Why fork is safe here.** `fork()` copies only the calling thread. It is
//! called from the event-loop thread between commands, the only thread that
//! owns the keyspace, so every structure the child reads is at rest and
//! unlocked. The child then touches only: the keyspace (read-only, no locks),
//! the allocator (jemalloc installs `pthread_atfork` handlers, so its locks
//! are consistent in the child), its own files, the child-info pipe and the
//! logger (a single `write(2)`, no lock). It never touches the AOF buffers or
//! the fsync thread's state, and it ends with `_exit`, running no destructors
//! (which would touch, and so copy, every page of the keyspace).
//!
//! **An orphan never publishes.** A child whose parent died (kill -9, OOM
//! killer) must not rename its snapshot over the dump later: by then a
//! restarted instance may have saved newer data there. Two things ensure it:
//! 1. Right after the fork the child asks the kernel for SIGKILL when its
//!    parent dies (`PR_SET_PDEATHSIG`), then compares `getppid()` with the
//!    pid the parent had before forking: a parent that died before the
//!    `prctl` left the child reparented already, and it exits at once.
//!    From then on the parent's death kills the child asynchronously.
//! 2. Just before the rename that publishes a file, the child checks
//!    `getppid()` again ([`orphaned`], called by `fsutil::replace_durably`).
//!
//! The only window left is between that check and the `rename(2)` a few
//! instructions later: a parent dying there has the kernel kill the child
//! as it exits, microseconds later, long before a new instance could have
//! started, loaded its data and saved. The AOF rewrite child never renames
//! (the parent installs its file), so its orphan only leaves a temp file.
//! The signal is tied to the thread that forked: the event-loop thread,
//! which is the main thread, so it fires exactly when the process dies.
//! Both calls are plain syscalls (no lock, no allocation).

use crate::childinfo::{self, Record, Reporter};
use crate::server::Server;
use crate::{markers, warning};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

/// In a child: the pid of the parent that forked it (0 in the server itself).
static PARENT: AtomicI32 = AtomicI32::new(0);

/// True in a fork child whose parent has died: it must not publish anything.
pub fn orphaned() -> bool {
    let parent = PARENT.load(Ordering::Relaxed);
    parent != 0 && nix::unistd::getppid().as_raw() != parent
}

/// What a child is doing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChildKind {
    /// Writing an RDB snapshot (BGSAVE).
    Rdb,
    /// Rewriting the append-only file (BGREWRITEAOF).
    Aof,
}

impl ChildKind {
    /// The name used in log lines and CoW reports ("RDB", "AOF rewrite").
    pub fn label(self) -> &'static str {
        match self {
            ChildKind::Rdb => "RDB",
            ChildKind::Aof => "AOF rewrite",
        }
    }
}

/// The running child, as the parent sees it.
pub struct Child {
    /// Its pid.
    pub pid: Pid,
    /// What it does.
    pub kind: ChildKind,
    /// When it was forked.
    pub started: Instant,
    /// Keys in the keyspace at fork time (`current_save_keys_total`).
    pub keys_total: u64,
    /// Last progress report.
    pub last: Record,
    /// When `last` arrived.
    pub last_at: Option<Instant>,
    /// Highest CoW figure reported (`current_cow_peak`).
    pub cow_peak: u64,
    /// The final report arrived (the child finished its work).
    pub final_received: bool,
    pipe: OwnedFd,
    pending: Vec<u8>,
}

/// How a child ended.
pub struct Exit {
    /// The child that ended.
    pub child: Child,
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if it was killed.
    pub signal: Option<Signal>,
}

impl Exit {
    /// True when the child exited with status 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Forks a child that runs `work` and exits with its return value.
/// `work` receives the reporter for progress and CoW figures.
pub fn start(srv: &mut Server, kind: ChildKind, work: impl FnOnce(&Server, &mut Reporter) -> i32) -> nix::Result<Pid> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
    let keys_total = srv.ks.total_keys() as u64;
    let parent = nix::unistd::getpid();
    let t = Instant::now();
    // SAFETY: see the module comment: called on the only thread that owns the
    // data, between commands; the child only does async-signal-tolerant work
    // on memory it inherited and exits with `_exit`.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            drop(rd);
            die_with_parent(parent);
            in_child(&srv.listener_fds);
            let mut reporter = Reporter::new(wr);
            let code = work(srv, &mut reporter);
            // SAFETY: ends the child without running destructors or atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let us = t.elapsed().as_micros() as u64;
            srv.stats.latest_fork_usec = us;
            srv.stats.total_forks += 1;
            crate::dict::set_resize_allowed(false);
            markers::cowstore_marker_fork(child.as_raw() as u32);
            drop(wr);
            srv.child = Some(Child {
                pid: child,
                kind,
                started: Instant::now(),
                keys_total,
                last: Record::default(),
                last_at: None,
                cow_peak: 0,
                final_received: false,
                pipe: rd,
                pending: Vec::new(),
            });
            Ok(child)
        }
    }
}

/// Child-side: SIGKILL when the parent dies; exit now if it already has
/// (see "An orphan never publishes" above).
fn die_with_parent(parent: Pid) {
    PARENT.store(parent.as_raw(), Ordering::Relaxed);
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; a plain syscall.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if orphaned() {
        // SAFETY: ends the child without running destructors or atexit handlers.
        unsafe { libc::_exit(1) }
    }
}

/// Child-side set-up: mark log lines, restore default signal handling so
/// SIGTERM/SIGUSR1 end it, and close the listening sockets.
fn in_child(listeners: &[RawFd]) {
    use nix::sys::signal::{SigHandler, signal};
    crate::log::set_child_role();
    // SAFETY: resetting dispositions to their defaults in a single-threaded child.
    unsafe {
        let _ = signal(Signal::SIGTERM, SigHandler::SigDfl);
        let _ = signal(Signal::SIGINT, SigHandler::SigDfl);
        let _ = signal(Signal::SIGUSR1, SigHandler::SigDfl);
    }
    for &fd in listeners {
        // SAFETY: the child's copies of the listening sockets are not used by it.
        unsafe { libc::close(fd) };
    }
}

/// Reads the child's pending reports into its state.
pub fn receive_info(child: &mut Child) {
    for r in childinfo::drain(&child.pipe, &mut child.pending) {
        child.cow_peak = child.cow_peak.max(r.cow);
        child.final_received |= r.last;
        child.last = r;
        child.last_at = Some(Instant::now());
    }
}

/// Checks (without blocking) whether the child has exited; returns how it ended.
pub fn try_reap(srv: &mut Server) -> Option<Exit> {
    let pid = srv.child.as_ref()?.pid;
    let status = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => return None,
        Ok(s) => s,
        Err(e) => {
            warning!("waitpid() returned an error: {e}. child_pid = {pid}");
            WaitStatus::Exited(pid, 255)
        }
    };
    Some(finish(srv, status))
}

/// Kills the child (SIGUSR1, as Redis does when it aborts a save) and reaps it.
pub fn kill_and_reap(srv: &mut Server) -> Option<Exit> {
    let pid = srv.child.as_ref()?.pid;
    let _ = kill(pid, Signal::SIGUSR1);
    let status = waitpid(pid, None).unwrap_or(WaitStatus::Signaled(pid, Signal::SIGUSR1, false));
    Some(finish(srv, status))
}

fn finish(srv: &mut Server, status: WaitStatus) -> Exit {
    let mut child = srv.child.take().expect("a child is running");
    receive_info(&mut child);
    crate::dict::set_resize_allowed(true);
    let (code, signal) = match status {
        WaitStatus::Exited(_, c) => (Some(c), None),
        WaitStatus::Signaled(_, s, _) => (None, Some(s)),
        _ => (Some(255), None),
    };
    markers::cowstore_marker_snapshot_end(child.pid.as_raw() as u32, (code == Some(0)) as u32);
    Exit { child, code, signal }
}
