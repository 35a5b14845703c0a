//! USDT-style markers: named, never-inlined `extern "C"` functions called at
//! the moments a profiler wants to see, so a uprobe on the symbol observes
//! them with their arguments in registers and nothing to parse.
//!
//! cowscope attaches to these by name (see docs/cowscope.md). Each body
//! passes a distinct constant through `black_box`, so the calls cannot be
//! optimised away and the linker cannot fold two markers into one address
//! (a uprobe on one would then fire for all). [`KEEP`] stops fat LTO from
//! dropping the symbols. Each body starts with [`probe_site`], a `nop`:
//! the kernel emulates a uprobe on a `nop`, whereas the first instruction
//! the compiler emits otherwise (a stack store) must be single-stepped out
//! of line, which costs about 15 µs per hit on a VM (1 µs with the `nop`).
//! The cost without a uprobe is one call.

use std::hint::black_box;

/// The instruction a uprobe on a marker lands on.
#[inline(always)]
fn probe_site() {
    // SAFETY: a `nop` has no effect; without `nomem` the compiler keeps it
    // ahead of the body's stores.
    unsafe { std::arch::asm!("nop", options(nostack, preserves_flags)) }
}

/// `count` writes were acknowledged to their clients at once (the replies
/// of one event-loop pass); the AOF bytes of the last of them end at
/// `aof_offset`. One call per pass, not per write: a uprobe hit costs the
/// server about a microsecond, as much as a pipelined SET itself. All the
/// writes of a pass reach the file in the same `write` before their replies,
/// so the same fsync covers them all.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_writes_acked(aof_offset: u64, count: u64) {
    probe_site();
    black_box((1u8, aof_offset, count));
}

/// An fsync completed; everything up to `aof_offset` is durable.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_fsync_done(aof_offset: u64) {
    probe_site();
    black_box((2u8, aof_offset));
}

/// The server forked a snapshot or rewrite child.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_fork(child_pid: u32) {
    probe_site();
    black_box((3u8, child_pid));
}

/// A snapshot or rewrite child was reaped; `ok` is 1 on success.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowstore_marker_snapshot_end(child_pid: u32, ok: u32) {
    probe_site();
    black_box((4u8, child_pid, ok));
}

/// Keeps every marker in the final executable.
#[used]
pub static KEEP: (extern "C" fn(u64, u64), extern "C" fn(u64), extern "C" fn(u32), extern "C" fn(u32, u32)) =
    (cowstore_marker_writes_acked, cowstore_marker_fsync_done, cowstore_marker_fork, cowstore_marker_snapshot_end);
