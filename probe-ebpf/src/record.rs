//! The records the programs send through the ring buffer.
//!
//! On the wire every record is one fixed-size [`Event`]; what its generic
//! fields mean depends on its kind. Programs build an [`Event`] only from a
//! typed record ([`Fork::event`], ...) and userspace reads one only through
//! [`Event::decode`], so each kind's packing and unpacking sit side by side
//! here and are tested together.

/// One ring-buffer record, as the programs write it. Build it from a typed
/// record; read it with [`Event::decode`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    kind: u32,
    tgid: u32,
    tid: u32,
    aux: u32,
    ts: u64,
    dur: u64,
    a: u64,
    b: u64,
    c: u64,
}

const FORK: u32 = 1;
const EXIT: u32 = 2;
const SYNC: u32 = 3;
const WRITE: u32 = 4;
const MARKER: u32 = 5;
const EXITING: u32 = 6;
const CLOSE: u32 = 7;
const FIRST_SYNC: u32 = 8;
const EXEC: u32 = 9;
const FORK_CALL: u32 = 10;
const WINDOW_END: u32 = 11;

/// A followed process forked (a thread is not a fork).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fork {
    /// The forking process.
    pub parent: u32,
    /// The thread that called fork.
    pub tid: u32,
    /// The new child.
    pub child: u32,
    /// Syscall entry, `CLOCK_MONOTONIC` ns.
    pub entry_ns: u64,
    /// Syscall entry to return in the parent, ns.
    pub latency_ns: u64,
    /// Flags passed to clone.
    pub clone_flags: u64,
    /// The window the child opened in the parent (0: it shares memory, no window).
    pub epoch: u32,
    /// The parent's [`crate::Task::copies`] when the child appeared.
    pub parent_copies: u32,
    /// When the child appeared, ns (0 if not seen).
    pub child_seen_ns: u64,
}

/// A followed process is gone (its last thread exited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The process.
    pub tgid: u32,
    /// Its last thread.
    pub tid: u32,
    /// Its followed parent, 0 for the target.
    pub parent: u32,
    /// When, ns.
    pub ts: u64,
    /// Status passed to `exit_group`, `None` if it never called it.
    pub exit_code: Option<u32>,
    /// A signal delivered with its default, fatal action (0: none seen).
    pub signal: u32,
}

/// A window-holding child's memory is gone (after its exit): its window is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowEnd {
    /// The child.
    pub child: u32,
    /// Its parent.
    pub parent: u32,
    /// When, ns.
    pub ts: u64,
}

/// A child holding a window open called `exit_group` (its exit still takes time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exiting {
    /// The child.
    pub child: u32,
    /// Its thread that called it.
    pub tid: u32,
    /// The parent.
    pub parent: u32,
    /// When, ns.
    pub ts: u64,
    /// The parent's [`crate::Task::copies`] at that moment.
    pub parent_copies: u32,
}

/// A sync call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncCall {
    /// The process.
    pub tgid: u32,
    /// The thread.
    pub tid: u32,
    /// The descriptor synced.
    pub fd: u32,
    /// A [`crate::sync`] kind.
    pub kind: u64,
    /// Syscall entry, ns.
    pub entry_ns: u64,
    /// Latency, ns.
    pub latency_ns: u64,
    /// Return value.
    pub ret: i64,
}

/// A `write` to a file the process has synced returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteCall {
    /// The process.
    pub tgid: u32,
    /// The thread.
    pub tid: u32,
    /// The descriptor written.
    pub fd: u32,
    /// Syscall entry, ns.
    pub entry_ns: u64,
    /// Latency, ns.
    pub latency_ns: u64,
    /// Return value.
    pub ret: i64,
    /// Whether a sync of the file was running at entry.
    pub behind_sync: bool,
}

/// A cowstore marker fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// The process.
    pub tgid: u32,
    /// The thread.
    pub tid: u32,
    /// A [`crate::marker`] kind.
    pub kind: u32,
    /// When, ns.
    pub ts: u64,
    /// First argument.
    pub a: u64,
    /// Second argument.
    pub b: u64,
}

/// Something happened to a descriptor a process syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdEvent {
    /// The process.
    pub tgid: u32,
    /// The thread.
    pub tid: u32,
    /// The descriptor.
    pub fd: u32,
    /// When, ns.
    pub ts: u64,
}

