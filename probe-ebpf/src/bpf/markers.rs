//! Uprobes on cowstore's marker functions, attached when the target exports them.

use super::state::{TASKS, emit, emit_lazy, ids, now};
use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use probe_ebpf::{marker, record::Marker};

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
