//! `cargo xtask bench rdb` and `cargo xtask bench aof`: cowstore's
//! persistence against Debian's redis-server 7.0, same data, same disk,
//! alternating runs.
//!
//! - **rdb**: both servers load `DEBUG POPULATE 2000000 key 100` plus
//!   collections, then BGSAVE while a fixed redis-benchmark SET load runs:
//!   BGSAVE wall time, dump size, `latest_fork_usec` and `rdb_last_cow_size`.
//! - **aof**: redis-benchmark SET (`-c 50`, `-P 1` and `-P 16`) with
//!   `appendonly yes` under each `appendfsync` policy: rps and p99 side by
//!   side, plus cowstore's durability exposure per policy.
//!
//! Servers are not pinned here: a fork child inherits its parent's CPU, and
//! the save or rewrite must be free to use the other core, as in production.

use crate::servers::{
    Background, Running, Which, command, info_field, info_text, load_average, machine, median, redis_benchmark,
    run_set_load, set_load, start,
};
use crate::setup;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Options of `bench rdb` and `bench aof`.
#[derive(clap::Args)]
pub struct Args {
    /// Rounds (each runs both servers); tables show medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// A smoke run: smaller data and loads, one round; docs/benchmarks.md is left as it is.
    #[arg(long)]
    quick: bool,
}

const SERVERS: [Which; 2] = [Which::Cowstore, Which::Redis];

/// The write load during a save covers one key in this many.
const LOAD_SHARE: u64 = 10;

/// SETs per key of the load done before the save, so that nearly all its keys
/// exist (all but about e^-10 of them): the load during the save then only
/// overwrites, in both servers alike, and the keyspace's table never grows
/// mid-save.
const PREFILL_PER_KEY: u64 = 10;

/// Collections added next to the populated strings: (hashes, lists, sets, sorted sets) of 100 items.
const COLLECTIONS: u64 = 2000;

/// Loads collections of every type (100 items each) with one pipelined connection.
fn load_collections(port: u16, n: u64) -> Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let mut req = Vec::new();
    let mut cmds = 0;
    let push = |args: Vec<String>, req: &mut Vec<u8>| {
        let _ = write!(req, "*{}\r\n", args.len());
        for a in args {
            let _ = write!(req, "${}\r\n{a}\r\n", a.len());
        }
    };
    for i in 0..n {
        for (cmd, key) in [("HSET", "h"), ("RPUSH", "l"), ("SADD", "s"), ("ZADD", "z")] {
            let mut args = vec![cmd.to_string(), format!("{key}:{i}")];
            for j in 0..100 {
                match cmd {
                    "HSET" => args.extend([format!("field:{j}"), format!("value:{i}:{j}")]),
                    "ZADD" => args.extend([format!("{}", j as f64 * 1.5), format!("member:{j}")]),
                    _ => args.push(format!("item:{i}:{j}")),
                }
            }
            push(args, &mut req);
            cmds += 1;
        }
    }
    s.write_all(&req)?;
    // Drain the replies (integers).
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    for _ in 0..cmds {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line)?;
        if !line.starts_with(':') {
            bail!("loading collections: {line}");
        }
    }
    Ok(())
}

/// One BGSAVE measurement.
struct SaveRun {
    wall_ms: f64,
    dump_bytes: u64,
    fork_usec: u64,
    cow_bytes: u64,
    /// Commands the server ran from BGSAVE until it reported the end.
    commands_during: u64,
}

fn info(port: u16) -> Result<String> {
    command(port, &["INFO", "everything"])
}

/// Fills a fresh server, starts the write load, BGSAVEs and measures.
fn bgsave_run(which: Which, keys: u64, collections: u64) -> Result<SaveRun> {
    let s: Running = start(which, false, &["--rdbcompression", "yes"])?;
    command(s.port, &["DEBUG", "POPULATE", &keys.to_string(), "key", "100"])?;
    load_collections(s.port, collections)?;
    let load_keys = keys / LOAD_SHARE;
    run_set_load(s.port, load_keys, PREFILL_PER_KEY * load_keys, 20, 16, 100)?;
    let load =
        Background(set_load(s.port, load_keys, 1_000_000_000, 20, 4, 100).spawn().context("start redis-benchmark")?);
    std::thread::sleep(Duration::from_secs(1));
    let commands = |i: &str| info_field(i, "total_commands_processed").context("total_commands_processed");
    let before = commands(&info(s.port)?)?;
    let t = Instant::now();
    let reply = command(s.port, &["BGSAVE"])?;
    if !reply.contains("started") {
        bail!("{}: BGSAVE: {reply}", which.name());
    }
    let after = loop {
        std::thread::sleep(Duration::from_millis(10));
        let i = info(s.port)?;
        if info_field(&i, "rdb_bgsave_in_progress") == Some(0) {
            break commands(&i)?;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("{}: BGSAVE did not finish", which.name());
        }
    };
    let wall_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(load);
    let i = info(s.port)?;
    let status = info_text(&i, "rdb_last_bgsave_status").unwrap_or("?");
    if status != "ok" {
        bail!("{}: BGSAVE failed ({status})", which.name());
    }
    Ok(SaveRun {
        wall_ms,
        dump_bytes: std::fs::metadata(s.dir.join("dump.rdb"))?.len(),
        fork_usec: info_field(&i, "latest_fork_usec").context("latest_fork_usec")?,
        cow_bytes: info_field(&i, "rdb_last_cow_size").context("rdb_last_cow_size")?,
        commands_during: after - before,
    })
}

