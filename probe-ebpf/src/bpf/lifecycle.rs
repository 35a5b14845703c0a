//! Fork and exit of followed processes: fork latency, the children it creates
//! (followed from then on) and the snapshot window each child holds open.

use super::state::{
    CALL_CLONE, INFLIGHT, Inflight, TASKS, add, count, emit, emit_lazy, enter, field, forget_fault, ids, leave, now,
    read,
};
use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};
use aya_log_ebpf::{debug, warn};
use probe_ebpf::{
    CLONE_THREAD, CLONE_VM, SIG_DFL, Task, counter, kills_by_default,
    record::{Exec, Exit, Exiting, Fork, WindowEnd},
    task,
};

/// `SIGCHLD`, the flags `fork(2)` passes to the kernel's clone.
const FORK_FLAGS: u64 = 17;
/// `CLONE_VM | CLONE_VFORK | SIGCHLD`, what `vfork(2)` passes.
const VFORK_FLAGS: u64 = 0x4000 | CLONE_VM | 17;

fn start_clone(flags: u64) {
    let (tgid, tid) = ids();
    if TASKS.get_ptr(tgid).is_none() {
        return;
    }
    // Fork allocates page tables and flushes the TLB: not a copy.
    forget_fault(tid);
    let call = Inflight { ts: now(), arg: flags, child_ts: 0, call: CALL_CLONE, fd_or_epoch: 0, copies: 0, _pad: 0 };
    enter(tid, call);
}

/// `syscalls:sys_enter_clone`.
#[tracepoint(category = "syscalls", name = "sys_enter_clone")]
pub fn sys_enter_clone(ctx: TracePointContext) -> u32 {
    start_clone(read(&ctx, field!(clone_flags)).unwrap_or(0));
    0
}

/// `syscalls:sys_enter_clone3`: the flags are the first field of the user's `clone_args`.
#[tracepoint(category = "syscalls", name = "sys_enter_clone3")]
pub fn sys_enter_clone3(ctx: TracePointContext) -> u32 {
    let (tgid, _) = ids();
    if TASKS.get_ptr(tgid).is_none() {
        return 0;
    }
    let args = read(&ctx, field!(clone3_args)).unwrap_or(0) as *const u64;
    // SAFETY: bpf_probe_read_user checks the user address.
    let flags = unsafe { bpf_probe_read_user(args) }.unwrap_or(0);
    start_clone(flags);
    0
}

/// `syscalls:sys_enter_fork`.
#[tracepoint(category = "syscalls", name = "sys_enter_fork")]
pub fn sys_enter_fork(_ctx: TracePointContext) -> u32 {
    start_clone(FORK_FLAGS);
    0
}

/// `syscalls:sys_enter_vfork`.
#[tracepoint(category = "syscalls", name = "sys_enter_vfork")]
pub fn sys_enter_vfork(_ctx: TracePointContext) -> u32 {
    start_clone(VFORK_FLAGS);
    0
}

/// `sched:sched_process_fork`, in the parent: follows the new child and, if it
/// shares no memory with the parent, opens a snapshot window.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    let Some(parent) = TASKS.get_ptr_mut(tgid) else {
        return 0;
    };
    let Some(child) = read(&ctx, field!(fork_child_pid)) else {
        return 0;
    };
    let child = child as u32;
    let call = INFLIGHT.get_ptr_mut(tid);
    // SAFETY: this thread's own in-flight entry.
    let flags = call.map(|c| unsafe { (*c).arg }).unwrap_or(FORK_FLAGS);
    if flags & CLONE_THREAD != 0 {
        count(counter::THREADS);
        return 0;
    }
    let window = flags & CLONE_VM == 0;
    let mut epoch = 0;
    // SAFETY: parent points at the live map value of this process.
    let copies = unsafe { (*parent).copies };
    if window {
        // SAFETY: as above.
        unsafe {
            add(&raw mut (*parent).live_children, 1);
            add(&raw mut (*parent).epoch, 1);
            epoch = (*parent).epoch;
        }
    }
    let t = Task {
        parent: tgid,
        window: epoch,
        flags: task::CHILD | if window { task::WINDOW } else { 0 },
        ..Task::default()
    };
    if TASKS.insert(child, t, 0).is_err() {
        count(counter::DROP_TASKS);
        warn!(&ctx, "task map full: child {} of {} not followed", child, tgid);
        if window {
            // SAFETY: as above.
            add(unsafe { &raw mut (*parent).live_children }, u32::MAX);
        }
        return 0;
    }
    debug!(&ctx, "following child {} of {} (epoch {})", child, tgid, epoch);
    if let Some(c) = call {
        // SAFETY: this thread's own in-flight entry.
        unsafe {
            (*c).child_ts = now();
            (*c).fd_or_epoch = epoch;
            (*c).copies = copies;
        }
    }
    0
}

