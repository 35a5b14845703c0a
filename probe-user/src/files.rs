//! Sync calls per file, the interval between them, and the writes to the same
//! files (which stall behind a running sync).

use crate::{
    histo::{Count, Latency, Scope, Summary},
    procfs,
};
use probe_ebpf::{
    record::{FdEvent, SyncCall, WriteCall},
    sync,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
struct FileStats {
    calls: [Latency; 3],
    interval: Latency,
    last_sync: Option<u64>,
    failed: Count,
    write: Latency,
    write_behind_sync: Latency,
    written: Count,
}

impl FileStats {
    fn next_interval(&mut self) {
        for h in self.calls.iter_mut().chain([&mut self.interval, &mut self.write, &mut self.write_behind_sync]) {
            h.next_interval();
        }
        self.failed.next_interval();
        self.written.next_interval();
    }
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
    pub fn first_sync(&mut self, e: &FdEvent) {
        self.paths.remove(&(e.tgid, e.fd));
        self.path(e.tgid, e.fd);
    }

    /// Forgets a descriptor the process closed.
    pub fn close(&mut self, e: &FdEvent) {
        self.paths.remove(&(e.tgid, e.fd));
    }

    /// Records a sync call.
    pub fn sync(&mut self, e: &SyncCall) {
        let path = self.path(e.tgid, e.fd);
        let f = self.by_path.entry(path).or_default();
        if let Some(calls) = f.calls.get_mut(e.kind as usize) {
            calls.record(e.latency_ns);
        }
        if e.ret < 0 {
            f.failed.add(1);
        }
        if let Some(last) = f.last_sync {
            f.interval.record(e.entry_ns.saturating_sub(last));
        }
        f.last_sync = Some(e.entry_ns);
    }

    /// Records a write to a synced file.
    pub fn write(&mut self, e: &WriteCall) {
        let path = self.path(e.tgid, e.fd);
        let f = self.by_path.entry(path).or_default();
        f.write.record(e.latency_ns);
        if e.behind_sync {
            f.write_behind_sync.record(e.latency_ns);
        }
        if e.ret > 0 {
            f.written.add(e.ret as u64);
        }
    }

    /// Starts a new interval.
    pub fn next_interval(&mut self) {
        self.by_path.values_mut().for_each(FileStats::next_interval);
    }

    /// One report per file with activity in `scope`.
    pub fn report(&self, scope: Scope) -> Vec<FileReport> {
        self.by_path
            .iter()
            .map(|(path, f)| FileReport {
                path: path.clone(),
                fsync: f.calls[sync::FSYNC as usize].summary(scope),
                fdatasync: f.calls[sync::FDATASYNC as usize].summary(scope),
                sync_file_range: f.calls[sync::SYNC_FILE_RANGE as usize].summary(scope),
                failed_syncs: f.failed.get(scope),
                interval: f.interval.summary(scope),
                write: f.write.summary(scope),
                write_behind_sync: f.write_behind_sync.summary(scope),
                written_bytes: f.written.get(scope),
            })
            .filter(|r| r.fsync.count + r.fdatasync.count + r.sync_file_range.count + r.write.count > 0)
            .collect()
    }
}
