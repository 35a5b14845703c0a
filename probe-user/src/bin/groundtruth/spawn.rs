//! `spawn`: children that share the parent's memory (no snapshot window).

use serde_json::{Value, json};
use std::ffi::CStr;

const TRUE: &CStr = c"/bin/true";

/// `posix_spawn` of `/bin/true`, then `vfork` + `execve` of it; each must
/// exit 0. Reports both pids (`child`, in that order).
pub fn run() -> Value {
    let before = crate::truth::copies();
    let argv: [*const libc::c_char; 2] = [TRUE.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let mut spawned = 0;
    // SAFETY: valid C strings and null-terminated arrays; default attributes.
    let rc = unsafe {
        libc::posix_spawn(
            &mut spawned,
            TRUE.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr().cast(),
            envp.as_ptr().cast(),
        )
    };
    if rc != 0 {
        crate::fail(&format!("posix_spawn /bin/true: {}", std::io::Error::from_raw_os_error(rc)));
    }
    crate::child::reap(spawned, "posix_spawn child");
    let vforked = vfork_exec(&argv, &envp);
    if vforked < 0 {
        crate::fail(&format!("vfork: {}", std::io::Error::from_raw_os_error(-vforked)));
    }
    crate::child::reap(vforked, "vfork child");
    let after = crate::truth::copies();
    json!({
        "child": [spawned, vforked],
        "posix_spawn": spawned,
        "vfork": vforked,
        "wpcopy_before": before.count,
        "wpcopy_after": after.count,
    })
}

/// `vfork()` then, in the child, `execve(/bin/true)` or `exit_group(127)`:
/// the three raw system calls in one `asm!` block, so the child (which
/// borrows the parent's stack until it execs) never runs compiled Rust and
/// never touches the stack. Returns the child's pid or -errno.
#[cfg(target_arch = "x86_64")]
fn vfork_exec(argv: &[*const libc::c_char; 2], envp: &[*const libc::c_char; 1]) -> libc::pid_t {
    let ret: i64;
    // SAFETY: the pointers are valid, null-terminated C arrays for the
    // whole call (the parent is suspended until the child execs or exits);
    // the child leaves only by execve or exit_group.
    unsafe {
        std::arch::asm!(
            "syscall",        // vfork()
            "test rax, rax",
            "jnz 2f",
            "mov eax, {execve}",
            "syscall",        // execve(rdi, rsi, rdx): only returns on failure
            "mov edi, 127",
            "mov eax, {exit}",
            "syscall",        // exit_group(127)
            "2:",
            execve = const libc::SYS_execve,
            exit = const libc::SYS_exit_group,
            inlateout("rax") libc::SYS_vfork => ret,
            inout("rdi") TRUE.as_ptr() => _,
            in("rsi") argv.as_ptr(),
            in("rdx") envp.as_ptr(),
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    ret as libc::pid_t
}