fn finish_clone(ctx: &TracePointContext) {
    let (tgid, tid) = ids();
    let Some(call) = leave(tid, CALL_CLONE) else {
        return;
    };
    let ret = read(ctx, field!(sys_ret)).unwrap_or(0) as i64;
    if ret <= 0 || call.arg & CLONE_THREAD != 0 {
        return;
    }
    let fork = Fork {
        parent: tgid,
        tid,
        child: ret as u32,
        entry_ns: call.ts,
        latency_ns: now().wrapping_sub(call.ts),
        clone_flags: call.arg,
        epoch: call.fd_or_epoch,
        parent_copies: call.copies,
        child_seen_ns: call.child_ts,
    };
    // No wake-up: userspace must not preempt the parent on its way back to
    // the caller (on the target's CPU, userspace reading a large child's
    // smaps at once made the parent's fork() return milliseconds later).
    emit_lazy(fork.event());
}

/// `syscalls:sys_exit_clone`.
#[tracepoint(category = "syscalls", name = "sys_exit_clone")]
pub fn sys_exit_clone(ctx: TracePointContext) -> u32 {
    finish_clone(&ctx);
    0
}

/// `syscalls:sys_exit_clone3`.
#[tracepoint(category = "syscalls", name = "sys_exit_clone3")]
pub fn sys_exit_clone3(ctx: TracePointContext) -> u32 {
    finish_clone(&ctx);
    0
}

/// `syscalls:sys_exit_fork`.
#[tracepoint(category = "syscalls", name = "sys_exit_fork")]
pub fn sys_exit_fork(ctx: TracePointContext) -> u32 {
    finish_clone(&ctx);
    0
}

/// `syscalls:sys_exit_vfork`.
#[tracepoint(category = "syscalls", name = "sys_exit_vfork")]
pub fn sys_exit_vfork(ctx: TracePointContext) -> u32 {
    finish_clone(&ctx);
    0
}

/// `syscalls:sys_enter_exit_group`: keeps the exit status for the exit record
/// and, for a child holding a window open, reports how much its parent has
/// copied by now (the child's own accounting stops here; its exit still takes time).
#[tracepoint(category = "syscalls", name = "sys_enter_exit_group")]
pub fn sys_enter_exit_group(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    let Some(t) = TASKS.get_ptr_mut(tgid) else {
        return 0;
    };
    let code = read(&ctx, field!(exit_group_code)).unwrap_or(0) as u32;
    // SAFETY: t points at the live map value of this process.
    let (flags, parent) = unsafe {
        (*t).exit_code = code & 0xff;
        (*t).flags |= task::EXITED;
        ((*t).flags, (*t).parent)
    };
    if flags & task::WINDOW == 0 {
        return 0;
    }
    // SAFETY: copied out of the parent's live map value.
    let Some(p) = (unsafe { TASKS.get(parent) }).copied() else {
        return 0;
    };
    emit(Exiting { child: tgid, tid, parent, ts: now(), parent_copies: p.copies }.event());
    0
}