fn header(title: &str, invoked: &str, what: &str) -> String {
    let mut doc = format!("## {title}\n\nCommand: `cargo xtask {invoked}`\n\n{what}\n\n");
    for (k, v) in machine() {
        let _ = writeln!(doc, "- {k}: {v}");
    }
    doc.push('\n');
    doc
}

fn finish(name: &str, quick: bool, doc: &str) -> Result<()> {
    println!("{doc}");
    if quick {
        eprintln!("bench {name}: quick run, docs/benchmarks.md left unchanged");
        return Ok(());
    }
    let path = crate::servers::write_doc_section(name, doc)?;
    eprintln!("bench {name}: wrote {}", path.display());
    Ok(())
}

/// `bench rdb`.
pub fn run_rdb(args: Args) -> Result<()> {
    setup::packages()?;
    setup::cargo(&["build", "--release", "-p", "cowstore"])?;
    let (rounds, keys, collections) =
        if args.quick { (1, 200_000, 200) } else { (args.rounds.max(1), 2_000_000, COLLECTIONS) };
    let invoked = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let mut runs: BTreeMap<Which, Vec<SaveRun>> = BTreeMap::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 { SERVERS } else { [SERVERS[1], SERVERS[0]] };
        for which in order {
            eprintln!("bench rdb: round {}/{rounds}, {}", round + 1, which.name());
            runs.entry(which).or_default().push(bgsave_run(which, keys, collections)?);
        }
    }
    let med = |w: Which, f: fn(&SaveRun) -> f64| median(runs[&w].iter().map(f).collect());
    let mut table =
        String::from("| Metric | cowstore | redis-server | ratio (cowstore / redis) |\n|---|---:|---:|---:|\n");
    type Row = (&'static str, fn(&SaveRun) -> f64, f64, &'static str);
    let rows: [Row; 5] = [
        ("BGSAVE wall time", |r| r.wall_ms, 1.0, "ms"),
        ("dump size", |r| r.dump_bytes as f64, 1024.0 * 1024.0, "MiB"),
        ("latest_fork_usec", |r| r.fork_usec as f64, 1000.0, "ms"),
        ("rdb_last_cow_size", |r| r.cow_bytes as f64, 1024.0 * 1024.0, "MiB"),
        ("commands run during the save", |r| r.commands_during as f64, 1000.0, "k"),
    ];
    for (label, f, scale, unit) in rows {
        let (c, r) = (med(Which::Cowstore, f), med(Which::Redis, f));
        let _ = writeln!(table, "| {label} | {:.1} {unit} | {:.1} {unit} | {:.2} |", c / scale, r / scale, c / r);
    }
    let mut per_round = String::from(
        "| Server | wall ms | dump bytes | fork µs | CoW bytes | commands during |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (w, v) in &runs {
        for r in v {
            let _ = writeln!(
                per_round,
                "| {} | {:.0} | {} | {} | {} | {} |",
                w.name(),
                r.wall_ms,
                r.dump_bytes,
                r.fork_usec,
                r.cow_bytes,
                r.commands_during
            );
        }
    }
    let what = format!(
        "Data: `DEBUG POPULATE {keys} key 100` plus {collections} each of hashes, lists, sets and sorted sets \
         of 100 items, then redis-benchmark `-t set -r {load} -n {prefill} -d 100` so that the load's own \
         keys exist; `rdbcompression yes`; data directories on the same disk. During each BGSAVE, \
         redis-benchmark runs `-t set -r {load} -d 100 -c 20 -P 4` (overwrites only: the keyspace does not \
         grow mid-save). {rounds} round(s), servers alternating, medians. Targets: BGSAVE time, dump size \
         and fork time no worse than redis-server's; the CoW figure is shown beside redis-server's for the \
         same load, with the number of commands each server ran while its child lived (CoW grows with the \
         pages the load touches while the child lives: a faster save copies less, a faster server more).",
        load = keys / LOAD_SHARE,
        prefill = PREFILL_PER_KEY * keys / LOAD_SHARE
    );
    let mut doc = header("RDB snapshots: cowstore against redis-server", &invoked, &what);
    let _ = writeln!(doc, "{table}\nEvery run:\n\n{per_round}");
    if let Some(l) = load_average() {
        let _ = writeln!(doc, "Load average at the end: {l:.2}.");
    }
    finish("rdb", args.quick, &doc)
}

