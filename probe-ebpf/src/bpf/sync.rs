//! Sync calls (`fsync`, `fdatasync`, `sync_file_range`) of followed processes,
//! and the `write` calls to the files they sync, which can stall behind a sync.

use super::state::{
    CALL_SYNC, CALL_WRITE, FdKey, Inflight, SYNCED, TASKS, add, emit, emit_lazy, enter, field, forget_fault, ids,
    leave, now, read,
};
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use probe_ebpf::{
    record::{FdEvent, SyncCall, WriteCall},
    sync,
};

fn start_sync(ctx: &TracePointContext, kind: u64) {
    let (tgid, tid) = ids();
    if TASKS.get_ptr(tgid).is_none() {
        return;
    }
    forget_fault(tid);
    let Some(fd) = read(ctx, field!(sys_fd)) else {
        return;
    };
    let key = FdKey { tgid, fd: fd as u32 };
    if SYNCED.get_ptr(key).is_none() {
        let _ = SYNCED.insert(key, 0, 0);
        emit(FdEvent { tgid, tid, fd: fd as u32, ts: now() }.first_sync());
    }
    if let Some(running) = SYNCED.get_ptr_mut(key) {
        add(running, 1);
    }
    let call = Inflight {
        ts: now(),
        arg: 0,
        child_ts: 0,
        call: CALL_SYNC + kind as u32,
        fd_or_epoch: fd as u32,
        copies: 0,
        _pad: 0,
    };
    enter(tid, call);
}

fn finish_sync(ctx: &TracePointContext, kind: u64) {
    let (tgid, tid) = ids();
    let Some(call) = leave(tid, CALL_SYNC + kind as u32) else {
        return;
    };
    let key = FdKey { tgid, fd: call.fd_or_epoch };
    if let Some(running) = SYNCED.get_ptr_mut(key) {
        // SAFETY: running points at the live map value.
        if unsafe { *running } > 0 {
            add(running, u32::MAX);
        }
    }
    let sync = SyncCall {
        tgid,
        tid,
        fd: call.fd_or_epoch,
        kind,
        entry_ns: call.ts,
        latency_ns: now().wrapping_sub(call.ts),
        ret: read(ctx, field!(sys_ret)).unwrap_or(0) as i64,
    };
    // No wake-up: a BGSAVE child's sync_file_range calls would wake cowscope
    // right after the fork, on the parent's CPU (userspace drains every 100 ms).
    emit_lazy(sync.event());
}

/// `syscalls:sys_enter_fsync`.
#[tracepoint(category = "syscalls", name = "sys_enter_fsync")]
pub fn sys_enter_fsync(ctx: TracePointContext) -> u32 {
    start_sync(&ctx, sync::FSYNC);
    0
}

/// `syscalls:sys_exit_fsync`.
#[tracepoint(category = "syscalls", name = "sys_exit_fsync")]
pub fn sys_exit_fsync(ctx: TracePointContext) -> u32 {
    finish_sync(&ctx, sync::FSYNC);
    0
}

/// `syscalls:sys_enter_fdatasync`.
#[tracepoint(category = "syscalls", name = "sys_enter_fdatasync")]
pub fn sys_enter_fdatasync(ctx: TracePointContext) -> u32 {
    start_sync(&ctx, sync::FDATASYNC);
    0
}

/// `syscalls:sys_exit_fdatasync`.
#[tracepoint(category = "syscalls", name = "sys_exit_fdatasync")]
pub fn sys_exit_fdatasync(ctx: TracePointContext) -> u32 {
    finish_sync(&ctx, sync::FDATASYNC);
    0
}

/// `syscalls:sys_enter_sync_file_range`.
#[tracepoint(category = "syscalls", name = "sys_enter_sync_file_range")]
pub fn sys_enter_sync_file_range(ctx: TracePointContext) -> u32 {
    start_sync(&ctx, sync::SYNC_FILE_RANGE);
    0
}

/// `syscalls:sys_exit_sync_file_range`.
#[tracepoint(category = "syscalls", name = "sys_exit_sync_file_range")]
pub fn sys_exit_sync_file_range(ctx: TracePointContext) -> u32 {
    finish_sync(&ctx, sync::SYNC_FILE_RANGE);
    0
}

/// `syscalls:sys_enter_write`: times writes to files the process has synced.
/// Only followed processes have entries in `SYNCED`, so one lookup filters.
#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    forget_fault(tid);
    let Some(fd) = read(&ctx, field!(sys_fd)) else {
        return 0;
    };
    let key = FdKey { tgid, fd: fd as u32 };
    // SAFETY: copied out; a concurrent change only affects this write's label.
    let Some(running) = (unsafe { SYNCED.get(key) }).copied() else {
        return 0;
    };
    let call = Inflight {
        ts: now(),
        arg: (running > 0) as u64,
        child_ts: 0,
        call: CALL_WRITE,
        fd_or_epoch: fd as u32,
        copies: 0,
        _pad: 0,
    };
    enter(tid, call);
    0
}

/// `syscalls:sys_enter_close`: a closed descriptor no longer names the synced file.
#[tracepoint(category = "syscalls", name = "sys_enter_close")]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    forget_fault(tid);
    let Some(fd) = read(&ctx, field!(sys_fd)) else {
        return 0;
    };
    let key = FdKey { tgid, fd: fd as u32 };
    if SYNCED.get_ptr(key).is_none() || SYNCED.remove(key).is_err() {
        return 0;
    }
    emit(FdEvent { tgid, tid, fd: fd as u32, ts: now() }.close());
    0
}

/// `syscalls:sys_exit_write`.
#[tracepoint(category = "syscalls", name = "sys_exit_write")]
pub fn sys_exit_write(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    let Some(call) = leave(tid, CALL_WRITE) else {
        return 0;
    };
    let write = WriteCall {
        tgid,
        tid,
        fd: call.fd_or_epoch,
        entry_ns: call.ts,
        latency_ns: now().wrapping_sub(call.ts),
        ret: read(&ctx, field!(sys_ret)).unwrap_or(0) as i64,
        behind_sync: call.arg != 0,
    };
    emit_lazy(write.event());
    0
}