/// A followed process's call to libc's `fork()` returned in the parent: the
/// caller's view of the fork (atfork handlers and libc included), which is
/// what Redis's `latest_fork_usec` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkCall {
    /// The forking process.
    pub parent: u32,
    /// The thread that called it.
    pub tid: u32,
    /// The new child.
    pub child: u32,
    /// When `fork()` was called, ns.
    pub entry_ns: u64,
    /// Call to return, ns.
    pub latency_ns: u64,
}

/// A followed process replaced its program (`execve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The process.
    pub tgid: u32,
    /// When, ns.
    pub ts: u64,
}

/// A decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// See [`Fork`].
    Fork(Fork),
    /// See [`Exit`].
    Exit(Exit),
    /// See [`Exiting`].
    Exiting(Exiting),
    /// See [`SyncCall`].
    Sync(SyncCall),
    /// See [`WriteCall`].
    Write(WriteCall),
    /// See [`Marker`].
    Marker(Marker),
    /// The process closed a file it had synced.
    Close(FdEvent),
    /// The process started its first sync of a descriptor: sent at entry, so
    /// userspace can name the file while the call still holds it open.
    FirstSync(FdEvent),
    /// See [`Exec`].
    Exec(Exec),
    /// See [`ForkCall`].
    ForkCall(ForkCall),
    /// See [`WindowEnd`].
    WindowEnd(WindowEnd),
}

impl Fork {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event {
            kind: FORK,
            tgid: self.parent,
            tid: self.tid,
            aux: self.child,
            ts: self.entry_ns,
            dur: self.latency_ns,
            a: self.clone_flags,
            b: self.epoch as u64 | (self.parent_copies as u64) << 32,
            c: self.child_seen_ns,
        }
    }
}

impl WindowEnd {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event { kind: WINDOW_END, tgid: self.child, aux: self.parent, ts: self.ts, ..Event::default() }
    }
}

impl ForkCall {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event {
            kind: FORK_CALL,
            tgid: self.parent,
            tid: self.tid,
            aux: self.child,
            ts: self.entry_ns,
            dur: self.latency_ns,
            ..Event::default()
        }
    }
}

impl Exit {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event {
            kind: EXIT,
            tgid: self.tgid,
            tid: self.tid,
            aux: self.parent,
            ts: self.ts,
            dur: 0,
            a: match self.exit_code {
                Some(c) => c as u64,
                None => u64::MAX,
            },
            b: self.signal as u64,
            c: 0,
        }
    }
}

impl Exiting {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event {
            kind: EXITING,
            tgid: self.child,
            tid: self.tid,
            aux: self.parent,
            ts: self.ts,
            a: self.parent_copies as u64,
            ..Event::default()
        }
    }
}

impl SyncCall {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event {
            kind: SYNC,
            tgid: self.tgid,
            tid: self.tid,
            aux: self.fd,
            ts: self.entry_ns,
            dur: self.latency_ns,
            a: self.kind,
            b: self.ret as u64,
            c: 0,
        }
    }
}

impl WriteCall {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event {
            kind: WRITE,
            tgid: self.tgid,
            tid: self.tid,
            aux: self.fd,
            ts: self.entry_ns,
            dur: self.latency_ns,
            a: self.ret as u64,
            b: self.behind_sync as u64,
            c: 0,
        }
    }
}

impl Marker {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event {
            kind: MARKER,
            tgid: self.tgid,
            tid: self.tid,
            aux: self.kind,
            ts: self.ts,
            dur: 0,
            a: self.a,
            b: self.b,
            c: 0,
        }
    }
}

impl FdEvent {
    /// The record of a close.
    #[inline(always)]
    pub fn close(&self) -> Event {
        self.with_kind(CLOSE)
    }

    /// The record of a first sync.
    #[inline(always)]
    pub fn first_sync(&self) -> Event {
        self.with_kind(FIRST_SYNC)
    }

    #[inline(always)]
    fn with_kind(&self, kind: u32) -> Event {
        Event { kind, tgid: self.tgid, tid: self.tid, aux: self.fd, ts: self.ts, ..Event::default() }
    }
}

impl Exec {
    /// The record on the wire.
    #[inline(always)]
    pub fn event(&self) -> Event {
        Event { kind: EXEC, tgid: self.tgid, ts: self.ts, ..Event::default() }
    }
}

