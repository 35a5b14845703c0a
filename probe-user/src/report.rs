//! The report: one structure, printed as text (BCC-style) or as JSON.

use crate::{
    cow::{CowReport, Split, Tally},
    exposure::ExposureReport,
    files::FileReport,
    forks::ForksReport,
    histo::human_ns,
    procfs::Vmstat,
};
use serde::Serialize;
use std::fmt::Write;

/// The process recorded.
#[derive(Clone, Debug, Serialize)]
pub struct TargetInfo {
    /// Its PID.
    pub pid: u32,
    /// Its command name.
    pub comm: String,
    /// Its executable.
    pub exe: String,
}

/// Records and entries the kernel side could not keep (all should be 0).
#[derive(Debug, Serialize)]
pub struct Drops {
    /// Records lost to a full ring buffer.
    pub ring_buffer: u64,
    /// Faults not counted per page (totals still exact).
    pub page_map: u64,
    /// Children not followed.
    pub task_map: u64,
    /// Syscalls not timed.
    pub inflight_map: u64,
}

impl Drops {
    /// Sum of all drops.
    pub fn total(&self) -> u64 {
        self.ring_buffer + self.page_map + self.task_map + self.inflight_map
    }
}

/// Everything cowscope measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The target.
    pub target: TargetInfo,
    /// Seconds recorded.
    pub elapsed_s: f64,
    /// Why the recording ended (`interval` for periodic reports).
    pub ended_by: String,
    /// Whether the target exited while recording.
    pub target_exited: bool,
    /// Status the target passed to `exit`, if it exited that way.
    pub target_exit_code: Option<u32>,
    /// Threads created by followed processes (not counted as forks).
    pub threads_created: u64,
    /// Forks and snapshot windows.
    pub forks: ForksReport,
    /// The copy-on-write table.
    pub cow: CowReport,
    /// `/proc/vmstat` deltas over the whole recording (system-wide counters).
    pub vmstat_delta: Vmstat,
    /// Sync and write statistics per file.
    pub files: Vec<FileReport>,
    /// Ack-to-durable exposure from cowstore's markers, when the target has them.
    pub exposure: Option<ExposureReport>,
    /// What was lost.
    pub drops: Drops,
    /// Per-program run counts and times, when `kernel.bpf_stats_enabled` is 1.
    pub programs: Vec<ProgramCost>,
}

/// What one eBPF program cost, from the kernel's BPF statistics.
#[derive(Debug, Serialize)]
pub struct ProgramCost {
    /// Program name.
    pub name: String,
    /// Times it ran.
    pub runs: u64,
    /// Total time it ran, ns.
    pub run_time_ns: u64,
}

const MIB: f64 = (1 << 20) as f64;

fn tally_row(out: &mut String, label: &str, t: &Tally) {
    let _ = writeln!(
        out,
        "  {label:<26} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10.1}",
        t.faults,
        t.copies,
        t.reuses,
        t.zero_fills,
        t.pages,
        t.copied_pages,
        t.bytes_copied as f64 / MIB
    );
}

fn split_rows(out: &mut String, prefix: &str, s: &Split) {
    tally_row(out, &format!("{prefix}target, in window"), &s.parent_window);
    tally_row(out, &format!("{prefix}target, outside"), &s.parent_outside);
    tally_row(out, &format!("{prefix}children"), &s.child);
}

fn vmstat_line(v: &Vmstat) -> String {
    v.iter().map(|(k, d)| format!("{k} +{d}")).collect::<Vec<_>>().join("  ")
}

