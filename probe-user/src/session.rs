//! The recording loop: drains the ring buffer and the eBPF log as they become
//! readable (and the ring every [`GAUGE_PERIOD`], for the records the programs
//! send without a wake-up), samples the gauge, prints periodic reports, and
//! stops on the duration, the target's exit, Ctrl-C or SIGTERM.

use crate::{loader::Probe, recorder::Recorder};
use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use probe_ebpf::Event;
use std::time::Duration;
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
    /// Print reports as JSON lines.
    pub json: bool,
}

fn drain(ring: &mut RingBuf<MapData>, rec: &mut Recorder) {
    while let Some(item) = ring.next() {
        if item.len() >= size_of::<Event>() {
            // SAFETY: the programs only submit whole `Event`s; read_unaligned
            // copes with the ring buffer's 8-byte alignment.
            let e = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) };
            rec.handle(&e);
        }
    }
}

/// Prints a report as text or JSON.
pub fn print(report: &crate::report::Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{}", report.render());
    }
    Ok(())
}

/// Records until the plan or the target ends it; returns why it ended.
pub async fn record(probe: &mut Probe, rec: &mut Recorder, plan: &Plan) -> Result<&'static str> {
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
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let deadline = plan.duration.map_or(far, |d| Instant::now() + d);
    let mut next_report = plan.interval.map_or(far, |i| Instant::now() + i);
    let mut gauge = interval(GAUGE_PERIOD);
    let mut reports = 0u64;
    let ended_by = loop {
        let stop = tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), rec);
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
                drain(ring.get_mut(), rec);
                rec.sample(probe);
                None
            }
            _ = sleep_until(next_report) => {
                drain(ring.get_mut(), rec);
                print(&rec.report(probe, "interval")?, plan.json)?;
                next_report += plan.interval.unwrap_or(Duration::MAX / 4);
                reports += 1;
                plan.count.is_some_and(|n| reports >= n).then_some("count")
            }
            _ = sleep_until(deadline) => Some("duration"),
            _ = sigint.recv() => Some("SIGINT"),
            _ = sigterm.recv() => Some("SIGTERM"),
        };
        if let Some(reason) = stop {
            break reason;
        }
        if rec.target_exited() {
            break "target exit";
        }
    };
    drain(ring.get_mut(), rec);
    if let Some(l) = logger.as_mut() {
        l.get_mut().flush();
    }
    Ok(ended_by)
}
