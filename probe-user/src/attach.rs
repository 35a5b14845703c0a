//! What is already running when cowscope attaches: which process a PID names
//! (a thread ID names its process), and the target's live forked children —
//! a snapshot may be under way, which is exactly when users attach.

use anyhow::{Result, bail};
use std::path::Path;

/// A child of the target found alive at attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Existing {
    /// Its PID.
    pub pid: u32,
    /// It shares the target's memory (`vfork`, `posix_spawn`, `CLONE_VM`): no window.
    pub shares_memory: bool,
    /// When it started, `CLOCK_MONOTONIC` ns.
    pub start_ns: u64,
}

/// The process `pid` names: itself, or the process of a thread ID. Fails with
/// one line if there is none.
pub fn process_of(pid: u32) -> Result<u32> {
    let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) if pid != 0 => s,
        _ => bail!("no process with PID {pid}"),
    };
    let field =
        |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<u32>().ok());
    let Some(tgid) = field("Tgid:") else { bail!("cannot read the process of PID {pid}") };
    Ok(tgid)
}

/// Whether `pid` is a kernel thread (it has no memory to follow).
pub fn kernel_thread(pid: u32) -> bool {
    // The 9th field of stat holds the flags; PF_KTHREAD = 0x00200000.
    stat_fields(pid).and_then(|f| f.get(6)?.parse::<u64>().ok()).is_some_and(|flags| flags & 0x0020_0000 != 0)
}

/// Fields of `/proc/PID/stat` after the command name (field 3, the state, first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// `pid`'s live children (not threads), zombies left out.
pub fn children(pid: u32) -> Vec<Existing> {
    let mut pids: Vec<u32> = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    let mut had_file = false;
    for task in tasks {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            had_file = true;
            pids.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    if !had_file {
        // Without CONFIG_PROC_CHILDREN: look for processes whose parent is pid.
        pids = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| stat_fields(p).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(pid))
            .collect();
    }
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter_map(|child| {
            let f = stat_fields(child)?;
            if matches!(f.first().map(String::as_str), Some("Z" | "X" | "x")) {
                return None;
            }
            let start_ticks: u64 = f.get(19)?.parse().ok()?;
            Some(Existing {
                pid: child,
                shares_memory: shares_memory(pid, child),
                start_ns: boot_ticks_to_monotonic(start_ticks),
            })
        })
        .collect()
}

/// Whether two processes share one address space (`kcmp(KCMP_VM)`); false if
/// the kernel cannot tell.
fn shares_memory(a: u32, b: u32) -> bool {
    const KCMP_VM: libc::c_long = 1;
    // SAFETY: kcmp only compares kernel objects of the two processes.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, a as libc::c_long, b as libc::c_long, KCMP_VM, 0, 0) };
    r == 0
}

/// Converts a start time in clock ticks since boot (`/proc/PID/stat`) to `CLOCK_MONOTONIC` ns.
fn boot_ticks_to_monotonic(ticks: u64) -> u64 {
    use nix::time::{ClockId, clock_gettime};
    let ns = |id| clock_gettime(id).map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64).unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as u64;
    let suspended = ns(ClockId::CLOCK_BOOTTIME).saturating_sub(ns(ClockId::CLOCK_MONOTONIC));
    (ticks * 1_000_000_000 / hz).saturating_sub(suspended)
}

/// Keeps cowscope off the CPUs `pid` may run on, when it is pinned to some
/// and others are online: cowscope's work (draining records, reading a
/// child's address space at a fork) then never competes with the target for
/// its CPU. Returns the CPUs cowscope moved to.
pub fn stay_off_cpus_of(pid: u32) -> Option<Vec<usize>> {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    let target = sched_getaffinity(nix::unistd::Pid::from_raw(pid as i32)).ok()?;
    let online = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN).ok().flatten()? as usize;
    let others: Vec<usize> = (0..online.min(CpuSet::count())).filter(|&c| !target.is_set(c).unwrap_or(true)).collect();
    if others.is_empty() {
        return None;
    }
    let mut mine = CpuSet::new();
    for &c in &others {
        mine.set(c).ok()?;
    }
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &mine).ok()?;
    Some(others)
}

/// Whether `pid` exists and has not exited (zombies count as exited).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && stat_fields(pid).is_some_and(|f| !matches!(f.first().map(String::as_str), Some("Z" | "X" | "x")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_forked_child_and_a_thread_s_process() {
        let me = std::process::id();
        assert_eq!(process_of(me).unwrap(), me);
        let tid = std::thread::spawn(|| nix::unistd::gettid().as_raw() as u32).join().unwrap();
        // The thread has exited by now; a live one:
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
            let _ = done_rx.recv();
        });
        let live = rx.recv().unwrap();
        assert_eq!(process_of(live).unwrap(), me);
        drop(done_tx);
        h.join().unwrap();
        assert!(process_of(tid).is_err() || process_of(tid).unwrap() == me);
        assert!(process_of(0).is_err());

        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("sleep");
        let found = children(me);
        let c = found.iter().find(|c| c.pid == child.id()).expect("child found");
        assert!(!c.shares_memory);
        assert!(alive(c.pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(c.pid));
        assert!(!kernel_thread(me));
        assert!(kernel_thread(2), "kthreadd");
    }
}
