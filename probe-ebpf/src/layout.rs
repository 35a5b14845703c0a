//! Where the tracepoint fields the programs read sit in their records.

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
    /// `sched:sched_process_free` `pid`.
    pub free_pid: Field,
    /// `signal:signal_deliver` `sig`.
    pub signal_sig: Field,
    /// `signal:signal_deliver` `sa_handler`.
    pub signal_handler: Field,
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
        free_pid: Field::ABSENT,
        signal_sig: Field::ABSENT,
        signal_handler: Field::ABSENT,
        gfp_zero: 0,
    };
}
