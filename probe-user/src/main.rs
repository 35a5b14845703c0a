//! cowscope: an eBPF profiler of fork, copy-on-write and fsync.
//!
//! `cowscope record -p PID` or `cowscope run -- CMD...` loads tracepoint
//! programs (and uprobes on cowstore's markers when present), follows the
//! target and what it forks, and reports fork latency, snapshot windows,
//! copies versus reuses, THP behaviour, sync latency and write exposure.
//!
//! # Map: from the kernel to the report
//!
//! 1. **In the kernel** (`probe-ebpf`, built by build.rs and embedded):
//!    tracepoint programs on page faults, page allocation, TLB flushes,
//!    fork/exit and sync syscalls, and uprobes on cowstore's markers, keep
//!    per-page and per-task state in maps and send events on a ring buffer.
//! 2. [`loader`]: loads that object with the kernel's field offsets (read by
//!    [`tracefs`]), attaches every program, and hands out the maps.
//! 3. [`target`] picks the process (an existing PID, or a command held at a
//!    gate until the probes are attached); [`cli`] is the command line.
//! 4. [`session`]: the recording loop: drains the ring buffer, samples
//!    gauges, prints periodic reports, stops on duration, exit or Ctrl-C.
//! 5. [`recorder`] turns events and maps into figures through the
//!    aggregators: [`forks`] (fork latency, snapshot windows), [`cow`]
//!    (faults, copies and reuses per window and region), [`files`] (sync
//!    calls and the writes stalled behind them), [`exposure`] (cowstore's
//!    write-to-durable times); with [`procfs`] (maps, THP, vmstat) and
//!    [`histo`] (latency histograms).
//! 6. [`report`]: the one structure printed as text or JSON.

mod cli;
mod cow;
mod exposure;
mod files;
mod forks;
mod histo;
mod loader;
mod procfs;
mod recorder;
mod report;
mod session;
mod target;
mod tracefs;

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{Cli, Command, Options};
use std::{process::ExitCode, time::Duration};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new().filter_level(level).init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cowscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn seconds(s: Option<f64>, what: &str) -> Result<Option<Duration>> {
    s.map(|v| Duration::try_from_secs_f64(v).with_context(|| format!("bad {what}: {v}"))).transpose()
}

fn run(cli: Cli) -> Result<()> {
    loader::require_programs()?;
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root to load eBPF programs (CAP_BPF, CAP_PERFMON): run it with sudo");
    }
    let (options, mut spawned, pid) = match &cli.command {
        Command::Record { pid, options } => (options, None, target::existing(*pid)?),
        Command::Run { as_user, options, command } => {
            let s = target::spawn(command, as_user.as_deref())?;
            let pid = s.pid;
            (options, Some(s), pid)
        }
    };
    let result = record(options, pid, spawned.as_mut());
    if let Some(s) = spawned.as_mut() {
        s.finish();
    }
    result
}

fn record(options: &Options, pid: u32, spawned: Option<&mut target::Spawned>) -> Result<()> {
    let plan = session::Plan {
        duration: seconds(options.duration, "duration")?,
        interval: seconds(options.interval, "interval")?,
        count: options.count,
        json: options.json,
    };
    if !options.ring_mib.is_power_of_two() {
        bail!("--ring-mib must be a power of two");
    }
    let layout = tracefs::layout(&tracefs::root()?)?;
    let limits = loader::Limits { max_pages: options.max_pages, ring_bytes: options.ring_mib << 20 };
    let mut probe = loader::Probe::load(&layout, &limits)?;
    probe.follow(pid)?;
    let exe = match &spawned {
        Some(s) => s.exe.clone(),
        None => {
            std::fs::read_link(format!("/proc/{pid}/exe")).with_context(|| format!("cannot read /proc/{pid}/exe"))?
        }
    };
    if !options.no_markers && probe.attach_markers(&exe)? {
        log::info!("cowstore markers found in {}", exe.display());
    }
    let comm = match spawned {
        Some(_) => exe.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        None => std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default(),
    };
    let mut rec = recorder::Recorder::new(pid, comm.trim().to_string(), exe.display().to_string(), spawned.is_none());
    eprintln!("Tracing PID {pid} ({})... Hit Ctrl-C to end.", comm.trim());
    if let Some(s) = spawned {
        s.release()?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    let ended_by = runtime.block_on(session::record(&mut probe, &mut rec, &plan))?;
    let report = rec.report(&probe, ended_by)?;
    session::print(&report, plan.json)?;
    if report.drops.total() > 0 {
        log::warn!("the kernel side dropped data: {:?}", report.drops);
    }
    Ok(())
}
