//! `cargo xtask bench soak`: a long recording of a target that forks every
//! 2 s and rewrites its memory each time, with cowscope's own resident memory
//! and its kernel maps' memory read from each interval report. Both must stay
//! flat: closed windows are folded out of the kernel's page map. Results go
//! to the `soak` section of docs/benchmarks.md.

use crate::servers::{machine, mib, write_doc_section};
use crate::setup;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::{fmt::Write as _, process::Command};

/// Options of `bench soak`.
#[derive(clap::Args)]
pub struct Args {
    /// Minutes to record.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// MiB the target writes after each fork.
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// A smoke run (1 minute, a report every 10 s); docs/benchmarks.md is left as it is.
    #[arg(long)]
    quick: bool,
}

/// Runs the recording and reports cowscope's memory over it.
pub fn run(mut args: Args) -> Result<()> {
    setup::run()?;
    let interval = if args.quick { 10 } else { 60 };
    if args.quick {
        args.minutes = 1;
    }
    setup::cargo(&["build", "--release", "-p", "probe-user"])?;
    let bin = setup::target_dir().join("release");
    let result = std::env::temp_dir().join(format!("cowscope-soak-{}.json", std::process::id()));
    let out = Command::new(bin.join("cowscope"))
        .args(["run", "--as-user", "root", "--json", "-i", &interval.to_string(), "--"])
        .arg(bin.join("cowscope-groundtruth"))
        .args(["forker", &args.mib.to_string(), "2000", &(args.minutes * 60).to_string()])
        .arg(&result)
        .output()
        .context("run cowscope")?;
    if !out.status.success() {
        bail!("cowscope failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let reports: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("cowscope's JSON reports")?;
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&result)?)?;
    let _ = std::fs::remove_file(&result);
    let mut doc = format!(
        "## A long recording: cowscope's memory\n\nCommand: `sudo cargo xtask bench soak`\n\n\
         `cowscope run --json -i {interval}` of `cowscope-groundtruth forker {} 2000 {}`: {} MiB rewritten after \
         each fork, a fork every 2 s ({} forks, {} copies per the kernel).\n\n",
        args.mib,
        args.minutes * 60,
        args.mib,
        truth["forks"],
        truth["wpcopy_after"].as_u64().unwrap_or(0).saturating_sub(truth["wpcopy_before"].as_u64().unwrap_or(0)),
    );
    for (k, v) in machine() {
        let _ = writeln!(doc, "- {k}: {v}");
    }
    doc.push_str(
        "\n| Report | recorded s | forks | copies | page map entries | PAGES map | all maps | cowscope RSS | self-check |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let mut copies = 0;
    for r in &reports {
        let res = &r["resources"];
        let maps: Vec<(String, u64)> = serde_json::from_value(res["maps"].clone()).unwrap_or_default();
        let pages_map = maps.iter().find(|(n, _)| n == "PAGES").map_or(0, |m| m.1);
        let total: u64 = maps.iter().map(|m| m.1).sum();
        let w = &r["cow"]["total"]["parent_window"];
        copies += w["copies"].as_u64().unwrap_or(0) + w["zero_fills"].as_u64().unwrap_or(0);
        let check = match r["self_check"].as_object() {
            Some(c) => format!("{} / {}", c["cowscope"], c["kernel"]),
            None => "-".into(),
        };
        let _ = writeln!(
            doc,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {check} |",
            r["report_number"],
            r["elapsed_s"].as_f64().unwrap_or(0.0),
            r["forks"]["count"],
            w["copies"],
            res["page_map_entries"],
            mib(pages_map),
            mib(total),
            mib(res["rss_bytes"].as_u64().unwrap_or(0)),
        );
    }
    let _ = writeln!(doc, "\nCopies in windows over all reports: {copies}.");
    println!("{doc}");
    if args.quick {
        eprintln!("bench soak: quick run, docs/benchmarks.md left unchanged");
        return Ok(());
    }
    let path = write_doc_section("soak", &doc)?;
    eprintln!("bench soak: wrote {}", path.display());
    Ok(())
}
