//! Uprobes on cowstore's marker functions, attached when the target exports
//! them, and on libc's `fork()`, for the fork as its caller sees it.

use super::state::{FORK_CALLS, TASKS, emit, emit_lazy, ids, now};
use aya_ebpf::{
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use probe_ebpf::{
    marker,
    record::{ForkCall, Marker},
};

fn fire(ctx: &ProbeContext, kind: u32) -> u32 {
    let (tgid, tid) = ids();
    if TASKS.get_ptr(tgid).is_none() {
        return 0;
    }
    let e = Marker { tgid, tid, kind, ts: now(), a: ctx.arg::<u64>(0).unwrap_or(0), b: ctx.arg::<u64>(1).unwrap_or(0) }
        .event();
    if kind == marker::WRITES_ACKED {
        emit_lazy(e)
    } else {
        emit(e)
    }
    0
}

/// `cowstore_marker_writes_acked(aof_offset: u64, count: u64)`.
#[uprobe]
pub fn cowstore_marker_writes_acked(ctx: ProbeContext) -> u32 {
    fire(&ctx, marker::WRITES_ACKED)
}

/// `cowstore_marker_fsync_done(aof_offset: u64)`.
#[uprobe]
pub fn cowstore_marker_fsync_done(ctx: ProbeContext) -> u32 {
    fire(&ctx, marker::FSYNC_DONE)
}

/// `cowstore_marker_fork(child_pid: u32)`.
#[uprobe]
pub fn cowstore_marker_fork(ctx: ProbeContext) -> u32 {
    fire(&ctx, marker::FORK)
}

/// `cowstore_marker_snapshot_end(child_pid: u32, ok: u32)`.
#[uprobe]
pub fn cowstore_marker_snapshot_end(ctx: ProbeContext) -> u32 {
    fire(&ctx, marker::SNAPSHOT_END)
}

/// Entry of libc's `fork()` in a followed process.
#[uprobe]
pub fn libc_fork(_ctx: ProbeContext) -> u32 {
    let (tgid, tid) = ids();
    if TASKS.get_ptr(tgid).is_some() {
        let _ = FORK_CALLS.insert(tid, now(), 0);
    }
    0
}

/// Return of libc's `fork()`: in the parent (the child returns 0 from a
/// thread with no entry) it reports the call's latency.
#[uretprobe]
pub fn libc_fork_ret(ctx: RetProbeContext) -> u32 {
    let (tgid, tid) = ids();
    // SAFETY: this thread's own entry, copied out.
    let Some(entry_ns) = (unsafe { FORK_CALLS.get(tid) }).copied() else {
        return 0;
    };
    let _ = FORK_CALLS.remove(tid);
    let child: i64 = ctx.ret();
    if child > 0 {
        let call =
            ForkCall { parent: tgid, tid, child: child as u32, entry_ns, latency_ns: now().wrapping_sub(entry_ns) };
        emit_lazy(call.event());
    }
    0
}
