//! Children that hold a snapshot window open until told to exit.
//!
//! Fork safety: a held child only calls async-signal-safe functions
//! (`prctl`, `close`, `read`, `_exit`) and touches no lock or allocator, so
//! it is safe to fork while other threads run (the `threads` workload).

use std::time::Duration;

/// A forked child blocked on a pipe; it exits 0 when released, or is
/// killed (`PR_SET_PDEATHSIG`) if the thread that forked it dies first.
pub struct Held {
    /// The child's pid.
    pub pid: i32,
    release: i32,
}

/// Forks a child that waits until [`Held::release`].
pub fn fork_held() -> Held {
    let mut gate = [0i32; 2];
    // SAFETY: pipe(2) fills the two-int array.
    if unsafe { libc::pipe2(gate.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        crate::fail(&format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let parent = std::process::id() as i32;
    // SAFETY: the child runs only async-signal-safe calls, then _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        crate::fail(&format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls on our own descriptors.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            libc::close(gate[1]);
            let mut byte = 0u8;
            libc::read(gate[0], (&raw mut byte).cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: the read end is the child's; we keep the write end.
    unsafe { libc::close(gate[0]) };
    Held { pid, release: gate[1] }
}

impl Held {
    /// Lets the child exit and reaps it; fails loudly unless it exited 0.
    pub fn release(self) {
        // SAFETY: our own pipe; one byte wakes the child.
        unsafe {
            libc::write(self.release, [1u8].as_ptr().cast(), 1);
            libc::close(self.release);
        }
        reap(self.pid, "held child");
    }
}

/// Waits for child `pid`; fails loudly unless it exited 0.
pub fn reap(pid: i32, what: &str) {
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        crate::fail(&format!("waitpid {what} {pid}: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        crate::fail(&format!("{what} {pid} ended with wait status {status:#x}"));
    }
}

/// Sleeps in a forked child without allocating (`nanosleep` is async-signal-safe).
pub fn sleep_in_child(d: Duration) {
    let ts = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    // SAFETY: nanosleep reads `ts`.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}
