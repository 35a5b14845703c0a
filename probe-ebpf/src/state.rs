//! What the maps hold: the processes the programs follow, the per-page
//! copy-on-write counts and the per-CPU counters.

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
    /// For a forked child: the parent's window (epoch) it holds open, 0 if it shares memory.
    pub window: u32,
    /// Status passed to `exit_group`, valid once `flags` has [`task::EXITED`].
    pub exit_code: u32,
    /// The signal whose default action is ending the process, 0 if none was delivered.
    pub signal: u32,
    /// [`task`] bits.
    pub flags: u32,
    /// Pages this process has copied (in any window or none) since it was followed.
    pub copies: u32,
    /// Zero-page fills by this process since it was followed (delay accounting
    /// counts them as copies: the self-check needs both).
    pub zero_fills: u32,
    /// Keeps the size a multiple of 8.
    pub _pad: u32,
}

/// Bits of [`Task::flags`].
pub mod task {
    /// The process was forked while recording (or found alive at attach).
    pub const CHILD: u32 = 1;
    /// The process called `exit_group`; `exit_code` holds its status.
    pub const EXITED: u32 = 2;
    /// The child shares no memory with its parent: it holds the parent's snapshot window open.
    pub const WINDOW: u32 = 4;
    /// The child was already alive when recording started: its window's start was not seen.
    pub const ATTACHED: u32 = 8;
    /// The child exited and is releasing its memory: its window is still open.
    pub const TEARDOWN: u32 = 16;
}

/// Per-page key of the copy-on-write map: whose window, which page, and
/// whether the parent or the child faulted. The child's faults are keyed by
/// the parent's tgid and window, so the key alone says where a page belongs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The process whose address space the page belongs to: the faulting
    /// process, or for a forked child, the parent that forked it.
    pub owner: u32,
    /// Snapshot window (the owner's epoch) the fault fell in, 0 outside any window.
    pub epoch: u32,
    /// Page address (4 KiB aligned) in the high bits, [`PageKey::CHILD`] in bit 0.
    page_and_role: u64,
}

impl PageKey {
    /// Role bit: a forked child faulted, not the owner itself.
    const CHILD: u64 = 1;

    /// The key of a fault at `addr` (any address within the page).
    #[inline(always)]
    pub const fn new(owner: u32, epoch: u32, addr: u64, child: bool) -> PageKey {
        PageKey { owner, epoch, page_and_role: (addr & !0xfff) | if child { Self::CHILD } else { 0 } }
    }

    /// The page's address.
    pub const fn page(&self) -> u64 {
        self.page_and_role & !0xfff
    }

    /// Whether a forked child (rather than the owner) faulted.
    pub const fn child(&self) -> bool {
        self.page_and_role & Self::CHILD != 0
    }
}

/// What happened to one page, per [`PageKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageStat {
    /// Write faults on the present page.
    pub faults: u32,
    /// Of those, faults where the kernel really copied the page.
    pub copies: u32,
    /// Of those, faults on the shared zero page (mapped by an earlier read):
    /// the kernel gave a fresh zeroed page, which happens with or without a fork.
    pub zero_fills: u32,
}

/// A write fault waiting for the allocation and TLB flush that mark a copy
/// (per thread): its page's fault is counted, its outcome not yet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending {
    /// The faulting page.
    pub key: PageKey,
    /// When the fault happened.
    pub ts: u64,
    /// Counter to bump if the fault turns out to be a copy.
    pub copy_counter: u32,
    /// What was allocated since the fault: [`ALLOC_NONE`], [`ALLOC_COPY`] or [`ALLOC_ZEROED`].
    pub allocated: u32,
    /// The faulting process (the key's owner is its parent when a child faulted).
    pub tgid: u32,
    /// Keeps the size a multiple of 8.
    pub _pad: u32,
}

/// [`Pending::allocated`]: nothing yet.
pub const ALLOC_NONE: u32 = 0;
/// [`Pending::allocated`]: a page to copy into.
pub const ALLOC_COPY: u32 = 1;
/// [`Pending::allocated`]: a zeroed page, replacing the shared zero page.
pub const ALLOC_ZEROED: u32 = 2;

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

#[cfg(test)]
mod tests {
    use super::PageKey;

    #[test]
    fn page_key_packs_page_and_role_side_by_side() {
        let k = PageKey::new(7, 3, 0x7f00_0000_1abc, true);
        assert_eq!((k.owner, k.epoch, k.page(), k.child()), (7, 3, 0x7f00_0000_1000, true));
        let k = PageKey::new(7, 0, 0x7f00_0000_1fff, false);
        assert_eq!((k.page(), k.child()), (0x7f00_0000_1000, false));
        assert_ne!(PageKey::new(1, 1, 0x1000, true), PageKey::new(1, 1, 0x1000, false));
    }
}
