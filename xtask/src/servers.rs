//! What the benchmark harnesses share: starting cowstore or Debian's
//! redis-server with the same options, talking to them, reading their
//! memory, pinning, machine facts, and writing a section of a results file.

use crate::setup;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use test_support::{Raw, Resp};

/// The two servers compared.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Which {
    /// `target/release/cowstore`.
    Cowstore,
    /// Debian's `redis-server`.
    Redis,
}

impl Which {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Which::Cowstore => "cowstore",
            Which::Redis => "redis-server",
        }
    }
}

/// A server process with its own directory; killed and cleaned up when dropped.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory.
    pub dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether processes can be pinned: `taskset` exists and there are two CPUs.
pub fn can_pin() -> bool {
    Command::new("sh").args(["-c", "command -v taskset"]).output().is_ok_and(|o| o.status.success())
        && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// `program`, under `taskset -c cpu` when pinning.
pub fn pinned(pin: bool, cpu: u32, program: &Path) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpu.to_string()).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts a server on a free loopback port in a fresh directory (on the same
/// disk for both), pinned to CPU 0 when `pin`. Both get the same options:
/// persistence off and DEBUG allowed, then `extra` (later options win).
/// Returns once it answers PING.
pub fn start(which: Which, pin: bool, extra: &[&str]) -> Result<Running> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("bench-{}-{}-{n}", which.name(), std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let started = test_support::start_server(|port| {
        let mut common = test_support::server_args(port, &dir);
        common.extend(["--enable-debug-command", "yes"].map(str::to_string));
        let mut cmd = match which {
            Which::Cowstore => pinned(pin, 0, &setup::target_dir().join("release/cowstore")),
            Which::Redis => {
                let mut c = pinned(pin, 0, Path::new("redis-server"));
                c.args(["--daemonize", "no"]);
                c
            }
        };
        cmd.args(common).args(extra).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
    });
    match started {
        Ok((child, port)) => Ok(Running { child, port, dir }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            bail!("{} did not start: {e}", which.name())
        }
    }
}

/// Sends one command and returns its reply's text (simple string, integer or bulk).
pub fn command(port: u16, args: &[&str]) -> Result<String> {
    let mut c = Raw::connect(port, Duration::from_secs(600)).with_context(|| format!("connect to port {port}"))?;
    let reply = c.request(&args.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>())?;
    match reply {
        Resp::Line(b'+' | b':', t) | Resp::Bulk(b'$', t) => Ok(String::from_utf8_lossy(&t).into_owned()),
        Resp::Line(b'-', e) => bail!("{args:?}: {}", String::from_utf8_lossy(&e)),
        other => bail!("{args:?}: unexpected reply {other:?}"),
    }
}

/// One redis-benchmark result line.
#[derive(Clone, Copy, Default, Debug)]
pub struct Sample {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
}

/// Runs `redis-benchmark --csv -t TESTS ARGS` against `port` (pinned to CPU 1
/// when `pin`) and returns each test's figures.
pub fn redis_benchmark(port: u16, tests: &[&str], args: &[&str], pin: bool) -> Result<BTreeMap<String, Sample>> {
    let out = pinned(pin, 1, Path::new("redis-benchmark"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", &tests.join(","), "--csv"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("redis-benchmark failed ({}): {text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let parsed = parse_csv(&text)?;
    for t in tests {
        if !parsed.contains_key(&t.to_ascii_uppercase()) {
            bail!("no {t} result in redis-benchmark output:\n{text}");
        }
    }
    Ok(parsed)
}

/// Parses `redis-benchmark --csv`: a header naming the columns, then one line per test.
pub fn parse_csv(text: &str) -> Result<BTreeMap<String, Sample>> {
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
    Ok(out)
}

/// The value of `field:value` in an INFO reply.
pub fn info_text<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| Some(l.strip_prefix(name)?.strip_prefix(':')?.trim()))
}

/// A numeric `field:value` of an INFO reply.
pub fn info_field(info: &str, name: &str) -> Option<u64> {
    info_text(info, name)?.parse().ok()
}

/// A child process killed when dropped (a background load must not outlive
/// an early error).
pub use test_support::KillOnDrop as Background;

/// `redis-benchmark -t set` against `port`: `requests` SETs of `size`-byte
/// values over `keys` random keys (`key:NNNNNNNNNNNN`), quiet.
pub fn set_load(port: u16, keys: u64, requests: u64, clients: u32, pipeline: u32, size: u64) -> Command {
    let mut c = Command::new("redis-benchmark");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set", "-q"])
        .args(["-r", &keys.to_string(), "-n", &requests.to_string(), "-d", &size.to_string()])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Runs `set_load` to completion.
pub fn run_set_load(port: u16, keys: u64, requests: u64, clients: u32, pipeline: u32, size: u64) -> Result<()> {
    let st = set_load(port, keys, requests, clients, pipeline, size)
        .status()
        .context("run redis-benchmark (apt-get install redis-tools)")?;
    if !st.success() {
        bail!("redis-benchmark SET load failed: {st}");
    }
    Ok(())
}

/// VmRSS of a process, in bytes.
pub fn vm_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kb * 1024)
}

/// CPU time a process has used (user + system, all threads), in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    static CLK_TCK: OnceLock<f64> = OnceLock::new();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(f.get(i).context("short /proc/PID/stat")?.parse::<f64>()?) };
    let hz = match CLK_TCK.get() {
        Some(hz) => *hz,
        None => {
            let hz = setup::output(Command::new("getconf").arg("CLK_TCK"))?.trim().parse().context("CLK_TCK")?;
            *CLK_TCK.get_or_init(|| hz)
        }
    };
    // utime and stime, fields 14 and 15 of stat(5), counted from field 3 (state) here.
    Ok((ticks(14 - 3)? + ticks(15 - 3)?) / hz)
}

/// Runs `work`, which serves `requests` requests, and returns its result
/// with the CPU time process `pid` spent per request, in µs.
pub fn cpu_per_request<T>(pid: u32, requests: u64, work: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let before = cpu_seconds(pid)?;
    let out = work()?;
    Ok((out, (cpu_seconds(pid)? - before) * 1e6 / requests as f64))
}

/// The median (NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Facts about the machine for a report.
pub fn machine() -> Vec<(&'static str, String)> {
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
        ("disk of the data dirs", sh("df -hT /tmp | awk 'NR==2 {print $2, $1}'")),
        ("load average at start", sh("cut -d' ' -f1-3 /proc/loadavg")),
        ("redis-server", sh("redis-server --version")),
        ("redis-benchmark", sh("redis-benchmark --version")),
        ("rustc", sh("rustc --version")),
    ]
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split(' ').next()?.parse().ok())
}

/// Replaces the section `name` of docs/benchmarks.md (between
/// `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`), appending it if absent,
/// so each harness rewrites only its own results.
pub fn write_doc_section(name: &str, body: &str) -> Result<PathBuf> {
    let path = setup::workspace().canonicalize()?.join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (format!("<!-- bench:{name} -->"), format!("<!-- /bench:{name} -->"));
    let block = format!("{open}\n{}\n{close}", body.trim_end());
    let new = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{block}{}", &text[..a], &text[b + close.len()..]),
        _ => format!("{}\n\n{block}\n", text.trim_end()),
    };
    std::fs::write(&path, new).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
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
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
