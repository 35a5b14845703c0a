//! Types shared by cowscope's eBPF programs and its userspace loader.
//!
//! Every type is `#[repr(C)]` plain data: the programs write them into maps and
//! the ring buffer, the loader reads them back byte for byte. With the `user`
//! feature they implement `aya::Pod`.
//!
//! - [`layout`]: where the tracepoint fields sit (patched in by the loader).
//! - [`state`]: what the maps hold: followed processes, per-page counts, counters.
//! - [`record`]: the ring buffer's records, each kind with a typed constructor
//!   (used by the programs) and a typed reader (used by userspace), side by side.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod layout;
pub mod record;
pub mod state;

pub use layout::{Field, Layout};
pub use record::{Event, Record};
pub use state::{PageKey, PageStat, Pending, Task, counter, task};

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
/// `tlb:tlb_flush` reason `TLB_LOCAL_MM_SHOOTDOWN`: the faulting CPU flushed
/// its own TLB (the mm ran on no other CPU, or after the IPIs were sent).
pub const TLB_LOCAL_MM_SHOOTDOWN: u64 = 3;
/// `tlb:tlb_flush` reason `TLB_REMOTE_SEND_IPI`: the faulting CPU asked the
/// other CPUs running the mm to flush: how a copy's flush starts once the
/// target's threads run on several CPUs.
pub const TLB_REMOTE_SEND_IPI: u64 = 4;
/// `clone` flag: the child shares the parent's memory (no copy-on-write).
pub const CLONE_VM: u64 = 0x100;
/// `clone` flag: the child is a thread of the parent.
pub const CLONE_THREAD: u64 = 0x10000;
/// How long after a write fault an allocation and a TLB flush in the same
/// task still count as that fault's copy (or zero-page fill).
pub const COPY_WINDOW_NS: u64 = 2_000_000;
/// `SIG_DFL`: the handler value of a signal with its default action.
pub const SIG_DFL: u64 = 0;

/// Whether a signal's default action ends the process (everything but the
/// signals ignored or stopping by default).
pub const fn kills_by_default(sig: u32) -> bool {
    // SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH.
    !matches!(sig, 0 | 17..=23 | 28)
}

/// Sync syscalls told apart in [`record::SyncCall`].
pub mod sync {
    /// `fsync(2)`.
    pub const FSYNC: u64 = 0;
    /// `fdatasync(2)`.
    pub const FDATASYNC: u64 = 1;
    /// `sync_file_range(2)`.
    pub const SYNC_FILE_RANGE: u64 = 2;
}

/// cowstore's marker functions, told apart in [`record::Marker`].
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
    /// Symbol names, indexed by kind (also the names of their programs).
    pub const SYMBOLS: [&str; 4] = [
        "cowstore_marker_writes_acked",
        "cowstore_marker_fsync_done",
        "cowstore_marker_fork",
        "cowstore_marker_snapshot_end",
    ];
}

/// The uprobe pair on libc's `fork()`: program names and the symbol.
pub mod libc_fork {
    /// The entry program.
    pub const ENTRY: &str = "libc_fork";
    /// The return program.
    pub const RETURN: &str = "libc_fork_ret";
    /// The function in libc.
    pub const SYMBOL: &str = "fork";
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] integers only, with no padding bytes
    // that the kernel or the programs leave uninitialised.
    unsafe impl aya::Pod for super::Layout {}
    unsafe impl aya::Pod for super::Task {}
    unsafe impl aya::Pod for super::PageKey {}
    unsafe impl aya::Pod for super::PageStat {}
    unsafe impl aya::Pod for super::Pending {}
    unsafe impl aya::Pod for super::Event {}
}

#[cfg(test)]
mod tests {
    use super::kills_by_default;

    #[test]
    fn default_actions() {
        for sig in [1, 2, 6, 9, 11, 13, 15, 24, 25, 34] {
            assert!(kills_by_default(sig), "{sig}");
        }
        for sig in [0, 17, 18, 19, 20, 21, 22, 23, 28] {
            assert!(!kills_by_default(sig), "{sig}");
        }
    }
}
