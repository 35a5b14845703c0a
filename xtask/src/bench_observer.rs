//! `cargo xtask bench observer`: does cowscope slow the fork it measures?
//!
//! redis-server (pinned to CPU 0) holds a dataset and forks for BGSAVE again
//! and again while a client on CPU 1 keeps sending SETs. Three
//! configurations run in alternating rounds (ABC, CBA, ...): the server
//! alone, cowscope recording it from the server's own CPU, and from the
//! other CPU. Per BGSAVE: the server's `latest_fork_usec` (the caller's view
//! of `fork()`); cowscope's syscall and libc-call figures for the same forks;
//! the p99 of a client run spanning each fork. Results go to the
//! `observer` section of docs/benchmarks.md.

use crate::recording::record;
use crate::servers::{
    Which, can_pin, command, info_field, load_average, machine, median, parse_csv, pinned, start, write_doc_section,
};
use crate::setup;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

/// Options of `bench observer`.
#[derive(clap::Args)]
pub struct Args {
    /// Keys loaded with DEBUG POPULATE (100-byte values).
    #[arg(long, default_value_t = 3_000_000)]
    keys: u64,
    /// Rounds; each runs every configuration once.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// BGSAVEs per configuration run.
    #[arg(long, default_value_t = 5)]
    saves: usize,
    /// A smoke run (200k keys, 2 rounds of 2 saves); docs/benchmarks.md is left as it is.
    #[arg(long)]
    quick: bool,
}

/// Where cowscope runs, if at all.
#[derive(Clone, Copy, PartialEq)]
enum Config {
    Alone,
    SameCpu,
    OtherCpu,
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Config::Alone => "redis-server alone",
            Config::SameCpu => "cowscope on the server's CPU",
            Config::OtherCpu => "cowscope on the other CPU",
        }
    }
}

/// What one configuration run measured.
#[derive(Default)]
struct Measured {
    /// `latest_fork_usec` of each BGSAVE, µs.
    latest_fork_us: Vec<f64>,
    /// cowscope's syscall latency per fork, µs.
    syscall_us: Vec<f64>,
    /// cowscope's libc `fork()` latency per fork, µs.
    call_us: Vec<f64>,
    /// The client's p99 around each fork (median over the run), ms.
    client_p99_ms: f64,
}

/// Pins every thread of `pid` to `cpu`.
fn pin_process(pid: u32, cpu: u32) -> Result<()> {
    setup::output(Command::new("taskset").args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])).map(|_| ())
}

/// Waits until no BGSAVE runs.
fn wait_saved(port: u16) -> Result<()> {
    let start = Instant::now();
    loop {
        let info = command(port, &["INFO", "persistence"])?;
        if info_field(&info, "rdb_bgsave_in_progress") == Some(0) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("BGSAVE did not finish in 5 minutes");
        }
        sleep(Duration::from_millis(20));
    }
}

