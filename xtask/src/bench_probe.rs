//! `cargo xtask bench probe`: what attaching cowscope costs a server.
//!
//! redis-benchmark SET/GET throughput against the server alone and with
//! `cowscope record` attached (with `--aof` on cowstore, also with
//! `--no-markers`), in alternating runs (ABBA order, so drift in the
//! machine's load hits every configuration alike); then the per-event cost
//! of cowscope's programs (`kernel.bpf_stats_enabled`) and the same
//! measurements for a bpftrace script that counts the equivalent events.
//! Results go to the `probe-SERVER` section of docs/benchmarks.md.

use crate::recording::{Interrupted, record};
use crate::servers::{Sample, Which, can_pin, cpu_per_request, load_average, machine, median, redis_benchmark, start};
use crate::setup;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

/// Options of `bench probe`.
#[derive(clap::Args)]
pub struct Args {
    /// Server to load: `cowstore` (target/release/cowstore, built first) or
    /// `redis` (Debian's redis-server); both get Redis's options.
    #[arg(long, default_value = "cowstore")]
    server: String,
    /// Run the server with `appendonly yes`, `appendfsync everysec` (without
    /// automatic rewrites): cowstore's markers fire only then.
    #[arg(long)]
    aof: bool,
    /// Runs per configuration (alternating without / with cowscope).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Requests per redis-benchmark test.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// redis-benchmark connections.
    #[arg(long, default_value_t = 50)]
    clients: u32,
    /// redis-benchmark pipeline depth.
    #[arg(long, default_value_t = 16)]
    pipeline: u32,
    /// A smoke run: 2 runs of 200000 requests; docs/benchmarks.md is left as it is.
    #[arg(long)]
    quick: bool,
}

/// The bpftrace script counting what cowscope counts (copy-on-write faults
/// with their copies, fork, sync and write latency) for one process.
const BPFTRACE: &str = r#"
tracepoint:exceptions:page_fault_user /pid == $1 && (args->error_code & 7) == 7/ { @faults = count(); @fault[tid] = nsecs; }
tracepoint:kmem:mm_page_alloc /@fault[tid] && args->order == 0/ { @alloc[tid] = 1; }
tracepoint:tlb:tlb_flush /@alloc[tid] && args->reason == 3 && args->pages == 1/ { @copies = count(); delete(@alloc[tid]); delete(@fault[tid]); }
tracepoint:sched:sched_process_fork /pid == $1/ { @forks = count(); }
tracepoint:syscalls:sys_enter_fsync, tracepoint:syscalls:sys_enter_fdatasync /pid == $1/ { @s[tid] = nsecs; }
tracepoint:syscalls:sys_exit_fsync, tracepoint:syscalls:sys_exit_fdatasync /@s[tid]/ { @sync = hist(nsecs - @s[tid]); delete(@s[tid]); }
tracepoint:syscalls:sys_enter_write /pid == $1/ { @w[tid] = nsecs; }
tracepoint:syscalls:sys_exit_write /@w[tid]/ { @write = hist(nsecs - @w[tid]); delete(@w[tid]); }
"#;

/// What the bpftrace script adds for cowstore's markers (`{exe}`: its path).
const BPFTRACE_MARKERS: &str = r#"
uprobe:{exe}:cowstore_marker_writes_acked /pid == $1/ { @acked = sum(arg1); }
uprobe:{exe}:cowstore_marker_fsync_done /pid == $1/ { @fsynced = count(); }
"#;

/// Starts `cowscope record -p PID --json EXTRA...` and waits until it is attached.
fn attach_cowscope(pid: u32, extra: &[&str]) -> Result<Interrupted> {
    record(pid, &[&["--json"], extra].concat(), true, false)
}

/// Stops cowscope and returns its JSON report.
fn stop_cowscope(c: Interrupted) -> Result<Value> {
    let out = c.finish()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).context("no cowscope report")?;
    Ok(serde_json::from_str(line)?)
}

/// Turns `kernel.bpf_stats_enabled` on or off.
fn set_bpf_stats(on: bool) -> Result<()> {
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", if on { "1" } else { "0" })
        .context("set kernel.bpf_stats_enabled")
}

/// `bpftool prog show --json`.
fn programs() -> Result<Vec<Value>> {
    let json: Value = serde_json::from_str(&setup::output(Command::new("bpftool").args(["prog", "show", "--json"]))?)?;
    Ok(json.as_array().cloned().unwrap_or_default())
}

/// Program ids loaded now.
fn program_ids() -> Result<Vec<u64>> {
    Ok(programs()?.iter().filter_map(|p| p["id"].as_u64()).collect())
}

/// Total (runs, run time ns) of programs not in `before`.
fn new_programs_cost(before: &[u64]) -> Result<(u64, u64)> {
    let (mut runs, mut ns) = (0, 0);
    for p in programs()? {
        if p["id"].as_u64().is_some_and(|id| !before.contains(&id)) {
            runs += p["run_cnt"].as_u64().unwrap_or(0);
            ns += p["run_time_ns"].as_u64().unwrap_or(0);
        }
    }
    Ok((runs, ns))
}

