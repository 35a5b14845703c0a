//! Maps, the layout global and the small helpers every program uses.

use aya_ebpf::{
    bindings::{
        BPF_F_NO_PREALLOC, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    },
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use probe_ebpf::{Event, Field, Layout, PageKey, PageStat, Pending, Task, counter};

/// Tracepoint field layout, overridden by the loader before load.
#[unsafe(no_mangle)]
pub static LAYOUT: Layout = Layout::ABSENT;

/// Followed processes by tgid; the loader inserts the target.
#[map]
pub static TASKS: HashMap<u32, Task> = HashMap::with_max_entries(16384, 0);

/// Copy-on-write faults per page and window (sized by the loader).
#[map]
pub static PAGES: HashMap<PageKey, PageStat> = HashMap::with_max_entries(1 << 22, BPF_F_NO_PREALLOC);

/// The last write fault of each thread, until its copy shows or it expires.
#[map]
pub static PENDING: HashMap<u32, Pending> = HashMap::with_max_entries(16384, 0);

/// Calls to libc's `fork()` in flight per thread: entry time.
#[map]
pub static FORK_CALLS: HashMap<u32, u64> = HashMap::with_max_entries(1024, 0);

/// Syscalls in flight per thread, for their latency.
#[map]
pub static INFLIGHT: HashMap<u32, Inflight> = HashMap::with_max_entries(16384, 0);

/// Files each process has synced, with the number of syncs running on them.
#[map]
pub static SYNCED: HashMap<FdKey, u32> = HashMap::with_max_entries(4096, 0);

/// Per-CPU counters indexed by [`counter`].
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Individual records for userspace (sized by the loader).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// A syscall a thread has entered.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Inflight {
    /// Entry time.
    pub ts: u64,
    /// Clone flags (clone family) or whether a sync ran at entry (write).
    pub arg: u64,
    /// When the forked child appeared (clone family).
    pub child_ts: u64,
    /// Which syscall: one of the `CALL_*` values.
    pub call: u32,
    /// File descriptor (sync and write) or window epoch (clone family).
    pub fd_or_epoch: u32,
    /// The parent's copies when the child appeared (clone family).
    pub copies: u32,
    /// Keeps the size a multiple of 8.
    pub _pad: u32,
}

/// The clone family: `clone`, `clone3`, `fork`, `vfork`.
pub const CALL_CLONE: u32 = 1;
/// `write` to a synced file.
pub const CALL_WRITE: u32 = 2;
/// A sync call; the [`probe_ebpf::sync`] kind is added to it.
pub const CALL_SYNC: u32 = 16;

/// A file descriptor of a process.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FdKey {
    /// Process.
    pub tgid: u32,
    /// Descriptor.
    pub fd: u32,
}

/// Current process and thread ids.
#[inline(always)]
pub fn ids() -> (u32, u32) {
    let v = bpf_get_current_pid_tgid();
    ((v >> 32) as u32, v as u32)
}

/// Monotonic time in ns.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: the helper has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// One field of the loader's layout, read volatile so the compiler cannot fold
/// the placeholder the object is built with (and reads no more than it needs).
macro_rules! field {
    ($name:ident) => {
        // SAFETY: LAYOUT is a plain static the loader patches before load.
        unsafe { core::ptr::read_volatile(&raw const $crate::bpf::state::LAYOUT.$name) }
    };
}
pub(crate) use field;

/// Reads a field of a tracepoint record, zero-extended, by its declared size.
#[inline(always)]
pub fn read(ctx: &TracePointContext, f: Field) -> Option<u64> {
    let off = f.offset as usize;
    // SAFETY: read_at goes through bpf_probe_read_kernel, which checks the access.
    unsafe {
        match f.size {
            1 => ctx.read_at::<u8>(off).ok().map(u64::from),
            2 => ctx.read_at::<u16>(off).ok().map(u64::from),
            4 => ctx.read_at::<u32>(off).ok().map(u64::from),
            8 => ctx.read_at::<u64>(off).ok(),
            _ => None,
        }
    }
}

/// Adds one to a per-CPU counter.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += 1 };
    }
}

/// Adds `delta` (two's complement for a decrement) to a shared `u32`.
#[inline(always)]
pub fn add(p: *mut u32, delta: u32) {
    // SAFETY: p points into a map value, valid and aligned while the program runs.
    // The BPF target has no `AtomicU32`; the intrinsic lowers to BPF's atomic add.
    unsafe { atomic_xadd::<u32, u32, { AtomicOrdering::Relaxed }>(p, delta) };
}

/// The per-page entry of `key`, created on first use; `None` when the map is full.
#[inline(always)]
pub fn page(key: &PageKey) -> Option<*mut PageStat> {
    if let Some(p) = PAGES.get_ptr_mut(key) {
        return Some(p);
    }
    let _ = PAGES.insert(key, PageStat::default(), BPF_NOEXIST as u64);
    let p = PAGES.get_ptr_mut(key);
    if p.is_none() {
        count(counter::DROP_PAGES);
    }
    p
}

/// Sends a record to userspace and wakes it (even when lazy records wait
/// unread, which would suppress the default wake-up), counting the record if
/// the ring buffer is full.
#[inline(always)]
pub fn emit(event: Event) {
    send(event, BPF_RB_FORCE_WAKEUP as u64);
}

/// Sends a frequent record (a write, an acknowledged write) without waking
/// userspace, which drains the ring every 100 ms anyway: a wake-up per record
/// costs the target more than the record. Wakes it once the ring is an eighth full.
#[inline(always)]
pub fn emit_lazy(event: Event) {
    let filling = EVENTS.query(BPF_RB_AVAIL_DATA as u64) > EVENTS.query(BPF_RB_RING_SIZE as u64) / 8;
    send(event, if filling { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP } as u64);
}

#[inline(always)]
fn send(event: Event, flags: u64) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(flags);
        }
        None => count(counter::DROP_RING),
    }
}

/// Drops the current thread's pending write fault: a syscall it entered, or a
/// new fault it took, may allocate and flush on its own. Looks before
/// deleting, which is far cheaper when, as usual, there is nothing to delete.
#[inline(always)]
pub fn forget_fault(tid: u32) {
    if PENDING.get_ptr(tid).is_some() {
        let _ = PENDING.remove(tid);
    }
}

/// Starts timing a syscall of the current thread.
#[inline(always)]
pub fn enter(tid: u32, call: Inflight) {
    if INFLIGHT.insert(tid, call, 0).is_err() {
        count(counter::DROP_INFLIGHT);
    }
}

/// Ends timing the current thread's syscall if it is `call`; returns its entry record.
#[inline(always)]
pub fn leave(tid: u32, call: u32) -> Option<Inflight> {
    // SAFETY: the entry belongs to this thread, which is running this program.
    let entry = unsafe { INFLIGHT.get(tid) }.copied()?;
    if entry.call != call {
        return None;
    }
    let _ = INFLIGHT.remove(tid);
    Some(entry)
}
