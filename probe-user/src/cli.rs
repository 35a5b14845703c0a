//! Command line, in the style of BCC's libbpf-tools.

use clap::{Args, Parser, Subcommand};
use std::{path::PathBuf, time::Duration};

/// Trace what fork-based snapshots and fsync policies cost a process: fork
/// latency, copy-on-write copies and reuses, THP behaviour, and sync latency.
#[derive(Parser, Debug)]
#[command(name = "cowscope", version)]
pub struct Cli {
    /// More diagnostics on stderr (-v: debug, -vv: trace, including the eBPF side's log).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to record.
    #[command(subcommand)]
    pub command: Command,
}

/// The two ways to pick a target.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Record a running process and every process it forks while recording
    /// (children alive at attach included: a snapshot already under way).
    Record {
        /// Process to record (a thread ID records its process).
        #[arg(short, long)]
        pid: u32,
        #[command(flatten)]
        options: Options,
    },
    /// Start a command, record it until it exits, and report. With `--json`
    /// (and no `-o`), the command's standard output goes to standard error.
    Run {
        /// Run the command as this user (default: the user who ran sudo,
        /// from SUDO_UID/SUDO_GID; `root` must be asked for explicitly).
        #[arg(long, value_name = "USER")]
        as_user: Option<String>,
        #[command(flatten)]
        options: Options,
        /// The command and its arguments.
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

/// A number of seconds greater than zero.
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(v).ok().filter(|d| !d.is_zero()).ok_or_else(|| format!("must be more than 0, got {s}"))
}

/// Options shared by `record` and `run`.
#[derive(Args, Debug, Clone)]
pub struct Options {
    /// Stop after this many seconds.
    #[arg(short, long, value_name = "SECS", value_parser = seconds)]
    pub duration: Option<Duration>,
    /// Print a report every this many seconds, each covering its own interval
    /// (as BCC tools do; see --cumulative).
    #[arg(short, long, value_name = "SECS", value_parser = seconds)]
    pub interval: Option<Duration>,
    /// Stop after this many interval reports (as BCC tools' `interval count`).
    #[arg(short, long, value_name = "N", requires = "interval", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Interval reports cover everything since recording started.
    #[arg(long, requires = "interval")]
    pub cumulative: bool,
    /// Print reports as JSON (one object per line) instead of text.
    #[arg(short, long)]
    pub json: bool,
    /// Write reports to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Distinct (process, window, page) entries the in-kernel page map can hold.
    #[arg(long, default_value_t = 1 << 22, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pages: u32,
    /// Size of the event ring buffer in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub ring_mib: u32,
    /// Do not attach uprobes to cowstore's markers (no exposure figure; each
    /// marker hit costs the target about a microsecond).
    #[arg(long)]
    pub no_markers: bool,
}