/// Nanoseconds per program run (0 when nothing ran).
fn per_run(ns: u64, runs: u64) -> f64 {
    if runs == 0 { 0.0 } else { ns as f64 / runs as f64 }
}

/// One redis-benchmark run: each test's figures, and the server's CPU time
/// (user + system, so the tracepoints' cost in its own syscalls and faults
/// counts) per request, in µs.
#[derive(Clone)]
struct Run {
    tests: BTreeMap<String, Sample>,
    cpu_us: f64,
}

/// One configuration's runs.
type Runs = Vec<Run>;

/// Median rps and p99 of `test` over `runs`.
fn medians(runs: &Runs, test: &str) -> (f64, f64) {
    let pick = |f: fn(&Sample) -> f64| median(runs.iter().filter_map(|r| r.tests.get(test).map(f)).collect());
    (pick(|s| s.rps), pick(|s| s.p99))
}

/// Runs the benchmark, prints the figures and records them.
pub fn run(mut args: Args) -> Result<()> {
    setup::run()?;
    if args.quick {
        (args.runs, args.requests) = (2, 200_000);
    }
    let which = match args.server.as_str() {
        "cowstore" => Which::Cowstore,
        "redis" => Which::Redis,
        other => bail!("unknown server {other}: use cowstore or redis"),
    };
    setup::cargo(&["build", "--release", "-p", "probe-user", "-p", "cowstore"])?;
    let pin = can_pin();
    let aof: &[&str] = if args.aof {
        &["--appendonly", "yes", "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0"]
    } else {
        &[]
    };
    let facts = machine();
    // cowstore polls instead of sleeping when idle for a moment, so its CPU
    // time would count the polling: without it, CPU per request measures
    // what serving costs, and what cowscope adds to it.
    let no_spin: &[&str] = if which == Which::Cowstore { &["--busy-poll-usec", "0"] } else { &[] };
    let server = start(which, pin, &[aof, no_spin].concat())?;
    let (pid, port) = (server.child.id(), server.port);
    let (requests, clients, pipeline) =
        (args.requests.to_string(), args.clients.to_string(), args.pipeline.to_string());
    let bench_args = ["-n", &requests, "-r", "100000", "-c", &clients, "-P", &pipeline, "-d", "64"];
    let benchmark = || -> Result<Run> {
        let (tests, cpu_us) =
            cpu_per_request(pid, 2 * args.requests, || redis_benchmark(port, &["set", "get"], &bench_args, pin))?;
        Ok(Run { tests, cpu_us })
    };
    set_bpf_stats(false)?;
    benchmark()?; // warm-up: fills the keyspace and the caches

    // Configurations: cowscope's extra arguments, None for the server alone.
    let mut configs: Vec<(&str, Option<&[&str]>)> = vec![("server alone", None), ("cowscope record", Some(&[]))];
    if args.aof && which == Which::Cowstore {
        configs.push(("cowscope record --no-markers", Some(&["--no-markers"])));
    }
    let mut results: Vec<Runs> = vec![Vec::new(); configs.len()];
    for round in 0..args.runs {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let run = match configs[i].1 {
                None => benchmark()?,
                Some(extra) => {
                    let scope = attach_cowscope(pid, extra)?;
                    let run = benchmark()?;
                    stop_cowscope(scope)?;
                    run
                }
            };
            results[i].push(run);
        }
    }

    // Per-event cost: one more run of each tracer with BPF statistics on.
    set_bpf_stats(true)?;
    let scope = attach_cowscope(pid, &[])?;
    let with_stats = benchmark()?;
    let report = stop_cowscope(scope)?;
    let mut busiest: Vec<(String, u64, u64)> = report["programs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap_or(0);
            (p["name"].as_str().unwrap_or("?").to_string(), n("runs"), n("run_time_ns"))
        })
        .collect();
    let (runs, ns) = busiest.iter().fold((0, 0), |(r, t), p| (r + p.1, t + p.2));
    let before = program_ids()?;
    let script = std::env::temp_dir().join(format!("cowscope-bench-{}.bt", std::process::id()));
    let mut text = BPFTRACE.to_string();
    if report["exposure"].is_object() {
        let exe = setup::target_dir().join("release/cowstore");
        text.push_str(&BPFTRACE_MARKERS.replace("{exe}", &exe.display().to_string()));
    }
    std::fs::write(&script, text)?;
    let bt = Interrupted::new(
        Command::new("bpftrace")
            .arg(&script)
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bpftrace (apt-get install bpftrace)")?,
    );
    let waiting = Instant::now();
    while program_ids()?.len() <= before.len() {
        if waiting.elapsed() > Duration::from_secs(30) {
            bail!("bpftrace did not attach");
        }
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_secs(1));
    let bt_run = benchmark()?;
    let (bt_runs, bt_ns) = new_programs_cost(&before)?;
    drop(bt);
    let _ = std::fs::remove_file(&script);
    set_bpf_stats(false)?;
    drop(server);

    // The report.
    let title = format!("{}{}", which.name(), if args.aof { " (appendonly yes, appendfsync everysec)" } else { "" });
    let mut doc = format!(
        "## cowscope's overhead on {title}\n\nCommand: `sudo cargo xtask bench probe --server {}{}`\n\n",
        args.server,
        if args.aof { " --aof" } else { "" }
    );
    let _ = writeln!(
        doc,
        "Load: redis-benchmark -t set,get {} --csv, {} alternating run(s) per configuration (ABBA), medians{}.\n",
        bench_args.join(" "),
        args.runs,
        if pin { "; server on CPU 0, client on CPU 1 (taskset)" } else { "" }
    );
    for (k, v) in &facts {
        let _ = writeln!(doc, "- {k}: {v}");
    }
    let _ = writeln!(doc, "- load average at the end: {}\n", load_average().map_or("?".into(), |l| l.to_string()));
    doc.push_str(
        "| Configuration | SET req/s | SET change | GET req/s | GET change | SET p99 ms | GET p99 ms \
         | server CPU µs/request | CPU change |\n",
    );
    doc.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let cpu = |runs: &Runs| median(runs.iter().map(|r| r.cpu_us).collect());
    let (base_set, base_get, base_cpu) =
        (medians(&results[0], "SET").0, medians(&results[0], "GET").0, cpu(&results[0]));
    let (mut worst, mut worst_cpu): (f64, f64) = (0.0, 0.0);
    let mut row = |label: &str, runs: &Runs, measured: bool| {
        let ((set, set99), (get, get99), c) = (medians(runs, "SET"), medians(runs, "GET"), cpu(runs));
        let (ds, dg, dc) =
            ((set / base_set - 1.0) * 100.0, (get / base_get - 1.0) * 100.0, (c / base_cpu - 1.0) * 100.0);
        if measured {
            worst = worst.min(ds).min(dg);
            worst_cpu = worst_cpu.max(dc);
        }
        let _ = writeln!(
            doc,
            "| {label} | {set:.0} | {ds:+.1}% | {get:.0} | {dg:+.1}% | {set99:.3} | {get99:.3} | {c:.3} | {dc:+.1}% |"
        );
    };
    for (i, (label, _)) in configs.iter().enumerate() {
        row(label, &results[i], i > 0);
    }
    row("cowscope record, BPF stats on (1 run)", &vec![with_stats], false);
    row("bpftrace script, BPF stats on (1 run)", &vec![bt_run], false);
    let _ = writeln!(
        doc,
        "\nPer-event cost (`kernel.bpf_stats_enabled`): cowscope {:.0} ns per program run over {runs} runs; \
         the bpftrace script {:.0} ns over {bt_runs} runs.\n",
        per_run(ns, runs),
        per_run(bt_ns, bt_runs)
    );
    doc.push_str("| Busiest cowscope programs | runs | ns per run |\n|---|---:|---:|\n");
    busiest.sort_by_key(|p| std::cmp::Reverse(p.2));
    for (name, runs, ns) in busiest.iter().take(6) {
        let _ = writeln!(doc, "| {name} | {runs} | {:.0} |", per_run(*ns, *runs));
    }
    // Every run, in the order run, so the noise is visible next to the medians.
    doc.push_str("\n| Configuration | SET k req/s, each run | GET k req/s, each run |\n|---|---|---|\n");
    for (i, (label, _)) in configs.iter().enumerate() {
        let each = |test: &str| -> String {
            let v: Vec<String> =
                results[i].iter().filter_map(|r| r.tests.get(test)).map(|s| format!("{:.0}", s.rps / 1e3)).collect();
            v.join(", ")
        };
        let _ = writeln!(doc, "| {label} | {} | {} |", each("SET"), each("GET"));
    }
    // The server alone varies from run to run; a change within that spread is noise.
    let spread = |test: &str| -> f64 {
        let v: Vec<f64> = results[0].iter().filter_map(|r| r.tests.get(test)).map(|s| s.rps).collect();
        let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (hi - lo) / median(v) * 100.0
    };
    let verdict = if worst >= -3.0 { "met" } else { "missed" };
    let _ = writeln!(
        doc,
        "\nTarget (at most 3% throughput loss with cowscope attached): {verdict}, worst median change {worst:+.1}%; \
         the server alone varied by {:.1}% (SET) and {:.1}% (GET) between its own runs. \
         The server's CPU time per request, a steadier measure of the same cost, rose by at most {worst_cpu:+.1}%.",
        spread("SET"),
        spread("GET")
    );
    println!("{doc}");
    if args.quick {
        eprintln!("bench probe: quick run, docs/benchmarks.md left unchanged");
        return Ok(());
    }
    let section = format!("probe-{}{}", args.server, if args.aof { "-aof" } else { "" });
    let path = crate::servers::write_doc_section(&section, &doc)?;
    eprintln!("bench probe: wrote {}", path.display());
    Ok(())
}
