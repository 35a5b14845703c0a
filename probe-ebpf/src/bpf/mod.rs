//! The programs, grouped by what they observe, and the state they share.

mod cow;
mod lifecycle;
mod markers;
mod state;
mod sync;

/// The kernel only lets GPL-compatible programs call `bpf_probe_read_*`.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the programs contain no panicking paths, and the verifier
    // would reject one that looped.
    loop {}
}
