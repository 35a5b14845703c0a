//! Sync calls per file, the interval between them, and the writes to the same
//! files (which stall behind a running sync).

use crate::{
    histo::{Latency, Summary},
    procfs,
};
use probe_ebpf::{Event, sync};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
struct FileStats {
    calls: [Latency; 3],
    interval: Latency,
    last_sync: Option<u64>,
    failed: u64,
    write: Latency,
    write_behind_sync: Latency,
    written: u64,
}

/// Sync and write statistics keyed by path.
#[derive(Default)]
pub struct Files {
    by_path: BTreeMap<String, FileStats>,
    paths: HashMap<(u32, u32), String>,
}

/// Report of one file.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// Path from `/proc/PID/fd` when cowscope first saw the descriptor synced
    /// (`fd N` if it was already closed then).
    pub path: String,
    /// `fsync` latency.
    pub fsync: Summary,
    /// `fdatasync` latency.
    pub fdatasync: Summary,
    /// `sync_file_range` latency.
    pub sync_file_range: Summary,
    /// Sync calls that returned an error.
    pub failed_syncs: u64,
    /// Time between the starts of consecutive syncs of the file.
    pub interval: Summary,
    /// Latency of every `write` to the file after its first sync.
    pub write: Summary,
    /// Latency of the writes that started while a sync of the file was running.
    pub write_behind_sync: Summary,
    /// Bytes those writes wrote.
    pub written_bytes: u64,
}

impl Files {
    /// The path of a synced descriptor, resolved when first seen and kept until
    /// the process closes it (by then `/proc` may name another file).
    fn path(&mut self, tgid: u32, fd: u32) -> String {
        self.paths
            .entry((tgid, fd))
            .or_insert_with(|| procfs::fd_path(tgid, fd).unwrap_or_else(|| format!("fd {fd}")))
            .clone()
    }

    /// Names a descriptor as its first sync starts, while the file is surely open.
    pub fn first_sync(&mut self, e: &Event) {
        self.paths.remove(&(e.tgid, e.aux));
        self.path(e.tgid, e.aux);
    }

    /// Forgets a descriptor the process closed.
    pub fn close(&mut self, e: &Event) {
        self.paths.remove(&(e.tgid, e.aux));
    }

    /// Records a sync call.
    pub fn sync(&mut self, e: &Event) {
        let path = self.path(e.tgid, e.aux);
        let f = self.by_path.entry(path).or_default();
        if let Some(calls) = f.calls.get_mut(e.a as usize) {
            calls.record(e.dur);
        }
        if (e.b as i64) < 0 {
            f.failed += 1;
        }
        if let Some(last) = f.last_sync {
            f.interval.record(e.ts.saturating_sub(last));
        }
        f.last_sync = Some(e.ts);
    }

    /// Records a write to a synced file.
    pub fn write(&mut self, e: &Event) {
        let path = self.path(e.tgid, e.aux);
        let f = self.by_path.entry(path).or_default();
        f.write.record(e.dur);
        if e.b != 0 {
            f.write_behind_sync.record(e.dur);
        }
        if (e.a as i64) > 0 {
            f.written += e.a;
        }
    }

    /// One report per file.
    pub fn report(&self) -> Vec<FileReport> {
        self.by_path
            .iter()
            .map(|(path, f)| FileReport {
                path: path.clone(),
                fsync: f.calls[sync::FSYNC as usize].summary(),
                fdatasync: f.calls[sync::FDATASYNC as usize].summary(),
                sync_file_range: f.calls[sync::SYNC_FILE_RANGE as usize].summary(),
                failed_syncs: f.failed,
                interval: f.interval.summary(),
                write: f.write.summary(),
                write_behind_sync: f.write_behind_sync.summary(),
                written_bytes: f.written,
            })
            .collect()
    }
}
