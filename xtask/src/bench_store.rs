//! `cargo xtask bench store`: cowstore against Debian's redis-server.
//!
//! Both servers run with persistence off on loopback. redis-benchmark drives
//! `SET`/`GET` (`-n 1000000 -r 100000 -c 50`) with pipelines of 1 and 16, the
//! servers alternating within each round; the table shows the medians of
//! requests per second, p50 and p99 latency, and cowstore's throughput as a
//! ratio of redis-server's. Then each server, fresh, loads
//! `DEBUG POPULATE 2000000 key 100` and its resident memory is compared.
//! With `taskset` and two CPUs or more, servers run on CPU 0 and the client on
//! CPU 1. A full run rewrites its section of docs/benchmarks.md.

use crate::servers::{
    Sample, Which, can_pin, command, cpu_per_request, info_field, load_average, machine, median, mib, redis_benchmark,
    start, vm_rss,
};
use crate::setup;
use anyhow::{Context, Result, bail};
use std::{collections::BTreeMap, fmt::Write as _, thread::sleep, time::Duration};

/// Options of `bench store`.
#[derive(clap::Args)]
pub struct Args {
    /// Rounds; each runs every load against both servers, and the table shows medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests per redis-benchmark run.
    #[arg(short = 'n', long = "requests", default_value_t = 1_000_000)]
    requests: u64,
    /// A smoke run: 100,000 requests, one round, 200,000 keys for the memory
    /// figures; docs/benchmarks.md is left as it is.
    #[arg(long)]
    quick: bool,
}

/// Pipeline depths measured.
const PIPELINES: [u32; 2] = [1, 16];
/// Tests measured, as redis-benchmark names them.
const TESTS: [&str; 2] = ["SET", "GET"];
/// Keys and value size for the memory comparison.
const POPULATE_KEYS: u64 = 2_000_000;
const POPULATE_SIZE: u64 = 100;

/// Memory figures of one server after DEBUG POPULATE.
struct Memory {
    rss_empty: u64,
    rss: u64,
    used_memory_rss: u64,
    used_memory: u64,
    dbsize: u64,
}

/// Runs redis-benchmark's SET and GET once against `port` with pipeline `pipeline`.
fn benchmark(port: u16, pipeline: u32, requests: u64, pin: bool) -> Result<BTreeMap<String, Sample>> {
    let p = pipeline.to_string();
    redis_benchmark(port, &TESTS, &["-n", &requests.to_string(), "-r", "100000", "-c", "50", "-P", &p], pin)
}

/// Fills a fresh server with `keys` keys of `POPULATE_SIZE` bytes and reads its memory.
fn memory(which: Which, keys: u64, pin: bool) -> Result<Memory> {
    let server = start(which, pin, &[])?;
    let pid = server.child.id();
    let rss_empty = vm_rss(pid)?;
    command(server.port, &["DEBUG", "POPULATE", &keys.to_string(), "key", &POPULATE_SIZE.to_string()])?;
    // Let background purging and the cron settle before reading.
    sleep(Duration::from_secs(2));
    let info = command(server.port, &["INFO", "memory"])?;
    let dbsize: u64 = command(server.port, &["DBSIZE"])?.parse()?;
    Ok(Memory {
        rss_empty,
        rss: vm_rss(pid)?,
        used_memory_rss: info_field(&info, "used_memory_rss").context("used_memory_rss")?,
        used_memory: info_field(&info, "used_memory").context("used_memory")?,
        dbsize,
    })
}

