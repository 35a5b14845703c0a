//! Types shared by cowscope's eBPF programs and its userspace loader.
//!
//! Every type is `#[repr(C)]` plain data: the programs write them into maps and
//! the ring buffer, the loader reads them back byte for byte. With the `user`
//! feature they implement `aya::Pod`.
#![no_std]

/// Where one tracepoint field sits in the record, as the running kernel's
/// `format` file declares it. A size of 0 means the kernel lacks the field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Field {
    /// Byte offset of the field from the start of the record.
    pub offset: u16,
    /// Size of the field in bytes: 1, 2, 4 or 8 (0: absent).
    pub size: u16,
}

/// The fields of every tracepoint the programs read, filled in by the loader
/// from `/sys/kernel/tracing/events/*/format` before the programs load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `exceptions:page_fault_user` `address`.
    pub fault_address: Field,
    /// `exceptions:page_fault_user` `error_code`.
    pub fault_error_code: Field,
    /// `kmem:mm_page_alloc` `order`.
    pub alloc_order: Field,
    /// `kmem:mm_page_alloc` `migratetype`.
    pub alloc_migratetype: Field,
    /// `kmem:mm_page_alloc` `gfp_flags`.
    pub alloc_gfp_flags: Field,
    /// `tlb:tlb_flush` `reason`.
    pub tlb_reason: Field,
    /// `tlb:tlb_flush` `pages`.
    pub tlb_pages: Field,
    /// `sched:sched_process_fork` `child_pid`.
    pub fork_child_pid: Field,
    /// `sched:sched_process_exit` `group_dead` (absent on older kernels).
    pub exit_group_dead: Field,
    /// `syscalls:sys_enter_exit_group` `error_code`.
    pub exit_group_code: Field,
    /// `syscalls:sys_enter_clone` `clone_flags`.
    pub clone_flags: Field,
    /// `syscalls:sys_enter_clone3` `uargs`.
    pub clone3_args: Field,
    /// `fd` of `sys_enter_fsync`, `sys_enter_fdatasync`, `sys_enter_sync_file_range`,
    /// `sys_enter_write` and `sys_enter_close` (the loader checks they agree).
    pub sys_fd: Field,
    /// `ret` of every `sys_exit_*` record the programs read (checked to agree).
    pub sys_ret: Field,
    /// The kernel's `__GFP_ZERO` bit, from `mm_page_alloc`'s print format (0: unknown).
    pub gfp_zero: u32,
}

impl Field {
    /// A field the running kernel does not have.
    pub const ABSENT: Field = Field { offset: 0, size: 0 };
}

impl Layout {
    /// A layout with every field absent, the value the object is compiled with.
    pub const ABSENT: Layout = Layout {
        fault_address: Field::ABSENT,
        fault_error_code: Field::ABSENT,
        alloc_order: Field::ABSENT,
        alloc_migratetype: Field::ABSENT,
        alloc_gfp_flags: Field::ABSENT,
        tlb_reason: Field::ABSENT,
        tlb_pages: Field::ABSENT,
        fork_child_pid: Field::ABSENT,
        exit_group_dead: Field::ABSENT,
        exit_group_code: Field::ABSENT,
        clone_flags: Field::ABSENT,
        clone3_args: Field::ABSENT,
        sys_fd: Field::ABSENT,
        sys_ret: Field::ABSENT,
        gfp_zero: 0,
    };
}

/// Bits of `exceptions:page_fault_user` `error_code` (x86 `X86_PF_*`).
pub mod fault {
    /// The page was present: a protection fault.
    pub const PROT: u64 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u64 = 1 << 1;
    /// The access came from user mode.
    pub const USER: u64 = 1 << 2;
    /// The access was an instruction fetch.
    pub const INSTR: u64 = 1 << 4;
}