/// The exposure line of cowstore's INFO durability for `policy`.
fn exposure(port: u16, policy: &str) -> Result<BTreeMap<String, u64>> {
    let i = command(port, &["INFO", "durability"])?;
    let line = info_text(&i, &format!("exposure_{policy}"))
        .with_context(|| format!("no exposure_{policy} in INFO durability"))?;
    Ok(line
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect())
}

/// `bench aof`.
pub fn run_aof(args: Args) -> Result<()> {
    setup::packages()?;
    setup::cargo(&["build", "--release", "-p", "cowstore"])?;
    let rounds = if args.quick { 1 } else { args.rounds.max(1) };
    let invoked = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let requests = |policy: &str, pipeline: u32| -> u64 {
        let base: u64 = match (policy, pipeline) {
            ("always", 1) => 60_000,
            ("always", _) => 400_000,
            (_, 1) => 300_000,
            _ => 2_000_000,
        };
        if args.quick { base / 10 } else { base }
    };
    let mut table = String::from(
        "| appendfsync | Pipeline | cowstore req/s | redis-server req/s | ratio | cowstore p99 ms | redis-server p99 ms |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut exposure_table = String::from(
        "| appendfsync | acked writes | durable | p50 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for policy in ["always", "everysec", "no"] {
        let opts = ["--appendonly", "yes", "--appendfsync", policy];
        let servers = [start(Which::Cowstore, false, &opts)?, start(Which::Redis, false, &opts)?];
        command(servers[0].port, &["DURABILITY", "RESET"])?;
        for pipeline in [1u32, 16] {
            let mut samples: BTreeMap<Which, Vec<crate::servers::Sample>> = BTreeMap::new();
            for round in 0..rounds {
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for idx in order {
                    eprintln!(
                        "bench aof: {policy}, -P {pipeline}, round {}/{rounds}, {}",
                        round + 1,
                        SERVERS[idx].name()
                    );
                    let n = requests(policy, pipeline).to_string();
                    let p = pipeline.to_string();
                    let r = redis_benchmark(
                        servers[idx].port,
                        &["set"],
                        &["-n", &n, "-r", "100000", "-c", "50", "-P", &p],
                        false,
                    )?;
                    samples.entry(SERVERS[idx]).or_default().push(r["SET"]);
                }
            }
            let m = |w: Which, f: fn(&crate::servers::Sample) -> f64| median(samples[&w].iter().map(f).collect());
            let (c, r) = (m(Which::Cowstore, |s| s.rps), m(Which::Redis, |s| s.rps));
            let _ = writeln!(
                table,
                "| {policy} | {pipeline} | {c:.0} | {r:.0} | {:.2} | {:.3} | {:.3} |",
                c / r,
                m(Which::Cowstore, |s| s.p99),
                m(Which::Redis, |s| s.p99)
            );
        }
        // Let the last everysec fsync land before reading the exposure.
        std::thread::sleep(Duration::from_millis(2500));
        let e = exposure(servers[0].port, policy)?;
        let us = |k: &str| e.get(k).map_or("n/a".to_string(), |v| format!("{:.1} ms", *v as f64 / 1000.0));
        let durable = if policy == "no" {
            "0 (never fsynced)".to_string()
        } else {
            e.get("durable").copied().unwrap_or(0).to_string()
        };
        let _ = writeln!(
            exposure_table,
            "| {policy} | {} | {durable} | {} | {} | {} | {} |",
            e.get("acked").copied().unwrap_or(0),
            us("p50_usec"),
            us("p99_usec"),
            us("p999_usec"),
            us("max_usec")
        );
    }
    let what = format!(
        "redis-benchmark `-t set -r 100000 -c 50` with `-P 1` and `-P 16` against both servers started with \
         `--appendonly yes --appendfsync POLICY`, data directories on the same disk, {rounds} round(s) \
         alternating, medians (fewer requests with `always` unpipelined: 60,000 per run). Target: ratio >= 1.0 \
         on every row. The exposure table is cowstore's own measurement over all writes of that policy's runs \
         (`INFO durability`): time from a write's reply to the completion of the fsync that covers it."
    );
    let mut doc = header("AOF: cowstore against redis-server per fsync policy", &invoked, &what);
    let _ = writeln!(doc, "{table}\n### Durability exposure (cowstore)\n\n{exposure_table}");
    if let Some(l) = load_average() {
        let _ = writeln!(doc, "Load average at the end: {l:.2}.");
    }
    finish("aof", args.quick, &doc)
}
