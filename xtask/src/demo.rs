//! `cargo xtask demo`: the project in one command. Starts cowstore, loads
//! data, records it with cowscope while a redis-benchmark write load runs and
//! a BGSAVE snapshots the keyspace, then prints cowscope's report next to
//! cowstore's own figures.

use crate::servers::{Which, command, start};
use crate::setup;
use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use std::io::{BufRead, BufReader, Read};
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
    /// Back the keyspace with transparent huge pages (`disable-thp no`,
    /// `keyspace-hugepages yes`) instead of Redis's default of 4 KiB pages.
    #[arg(long)]
    thp: bool,
}

/// Runs the demo.
pub fn run(args: Args) -> Result<()> {
    setup::run()?;
    setup::cargo(&["build", "--release", "-p", "cowstore", "-p", "probe-user"])?;
    let aof = ["--appendonly", "yes", "--appendfsync", &args.appendfsync, "--auto-aof-rewrite-percentage", "0"];
    let thp: &[&str] = if args.thp { &["--disable-thp", "no", "--keyspace-hugepages", "yes"] } else { &[] };
    let server = start(Which::Cowstore, false, &[&aof[..], thp].concat())?;
    let (port, pid) = (server.port, server.child.id());
    println!(
        "== cowstore on 127.0.0.1:{port}, pid {pid} (dir {}, appendfsync {}, {})",
        server.dir.display(),
        args.appendfsync,
        if args.thp { "keyspace on huge pages" } else { "4 KiB pages" }
    );
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
    // The load's last writes become durable within a second or two; then the
    // exposure figures of cowscope and cowstore start from the same state.
    wait_durable(port)?;
    println!("== recording pid {pid} with cowscope");
    let mut scope = Command::new(setup::target_dir().join("release/cowscope"))
        .args(["record", "-p", &pid.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cowscope")?;
    wait_for_line(scope.stderr.take().context("cowscope stderr")?, "Tracing PID")?;
    // Both exposure figures then cover the same writes.
    command(port, &["DURABILITY", "RESET"])?;
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
    println!("   {}", command(port, &["BGSAVE"])?);
    let t = Instant::now();
    while info(port, "rdb_bgsave_in_progress")? != "0" {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("BGSAVE did not finish in 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let _ = load.0.kill();
    let _ = load.0.wait();
    // Let the last acknowledged writes become durable before stopping cowscope.
    wait_durable(port)?;
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
        "anon_huge_pages",
        &format!("exposure_{}", args.appendfsync),
    ] {
        println!("   {f}:{}", info(port, f).unwrap_or_else(|_| "?".into()));
    }
    drop(server);
    if !status.success() {
        bail!("cowscope exited with {status}");
    }
    Ok(())
}

/// Kills the child when dropped (an early error must not leave a load running).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Echoes `from` line by line to stderr; returns once a line holds `needle`.
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

/// Waits (up to 5 s) until no acknowledged write is waiting for an fsync
/// (`appendfsync no` never gets there: its writes stay exposed).
fn wait_durable(port: u16) -> Result<()> {
    let t = Instant::now();
    while info(port, "durability_pending_writes")? != "0" && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Field `name` of `INFO everything`, as text.
fn info(port: u16, name: &str) -> Result<String> {
    let text = command(port, &["INFO", "everything"])?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("INFO has no {name}"))
}
