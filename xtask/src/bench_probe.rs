//! `cargo xtask bench probe`: what attaching cowscope costs a server.
//!
//! redis-benchmark SET/GET throughput against the server alone and with
//! `cowscope record` attached (with `--aof` on cowstore, also with
//! `--no-markers`), in alternating runs; then the per-event cost of cowscope's
//! programs (`kernel.bpf_stats_enabled`) and the same measurements for a
//! bpftrace script that counts the equivalent events.

use crate::setup;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

/// Options of `bench probe`.
#[derive(clap::Args)]
pub struct Args {
    /// Server to load: `redis` (Debian's redis-server) or `cowstore`
    /// (target/release/cowstore, built first); both get Redis's options.
    #[arg(long, default_value = "redis")]
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
}

/// Throughput of one redis-benchmark run, requests per second by test.
type Throughput = HashMap<String, f64>;

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
uprobe:{exe}:cowstore_marker_write_acked /pid == $1/ { @acked = count(); }
uprobe:{exe}:cowstore_marker_fsync_done /pid == $1/ { @fsynced = count(); }
"#;

/// A child process interrupted (SIGINT, then SIGKILL after 10 s) when dropped.
struct Running(Option<Child>);

impl Running {
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Interrupts the process and collects what it printed.
    fn finish(mut self) -> Result<std::process::Output> {
        let child = self.0.take().context("already finished")?;
        interrupt(child.id())?;
        Ok(child.wait_with_output()?)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let _ = interrupt(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn interrupt(pid: u32) -> Result<()> {
    setup::output(Command::new("kill").arg("-INT").arg(pid.to_string())).map(|_| ())
}

/// Starts the server on a free loopback port; returns it and the port.
fn start_server(args: &Args) -> Result<(Running, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("cowscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let which = args.server.as_str();
    let mut cmd = match which {
        "redis" => Command::new("redis-server"),
        "cowstore" => Command::new(server_exe(which)),
        other => bail!("unknown server {other}: use redis or cowstore"),
    };
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]).arg("--dir").arg(&dir);
    if args.aof {
        cmd.args(["--appendonly", "yes", "--appendfsync", "everysec", "--auto-aof-rewrite-percentage", "0"]);
    } else {
        cmd.args(["--appendonly", "no"]);
    }
    let child = Running(Some(cmd.stdout(Stdio::null()).spawn().with_context(|| format!("start {which}"))?));
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("{which} did not start listening on port {port}");
        }
        sleep(Duration::from_millis(50));
    }
    Ok((child, port))
}

/// The server's executable.
fn server_exe(which: &str) -> std::path::PathBuf {
    match which {
        "cowstore" => setup::target_dir().join("release/cowstore"),
        _ => "redis-server".into(),
    }
}

fn benchmark(port: u16, args: &Args) -> Result<Throughput> {
    let csv = setup::output(
        Command::new("redis-benchmark")
            .args(["-p", &port.to_string(), "-t", "set,get", "--csv", "-r", "100000"])
            .args(["-n", &args.requests.to_string(), "-c", &args.clients.to_string()])
            .args(["-P", &args.pipeline.to_string(), "-d", "64"]),
    )?;
    let mut out = Throughput::new();
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if let (Some(test), Some(rps)) = (fields.first(), fields.get(1).and_then(|v| v.parse().ok())) {
            out.insert(test.to_string(), rps);
        }
    }
    if out.is_empty() {
        bail!("no throughput in redis-benchmark output: {csv}");
    }
    Ok(out)
}

