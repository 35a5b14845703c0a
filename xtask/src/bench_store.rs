//! `cargo xtask bench store`: cowstore against Debian's redis-server.
//!
//! Both servers run with persistence off on loopback. redis-benchmark drives
//! `SET`/`GET` (`-n 1000000 -r 100000 -c 50`) with pipelines of 1 and 16, the
//! servers alternating within each round; the table shows the medians of
//! requests per second, p50 and p99 latency, and cowstore's throughput as a
//! ratio of redis-server's. Then each server, fresh, loads
//! `DEBUG POPULATE 2000000 key 100` and its resident memory is compared.
//! With `taskset` and two CPUs or more, servers run on CPU 0 and the client on
//! CPU 1. A full run rewrites docs/benchmarks.md.

use crate::setup;
use anyhow::{Context, Result, bail};
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

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

/// The two servers compared.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Which {
    Cowstore,
    Redis,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Cowstore => "cowstore",
            Which::Redis => "redis-server",
        }
    }
}

/// Pipeline depths measured.
const PIPELINES: [u32; 2] = [1, 16];
/// Tests measured, as redis-benchmark names them.
const TESTS: [&str; 2] = ["SET", "GET"];
/// Keys and value size for the memory comparison.
const POPULATE_KEYS: u64 = 2_000_000;
const POPULATE_SIZE: u64 = 100;

/// One redis-benchmark result line.
#[derive(Clone, Copy, Default)]
struct Sample {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// Memory figures of one server after DEBUG POPULATE.
struct Memory {
    rss_empty: u64,
    rss: u64,
    used_memory_rss: u64,
    used_memory: u64,
    dbsize: u64,
}

/// A server process, killed when dropped.
struct Running {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"))
}

fn on_path(bin: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().is_ok_and(|o| o.status.success())
}

/// Installs redis-server and redis-benchmark when missing.
fn ensure_tools() -> Result<()> {
    if on_path("redis-server") && on_path("redis-benchmark") {
        return Ok(());
    }
    eprintln!("bench store: installing redis-server and redis-tools");
    setup::output(Command::new("apt-get").args(["update", "-q"]))?;
    setup::output(Command::new("apt-get").args(["install", "-y", "-q", "redis-server", "redis-tools"]))?;
    Ok(())
}

/// Whether processes can be pinned: `taskset` exists and there are two CPUs.
fn can_pin() -> bool {
    on_path("taskset") && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// `cmd args...`, under `taskset -c cpu` when pinning.
fn pinned(pin: bool, cpu: u32, program: &Path) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpu.to_string()).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts one server with persistence off on a free loopback port.
fn start(which: Which, pin: bool) -> Result<Running> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("bench-store-{}-{}-{port}", which.name(), std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let common = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--enable-debug-command",
        "yes",
        "--dir",
        &dir.display().to_string(),
    ]
    .map(String::from);
    let mut cmd = match which {
        Which::Cowstore => pinned(pin, 0, &target_dir().join("release/cowstore")),
        Which::Redis => {
            let mut c = pinned(pin, 0, Path::new("redis-server"));
            c.args(["--daemonize", "no"]);
            c
        }
    };
    let child = cmd
        .args(&common)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", which.name()))?;
    let mut server = Running { child, port, dir };
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = server.child.try_wait() {
            bail!("{} exited at startup: {st}", which.name());
        }
        if command(port, &["PING"]).is_ok_and(|r| r == "PONG") {
            return Ok(server);
        }
        if start.elapsed() > Duration::from_secs(15) {
            bail!("{} did not answer PING on port {port}", which.name());
        }
        sleep(Duration::from_millis(50));
    }
}

/// Sends one command and returns its reply's text (simple string, integer or bulk).
fn command(port: u16, args: &[&str]) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(600)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        let _ = write!(req, "${}\r\n{a}\r\n", a.len());
    }
    s.write_all(req.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end();
    match line.as_bytes().first() {
        Some(b'+' | b':') => Ok(line[1..].to_string()),
        Some(b'$') => {
            let n: usize = line[1..].parse().context("bulk length")?;
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(n);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Some(b'-') => bail!("{args:?}: {}", &line[1..]),
        _ => bail!("{args:?}: unexpected reply {line:?}"),
    }
}

/// A `field:value` of an INFO reply.
fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
}

/// VmRSS of a process, in bytes.
fn vm_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kb * 1024)
}

