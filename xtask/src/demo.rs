//! `cargo xtask demo`: the project in one command. Starts cowstore, loads
//! data, records it with cowscope while a redis-benchmark write load runs and
//! a BGSAVE snapshots the keyspace, then prints cowscope's report next to
//! cowstore's own figures.

use crate::setup;
use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Demo options.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Distinct keys to load (and to overwrite under load).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: u64,
    /// AOF fsync policy for the run (always, everysec, no).
    #[arg(long, default_value = "everysec")]
    appendfsync: String,
}

/// Runs the demo.
pub fn run(args: Args) -> Result<()> {
    setup::run()?;
    setup::cargo(&["build", "--release", "-p", "cowstore", "-p", "probe-user"])?;
    let bin = setup::target_dir().join("release");
    let dir = std::env::temp_dir().join(format!("cowscope-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    println!("== starting cowstore on 127.0.0.1:{port} (dir {}, appendfsync {})", dir.display(), args.appendfsync);
    let mut server = Guard(
        Command::new(bin.join("cowstore"))
            .args(["--port", &port.to_string(), "--dir", dir.to_str().unwrap_or("."), "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", &args.appendfsync, "--auto-aof-rewrite-percentage", "0"])
            .args(["--logfile", "cowstore.log"])
            .spawn()
            .context("starting cowstore")?,
    );
    wait_port(port)?;
    // The load's own key names (DEBUG POPULATE's differ): new keys during the
    // snapshot would grow the keyspace's table, and the old one, freed by the
    // parent, would become private to the child without any copy.
    println!("== loading ~{} keys of {} bytes (redis-benchmark SET, pipeline 64)", args.keys, args.value_size);
    let populated = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "set", "-r", &args.keys.to_string(), "-n", &(3 * args.keys).to_string()])
        .args(["-c", "50", "-P", "64", "-d", &args.value_size.to_string(), "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("starting redis-benchmark (apt-get install redis-tools)")?;
    if !populated.success() {
        bail!("populating cowstore failed: {populated}");
    }
    let pid = server.0.id();
    println!("== recording pid {pid} with cowscope");
    let mut scope = Command::new(bin.join("cowscope"))
        .args(["record", "-p", &pid.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cowscope")?;
    wait_for_line(scope.stderr.take().context("cowscope stderr")?, "Tracing PID")?;
    // Both exposure figures then cover the same writes.
    call(port, &["DURABILITY", "RESET"])?;
    println!("== write load: redis-benchmark SET, 50 clients, pipeline 16, random keys");
    let mut load = Guard(
        Command::new("redis-benchmark")
            .args(["-p", &port.to_string(), "-t", "set", "-n", "100000000", "-r", &args.keys.to_string()])
            .args(["-c", "50", "-P", "16", "-d", &args.value_size.to_string(), "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-benchmark (apt-get install redis-tools)")?,
    );
    std::thread::sleep(Duration::from_secs(2));
    println!("== BGSAVE under load");
    println!("   {}", call(port, &["BGSAVE"])?);
    let t = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if info_field(port, "rdb_bgsave_in_progress")? == "0" {
            break;
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("BGSAVE did not finish in 5 minutes");
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let _ = load.0.kill();
    let _ = load.0.wait();
    // Let the last acknowledged writes become durable before stopping cowscope.
    let t = Instant::now();
    while info_field(port, "durability_pending_writes")? != "0" && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGINT ends the recording cleanly; cowscope prints its report.
    let st = Command::new("kill").args(["-INT", &scope.id().to_string()]).status()?;
    if !st.success() {
        bail!("could not stop cowscope");
    }
    let status = scope.wait()?;
    println!("== cowstore's own figures");
    for f in [
        "rdb_last_bgsave_status",
        "rdb_last_cow_size",
        "rdb_last_bgsave_time_sec",
        "latest_fork_usec",
        "aof_delayed_fsync",
        &format!("exposure_{}", args.appendfsync),
    ] {
        println!("   {f}:{}", info_field(port, f).unwrap_or_else(|_| "?".into()));
    }
    let _ = call(port, &["SHUTDOWN", "NOSAVE"]);
    let _ = server.0.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        bail!("cowscope exited with {status}");
    }
    Ok(())
}

/// Kills the child when dropped (an early error must not leave servers running).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16) -> Result<()> {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("server on port {port} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn wait_for_line(from: impl Read + Send + 'static, needle: &str) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        let mut seen = false;
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if !seen && line.contains(&needle) {
                seen = true;
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).context("cowscope did not start tracing (is this root?)")
}

/// Sends one command and returns the reply's first line (bulk replies read whole).
fn call(port: u16, args: &[&str]) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if let Some(n) = line.strip_prefix('$') {
        let n: usize = n.trim().parse().unwrap_or(0);
        let mut body = vec![0u8; n + 2];
        r.read_exact(&mut body)?;
        return Ok(String::from_utf8_lossy(&body[..n]).into_owned());
    }
    Ok(line.trim_end().to_string())
}

fn info_field(port: u16, name: &str) -> Result<String> {
    let info = call(port, &["INFO", "everything"])?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("INFO has no {name}"))
}
