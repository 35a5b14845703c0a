//! `cargo xtask bench ...`: the benchmarks (not tests: they print figures).

use anyhow::Result;
use clap::Subcommand;

/// Benchmarks.
#[derive(Subcommand)]
pub enum Bench {
    /// cowscope's overhead: server throughput with and without it attached,
    /// per-event cost of its programs, and bpftrace doing the same counting.
    Probe(crate::bench_probe::Args),
    /// cowstore against redis-server: SET/GET throughput and latency, and RSS.
    Store(crate::bench_store::Args),
    /// RDB snapshots against redis-server: BGSAVE time, dump size, fork time, CoW.
    Rdb(crate::bench_persist::Args),
    /// AOF against redis-server per fsync policy, and cowstore's durability exposure.
    Aof(crate::bench_persist::Args),
    /// cowscope's observer effect on the fork it measures (redis-server's
    /// latest_fork_usec with and without it, same and other CPU).
    Observer(crate::bench_observer::Args),
    /// A long recording of a target forking every 2 s: cowscope's memory and
    /// its kernel maps' over time.
    Soak(crate::bench_soak::Args),
}

impl Bench {
    /// Runs the chosen benchmark.
    pub fn run(self) -> Result<()> {
        match self {
            Bench::Probe(args) => crate::bench_probe::run(args),
            Bench::Store(args) => crate::bench_store::run(args),
            Bench::Rdb(args) => crate::bench_persist::run_rdb(args),
            Bench::Aof(args) => crate::bench_persist::run_aof(args),
            Bench::Observer(args) => crate::bench_observer::run(args),
            Bench::Soak(args) => crate::bench_soak::run(args),
        }
    }
}