impl Report {
    /// The text report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let t = &self.target;
        let _ = write!(out, "cowscope: PID {} ({}) for {:.2}s", t.pid, t.comm, self.elapsed_s);
        if self.ended_by == "interval" {
            out.push_str(" (interval report)");
        } else {
            let _ = write!(out, ", ended by {}", self.ended_by);
        }
        if self.target_exited {
            match self.target_exit_code {
                Some(code) => {
                    let _ = write!(out, "; target exited with status {code}");
                }
                None => out.push_str("; target exited"),
            }
        }
        out.push_str("\n\n");
        self.render_forks(&mut out);
        self.render_cow(&mut out);
        self.render_files(&mut out);
        if let Some(x) = &self.exposure {
            let _ = writeln!(
                out,
                "cowstore markers: {} writes acked, {} fsyncs done, durable up to offset {}, \
                 {} still exposed, {} forks, snapshots ok {} failed {}",
                x.writes_acked,
                x.fsyncs_done,
                x.durable_offset,
                x.still_exposed,
                x.forks.len(),
                x.snapshots_ok,
                x.snapshots_failed
            );
            out.push_str(&x.exposure.render("ack-to-durable exposure per write"));
            out.push('\n');
        }
        let runs: u64 = self.programs.iter().map(|p| p.runs).sum();
        if runs > 0 {
            let ns: u64 = self.programs.iter().map(|p| p.run_time_ns).sum();
            let _ = writeln!(
                out,
                "eBPF cost: {runs} program runs, {} total, {:.0} ns per run",
                human_ns(ns),
                ns as f64 / runs as f64
            );
        }
        let d = &self.drops;
        let _ = writeln!(
            out,
            "drops: ring buffer {}, page map {}, task map {}, in-flight map {}",
            d.ring_buffer, d.page_map, d.task_map, d.inflight_map
        );
        out
    }

    fn render_forks(&self, out: &mut String) {
        let f = &self.forks;
        let _ = writeln!(out, "forks: {} (threads created: {})", f.count, self.threads_created);
        for w in &f.windows {
            let life = match w.lifetime_ns {
                Some(ns) => format!("lived {}", human_ns(ns)),
                None => "still alive".to_string(),
            };
            let status = match (w.exited, w.exit_code) {
                (true, Some(c)) => format!(", exit status {c}"),
                (true, None) => ", died without exit()".to_string(),
                _ => String::new(),
            };
            let kind = if w.epoch > 0 { format!("window {}", w.epoch) } else { "shares memory, no window".to_string() };
            let _ = writeln!(
                out,
                "  PID {} -> child {} ({kind}): fork {}, at +{}, {life}{status}",
                w.parent,
                w.child,
                human_ns(w.fork_latency_ns),
                human_ns(w.start_ns)
            );
            if let Some(pages) = w.copies_before_exit {
                let _ = writeln!(
                    out,
                    "    target copied {pages} pages ({:.1} MiB) before the child called exit",
                    (pages * 4096) as f64 / MIB
                );
                let row = self.cow.windows.iter().find(|r| r.child == w.child && r.epoch == w.epoch);
                if let Some(c) = row.map(|r| r.child_faults) {
                    let private = pages + c.copied_pages + c.zero_fills;
                    let _ = writeln!(
                        out,
                        "    with the child's own {} copies and {} zero fills, {private} pages ({:.1} MiB) were \
                         private to the child (what rdb_last_cow_size, its Private_Dirty, counts)",
                        c.copied_pages,
                        c.zero_fills,
                        (private * 4096) as f64 / MIB
                    );
                }
            }
            if !w.vmstat_delta.is_empty() {
                let _ = writeln!(out, "    vmstat over the window: {}", vmstat_line(&w.vmstat_delta));
            }
            if !w.copy_gauge.is_empty() {
                let n = w.copy_gauge.len();
                let step = n.div_ceil(12).max(1);
                let points: Vec<String> = (0..n)
                    .filter(|i| i % step == 0 || *i == n - 1)
                    .map(|i| {
                        let (ms, pages) = w.copy_gauge[i];
                        format!("+{ms}ms:{pages}")
                    })
                    .collect();
                let _ = writeln!(out, "    memory gauge (pages copied): {}", points.join(" "));
            }
        }
        if f.count > 0 {
            out.push('\n');
            out.push_str(&f.latency.render("fork latency (syscall entry to return in the parent)"));
            out.push('\n');
            out.push_str(&f.lifetime.render("snapshot window (child lifetime)"));
        }
        out.push('\n');
    }

    fn render_cow(&self, out: &mut String) {
        let c = &self.cow;
        let _ = writeln!(
            out,
            "copy-on-write (write faults on present pages)\n  {:<26} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "", "faults", "copies", "reuses", "zero fills", "pages", "copied pg", "MiB copied"
        );
        split_rows(out, "", &c.total);
        split_rows(out, "4K ", &c.base_pages);
        split_rows(out, "THP ", &c.huge_pages);
        for w in &c.windows {
            tally_row(out, &format!("window {} target", w.epoch), &w.parent_faults);
            tally_row(out, &format!("window {} child {}", w.epoch, w.child), &w.child_faults);
        }
        let _ = writeln!(out, "  per region (window copies / outside faults / child copies, THP at fork):");
        for r in c.regions.iter().take(12) {
            let _ = writeln!(
                out,
                "    {:012x}-{:012x} {:<7} {:<28} {:>9} / {:>9} / {:>9}  THP {:.1} MiB",
                r.start,
                r.end,
                format!("{:?}", r.kind).to_lowercase(),
                truncate(&r.path, 28),
                r.split.parent_window.copies,
                r.split.parent_outside.faults,
                r.split.child.copies,
                r.anon_huge_bytes as f64 / MIB
            );
        }
        if c.regions.len() > 12 {
            let _ = writeln!(out, "    ... {} more regions (see --json)", c.regions.len() - 12);
        }
        let _ = writeln!(out, "  vmstat over the recording: {}\n", vmstat_line(&self.vmstat_delta));
    }

    fn render_files(&self, out: &mut String) {
        for f in &self.files {
            let _ = writeln!(out, "file {}", f.path);
            for (name, s) in [("fsync", &f.fsync), ("fdatasync", &f.fdatasync), ("sync_file_range", &f.sync_file_range)]
            {
                if s.count > 0 {
                    out.push_str(&s.render(&format!("  {name} latency")));
                }
            }
            if f.interval.count > 0 {
                out.push_str(&f.interval.render("  interval between syncs"));
            }
            if f.write.count > 0 {
                out.push_str(&f.write.render("  write latency"));
                out.push_str(&f.write_behind_sync.render("  write latency, sync running"));
            }
            if f.failed_syncs > 0 {
                let _ = writeln!(out, "  failed syncs: {}", f.failed_syncs);
            }
            out.push('\n');
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let tail: String = s.chars().rev().take(n - 1).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}