/// `MIGRATE_MOVABLE`: the migrate type of user page allocations, such as a copy's.
pub const MIGRATE_MOVABLE: u64 = 1;
/// `tlb:tlb_flush` reason `TLB_LOCAL_MM_SHOOTDOWN`, the flush that follows a copy.
pub const TLB_LOCAL_MM_SHOOTDOWN: u64 = 3;
/// `clone` flag: the child shares the parent's memory (no copy-on-write).
pub const CLONE_VM: u64 = 0x100;
/// `clone` flag: the child is a thread of the parent.
pub const CLONE_THREAD: u64 = 0x10000;
/// How long after a write fault an allocation and a TLB flush in the same
/// task still count as that fault's copy (or zero-page fill).
pub const COPY_WINDOW_NS: u64 = 2_000_000;

/// A process the programs follow: the target and every process it forks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Task {
    /// Tracked parent's tgid, or 0 for the target itself.
    pub parent: u32,
    /// Forked children (not threads, not `CLONE_VM`) still alive: >0 opens a snapshot window.
    pub live_children: u32,
    /// Number of snapshot children forked so far; tags the pages of the current window.
    pub epoch: u32,
    /// Status passed to `exit_group`, valid once `flags` has [`task::EXITED`].
    pub exit_code: u32,
    /// [`task`] bits.
    pub flags: u32,
    /// Pages this process has copied (in any window or none) since it was followed.
    pub copies: u32,
}

/// Bits of [`Task::flags`].
pub mod task {
    /// The process was forked while recording.
    pub const CHILD: u32 = 1;
    /// The process called `exit_group`; `exit_code` holds its status.
    pub const EXITED: u32 = 2;
    /// The child shares no memory with its parent: it holds the parent's snapshot window open.
    pub const WINDOW: u32 = 4;
}

/// Per-page key of the copy-on-write map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// Process that faulted.
    pub tgid: u32,
    /// Snapshot window the fault fell in (the parent's [`Task::epoch`]), 0 outside any window.
    pub epoch: u32,
    /// Page address (4 KiB aligned).
    pub page: u64,
}

/// What happened to one page, per [`PageKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PageStat {
    /// Write faults on the present page.
    pub faults: u32,
    /// Of those, faults where the kernel really copied the page.
    pub copies: u32,
    /// Of those, faults on the shared zero page (mapped by an earlier read):
    /// the kernel gave a fresh zeroed page, which happens with or without a fork.
    pub zero_fills: u32,
}

/// Indices of the per-CPU counter array `COUNTERS`.
pub mod counter {
    /// Write faults on present pages by the target, outside any snapshot window.
    pub const PARENT_FAULTS_OUTSIDE: u32 = 0;
    /// Write faults by the target while a forked child lives.
    pub const PARENT_FAULTS_WINDOW: u32 = 1;
    /// Write faults by forked children.
    pub const CHILD_FAULTS: u32 = 2;
    /// Copies by the target outside any window.
    pub const PARENT_COPIES_OUTSIDE: u32 = 3;
    /// Copies by the target while a forked child lives.
    pub const PARENT_COPIES_WINDOW: u32 = 4;
    /// Copies by forked children.
    pub const CHILD_COPIES: u32 = 5;
    /// Threads created by tracked processes.
    pub const THREADS: u32 = 6;
    /// Records lost because the ring buffer was full.
    pub const DROP_RING: u32 = 7;
    /// Pages not counted per page because the page map was full.
    pub const DROP_PAGES: u32 = 8;
    /// Children not followed because the task map was full.
    pub const DROP_TASKS: u32 = 9;
    /// Syscalls not timed because the in-flight map was full.
    pub const DROP_INFLIGHT: u32 = 10;
    /// Zero-page fills by the target outside any window.
    pub const PARENT_ZERO_OUTSIDE: u32 = 11;
    /// Zero-page fills by the target while a forked child lives.
    pub const PARENT_ZERO_WINDOW: u32 = 12;
    /// Zero-page fills by forked children.
    pub const CHILD_ZERO: u32 = 13;
    /// Number of counters.
    pub const COUNT: u32 = 14;
}

