//! Machine set-up: Debian packages the tests drive, and the toolchain pieces.

use anyhow::{Context, Result, bail};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Debian packages the tests use: real Redis tools for interop and load, and
/// bpftrace and bpftool for cowscope's overhead comparison.
/// Debian packages the tests and benchmarks need: (a program on PATH, or an
/// absolute path, that shows the package is there; the package).
const PACKAGES: &[(&str, &str)] = &[
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("bpftrace", "bpftrace"),
    ("bpftool", "bpftool"),
    ("fusermount3", "fuse3"),
    ("/usr/include/fuse3/fuse.h", "libfuse3-dev"),
    ("pkg-config", "pkg-config"),
    ("ss", "iproute2"),
    ("setpriv", "util-linux"),
];

/// The nightly that builds cowscope's eBPF programs (its LLVM is the one
/// bpf-linker links against).
pub const EBPF_TOOLCHAIN: &str = "nightly-2026-05-19";
/// bpf-linker release, and the LLVM feature matching the nightly's LLVM 22.
const BPF_LINKER: (&str, &str) = ("0.13.0", "llvm-22");
/// Where tracefs belongs.
const TRACEFS: &str = "/sys/kernel/tracing";

/// Installs what is missing; does nothing when everything is present.
pub fn run() -> Result<()> {
    packages()?;
    lint_tools()?;
    ebpf_toolchain()?;
    bpf_linker()?;
    tracefs()
}

/// Installs the Debian packages that are missing (the benchmarks need only these).
pub fn packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().filter(|(bin, _)| !on_path(bin)).map(|(_, pkg)| *pkg).collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        status(Command::new("apt-get").arg("update").arg("-q"))?;
        status(Command::new("apt-get").args(["install", "-y", "-q"]).args(&missing))?;
    }
    Ok(())
}

/// Runs cargo with the given arguments in the workspace. Builds started here
/// are for use (tests, demo, benchmarks), so cowscope must get its real eBPF
/// programs: `COWSCOPE_REQUIRE_EBPF=1` turns probe-user's stub fallback
/// (for `cargo check` without the toolchain) into a build error.
pub fn cargo(args: &[&str]) -> Result<()> {
    status(Command::new(env!("CARGO")).args(args).env("COWSCOPE_REQUIRE_EBPF", "1"))
}

/// rustfmt and clippy for the stable toolchain, which the lint gates run.
pub fn lint_tools() -> Result<()> {
    for (tool, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        if output(Command::new(env!("CARGO")).args([tool, "--version"])).is_err() {
            eprintln!("xtask: installing {component}");
            status(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

/// The pinned nightly with `rust-src` (for `-Z build-std=core`).
fn ebpf_toolchain() -> Result<()> {
    let installed =
        output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", EBPF_TOOLCHAIN]))
            .unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: installing Rust {EBPF_TOOLCHAIN} with rust-src");
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            EBPF_TOOLCHAIN,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    Ok(())
}

/// bpf-linker built against the nightly's own libLLVM. The library is reached
/// through symlinks in a stable directory that the binary's RUNPATH names.
fn bpf_linker() -> Result<()> {
    let sysroot = PathBuf::from(
        output(Command::new("rustc").arg(format!("+{EBPF_TOOLCHAIN}")).args(["--print", "sysroot"]))?.trim(),
    );
    let llvm = llvm_dir()?;
    let lib = llvm.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("create {}", lib.display()))?;
    let libllvm = std::fs::read_dir(sysroot.join("lib"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libLLVM.so.")))
        .with_context(|| format!("no libLLVM.so.* in {}/lib", sysroot.display()))?;
    let soname = libllvm.file_name().context("libLLVM name")?;
    for name in [Path::new("libLLVM.so"), Path::new(soname)] {
        let link = lib.join(name);
        if std::fs::read_link(&link).ok().as_deref() != Some(libllvm.as_path()) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&libllvm, &link).with_context(|| format!("symlink {}", link.display()))?;
        }
    }
    let usable = output(Command::new("bpf-linker").arg("--version")).is_ok_and(|v| v.contains(BPF_LINKER.0));
    if usable {
        return Ok(());
    }
    eprintln!("xtask: building bpf-linker {} against {EBPF_TOOLCHAIN}'s LLVM", BPF_LINKER.0);
    status(
        Command::new("cargo")
            .arg(format!("+{EBPF_TOOLCHAIN}"))
            .args(["install", "bpf-linker", "--force", "--version", BPF_LINKER.0])
            .args(["--no-default-features", "--features", BPF_LINKER.1])
            .env("LLVM_PREFIX", &llvm)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTUP_TOOLCHAIN"),
    )?;
    if output(Command::new("bpf-linker").arg("--version")).is_err() {
        bail!("bpf-linker was built but does not run (is ~/.cargo/bin on PATH?)");
    }
    Ok(())
}

/// `~/.cache/cowscope/llvm`, where bpf-linker finds the nightly's libLLVM.
fn llvm_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/cowscope/llvm"))
}

/// Mounts tracefs, which cowscope reads tracepoint layouts from.
fn tracefs() -> Result<()> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    eprintln!("xtask: mounting tracefs at {TRACEFS}");
    status(Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]))
}

/// Whether `bin` is a program on PATH (or, if absolute, an existing file).
fn on_path(bin: &str) -> bool {
    if bin.starts_with('/') {
        return std::path::Path::new(bin).exists();
    }
    Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Runs a command and returns its stdout, failing if it fails.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("cannot start {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("cannot start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed: {st}");
    }
    Ok(())
}

/// The workspace root.
pub fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where cargo puts build outputs (`CARGO_TARGET_DIR` or `target/`).
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| workspace().join("target"))
}