/// `sched:sched_process_exit`: forgets the exiting thread's state and, when the
/// whole process is gone, reports it. A child holding a window open keeps it
/// open until its memory is released (see [`signal_generate`]): this
/// tracepoint fires before `exit_mm()`, and while the child tears its address
/// space down the parent still copies the pages they share.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    // SAFETY: copied out; the process is exiting and no longer changes it.
    let Some(t) = (unsafe { TASKS.get(tgid) }).copied() else {
        return 0;
    };
    forget_fault(tid);
    let _ = INFLIGHT.remove(tid);
    let group_dead = if field!(exit_group_dead).size == 0 {
        tid == tgid
    } else {
        read(&ctx, field!(exit_group_dead)).unwrap_or(0) != 0
    };
    if !group_dead {
        return 0;
    }
    let exit_code = (t.flags & task::EXITED != 0).then_some(t.exit_code);
    emit(Exit { tgid, tid, parent: t.parent, ts: now(), exit_code, signal: t.signal }.event());
    match TASKS.get_ptr_mut(tgid) {
        // SAFETY: c points at the live map value of this process.
        Some(c) if t.flags & task::WINDOW != 0 => unsafe { (*c).flags |= task::TEARDOWN },
        _ => {
            let _ = TASKS.remove(tgid);
        }
    }
    0
}

/// Ends the window a child held open: its memory is gone.
fn release_window(child: u32, t: &Task) {
    if let Some(parent) = TASKS.get_ptr_mut(t.parent) {
        // SAFETY: parent points at the live map value of the parent.
        unsafe {
            if (*parent).live_children > 0 {
                add(&raw mut (*parent).live_children, u32::MAX);
            }
        }
    }
    let _ = TASKS.remove(child);
    emit(WindowEnd { child, parent: t.parent, ts: now() }.event());
}

/// `signal:signal_generate`: an exiting child notifies its parent
/// (`exit_notify()`, after `exit_mm()`): the window it held is over.
#[tracepoint(category = "signal", name = "signal_generate")]
pub fn signal_generate(_ctx: TracePointContext) -> u32 {
    let (tgid, _) = ids();
    // SAFETY: copied out.
    if let Some(t) = (unsafe { TASKS.get(tgid) }).copied()
        && t.flags & task::TEARDOWN != 0
    {
        release_window(tgid, &t);
    }
    0
}

/// `sched:sched_process_free`: the last word on a child that sent its parent
/// no signal (cloned with no exit signal): its window ends when it is freed.
#[tracepoint(category = "sched", name = "sched_process_free")]
pub fn sched_process_free(ctx: TracePointContext) -> u32 {
    let Some(pid) = read(&ctx, field!(free_pid)) else {
        return 0;
    };
    let pid = pid as u32;
    // SAFETY: copied out.
    if let Some(t) = (unsafe { TASKS.get(pid) }).copied()
        && t.flags & task::TEARDOWN != 0
    {
        release_window(pid, &t);
    }
    0
}

/// `signal:signal_deliver`: a followed process takes a signal whose default
/// action ends it, so its exit record can say which signal killed it.
#[tracepoint(category = "signal", name = "signal_deliver")]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    let (tgid, _) = ids();
    let Some(t) = TASKS.get_ptr_mut(tgid) else {
        return 0;
    };
    let sig = read(&ctx, field!(signal_sig)).unwrap_or(0) as u32;
    if read(&ctx, field!(signal_handler)) == Some(SIG_DFL) && kills_by_default(sig) {
        // SAFETY: t points at the live map value of this process.
        unsafe { (*t).signal = sig };
    }
    0
}

/// `sched:sched_process_exec`: a followed process runs a new program; userspace
/// renames it.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let (tgid, _) = ids();
    if TASKS.get_ptr(tgid).is_some() {
        emit(Exec { tgid, ts: now() }.event());
    }
    0
}
