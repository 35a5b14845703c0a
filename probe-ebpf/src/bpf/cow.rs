//! Copy-on-write: write faults on present pages, and which of them really copied.
//!
//! `exceptions:page_fault_user` sees every write fault on a present page, copy or
//! reuse alike (and `exceptions:page_fault_kernel` the kernel's own writes to
//! user memory, such as a `read(2)` into a buffer). A copy (`wp_page_copy`) allocates a movable order-0 page and
//! then flushes the old entry from the TLB (`ptep_clear_flush`) in the faulting
//! thread; a reuse does neither. How that flush shows depends on where the
//! target's threads run: with the mm live on this CPU only, `tlb:tlb_flush`
//! reason `TLB_LOCAL_MM_SHOOTDOWN`; with it live on other CPUs too, first
//! reason `TLB_REMOTE_SEND_IPI` (the IPIs to them), then possibly a local one
//! (one page, a full flush if other threads' flushes raced, or none at all if
//! one of theirs already covered it). So the first flush of either reason
//! after the allocation completes the copy.
//!
//! The fault is remembered per thread until both follow, or until
//! `COPY_WINDOW_NS` passes, or until the thread takes another fault (a fault
//! ends before the same thread can take the next one) or enters one of the
//! syscalls cowscope traces. Only a movable order-0 allocation counts: page
//! tables and other kernel allocations are unmovable.
//!
//! A write to a page that was only read so far replaces the shared zero page
//! the same way, but with a zeroed allocation (`__GFP_ZERO`): that is a
//! zero-page fill, not a copy, and it happens with or without a fork.

use super::state::{PENDING, TASKS, add, count, field, forget_fault, ids, now, page, read};
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use probe_ebpf::{
    COPY_WINDOW_NS, MIGRATE_MOVABLE, PageKey, Pending, TLB_LOCAL_MM_SHOOTDOWN, TLB_REMOTE_SEND_IPI, counter, fault,
    state::{ALLOC_COPY, ALLOC_NONE, ALLOC_ZEROED},
    task,
};

/// `exceptions:page_fault_user`: counts write faults on present pages of followed processes.
#[tracepoint(category = "exceptions", name = "page_fault_user")]
pub fn page_fault_user(ctx: TracePointContext) -> u32 {
    write_fault(&ctx, fault::USER);
    0
}

/// `exceptions:page_fault_kernel`: the same for writes the kernel makes to a
/// process's memory on its behalf (`read(2)` into a buffer shared with a
/// snapshot child copies the page just the same).
#[tracepoint(category = "exceptions", name = "page_fault_kernel")]
pub fn page_fault_kernel(ctx: TracePointContext) -> u32 {
    write_fault(&ctx, 0);
    0
}

/// Highest user-space address (x86-64, 4-level or 5-level paging alike).
const USER_END: u64 = 1 << 56;

/// A fault of a followed thread: a write to a present page of user memory is
/// counted and remembered until its copy shows; any other fault ends the
/// thread's previous one. `mode` is the `USER` bit the fault must carry.
#[inline(always)]
fn write_fault(ctx: &TracePointContext, mode: u64) {
    let (tgid, tid) = ids();
    // SAFETY: read-only copy of a small value; a concurrent update only skews one fault.
    let Some(t) = (unsafe { TASKS.get(tgid) }).copied() else {
        return;
    };
    let (Some(code), Some(address)) = (read(ctx, field!(fault_error_code)), read(ctx, field!(fault_address))) else {
        return;
    };
    let wanted = fault::PROT | fault::WRITE;
    if code & (wanted | fault::USER | fault::INSTR) != wanted | mode || address >= USER_END {
        forget_fault(tid);
        return;
    }
    let child = t.flags & task::CHILD != 0;
    let in_window = t.live_children > 0;
    let (key, faults, copies) = if child {
        (PageKey::new(t.parent, t.window, address, true), counter::CHILD_FAULTS, counter::CHILD_COPIES)
    } else if in_window {
        (PageKey::new(tgid, t.epoch, address, false), counter::PARENT_FAULTS_WINDOW, counter::PARENT_COPIES_WINDOW)
    } else {
        (PageKey::new(tgid, 0, address, false), counter::PARENT_FAULTS_OUTSIDE, counter::PARENT_COPIES_OUTSIDE)
    };
    count(faults);
    if let Some(p) = page(&key) {
        // SAFETY: p points at the live map value for key.
        add(unsafe { &raw mut (*p).faults }, 1);
    }
    let pending = Pending { key, ts: now(), copy_counter: copies, allocated: ALLOC_NONE, tgid, _pad: 0 };
    let _ = PENDING.insert(tid, pending, 0);
}