/// Kinds of [`Event`] records sent through the ring buffer.
pub mod event {
    /// A tracked process forked: `aux` child pid, `ts` syscall entry, `dur` latency,
    /// `a` clone flags, `b` window epoch (low 32 bits) and the parent's
    /// [`super::Task::copies`] at the fork (high 32 bits), `c` time the child appeared.
    pub const FORK: u32 = 1;
    /// A tracked process exited: `aux` parent tgid (0 for the target), `a` exit code
    /// or `u64::MAX` if it never called `exit_group`.
    pub const EXIT: u32 = 2;
    /// A sync call returned: `aux` fd, `a` [`super::sync`] kind, `ts` entry, `dur` latency,
    /// `b` return value.
    pub const SYNC: u32 = 3;
    /// A `write` to a file the process has synced returned: `aux` fd, `ts` entry,
    /// `dur` latency, `a` return value, `b` 1 if a sync of that file was running at entry.
    pub const WRITE: u32 = 4;
    /// A cowstore marker fired: `aux` [`super::marker`] kind, `a` and `b` its arguments.
    pub const MARKER: u32 = 5;
    /// A child holding a window open called `exit_group`: `aux` parent tgid,
    /// `a` the parent's [`super::Task::copies`] at that moment.
    pub const EXITING: u32 = 6;
    /// A process closed a file it had synced: `aux` fd.
    pub const CLOSE: u32 = 7;
    /// A process started its first sync of a descriptor: `aux` fd. Sent at
    /// entry so userspace can name the file while the call still holds it open.
    pub const FIRST_SYNC: u32 = 8;
}

/// Sync syscalls told apart in [`event::SYNC`].
pub mod sync {
    /// `fsync(2)`.
    pub const FSYNC: u64 = 0;
    /// `fdatasync(2)`.
    pub const FDATASYNC: u64 = 1;
    /// `sync_file_range(2)`.
    pub const SYNC_FILE_RANGE: u64 = 2;
}

/// cowstore's marker functions, told apart in [`event::MARKER`].
pub mod marker {
    /// `cowstore_marker_writes_acked(aof_offset, count)`: `count` writes
    /// acknowledged at once, the last ending at `aof_offset`.
    pub const WRITES_ACKED: u32 = 0;
    /// `cowstore_marker_fsync_done(aof_offset)`.
    pub const FSYNC_DONE: u32 = 1;
    /// `cowstore_marker_fork(child_pid)`.
    pub const FORK: u32 = 2;
    /// `cowstore_marker_snapshot_end(child_pid, ok)`.
    pub const SNAPSHOT_END: u32 = 3;
    /// Symbol names, indexed by kind.
    pub const SYMBOLS: [&str; 4] = [
        "cowstore_marker_writes_acked",
        "cowstore_marker_fsync_done",
        "cowstore_marker_fork",
        "cowstore_marker_snapshot_end",
    ];
}

/// One record in the ring buffer; the meaning of the generic fields depends on `kind`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Event {
    /// One of the [`event`] kinds.
    pub kind: u32,
    /// Process the record is about.
    pub tgid: u32,
    /// Thread that ran the call.
    pub tid: u32,
    /// Kind-specific small value (fd, child pid, marker kind).
    pub aux: u32,
    /// Time of the event or of the call's entry, `CLOCK_MONOTONIC` ns.
    pub ts: u64,
    /// Duration of the call in ns, 0 when not a call.
    pub dur: u64,
    /// Kind-specific value.
    pub a: u64,
    /// Kind-specific value.
    pub b: u64,
    /// Kind-specific value.
    pub c: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] integers only, with no padding bytes
    // that the kernel or the programs leave uninitialised.
    unsafe impl aya::Pod for super::Layout {}
    unsafe impl aya::Pod for super::Task {}
    unsafe impl aya::Pod for super::PageKey {}
    unsafe impl aya::Pod for super::PageStat {}
    unsafe impl aya::Pod for super::Event {}
}