/// Starts `cowscope record -p PID --json EXTRA...` and waits until it is attached.
fn attach_cowscope(cowscope: &Path, pid: u32, extra: &[&str]) -> Result<Running> {
    let mut child = Command::new(cowscope)
        .args(["record", "-p", &pid.to_string(), "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start cowscope")?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("Tracing PID") => break,
            Some(Ok(_)) => {}
            _ => bail!("cowscope exited before attaching"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(Running(Some(child)))
}

/// Stops cowscope and returns its JSON report.
fn stop_cowscope(c: Running) -> Result<Value> {
    let out = c.finish()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).context("no cowscope report")?;
    Ok(serde_json::from_str(line)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn set_bpf_stats(on: bool) -> Result<()> {
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", if on { "1" } else { "0" })
        .context("set kernel.bpf_stats_enabled")
}

/// Program ids loaded now.
fn program_ids() -> Result<Vec<u64>> {
    let json: Value = serde_json::from_str(&setup::output(Command::new("bpftool").args(["prog", "show", "--json"]))?)?;
    Ok(json.as_array().map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect()).unwrap_or_default())
}

/// Total (runs, run time ns) of programs not in `before`.
fn new_programs_cost(before: &[u64]) -> Result<(u64, u64)> {
    let json: Value = serde_json::from_str(&setup::output(Command::new("bpftool").args(["prog", "show", "--json"]))?)?;
    let (mut runs, mut ns) = (0, 0);
    for p in json.as_array().into_iter().flatten() {
        if p["id"].as_u64().is_some_and(|id| !before.contains(&id)) {
            runs += p["run_cnt"].as_u64().unwrap_or(0);
            ns += p["run_time_ns"].as_u64().unwrap_or(0);
        }
    }
    Ok((runs, ns))
}

fn print_row(label: &str, runs: &[Throughput], base: Option<&HashMap<String, f64>>) -> HashMap<String, f64> {
    let mut medians = HashMap::new();
    for test in ["SET", "GET"] {
        let m = median(runs.iter().filter_map(|r| r.get(test).copied()).collect());
        medians.insert(test.to_string(), m);
    }
    let ratio = |t: &str| match base {
        Some(b) => format!(" ({:+.1}%)", (medians[t] / b[t] - 1.0) * 100.0),
        None => String::new(),
    };
    println!(
        "{label:<28} SET {:>10.0} req/s{}   GET {:>10.0} req/s{}",
        medians["SET"],
        ratio("SET"),
        medians["GET"],
        ratio("GET")
    );
    medians
}

/// Runs the benchmark and prints the figures.
pub fn run(args: Args) -> Result<()> {
    setup::run()?;
    let mut build = vec!["build", "--release", "-p", "probe-user"];
    if args.server == "cowstore" {
        build.extend(["-p", "cowstore"]);
    }
    setup::cargo(&build)?;
    let cowscope = crate::setup::target_dir().join("release/cowscope");
    let (server, port) = start_server(&args)?;
    let pid = server.pid();
    set_bpf_stats(false)?;
    benchmark(port, &args)?; // warm-up: fills the keyspace and the caches

    // Configurations: cowscope's extra arguments, None for the server alone.
    let mut configs: Vec<(&str, Option<&[&str]>)> = vec![("server alone", None), ("with cowscope record", Some(&[]))];
    if args.aof && args.server == "cowstore" {
        configs.push(("cowscope --no-markers", Some(&["--no-markers"])));
    }
    let mut results: Vec<Vec<Throughput>> = vec![Vec::new(); configs.len()];
    for round in 0..args.runs {
        // Forward, then backward (ABBA), so drift in the machine's load hits every configuration alike.
        let order: Vec<usize> =
            if round % 2 == 0 { (0..configs.len()).collect() } else { (0..configs.len()).rev().collect() };
        for i in order {
            let run = match configs[i].1 {
                None => benchmark(port, &args)?,
                Some(extra) => {
                    let scope = attach_cowscope(&cowscope, pid, extra)?;
                    let run = benchmark(port, &args)?;
                    stop_cowscope(scope)?;
                    run
                }
            };
            results[i].push(run);
        }
    }
    println!(
        "\n{}{} on 127.0.0.1:{port}, {} requests x {} runs, {} clients, pipeline {}",
        args.server,
        if args.aof { " (appendonly yes, appendfsync everysec)" } else { "" },
        args.requests,
        args.runs,
        args.clients,
        args.pipeline
    );
    let base = print_row(configs[0].0, &results[0], None);
    for (c, runs) in configs.iter().zip(&results).skip(1) {
        print_row(c.0, runs, Some(&base));
    }

    // Per-event cost: one more run of each tracer with BPF statistics on.
    set_bpf_stats(true)?;
    let scope = attach_cowscope(&cowscope, pid, &[])?;
    let with_stats = benchmark(port, &args)?;
    let report = stop_cowscope(scope)?;
    let (mut runs, mut ns) = (0u64, 0u64);
    for p in report["programs"].as_array().into_iter().flatten() {
        runs += p["runs"].as_u64().unwrap_or(0);
        ns += p["run_time_ns"].as_u64().unwrap_or(0);
    }
    let before = program_ids()?;
    let script = std::env::temp_dir().join("cowscope-bench.bt");
    let mut text = BPFTRACE.to_string();
    if report["exposure"].is_object() {
        text.push_str(&BPFTRACE_MARKERS.replace("{exe}", &server_exe(&args.server).display().to_string()));
    }
    std::fs::write(&script, text)?;
    let bt = Running(Some(
        Command::new("bpftrace")
            .arg(&script)
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bpftrace")?,
    ));
    let start = Instant::now();
    while program_ids()?.len() <= before.len() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("bpftrace did not attach");
        }
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_secs(1));
    let bt_run = benchmark(port, &args)?;
    let (bt_runs, bt_ns) = new_programs_cost(&before)?;
    drop(bt);
    set_bpf_stats(false)?;
    print_row("cowscope, BPF stats on", &[with_stats], Some(&base));
    print_row("bpftrace script", &[bt_run], Some(&base));
    let per = |ns: u64, runs: u64| {
        if runs == 0 { 0.0 } else { ns as f64 / runs as f64 }
    };
    println!(
        "\nper-event cost: cowscope {:.0} ns over {runs} program runs; bpftrace {:.0} ns over {bt_runs} runs",
        per(ns, runs),
        per(bt_ns, bt_runs)
    );
    let mut busiest: Vec<(&str, u64, u64)> = report["programs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (p["name"].as_str().unwrap_or("?"), p["runs"].as_u64().unwrap_or(0), p["run_time_ns"].as_u64().unwrap_or(0))
        })
        .collect();
    busiest.sort_by_key(|&(_, _, ns)| std::cmp::Reverse(ns));
    println!("busiest cowscope programs (runs, ns per run):");
    for (name, runs, ns) in busiest.into_iter().take(6) {
        println!("  {name:<30} {runs:>10} {:>6.0}", per(ns, runs));
    }
    drop(server);
    Ok(())
}
