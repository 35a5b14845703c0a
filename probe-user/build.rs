//! Builds the eBPF object from `probe-ebpf` with the pinned nightly and
//! bpf-linker (`cargo xtask setup` installs both), for `include_bytes_aligned!`.
//!
//! Without that toolchain (a fresh clone on stable, an editor's `cargo
//! check`), it writes an empty stub object instead and says so in a warning,
//! as aya's template does: the workspace checks, lints and builds, and the
//! `cowscope` binary refuses to run (see `loader::require_programs`). With
//! `COWSCOPE_REQUIRE_EBPF=1` (set by every cargo run of `cargo xtask`, so CI
//! and the tests) a missing toolchain is an error instead.
//!
//! The nested cargo uses its own target directory, so it never waits on the
//! outer build's lock.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// The nightly whose LLVM bpf-linker was built against.
const TOOLCHAIN: &str = "nightly-2026-05-19";
/// Name of the eBPF binary in `probe-ebpf`.
const EBPF_BIN: &str = "cowscope-ebpf";
/// Set to 1, a missing eBPF toolchain fails the build instead of stubbing.
const REQUIRE: &str = "COWSCOPE_REQUIRE_EBPF";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let ebpf = manifest.join("../probe-ebpf");
    for watched in ["src", "Cargo.toml"] {
        println!("cargo::rerun-if-changed={}", ebpf.join(watched).display());
    }
    if let Some(missing) = missing_toolchain() {
        if env::var_os(REQUIRE).is_some_and(|v| v == "1") {
            fail(&format!("{REQUIRE}=1 and the eBPF toolchain is missing: {missing}"));
        }
        println!(
            "cargo::warning=building cowscope WITHOUT its eBPF programs ({missing}); \
             it will refuse to run. Run `cargo xtask setup`, then build again."
        );
        std::fs::write(out.join(EBPF_BIN), []).expect("write the stub object into OUT_DIR");
        // A path that never exists makes cargo run this script on every
        // build, so the real object replaces the stub as soon as the
        // toolchain is installed (a cheap check while stubbing).
        println!("cargo::rerun-if-changed={}", out.join("rerun-until-the-ebpf-toolchain-exists").display());
        return;
    }
    build(&ebpf, &out);
}

/// Why the real object cannot be built here, if it cannot: no rustup, no
/// pinned nightly (checked without letting rustup install it), no rust-src
/// in it, or no bpf-linker on PATH.
fn missing_toolchain() -> Option<String> {
    let listed = match Command::new("rustup").args(["toolchain", "list"]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => return Some("rustup is not on PATH".into()),
    };
    if !listed.lines().any(|l| l.starts_with(TOOLCHAIN)) {
        return Some(format!("Rust {TOOLCHAIN} is not installed"));
    }
    let sysroot = Command::new("rustup")
        .args(["run", TOOLCHAIN, "rustc", "--print", "sysroot"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match sysroot {
        Some(root) if root.join("lib/rustlib/src/rust/library/core").is_dir() => {}
        Some(_) => return Some(format!("Rust {TOOLCHAIN} lacks the rust-src component")),
        None => return Some(format!("Rust {TOOLCHAIN} does not run")),
    }
    if !Command::new("bpf-linker").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some("bpf-linker is not on PATH".into());
    }
    None
}

/// Builds the eBPF object with the toolchain present; any failure now is a
/// real one (a compile error in `probe-ebpf`) and stops the build.
fn build(ebpf: &Path, out: &Path) {
    let target_dir = out.join("ebpf-target");
    let mut cargo = Command::new("rustup");
    cargo
        .args(["run", TOOLCHAIN, "cargo", "build", "--release", "-Z", "build-std=core"])
        .args(["--target", "bpfel-unknown-none", "--package", "probe-ebpf"])
        .args(["--bin", EBPF_BIN, "--target-dir"])
        .arg(&target_dir)
        .current_dir(ebpf);
    // The outer build's compiler, wrappers and flags are not for this one.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
    ] {
        cargo.env_remove(var);
    }
    // BTF lets the verifier name types in its messages.
    cargo.env("CARGO_ENCODED_RUSTFLAGS", "-Cdebuginfo=2\x1f-Clink-arg=--btf");
    let status = cargo.status();
    if !matches!(status, Ok(s) if s.success()) {
        fail(&format!("building the eBPF programs with {TOOLCHAIN} failed ({status:?})"));
    }
    let built = target_dir.join("bpfel-unknown-none/release").join(EBPF_BIN);
    std::fs::copy(&built, out.join(EBPF_BIN)).expect("copy the eBPF object into OUT_DIR");
}

/// Stops the build with `why` and what to do about it.
fn fail(why: &str) -> ! {
    eprintln!(
        "error: {why}. Run `cargo xtask setup` (installs rustup toolchain {TOOLCHAIN} \
         with rust-src, and bpf-linker)."
    );
    std::process::exit(1);
}