/// Runs the benchmark, prints the tables and (full runs) rewrites docs/benchmarks.md.
pub fn run(args: Args) -> Result<()> {
    let (rounds, requests, keys) = if args.quick {
        (1, args.requests.min(100_000), 200_000)
    } else {
        (args.rounds.max(1), args.requests, POPULATE_KEYS)
    };
    let invoked = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let facts = machine();
    let load_start = load_average();
    setup::packages()?;
    setup::cargo(&["build", "--release", "-p", "cowstore"])?;
    let pin = can_pin();
    if !pin {
        eprintln!("bench store: not pinning (needs taskset and two CPUs)");
    }

    // Throughput: both servers up for the whole run, warmed once, then
    // alternating ABBA within each round so drift hits both alike.
    let servers = [start(Which::Cowstore, pin, &[])?, start(Which::Redis, pin, &[])?];
    for s in &servers {
        benchmark(s.port, 16, requests.min(200_000), pin)?;
    }
    let mut samples: BTreeMap<(Which, u32, String), Vec<Sample>> = BTreeMap::new();
    // Server CPU time per request (SET and GET together), µs.
    let mut cpu: BTreeMap<(Which, u32), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        for (i, &pipeline) in PIPELINES.iter().enumerate() {
            let order = if (round + i) % 2 == 0 { [0, 1] } else { [1, 0] };
            for idx in order {
                let which = [Which::Cowstore, Which::Redis][idx];
                eprintln!("bench store: round {}/{rounds}, -P {pipeline}, {}", round + 1, which.name());
                let (tests, per_request) =
                    cpu_per_request(servers[idx].child.id(), TESTS.len() as u64 * requests, || {
                        benchmark(servers[idx].port, pipeline, requests, pin)
                    })?;
                for (test, s) in tests {
                    samples.entry((which, pipeline, test)).or_default().push(s);
                }
                cpu.entry((which, pipeline)).or_default().push(per_request);
            }
        }
    }
    drop(servers);

    eprintln!("bench store: memory after DEBUG POPULATE {keys} key {POPULATE_SIZE}");
    let mem = [memory(Which::Cowstore, keys, pin)?, memory(Which::Redis, keys, pin)?];

    let get = |which: Which, p: u32, t: &str, f: fn(&Sample) -> f64| -> f64 {
        median(samples.get(&(which, p, t.to_string())).map(|v| v.iter().map(f).collect()).unwrap_or_default())
    };
    let mut table = String::new();
    table.push_str("| Test | Pipeline | cowstore req/s | redis-server req/s | ratio | cowstore p50 ms | redis-server p50 ms | cowstore p99 ms | redis-server p99 ms |\n");
    table.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut misses = Vec::new();
    for p in PIPELINES {
        for t in TESTS {
            let (c, r) = (get(Which::Cowstore, p, t, |s| s.rps), get(Which::Redis, p, t, |s| s.rps));
            let ratio = c / r;
            let _ = writeln!(
                table,
                "| {t} | {p} | {c:.0} | {r:.0} | {ratio:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
                get(Which::Cowstore, p, t, |s| s.p50),
                get(Which::Redis, p, t, |s| s.p50),
                get(Which::Cowstore, p, t, |s| s.p99),
                get(Which::Redis, p, t, |s| s.p99),
            );
            if ratio < 1.0 {
                misses.push(format!("{t} -P {p}: ratio {ratio:.3} ({:.1}% below redis-server)", (1.0 - ratio) * 100.0));
            }
        }
    }
    // Every round's throughput, to show how much the figures moved.
    let mut spread = String::from(
        "| Test | Pipeline | cowstore req/s per round | redis-server req/s per round |\n|---|---:|---|---|\n",
    );
    for p in PIPELINES {
        for t in TESTS {
            let runs = |w: Which| -> String {
                let v = samples.get(&(w, p, t.to_string())).map(Vec::as_slice).unwrap_or_default();
                v.iter().map(|s| format!("{:.0}", s.rps)).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(spread, "| {t} | {p} | {} | {} |", runs(Which::Cowstore), runs(Which::Redis));
        }
    }
    let mut cputable = String::from(
        "| Pipeline | cowstore CPU µs per request | redis-server CPU µs per request | ratio |\n|---:|---:|---:|---:|\n",
    );
    for p in PIPELINES {
        let m = |w: Which| median(cpu.get(&(w, p)).cloned().unwrap_or_default());
        let (c, r) = (m(Which::Cowstore), m(Which::Redis));
        let _ = writeln!(cputable, "| {p} | {c:.2} | {r:.2} | {:.2} |", c / r);
    }
    let [mc, mr] = &mem;
    let mut memtable = String::new();
    memtable.push_str("| After `DEBUG POPULATE` | cowstore | redis-server | ratio |\n|---|---:|---:|---:|\n");
    let rows: [(&str, u64, u64); 4] = [
        ("VmRSS (/proc/PID/status)", mc.rss, mr.rss),
        ("used_memory_rss (INFO memory)", mc.used_memory_rss, mr.used_memory_rss),
        ("used_memory (INFO memory)", mc.used_memory, mr.used_memory),
        ("VmRSS before populating", mc.rss_empty, mr.rss_empty),
    ];
    for (label, c, r) in rows {
        let _ = writeln!(memtable, "| {label} | {} | {} | {:.2} |", mib(c), mib(r), c as f64 / r as f64);
    }
    let _ = writeln!(
        memtable,
        "| Per key (VmRSS growth / keys) | {:.1} B | {:.1} B | {:.2} |",
        mc.rss.saturating_sub(mc.rss_empty) as f64 / keys as f64,
        mr.rss.saturating_sub(mr.rss_empty) as f64 / keys as f64,
        mc.rss.saturating_sub(mc.rss_empty) as f64 / mr.rss.saturating_sub(mr.rss_empty).max(1) as f64
    );
    if mc.dbsize != keys || mr.dbsize != keys {
        bail!("DBSIZE after DEBUG POPULATE: cowstore {}, redis-server {} (expected {keys})", mc.dbsize, mr.dbsize);
    }
    if mc.rss > mr.rss {
        misses.push(format!(
            "RSS: cowstore {} vs redis-server {} ({:.1}% more)",
            mib(mc.rss),
            mib(mr.rss),
            (mc.rss as f64 / mr.rss as f64 - 1.0) * 100.0
        ));
    }

    let setup_line = format!(
        "redis-benchmark -t set,get -n {requests} -r 100000 -c 50 -P 1|16 --csv, {rounds} round(s), medians; {}",
        if pin { "servers on CPU 0, client on CPU 1 (taskset)" } else { "not pinned" }
    );
    let load_end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_end = load_end.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    // Other processes competing for the CPUs make the figures meaningless: say so.
    let mut warnings = Vec::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for (when, load) in [("start", load_start), ("end", load_end.split(' ').next().and_then(|l| l.parse().ok()))] {
        if let Some(l) = load.filter(|l| *l > cpus / 2.0) {
            warnings.push(format!("load average {l:.2} at the {when} on {cpus} CPUs: other processes were running"));
        }
    }
    for ((which, p, t), v) in &samples {
        let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(lo, hi), s| (lo.min(s.rps), hi.max(s.rps)));
        if rounds > 1 && hi > 1.3 * lo {
            warnings.push(format!("{} {t} -P {p}: rounds ranged from {lo:.0} to {hi:.0} req/s", which.name()));
        }
    }
    let reliability = if warnings.is_empty() {
        "Stable: the load average stayed low and every round agreed within 30%.".to_string()
    } else {
        format!(
            "Unreliable, re-run on an idle machine:\n{}",
            warnings.iter().map(|w| format!("- {w}")).collect::<Vec<_>>().join("\n")
        )
    };
    println!("\n{setup_line}\n\n{table}\n{spread}\n{cputable}\n{memtable}");
    let verdict = if misses.is_empty() {
        "Targets met: ratio >= 1.0 on every row and RSS no more than redis-server's.".to_string()
    } else {
        format!("Targets missed:\n{}", misses.iter().map(|m| format!("- {m}")).collect::<Vec<_>>().join("\n"))
    };
    println!("{verdict}\n\n{reliability}");

    if args.quick {
        eprintln!("\nbench store: quick run, docs/benchmarks.md left unchanged");
        return Ok(());
    }
    let mut doc = String::new();
    doc.push_str("## cowstore against redis-server\n\n");
    doc.push_str(
        "`cargo xtask bench store` builds `target/release/cowstore`, starts it and Debian's `redis-server` \
         (both with `--save '' --appendonly no`, on 127.0.0.1) and runs the same `redis-benchmark` loads \
         against each, alternating between them within every round: `-t set,get -n 1000000 -r 100000 -c 50` \
         with `-P 1` and `-P 16`. It reports the median requests per second and p50/p99 latency of the rounds \
         and cowstore's throughput as a ratio of redis-server's (above 1.0: cowstore is faster). Then each \
         server, freshly started, runs `DEBUG POPULATE 2000000 key 100` and its resident memory is read from \
         `/proc/PID/status` (VmRSS) and `INFO memory`. With `taskset` and two CPUs, the servers run on CPU 0 \
         and redis-benchmark on CPU 1. Options: `--rounds N` (default 3), `-n N` (requests per run), \
         `--quick` (a smoke run that leaves this file alone).\n\n",
    );
    doc.push_str("Targets: ratio >= 1.0 on every row, and RSS no more than redis-server's.\n\n");
    doc.push_str("### Latest run\n\n");
    let _ = writeln!(doc, "Command: `cargo xtask {invoked}`\n");
    let _ = writeln!(doc, "Load: {setup_line}.\n");
    for (k, v) in &facts {
        let _ = writeln!(doc, "- {k}: {v}");
    }
    let _ = writeln!(doc, "- load average at the end: {load_end}");
    let _ = writeln!(doc, "\n#### Throughput and latency\n\n{table}");
    let _ = writeln!(doc, "Each round's throughput:\n\n{spread}");
    let _ = writeln!(
        doc,
        "Server CPU time (user + system, all threads, from /proc/PID/stat) per request, medians of the rounds. \
         cowstore polls on for `busy-poll-usec` (50 µs) after the last event instead of blocking at once, \
         which is where most of its -P 1 advantage comes from: it spends otherwise idle CPU to skip sleeps \
         and wake-ups (`--busy-poll-usec 0` behaves as Redis does).\n\n{cputable}"
    );
    let _ = writeln!(doc, "#### Memory after `DEBUG POPULATE {keys} key {POPULATE_SIZE}`\n\n{memtable}");
    let _ = writeln!(doc, "#### Verdict\n\n{verdict}\n\n{reliability}");
    let path = crate::servers::write_doc_section("store", &doc)?;
    eprintln!("\nbench store: wrote {}", path.display());
    Ok(())
}
