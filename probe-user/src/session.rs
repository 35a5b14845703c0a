//! The recording loop: drains the ring buffer and the eBPF log as they become
//! readable (and the ring every [`GAUGE_PERIOD`], for the records the programs
//! send without a wake-up), samples the gauge, prints periodic reports, and
//! stops on the duration, the count of reports, the target's exit, Ctrl-C,
//! SIGTERM or SIGHUP.

use crate::{histo::Scope, loader::Probe, recorder::Recorder, report::Report};
use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use probe_ebpf::Event;
use std::{io::Write, time::Duration};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    time::{Instant, interval, sleep_until},
};

/// How often the memory gauge is sampled and the ring buffer drained unprompted.
const GAUGE_PERIOD: Duration = Duration::from_millis(100);

/// When and how to report while recording.
pub struct Plan {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print a report this often.
    pub interval: Option<Duration>,
    /// Stop after this many interval reports.
    pub count: Option<u64>,
    /// Interval reports are cumulative.
    pub cumulative: bool,
}

impl Plan {
    /// What interval reports cover.
    fn interval_scope(&self) -> Scope {
        if self.cumulative { Scope::Cumulative } else { Scope::Interval }
    }
}

/// Where reports go, and how they are written.
pub struct Output {
    /// Standard output, or the `-o` file.
    pub to: Box<dyn Write>,
    /// JSON lines instead of text.
    pub json: bool,
    /// Text reports add what cowscope costs.
    pub verbose: bool,
}

impl Output {
    /// Writes one report.
    pub fn print(&mut self, report: &Report) -> Result<()> {
        if self.json {
            writeln!(self.to, "{}", serde_json::to_string(report)?)?;
        } else {
            writeln!(self.to, "{}", report.render(self.verbose))?;
        }
        self.to.flush().context("writing the report")
    }
}

fn drain(ring: &mut RingBuf<MapData>, rec: &mut Recorder, probe: &mut Probe) {
    while let Some(item) = ring.next() {
        if item.len() >= size_of::<Event>() {
            // SAFETY: the programs only submit whole `Event`s; read_unaligned
            // copes with the ring buffer's 8-byte alignment.
            let e = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) };
            drop(item);
            match e.decode() {
                Some(record) => rec.handle(&record, probe),
                None => log::warn!("unknown record kind: {e:?}"),
            }
        }
    }
}

/// Records until the plan or the target ends it, printing interval reports
/// and, unless the count of them ended it, the last report; returns why it
/// ended. `banner` goes to stderr once the signals that end a recording are
/// caught (a signal sent after it always gets its report).
pub async fn record(
    probe: &mut Probe,
    rec: &mut Recorder,
    plan: &Plan,
    out: &mut Output,
    banner: &str,
) -> Result<&'static str> {
    // SAFETY: the ring buffer and the logger own their map fds, which stay
    // open and unchanged until the AsyncFd drops them.
    let mut ring = unsafe { AsyncFd::register_with_interest(probe.events()?, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("watching the ring buffer")?;
    let mut logger = match probe.logger() {
        Ok(l) => Some(
            // SAFETY: as above.
            unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }.map_err(|e| e.into_parts().1)?,
        ),
        Err(e) => {
            log::warn!("no eBPF log: {e}");
            None
        }
    };
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    eprintln!("{banner}");
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let deadline = plan.duration.map_or(far, |d| Instant::now() + d);
    let mut next_report = plan.interval.map_or(far, |i| Instant::now() + i);
    let mut gauge = interval(GAUGE_PERIOD);
    let mut reports = 0u64;
    let ended_by = loop {
        let stop = tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), rec, probe);
                guard.clear_ready();
                None
            }
            guard = async { logger.as_mut()?.readable_mut().await.ok() }, if logger.is_some() => {
                if let Some(mut guard) = guard {
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                None
            }
            _ = gauge.tick() => {
                drain(ring.get_mut(), rec, probe);
                rec.sample(probe);
                None
            }
            _ = sleep_until(next_report) => {
                drain(ring.get_mut(), rec, probe);
                rec.sample(probe);
                reports += 1;
                let last = plan.count.is_some_and(|n| reports >= n);
                let ended_by = if last { "count" } else { "interval" };
                out.print(&rec.report(probe, ended_by, plan.interval_scope(), last)?)?;
                next_report += plan.interval.unwrap_or(Duration::MAX / 4);
                last.then_some("count")
            }
            _ = sleep_until(deadline) => Some("duration"),
            _ = sigint.recv() => Some("SIGINT"),
            _ = sigterm.recv() => Some("SIGTERM"),
            _ = sighup.recv() => Some("SIGHUP"),
        };
        if let Some(reason) = stop {
            break reason;
        }
        if rec.target_exited() {
            break "target exit";
        }
    };
    drain(ring.get_mut(), rec, probe);
    rec.sample(probe);
    if let Some(l) = logger.as_mut() {
        l.get_mut().flush();
    }
    if ended_by != "count" {
        let scope = if plan.interval.is_some() { plan.interval_scope() } else { Scope::Cumulative };
        out.print(&rec.report(probe, ended_by, scope, true)?)?;
    }
    Ok(ended_by)
}
