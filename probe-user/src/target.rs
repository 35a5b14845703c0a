//! The process to record: an existing PID, or a command cowscope starts held
//! at a gate until the probes are attached, as the invoking user.

use crate::attach;
use anyhow::{Context, Result, bail};
use nix::{
    fcntl::OFlag,
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::{ForkResult, Gid, Pid, Uid, User, execv, fork, pipe, pipe2, read, setgid, setgroups, setuid},
};
use std::{ffi::CString, os::fd::OwnedFd, path::PathBuf};

/// The process to record for `-p PID`: the process itself, or the process a
/// thread ID belongs to (said on stderr). Fails with one line for no process
/// or a kernel thread.
pub fn existing(pid: u32) -> Result<u32> {
    let tgid = attach::process_of(pid)?;
    if tgid != pid {
        eprintln!("cowscope: PID {pid} is a thread of process {tgid}: recording process {tgid}");
    }
    if attach::kernel_thread(tgid) {
        bail!("PID {tgid} is a kernel thread: it has no user memory to record");
    }
    Ok(tgid)
}

/// A command started by cowscope, waiting at the gate until [`Spawned::release`].
pub struct Spawned {
    /// Its PID.
    pub pid: u32,
    /// The executable it will run.
    pub exe: PathBuf,
    /// The command as given, for messages.
    pub name: String,
    gate: Option<OwnedFd>,
    /// Read end of a close-on-exec pipe: EOF once the exec succeeded, the
    /// `errno` of the failed exec otherwise.
    exec_status: Option<OwnedFd>,
}

/// Who the command runs as.
fn identity(as_user: Option<&str>) -> Result<(Uid, Gid)> {
    if let Some(name) = as_user {
        let user = User::from_name(name).ok().flatten().with_context(|| format!("no user named {name}"))?;
        return Ok((user.uid, user.gid));
    }
    let id = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u32>().ok());
    match (id("SUDO_UID"), id("SUDO_GID")) {
        (Some(u), Some(g)) => Ok((Uid::from_raw(u), Gid::from_raw(g))),
        _ => bail!(
            "cannot tell who invoked cowscope (no SUDO_UID/SUDO_GID): \
             pass --as-user USER (--as-user root to run the command as root)"
        ),
    }
}

/// Finds `program` on `PATH` unless it names a path already.
fn resolve(program: &str) -> Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("command not found: {program}"))
}

/// Forks the command; it execs only after [`Spawned::release`]. With
/// `stdout_to_stderr` its standard output goes to cowscope's standard error,
/// keeping cowscope's own output (a JSON report) clean.
pub fn spawn(command: &[String], as_user: Option<&str>, stdout_to_stderr: bool) -> Result<Spawned> {
    let (uid, gid) = identity(as_user)?;
    let exe = resolve(&command[0])?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("argument contains a NUL byte")?;
    // The resolved path, run as is: no shell fallback for a file that is not a program.
    let path = CString::new(exe.as_os_str().as_encoded_bytes()).context("path contains a NUL byte")?;
    let (gate_read, gate_write) = pipe().context("pipe")?;
    let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
    // SAFETY: cowscope is still single-threaded here; the child only calls
    // async-signal-safe functions before exec.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(gate_write);
            drop(status_read);
            let mut byte = [0u8; 1];
            if !matches!(read(&gate_read, &mut byte), Ok(1)) {
                // cowscope gave up before attaching: never run the command.
                unsafe { libc::_exit(126) };
            }
            drop(gate_read);
            if stdout_to_stderr {
                // SAFETY: plain descriptor duplication before exec.
                unsafe { libc::dup2(2, 1) };
            }
            let error = match setgroups(&[gid]).and(setgid(gid)).and(setuid(uid)) {
                Ok(()) => execv(&path, &argv).err().unwrap_or(nix::Error::UnknownErrno),
                Err(e) => e,
            };
            let _ = nix::unistd::write(&status_write, &(error as i32).to_ne_bytes());
            unsafe { libc::_exit(127) };
        }
        ForkResult::Parent { child } => {
            drop(gate_read);
            drop(status_write);
            Ok(Spawned {
                pid: child.as_raw() as u32,
                exe,
                name: command[0].clone(),
                gate: Some(gate_write),
                exec_status: Some(status_read),
            })
        }
    }
}

impl Spawned {
    /// Lets the command exec; fails (the command's exit reaped) if the exec failed.
    pub fn release(&mut self) -> Result<()> {
        if let Some(gate) = self.gate.take() {
            nix::unistd::write(&gate, &[1]).context("releasing the command")?;
        }
        if let Some(status) = self.exec_status.take() {
            let mut errno = [0u8; 4];
            if let Ok(4) = read(&status, &mut errno) {
                let error = nix::Error::from_raw(i32::from_ne_bytes(errno));
                let _ = waitpid(Pid::from_raw(self.pid as i32), None);
                bail!("cannot run {}: {}", self.name, error.desc());
            }
        }
        Ok(())
    }

    /// Ends the command if it still runs and reaps it; returns its wait status.
    pub fn finish(&mut self) -> Option<WaitStatus> {
        self.gate = None;
        let pid = Pid::from_raw(self.pid as i32);
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {
                let _ = kill(pid, Signal::SIGTERM);
                waitpid(pid, None).ok()
            }
            other => other.ok(),
        }
    }
}
