//! cowscope's eBPF programs, built for `bpfel-unknown-none` and embedded in the
//! `cowscope` binary. Built for any other target this is an empty stub, so the
//! workspace still builds and tests on stable Rust.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Atomic adds on map values: the BPF target has no `core::sync::atomic` RMW types.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod bpf;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
