//! Builds the eBPF object from `probe-ebpf` with the pinned nightly and
//! bpf-linker (`cargo xtask setup` installs both), for `include_bytes_aligned!`.
//!
//! The nested cargo uses its own target directory, so it never waits on the
//! outer build's lock.

use std::{env, path::PathBuf, process::Command};

/// The nightly whose LLVM bpf-linker was built against.
const TOOLCHAIN: &str = "nightly-2026-05-19";
/// Name of the eBPF binary in `probe-ebpf`.
const EBPF_BIN: &str = "cowscope-ebpf";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let ebpf = manifest.join("../probe-ebpf");
    for watched in ["src", "Cargo.toml"] {
        println!("cargo::rerun-if-changed={}", ebpf.join(watched).display());
    }
    let target_dir = out.join("ebpf-target");
    let mut cargo = Command::new("rustup");
    cargo
        .args(["run", TOOLCHAIN, "cargo", "build", "--release", "-Z", "build-std=core"])
        .args(["--target", "bpfel-unknown-none", "--package", "probe-ebpf"])
        .args(["--bin", EBPF_BIN, "--target-dir"])
        .arg(&target_dir)
        .current_dir(&ebpf);
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
        eprintln!(
            "building the eBPF programs failed ({status:?}): run `cargo xtask setup` \
             (needs rustup toolchain {TOOLCHAIN} with rust-src, and bpf-linker)"
        );
        std::process::exit(1);
    }
    let built = target_dir.join("bpfel-unknown-none/release").join(EBPF_BIN);
    std::fs::copy(&built, out.join(EBPF_BIN)).expect("copy the eBPF object into OUT_DIR");
}