/// Runs redis-benchmark once against `port` with pipeline `pipeline`.
fn benchmark(port: u16, pipeline: u32, requests: u64, pin: bool) -> Result<BTreeMap<String, Sample>> {
    let out = pinned(pin, 1, Path::new("redis-benchmark"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set,get", "--csv"])
        .args(["-n", &requests.to_string(), "-r", "100000", "-c", "50", "-P", &pipeline.to_string()])
        .stdin(Stdio::null())
        .output()
        .context("run redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("redis-benchmark failed ({}): {text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    parse_csv(&text)
}

/// Parses `redis-benchmark --csv`: a header naming the columns, then one line per test.
fn parse_csv(text: &str) -> Result<BTreeMap<String, Sample>> {
    let mut lines = text.lines().filter(|l| l.starts_with('"'));
    let split = |l: &str| -> Vec<String> { l.split(',').map(|f| f.trim_matches('"').to_string()).collect() };
    let header = split(lines.next().context("no CSV header from redis-benchmark")?);
    let col = |name: &str| header.iter().position(|h| h == name).with_context(|| format!("no {name} column"));
    let (test, rps, p50, p99) = (col("test")?, col("rps")?, col("p50_latency_ms")?, col("p99_latency_ms")?);
    let mut out = BTreeMap::new();
    for l in lines {
        let f = split(l);
        let num = |i: usize| -> Result<f64> { f.get(i).context("short CSV line")?.parse().context("CSV number") };
        out.insert(f[test].clone(), Sample { rps: num(rps)?, p50: num(p50)?, p99: num(p99)? });
    }
    for t in TESTS {
        if !out.contains_key(t) {
            bail!("no {t} result in redis-benchmark output:\n{text}");
        }
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Fills a fresh server with `keys` keys of `POPULATE_SIZE` bytes and reads its memory.
fn memory(which: Which, keys: u64, pin: bool) -> Result<Memory> {
    let server = start(which, pin)?;
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

/// Facts about the machine for the report.
fn machine() -> Vec<(&'static str, String)> {
    let sh = |cmd: &str| -> String {
        Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    vec![
        ("date", sh("date -u '+%Y-%m-%d %H:%M UTC'")),
        ("nproc", sh("nproc")),
        ("kernel", sh("uname -sr")),
        ("cpu", sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-")),
        ("memory", sh("free -h | awk '/^Mem:/ {print $2}'")),
        ("load average at start", sh("cut -d' ' -f1-3 /proc/loadavg")),
        ("redis-server", sh("redis-server --version")),
        ("redis-benchmark", sh("redis-benchmark --version")),
        ("rustc", sh("rustc --version")),
    ]
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
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
    ensure_tools()?;
    setup::cargo(&["build", "--release", "-p", "cowstore"])?;
    let pin = can_pin();
    if !pin {
        eprintln!("bench store: not pinning (needs taskset and two CPUs)");
    }

    // Throughput: both servers up for the whole run, warmed once, then
    // alternating ABBA within each round so drift hits both alike.
    let servers = [start(Which::Cowstore, pin)?, start(Which::Redis, pin)?];
    for s in &servers {
        benchmark(s.port, 16, requests.min(200_000), pin)?;
    }
    let mut samples: BTreeMap<(Which, u32, String), Vec<Sample>> = BTreeMap::new();
    for round in 0..rounds {
        for (i, &pipeline) in PIPELINES.iter().enumerate() {
            let order = if (round + i) % 2 == 0 { [0, 1] } else { [1, 0] };
            for idx in order {
                let which = [Which::Cowstore, Which::Redis][idx];
                eprintln!("bench store: round {}/{rounds}, -P {pipeline}, {}", round + 1, which.name());
                for (test, s) in benchmark(servers[idx].port, pipeline, requests, pin)? {
                    samples.entry((which, pipeline, test)).or_default().push(s);
                }
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
    println!("\n{setup_line}\n\n{table}\n{spread}\n{memtable}");
    let verdict = if misses.is_empty() {
        "Targets met: ratio >= 1.0 on every row and RSS no more than redis-server's.".to_string()
    } else {
        format!("Targets missed:\n{}", misses.iter().map(|m| format!("- {m}")).collect::<Vec<_>>().join("\n"))
    };
    println!("{verdict}");

    if args.quick {
        eprintln!("\nbench store: quick run, docs/benchmarks.md left unchanged");
        return Ok(());
    }
    let mut doc = String::new();
    doc.push_str("# Benchmarks\n\n");
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
    doc.push_str("## Latest run\n\n");
    let _ = writeln!(doc, "Command: `cargo xtask {invoked}`\n");
    let _ = writeln!(doc, "Load: {setup_line}.\n");
    for (k, v) in &facts {
        let _ = writeln!(doc, "- {k}: {v}");
    }
    let _ = writeln!(doc, "- load average at the end: {load_end}");
    let _ = writeln!(doc, "\n### Throughput and latency\n\n{table}");
    let _ = writeln!(doc, "Each round's throughput:\n\n{spread}");
    let _ = writeln!(doc, "### Memory after `DEBUG POPULATE {keys} key {POPULATE_SIZE}`\n\n{memtable}");
    let _ = writeln!(doc, "### Verdict\n\n{verdict}");
    let path = workspace().canonicalize()?.join("docs/benchmarks.md");
    std::fs::write(&path, doc).with_context(|| format!("write {}", path.display()))?;
    eprintln!("\nbench store: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"SET\",\"465116.25\",\"1.610\",\"0.496\",\"1.519\",\"2.919\",\"3.303\",\"3.615\"\n\
                   \"GET\",\"769230.75\",\"0.956\",\"0.392\",\"0.919\",\"1.447\",\"2.023\",\"2.519\"\n";
        let r = parse_csv(csv).unwrap();
        assert_eq!(r["SET"].rps, 465116.25);
        assert_eq!(r["GET"].p50, 0.919);
        assert_eq!(r["GET"].p99, 2.023);
        assert!(parse_csv("\"test\",\"rps\"\n").is_err());
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
