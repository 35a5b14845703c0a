//! `cargo xtask`: the project's task runner.
//!
//! Every task does its own set-up, so each README command works on a fresh machine.

mod bench;
mod bench_observer;
mod bench_persist;
mod bench_probe;
mod bench_soak;
mod bench_store;
mod demo;
mod recording;
mod servers;
mod setup;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project tasks for cowstore and cowscope.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what builds and tests need (idempotent, quick when done already).
    Setup,
    /// Set up, run the lint gates, then run every test in the workspace.
    Test,
    /// The lint gates alone: rustfmt, and clippy with warnings as errors.
    Lint,
    /// The demo: cowstore snapshots under write load while cowscope records it.
    Demo(demo::Args),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::Bench),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Test => {
            setup::run()?;
            lint()?;
            setup::cargo(&["test", "--workspace", "--release"])
        }
        Task::Lint => {
            setup::lint_tools()?;
            lint()
        }
        Task::Bench(bench) => bench.run(),
        Task::Demo(args) => demo::run(args),
    }
}

/// The gates every change passes before the tests run: rustfmt's layout, and
/// clippy with every warning (the workspace lints, `missing_docs` among them)
/// an error. `--release` shares the build-script output (the eBPF object)
/// with the release test build that follows.
fn lint() -> Result<()> {
    setup::cargo(&["fmt", "--all", "--check"])?;
    setup::cargo(&["clippy", "--workspace", "--all-targets", "--release", "--", "-D", "warnings"])
}