/// A SET load of `requests` on CPU 1 (the server's clients), in the background.
fn client(port: u16, pin: bool, requests: u64) -> Result<Child> {
    pinned(pin, 1, Path::new("redis-benchmark"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set", "-n", &requests.to_string()])
        .args(["-r", "100000", "-c", "20", "-P", "1", "-d", "100", "--csv"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start redis-benchmark")
}

/// Waits for the client and reads its p99 (ms).
fn client_p99(c: Child) -> Result<f64> {
    let out = c.wait_with_output()?;
    let parsed = parse_csv(&String::from_utf8_lossy(&out.stdout))?;
    Ok(parsed.get("SET").context("no SET result from redis-benchmark")?.p99)
}

/// One configuration run: `saves` BGSAVEs under the client's load.
fn run_config(config: Config, pid: u32, port: u16, saves: usize, pin: bool) -> Result<Measured> {
    let scope = match config {
        Config::Alone => None,
        Config::SameCpu | Config::OtherCpu => {
            let scope = record(pid, &["--json", "--no-markers"], true, false)?;
            if pin {
                pin_process(scope.pid(), if config == Config::SameCpu { 0 } else { 1 })?;
            }
            Some(scope)
        }
    };
    let mut m = Measured::default();
    let mut p99s = Vec::new();
    for _ in 0..saves {
        // The client's run spans the fork: it starts before and ends after.
        let load = client(port, pin, 150_000)?;
        sleep(Duration::from_millis(300));
        command(port, &["BGSAVE"])?;
        wait_saved(port)?;
        let info = command(port, &["INFO", "stats"])?;
        m.latest_fork_us.push(info_field(&info, "latest_fork_usec").context("latest_fork_usec")? as f64);
        p99s.push(client_p99(load)?);
    }
    m.client_p99_ms = median(p99s);
    if let Some(scope) = scope {
        let out = scope.finish()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().rev().find(|l| l.starts_with('{')).context("no cowscope report")?;
        let report: Value = serde_json::from_str(line)?;
        for w in report["forks"]["windows"].as_array().into_iter().flatten() {
            if let Some(ns) = w["fork_latency_ns"].as_u64() {
                m.syscall_us.push(ns as f64 / 1e3);
            }
            if let Some(ns) = w["fork_call_ns"].as_u64() {
                m.call_us.push(ns as f64 / 1e3);
            }
        }
    }
    Ok(m)
}

/// Runs the benchmark, prints the figures and records them.
pub fn run(mut args: Args) -> Result<()> {
    setup::run()?;
    if args.quick {
        (args.keys, args.rounds, args.saves) = (200_000, 2, 2);
    }
    setup::cargo(&["build", "--release", "-p", "probe-user"])?;
    let pin = can_pin();
    let facts = machine();
    let server = start(Which::Redis, pin, &["--rdbcompression", "no"])?;
    let (pid, port) = (server.child.id(), server.port);
    command(port, &["DEBUG", "POPULATE", &args.keys.to_string(), "key", "100"])?;
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    let configs = [Config::Alone, Config::SameCpu, Config::OtherCpu];
    let mut results: Vec<Vec<Measured>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            eprintln!("bench observer: round {}/{}: {}", round + 1, args.rounds, configs[i].label());
            results[i].push(run_config(configs[i], pid, port, args.saves, pin)?);
        }
    }
    drop(server);

    let all = |i: usize, f: fn(&Measured) -> &Vec<f64>| -> Vec<f64> {
        results[i].iter().flat_map(|m| f(m).iter().copied()).collect()
    };
    let p99s = |i: usize| -> Vec<f64> { results[i].iter().map(|m| m.client_p99_ms).collect() };
    let base = median(all(0, |m| &m.latest_fork_us));
    let base_p99 = median(p99s(0));
    let mut doc =
        String::from("## Does cowscope slow the fork it measures?\n\nCommand: `sudo cargo xtask bench observer`\n\n");
    let _ = writeln!(
        doc,
        "redis-server 7.0 with {} keys of 100 bytes (RSS {rss}){}; a SET load (redis-benchmark -c 20 -P 1) \
         during {} BGSAVEs per run, {} alternating rounds (ABC, CBA, ...).\n",
        args.keys,
        if pin { ", on CPU 0; the client on CPU 1" } else { "" },
        args.saves,
        args.rounds
    );
    for (k, v) in &facts {
        let _ = writeln!(doc, "- {k}: {v}");
    }
    let _ = writeln!(doc, "- load average at the end: {}\n", load_average().map_or("?".into(), |l| l.to_string()));
    doc.push_str(
        "| Configuration | latest_fork_usec, median | change | cowscope: fork syscall | cowscope: libc fork() \
         | client p99 ms | change |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut worst: f64 = 0.0;
    for (i, c) in configs.iter().enumerate() {
        let fork = median(all(i, |m| &m.latest_fork_us));
        let p99 = median(p99s(i));
        let change = (fork / base - 1.0) * 100.0;
        if i > 0 {
            worst = worst.max(change);
        }
        let us = |v: Vec<f64>| if v.is_empty() { "-".to_string() } else { format!("{:.0} µs", median(v)) };
        let _ = writeln!(
            doc,
            "| {} | {fork:.0} µs | {change:+.1}% | {} | {} | {p99:.3} | {:+.1}% |",
            c.label(),
            us(all(i, |m| &m.syscall_us)),
            us(all(i, |m| &m.call_us)),
            (p99 / base_p99 - 1.0) * 100.0
        );
    }
    doc.push_str("\n| Configuration | latest_fork_usec of every BGSAVE, in order |\n|---|---|\n");
    for (i, c) in configs.iter().enumerate() {
        let each: Vec<String> = all(i, |m| &m.latest_fork_us).iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(doc, "| {} | {} |", c.label(), each.join(", "));
    }
    let verdict = if worst <= 5.0 { "met" } else { "missed" };
    let _ = writeln!(
        doc,
        "\nTarget (at most 5% added to latest_fork_usec): {verdict}, worst median change {worst:+.1}%. \
         cowscope's libc fork() figure is what latest_fork_usec measures (the caller's view: libc and \
         atfork handlers included); its syscall figure is the kernel's part alone."
    );
    println!("{doc}");
    if args.quick {
        eprintln!("bench observer: quick run, docs/benchmarks.md left unchanged");
        return Ok(());
    }
    let path = write_doc_section("observer", &doc)?;
    eprintln!("bench observer: wrote {}", path.display());
    Ok(())
}
