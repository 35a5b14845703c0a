//! `cargo xtask demo`: the project in one command. Starts cowstore, loads
//! data, records it with cowscope while a redis-benchmark write load runs and
//! a BGSAVE snapshots the keyspace, then prints cowscope's report next to
//! cowstore's own figures.

use crate::recording::record;
use crate::servers::{Background, Which, command, info_text, run_set_load, set_load, start};
use crate::setup;
use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
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
    run_set_load(port, args.keys, 3 * args.keys, 50, 64, args.value_size).context("populating cowstore")?;
    println!("== recording pid {pid} with cowscope");
    let scope = record(pid, &[], false, true)?;
    // From here on both exposure figures cover the same writes: those still
    // waiting for an fsync are left out of both (cowscope never saw their
    // acknowledgement; cowstore's reset leaves them out).
    command(port, &["DURABILITY", "RESET"])?;
    println!("== write load: redis-benchmark SET, 50 clients, pipeline 16, random keys");
    let load = Background(
        set_load(port, args.keys, 100_000_000, 50, 16, args.value_size)
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
    drop(load);
    // Let the last acknowledged writes become durable before stopping cowscope.
    wait_durable(port)?;
    // SIGINT ends the recording cleanly; cowscope prints its report.
    let status = scope.finish()?.status;
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
    info_text(&text, name).map(str::to_string).with_context(|| format!("INFO has no {name}"))
}