impl Event {
    /// The typed record, `None` for an unknown kind.
    pub fn decode(&self) -> Option<Record> {
        let fd = FdEvent { tgid: self.tgid, tid: self.tid, fd: self.aux, ts: self.ts };
        Some(match self.kind {
            FORK => Record::Fork(Fork {
                parent: self.tgid,
                tid: self.tid,
                child: self.aux,
                entry_ns: self.ts,
                latency_ns: self.dur,
                clone_flags: self.a,
                epoch: self.b as u32,
                parent_copies: (self.b >> 32) as u32,
                child_seen_ns: self.c,
            }),
            EXIT => Record::Exit(Exit {
                tgid: self.tgid,
                tid: self.tid,
                parent: self.aux,
                ts: self.ts,
                exit_code: (self.a != u64::MAX).then_some(self.a as u32),
                signal: self.b as u32,
            }),
            EXITING => Record::Exiting(Exiting {
                child: self.tgid,
                tid: self.tid,
                parent: self.aux,
                ts: self.ts,
                parent_copies: self.a as u32,
            }),
            SYNC => Record::Sync(SyncCall {
                tgid: self.tgid,
                tid: self.tid,
                fd: self.aux,
                kind: self.a,
                entry_ns: self.ts,
                latency_ns: self.dur,
                ret: self.b as i64,
            }),
            WRITE => Record::Write(WriteCall {
                tgid: self.tgid,
                tid: self.tid,
                fd: self.aux,
                entry_ns: self.ts,
                latency_ns: self.dur,
                ret: self.a as i64,
                behind_sync: self.b != 0,
            }),
            MARKER => Record::Marker(Marker {
                tgid: self.tgid,
                tid: self.tid,
                kind: self.aux,
                ts: self.ts,
                a: self.a,
                b: self.b,
            }),
            CLOSE => Record::Close(fd),
            FIRST_SYNC => Record::FirstSync(fd),
            EXEC => Record::Exec(Exec { tgid: self.tgid, ts: self.ts }),
            WINDOW_END => Record::WindowEnd(WindowEnd { child: self.tgid, parent: self.aux, ts: self.ts }),
            FORK_CALL => Record::ForkCall(ForkCall {
                parent: self.tgid,
                tid: self.tid,
                child: self.aux,
                entry_ns: self.ts,
                latency_ns: self.dur,
            }),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let fork = Fork {
            parent: 10,
            tid: 11,
            child: 12,
            entry_ns: 1,
            latency_ns: 2,
            clone_flags: 17,
            epoch: 5,
            parent_copies: u32::MAX,
            child_seen_ns: 3,
        };
        assert_eq!(fork.event().decode(), Some(Record::Fork(fork)));
        let end = WindowEnd { child: 1, parent: 2, ts: 3 };
        assert_eq!(end.event().decode(), Some(Record::WindowEnd(end)));
        let call = ForkCall { parent: 1, tid: 2, child: 3, entry_ns: 4, latency_ns: 5 };
        assert_eq!(call.event().decode(), Some(Record::ForkCall(call)));
        for exit_code in [Some(0), Some(255), None] {
            let exit = Exit { tgid: 1, tid: 2, parent: 3, ts: 4, exit_code, signal: 9 };
            assert_eq!(exit.event().decode(), Some(Record::Exit(exit)));
        }
        let exiting = Exiting { child: 1, tid: 2, parent: 3, ts: 4, parent_copies: 77 };
        assert_eq!(exiting.event().decode(), Some(Record::Exiting(exiting)));
        let sync =
            SyncCall { tgid: 1, tid: 2, fd: 3, kind: crate::sync::FDATASYNC, entry_ns: 4, latency_ns: 5, ret: -5 };
        assert_eq!(sync.event().decode(), Some(Record::Sync(sync)));
        let write = WriteCall { tgid: 1, tid: 2, fd: 3, entry_ns: 4, latency_ns: 5, ret: 4096, behind_sync: true };
        assert_eq!(write.event().decode(), Some(Record::Write(write)));
        let marker = Marker { tgid: 1, tid: 2, kind: crate::marker::FSYNC_DONE, ts: 3, a: 4, b: 5 };
        assert_eq!(marker.event().decode(), Some(Record::Marker(marker)));
        let fd = FdEvent { tgid: 1, tid: 2, fd: 3, ts: 4 };
        assert_eq!(fd.close().decode(), Some(Record::Close(fd)));
        assert_eq!(fd.first_sync().decode(), Some(Record::FirstSync(fd)));
        let exec = Exec { tgid: 1, ts: 2 };
        assert_eq!(exec.event().decode(), Some(Record::Exec(exec)));
        assert_eq!(Event::default().decode(), None);
    }
}