/// `kmem:mm_page_alloc`: an order-0 allocation right after a pending write
/// fault; a zeroed one means a zero-page fill.
#[tracepoint(category = "kmem", name = "mm_page_alloc")]
pub fn mm_page_alloc(ctx: TracePointContext) -> u32 {
    let (_, tid) = ids();
    let Some(p) = PENDING.get_ptr_mut(tid) else {
        return 0;
    };
    if read(&ctx, field!(alloc_order)) != Some(0) || read(&ctx, field!(alloc_migratetype)) != Some(MIGRATE_MOVABLE) {
        return 0;
    }
    let zero = field!(gfp_zero) as u64;
    let zeroed = zero != 0 && read(&ctx, field!(alloc_gfp_flags)).is_some_and(|gfp| gfp & zero != 0);
    // SAFETY: p points at this thread's live entry; only this thread writes it.
    unsafe {
        if now().wrapping_sub((*p).ts) > COPY_WINDOW_NS {
            let _ = PENDING.remove(tid);
        } else {
            (*p).allocated = if zeroed { ALLOC_ZEROED } else { ALLOC_COPY };
        }
    }
    0
}

/// `tlb:tlb_flush`: the flush that completes a copy or a zero-page fill.
#[tracepoint(category = "tlb", name = "tlb_flush")]
pub fn tlb_flush(ctx: TracePointContext) -> u32 {
    let (_, tid) = ids();
    // SAFETY: this thread's own entry, copied out.
    let Some(p) = (unsafe { PENDING.get(tid) }).copied() else {
        return 0;
    };
    let reason = read(&ctx, field!(tlb_reason));
    if p.allocated == ALLOC_NONE || !matches!(reason, Some(TLB_LOCAL_MM_SHOOTDOWN | TLB_REMOTE_SEND_IPI)) {
        return 0;
    }
    let _ = PENDING.remove(tid);
    if now().wrapping_sub(p.ts) > COPY_WINDOW_NS {
        return 0;
    }
    let task = TASKS.get_ptr_mut(p.tgid);
    if p.allocated == ALLOC_ZEROED {
        count(match p.copy_counter {
            counter::PARENT_COPIES_WINDOW => counter::PARENT_ZERO_WINDOW,
            counter::PARENT_COPIES_OUTSIDE => counter::PARENT_ZERO_OUTSIDE,
            _ => counter::CHILD_ZERO,
        });
        if let Some(t) = task {
            // SAFETY: t points at the live map value of the faulting process.
            add(unsafe { &raw mut (*t).zero_fills }, 1);
        }
        if let Some(s) = page(&p.key) {
            // SAFETY: s points at the live map value for the key.
            add(unsafe { &raw mut (*s).zero_fills }, 1);
        }
        return 0;
    }
    count(p.copy_counter);
    if let Some(t) = task {
        // SAFETY: t points at the live map value of the faulting process.
        add(unsafe { &raw mut (*t).copies }, 1);
    }
    if let Some(s) = page(&p.key) {
        // SAFETY: s points at the live map value for the key.
        add(unsafe { &raw mut (*s).copies }, 1);
    }
    0
}
