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
//!    fork/exit/signals and sync syscalls, and uprobes on libc's `fork()`
//!    and cowstore's markers, keep per-page and per-task state in maps and
//!    send typed records (`probe_ebpf::record`) on a ring buffer.
//! 2. [`loader`]: loads that object with the kernel's field offsets (read by
//!    [`tracefs`]), attaches every program (and refuses to run if one is
//!    left out), and hands out the maps.
//! 3. [`target`] picks the process (an existing PID or a thread's process,
//!    or a command held at a gate until the probes are attached); [`attach`]
//!    finds what already runs (children mid-snapshot); [`cli`] is the
//!    command line.
//! 4. [`session`]: the recording loop: drains the ring buffer, samples
//!    gauges, prints periodic reports, stops on duration, count, exit or a
//!    signal.
//! 5. [`recorder`] turns records and maps into figures, one consistent cut
//!    per report, through the aggregators: [`forks`] (fork latency,
//!    snapshot windows), [`cow`] (faults, copies and reuses per window and
//!    region), [`files`] (sync calls and the writes stalled behind them),
//!    [`exposure`] (cowstore's write-to-durable times), [`selfcheck`] (the
//!    kernel's own copy count, via the library's `taskstats`); with
//!    [`procfs`] (maps, THP, vmstat) and [`histo`] (latency histograms).
//! 6. [`report`]: the one structure printed as text or JSON.

mod attach;
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
mod selfcheck;
mod session;
mod target;
mod tracefs;

use anyhow::{Context, Result, bail};
use clap::Parser;
use cli::{Cli, Command, Options};
use probe_user::taskstats;
use report::TargetInfo;
use std::process::ExitCode;

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

fn run(cli: Cli) -> Result<()> {
    loader::require_programs()?;
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root to load eBPF programs (CAP_BPF, CAP_PERFMON): run it with sudo");
    }
    let verbose = cli.verbose > 0;
    // On for the whole recording (the kernel keeps copy counts only for tasks
    // created while it is on, so before a command is started), restored after.
    let _delayacct = taskstats::DelayAcct::enable()
        .map_err(|e| log::warn!("no self-check: cannot enable delay accounting: {e:#}"))
        .ok();
    let (options, mut spawned, pid) = match &cli.command {
        Command::Record { pid, options } => (options, None, target::existing(*pid)?),
        Command::Run { as_user, options, command } => {
            let quiet_stdout = options.json && options.output.is_none();
            let s = target::spawn(command, as_user.as_deref(), quiet_stdout)?;
            let pid = s.pid;
            (options, Some(s), pid)
        }
    };
    let result = record(options, pid, spawned.as_mut(), verbose);
    if let Some(s) = spawned.as_mut() {
        s.finish();
    }
    result
}

fn record(options: &Options, pid: u32, spawned: Option<&mut target::Spawned>, verbose: bool) -> Result<()> {
    let plan = session::Plan {
        duration: options.duration,
        interval: options.interval,
        count: options.count,
        cumulative: options.cumulative,
    };
    if !options.ring_mib.is_power_of_two() {
        bail!("--ring-mib must be a power of two");
    }
    let to: Box<dyn std::io::Write> = match &options.output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("cannot write the report to {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut out = session::Output { to, json: options.json, verbose };
    let layout = tracefs::layout(&tracefs::root()?)?;
    let limits = loader::Limits { max_pages: options.max_pages, ring_bytes: options.ring_mib << 20 };
    let mut probe = loader::Probe::load(&layout, &limits)?;
    if spawned.is_none()
        && let Some(cpus) = attach::stay_off_cpus_of(pid)
    {
        log::info!("PID {pid} is pinned: cowscope runs on CPUs {cpus:?}, off its way");
    }
    let existing = if spawned.is_some() { Vec::new() } else { attach::children(pid) };
    let (adopted, followed_at) = probe.follow(pid, &existing)?;
    let exe = match &spawned {
        Some(s) => Some(s.exe.clone()),
        None => std::fs::read_link(format!("/proc/{pid}/exe")).ok(),
    };
    if !options.no_markers
        && let Some(exe) = &exe
        && probe.attach_markers(exe)?
    {
        log::info!("cowstore markers found in {}", exe.display());
    }
    match probe.attach_libc_fork(pid) {
        Ok(Some(libc)) => log::info!("timing fork() calls in {}", libc.display()),
        Ok(None) => log::info!("PID {pid} maps no libc: fork timed as a syscall only"),
        Err(e) => log::warn!("fork timed as a syscall only: {e:#}"),
    }
    let comm = match (&spawned, &exe) {
        (Some(_), Some(exe)) => exe.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        _ => std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string(),
    };
    let exe = exe.map(|e| e.display().to_string()).unwrap_or_default();
    let info = TargetInfo { pid, comm: comm.clone(), exe };
    let mut rec = recorder::Recorder::new(pid, info, spawned.is_none(), followed_at);
    rec.adopt(&adopted);
    if let Some(s) = spawned {
        s.release()?;
    }
    let mut banner = format!("Tracing PID {pid} ({comm})... Hit Ctrl-C to end.");
    for (c, window) in &adopted {
        if *window > 0 {
            banner += &format!("\ncowscope: child {} was already running: window {window} recorded from now on", c.pid);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(session::record(&mut probe, &mut rec, &plan, &mut out, &banner))?;
    Ok(())
}
