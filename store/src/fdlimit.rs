//! Open-file limits: fitting `maxclients` to `RLIMIT_NOFILE` as Redis's
//! `adjustOpenFilesLimit` does, and a spare descriptor that keeps the
//! listener draining when descriptors run out anyway.
//!
//! Each client costs one descriptor, and the server needs some of its own
//! (listeners, epoll, the AOF, the dump, pipes to a fork child): Redis keeps
//! 32 for those. At startup the limit is raised to `maxclients + 32`; when the
//! system refuses, `maxclients` is lowered to what fits, with Redis's log lines.
//!
//! Should `accept()` still fail with EMFILE (the limit lowered from outside,
//! descriptors held by something else), the connection would stay in the
//! listen queue; with an edge-triggered listener no new edge comes once the
//! queue is full, and the server would never accept again. [`Spare`] holds one
//! descriptor in reserve: it is released to accept the waiting connection,
//! which is refused with an error and closed, and then taken back.

use crate::{notice, warning};
use std::fs::File;
use std::io::Write;

/// Descriptors kept for the server's own use besides clients (Redis's CONFIG_MIN_RESERVED_FDS).
pub const RESERVED_FDS: u64 = 32;

/// The error a refused connection gets (Redis's words for a full server).
pub const FULL: &[u8] = b"-ERR max number of clients reached\r\n";

fn get() -> Option<libc::rlimit> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0).then_some(l)
}

/// Tries to set the soft limit to `n` (raising the hard one with it when
/// needed, which takes privileges); returns the errno on failure.
fn set(n: u64, hard: u64) -> Result<(), std::io::Error> {
    let l = libc::rlimit { rlim_cur: n, rlim_max: hard.max(n) };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Raises the open-files limit to fit `maxclients` (at startup, and when
/// CONFIG SET raises `maxclients`). Returns the `maxclients` that fits, which
/// is lower than asked when the system refuses a higher limit; an error when
/// not even the reserved descriptors fit.
pub fn fit_maxclients(maxclients: usize) -> Result<usize, String> {
    let want = maxclients as u64 + RESERVED_FDS;
    let Some(l) = get() else {
        let e = std::io::Error::last_os_error();
        warning!(
            "Unable to obtain the current NOFILE limit ({e}), assuming 1024 and setting the max clients configuration accordingly."
        );
        return Ok((1024 - RESERVED_FDS) as usize);
    };
    let old = l.rlim_cur;
    if old >= want {
        return Ok(maxclients);
    }
    // The wanted limit, else the most the system allows (the hard limit,
    // capped by fs.nr_open), else what there is.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok());
    let most = l.rlim_max.min(nr_open.unwrap_or(u64::MAX));
    let err = match set(want, l.rlim_max) {
        Ok(()) => {
            notice!("Increased maximum number of open files to {want} (it was originally set to {old}).");
            return Ok(maxclients);
        }
        Err(e) => e,
    };
    let best = if most > old && most < want && set(most, l.rlim_max).is_ok() { most } else { old };
    if best <= RESERVED_FDS {
        return Err(format!(
            "Your current 'ulimit -n' of {old} is not enough for the server to start. Please increase your open file limit to at least {want}. Exiting."
        ));
    }
    let fits = (best - RESERVED_FDS) as usize;
    warning!("You requested maxclients of {maxclients} requiring at least {want} max file descriptors.");
    warning!("Server can't set maximum open files to {want} because of OS error: {err}.");
    warning!(
        "Current maximum open files is {best}. maxclients has been reduced to {fits} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'."
    );
    Ok(fits)
}

/// One descriptor held in reserve for refusing connections at EMFILE.
pub struct Spare(Option<File>);

impl Spare {
    /// Opens the reserve descriptor.
    pub fn new() -> Spare {
        Spare(File::open("/dev/null").ok())
    }

    /// Accepts every waiting connection on `listener` with the reserve
    /// descriptor and refuses it (error reply, close). Returns how many.
    pub fn refuse_all(&mut self, listener: &mio::net::TcpListener) -> u64 {
        let mut refused = 0;
        loop {
            if self.0.is_none() {
                self.0 = File::open("/dev/null").ok();
            }
            // Closing the reserve frees the descriptor the accept needs.
            if self.0.take().is_none() {
                return refused;
            }
            let outcome = match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write(FULL);
                    refused += 1;
                    Ok(())
                }
                Err(e) => Err(e),
            };
            self.0 = File::open("/dev/null").ok();
            match outcome {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return refused,
            }
        }
    }
}

impl Default for Spare {
    fn default() -> Spare {
        Spare::new()
    }
}
