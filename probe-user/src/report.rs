//! The report: one structure, printed as text (BCC-style) or as JSON.

use crate::{
    cow::{CowReport, Split, Tally},
    exposure::ExposureReport,
    files::FileReport,
    forks::{Ending, ForksReport},
    histo::{Scope, human_ns},
    procfs::Vmstat,
    selfcheck::Agreement,
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

/// What cowscope itself costs: kernel map memory and its own RSS.
#[derive(Debug, Serialize)]
pub struct Resources {
    /// Entries in the per-page map now (closed windows are folded out of it).
    pub page_map_entries: u64,
    /// Kernel memory per map, bytes (`memlock` of its fdinfo).
    pub maps: Vec<(String, u64)>,
    /// cowscope's resident memory, bytes.
    pub rss_bytes: u64,
}

/// Everything cowscope measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The target.
    pub target: TargetInfo,
    /// What the figures cover: the whole recording, or the interval since the
    /// previous interval report.
    pub scope: Scope,
    /// 1 for the first report printed, 2 for the next...
    pub report_number: u64,
    /// Seconds the figures cover.
    pub covers_s: f64,
    /// Seconds recorded so far.
    pub elapsed_s: f64,
    /// Why the recording ended (`interval` for periodic reports).
    pub ended_by: String,
    /// Whether the target exited while recording.
    pub target_exited: bool,
    /// Status the target passed to `exit`, if it exited that way.
    pub target_exit_code: Option<u32>,
    /// How the target ended, if it did (a signal included).
    pub target_ending: Option<Ending>,
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
    /// The kernel's own count of the target's copies (delay accounting)
    /// against cowscope's, over what the report covers.
    pub self_check: Option<Agreement>,
    /// Why the self-check could not run, if it could not.
    pub self_check_unavailable: Option<String>,
    /// What was lost.
    pub drops: Drops,
    /// What cowscope costs.
    pub resources: Resources,
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

fn ending(e: &Ending) -> String {
    match e {
        Ending::Exit(code) => format!("exited with status {code}"),
        Ending::Signal(sig) => format!("killed by signal {sig} ({})", signal_name(*sig)),
        Ending::Unknown => "exited".to_string(),
    }
}

fn signal_name(sig: u32) -> String {
    nix::sys::signal::Signal::try_from(sig as i32).map_or_else(|_| format!("SIG{sig}"), |s| s.as_str().to_string())
}

impl Report {
    /// The text report; `verbose` adds what cowscope itself costs.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        let t = &self.target;
        let _ = write!(out, "cowscope: PID {} ({})", t.pid, t.comm);
        match (self.scope, self.ended_by.as_str()) {
            (Scope::Interval, _) => {
                let _ = write!(
                    out,
                    ": report {}, per-interval figures for the last {:.2}s ({:.2}s recorded)",
                    self.report_number, self.covers_s, self.elapsed_s
                );
            }
            (Scope::Cumulative, "interval") => {
                let _ = write!(out, ": report {}, cumulative figures for {:.2}s", self.report_number, self.elapsed_s);
            }
            (Scope::Cumulative, by) => {
                let _ = write!(out, " for {:.2}s, ended by {by}", self.elapsed_s);
            }
        }
        if let Some(e) = &self.target_ending {
            let _ = write!(out, "; target {}", ending(e));
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
        match (&self.self_check, &self.self_check_unavailable) {
            (Some(a), _) => {
                let _ = writeln!(out, "self-check (delay accounting, target's copies and zero fills): {}", a.line());
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "self-check unavailable: {why}");
            }
            (None, None) => {}
        }
        let d = &self.drops;
        let _ = writeln!(
            out,
            "drops: ring buffer {}, page map {}, task map {}, in-flight map {}",
            d.ring_buffer, d.page_map, d.task_map, d.inflight_map
        );
        if d.page_map > 0 {
            let _ = writeln!(out, "WARNING: the page map was full: {} faults are missing from the table", d.page_map);
        }
        if verbose {
            let r = &self.resources;
            let maps: Vec<String> =
                r.maps.iter().map(|(name, bytes)| format!("{name} {:.1} MiB", *bytes as f64 / MIB)).collect();
            let _ = writeln!(
                out,
                "cowscope: RSS {:.1} MiB; page map entries {}; kernel maps: {}",
                r.rss_bytes as f64 / MIB,
                r.page_map_entries,
                maps.join(", ")
            );
        }
        out
    }

    fn render_forks(&self, out: &mut String) {
        let f = &self.forks;
        let _ = writeln!(out, "forks: {} (threads created: {})", f.count, self.threads_created);
        for w in &f.windows {
            let life = match (w.lifetime_ns, w.teardown_ns) {
                (Some(ns), Some(t)) => format!("lived {} + {} releasing its memory", human_ns(ns), human_ns(t)),
                (Some(ns), None) => format!("lived {}", human_ns(ns)),
                (None, _) => "still alive".to_string(),
            };
            let status = match &w.ending {
                Some(Ending::Exit(c)) => format!(", exit status {c}"),
                Some(Ending::Signal(s)) => format!(", killed by signal {s} ({})", signal_name(*s)),
                Some(Ending::Unknown) => ", died without exit()".to_string(),
                None => String::new(),
            };
            let kind = if w.epoch > 0 { format!("window {}", w.epoch) } else { "shares memory, no window".to_string() };
            let fork = match (w.fork_latency_ns, w.fork_call_ns) {
                (Some(ns), Some(call)) => {
                    format!("fork {} (syscall), {} (caller's fork())", human_ns(ns), human_ns(call))
                }
                (Some(ns), None) => format!("fork {} (syscall)", human_ns(ns)),
                (None, _) => "fork not seen".to_string(),
            };
            let at = if w.start_ns >= 0 {
                format!("at +{}", human_ns(w.start_ns as u64))
            } else {
                format!("started {} before recording", human_ns(w.start_ns.unsigned_abs()))
            };
            let _ = writeln!(out, "  PID {} -> child {} ({kind}): {fork}, {at}, {life}{status}", w.parent, w.child);
            if w.attached_mid_window {
                let _ = writeln!(
                    out,
                    "    attached mid-window: copies before cowscope attached are unknown; figures cover the rest"
                );
            }
            if let Some(a) = &w.self_check {
                let _ = writeln!(out, "    self-check over the window: {}", a.line());
            }
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
        if f.latency.count > 0 {
            out.push('\n');
            out.push_str(&f.latency.render("fork latency (syscall entry to return in the parent)"));
        }
        if f.call_latency.count > 0 {
            out.push('\n');
            out.push_str(&f.call_latency.render(
                "fork latency as the caller saw it (libc fork() to return: what Redis's latest_fork_usec measures)",
            ));
        }
        if f.lifetime.count > 0 {
            out.push('\n');
            out.push_str(&f.lifetime.render("snapshot window (fork to the child's memory released)"));
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
        if c.shared_mappings.faults > 0 {
            let _ = writeln!(
                out,
                "  shared mappings (MAP_SHARED: dirty tracking, not copy-on-write; not in the rows above): \
                 {} write faults on {} pages",
                c.shared_mappings.faults, c.shared_mappings.pages
            );
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
