//! lossyfs: an in-memory FUSE file system for crash and power-loss tests.
//!
//! It keeps, for every file, what the kernel has been given (the bytes a
//! `write` put in the page cache) apart from what is durable (what an
//! `fsync`/`fdatasync` of that file made stable), and for every directory its
//! entries apart from the entries made durable by an `fsync` of that
//! directory. [`LossyFs::power_loss`] unmounts, throws away everything not
//! durable and mounts again, as a power cut and reboot would.
//!
//! The model is POSIX's, strictly: `fsync` of a file makes its data and size
//! durable but not its name (a new or renamed file needs an `fsync` of its
//! directory); `close` makes nothing durable. The kernel's own writeback is
//! modelled by an optional flusher ([`Writeback`]): like the kernel's
//! `dirty_expire_centisecs` / `dirty_writeback_centisecs`, it wakes up every
//! `interval` and writes back every file or directory that has been dirty
//! for longer than `expire` (measured from when it was first dirtied, as the
//! kernel's `dirtied_when`). Tests use a few seconds instead of the kernel's
//! 30 s so the bound shows up quickly.
//!
//! Every file is opened with `FOPEN_DIRECT_IO` and attributes are never
//! cached, so every write reaches this file system when the syscall returns
//! (as it reaches the page cache of a disk file system) and nothing the
//! kernel caches can outlive a power loss. `fsync` can be slowed down on
//! command ([`LossyFs::set_fsync_delay`]); as with a busy disk, the kernel then
//! holds the file's inode lock until it returns, so a `write` to the same file
//! waits for it.
//!
//! Shared by `crash.rs` and `powerloss.rs` (each uses a part of it, hence the
//! `dead_code` allowance, as in `common`).
#![allow(dead_code)]

pub mod writers;

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Attributes and entries are never cached by the kernel.
const TTL: Duration = Duration::ZERO;

/// The kernel's writeback of dirty data, scaled down for tests.
#[derive(Clone, Copy, Debug)]
pub struct Writeback {
    /// Data dirty for longer than this is written back (the kernel's
    /// `vm.dirty_expire_centisecs`, 30 s by default).
    pub expire: Duration,
    /// How often the flusher wakes up (`vm.dirty_writeback_centisecs`, 5 s by default).
    pub interval: Duration,
}

/// What made something durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    /// `fsync` or `fdatasync` of a file.
    Fsync,
    /// `fsync` of a directory.
    FsyncDir,
    /// The flusher wrote an expired dirty file or directory back.
    Writeback,
}

/// One moment when a file's (or directory's) state became durable.
#[derive(Clone, Debug)]
pub struct SyncEvent {
    /// The file's name at that moment.
    pub name: String,
    /// What did it.
    pub kind: SyncKind,
    /// Everything written before this instant is durable (the start of an
    /// fsync: data written while a slow fsync runs is not covered by it).
    pub covers: Instant,
    /// When the sync completed.
    pub done: Instant,
}

/// A file's durable content.
enum Durable {
    /// The first N bytes of the current data (the file was only appended to since).
    Prefix(usize),
    /// A copy, kept once the current data diverged from it (overwrite, truncation).
    Copy(Vec<u8>),
}

struct FileNode {
    data: Vec<u8>,
    durable: Durable,
    /// Counts changes other than appends (they invalidate a running fsync's snapshot).
    rewrites: u64,
}

impl FileNode {
    fn durable_bytes(&self) -> &[u8] {
        match &self.durable {
            Durable::Prefix(n) => &self.data[..*n],
            Durable::Copy(v) => v,
        }
    }

    /// Keeps the durable content aside before a change that does not only append.
    fn before_rewrite(&mut self, from: usize) {
        if let Durable::Prefix(n) = self.durable
            && from < n
        {
            self.durable = Durable::Copy(self.data[..n].to_vec());
        }
        self.rewrites += 1;
    }

    fn all_durable(&self) -> bool {
        matches!(self.durable, Durable::Prefix(n) if n == self.data.len())
    }
}

struct DirNode {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

enum Body {
    File(FileNode),
    Dir(DirNode),
}

struct Node {
    name: OsString,
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    /// When this node went from clean to dirty (the kernel's `dirtied_when`).
    dirty_since: Option<Instant>,
}

impl Node {
    fn dirty(&mut self) {
        self.mtime = SystemTime::now();
        self.dirty_since.get_or_insert_with(Instant::now);
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, nlink) = match &self.body {
            Body::File(f) => (FileType::RegularFile, f.data.len() as u64, 1),
            Body::Dir(_) => (FileType::Directory, 0, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.mtime,
            crtime: self.mtime,
            kind,
            perm: self.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Writes this node back: its current state becomes durable.
    fn make_durable(&mut self) {
        match &mut self.body {
            Body::File(f) => f.durable = Durable::Prefix(f.data.len()),
            Body::Dir(d) => d.durable = d.entries.clone(),
        }
        self.dirty_since = None;
    }
}

/// The whole file system state.
struct Fs {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    events: Vec<SyncEvent>,
    /// Slow fsyncs in progress: (inode, start).
    running: Vec<(u64, Instant)>,
}

impl Fs {
    fn new() -> Fs {
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let root = Node {
            name: OsString::from("/"),
            body: Body::Dir(DirNode { entries: BTreeMap::new(), durable: BTreeMap::new() }),
            perm: 0o755,
            uid,
            gid,
            mtime: SystemTime::now(),
            dirty_since: None,
        };
        Fs { nodes: HashMap::from([(INodeNo::ROOT.0, root)]), next_ino: 2, events: Vec::new(), running: Vec::new() }
    }

    fn dir(&self, ino: u64) -> Result<&DirNode, Errno> {
        match self.nodes.get(&ino).map(|n| &n.body) {
            Some(Body::Dir(d)) => Ok(d),
            Some(Body::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirNode, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::Dir(d)) => Ok(d),
            Some(Body::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::File(f)) => Ok(f),
            Some(Body::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?.entries.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        self.nodes.get(&ino).map(|n| n.attr(ino)).ok_or(Errno::ENOENT)
    }

    /// Creates a file or directory `name` in `parent`.
    fn create(&mut self, req: &Request, parent: u64, name: &OsStr, mode: u32, dir: bool) -> Result<u64, Errno> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let body = if dir {
            Body::Dir(DirNode { entries: BTreeMap::new(), durable: BTreeMap::new() })
        } else {
            Body::File(FileNode { data: Vec::new(), durable: Durable::Prefix(0), rewrites: 0 })
        };
        let node = Node {
            name: name.to_os_string(),
            body,
            perm: (mode & 0o7777) as u16,
            uid: req.uid(),
            gid: req.gid(),
            mtime: SystemTime::now(),
            dirty_since: None,
        };
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.entries.insert(name.to_os_string(), ino);
        self.nodes.get_mut(&parent).expect("parent").dirty();
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.nodes[&ino].body, want_dir) {
            (Body::Dir(d), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.nodes.get_mut(&parent).expect("parent").dirty();
        Ok(())
    }

    fn rename(&mut self, from: (u64, &OsStr), to: (u64, &OsStr), flags: RenameFlags) -> Result<(), Errno> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return Err(Errno::EINVAL);
        }
        let ino = self.lookup(from.0, from.1)?;
        if let Ok(old) = self.lookup(to.0, to.1) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if matches!(&self.nodes[&old].body, Body::Dir(d) if !d.entries.is_empty()) {
                return Err(Errno::ENOTEMPTY);
            }
        }
        self.dir(to.0)?;
        self.dir_mut(from.0)?.entries.remove(from.1);
        self.dir_mut(to.0)?.entries.insert(to.1.to_os_string(), ino);
        for d in [from.0, to.0] {
            self.nodes.get_mut(&d).expect("dir").dirty();
        }
        self.nodes.get_mut(&ino).expect("renamed").name = to.1.to_os_string();
        Ok(())
    }

    fn record(&mut self, ino: u64, kind: SyncKind, covers: Instant) {
        let name = self.nodes[&ino].name.to_string_lossy().into_owned();
        self.events.push(SyncEvent { name, kind, covers, done: Instant::now() });
    }

    /// An fsync of file `ino` that started at `covers`, when the file had
    /// `len` bytes and `rewrites` rewrites, completed: those bytes are durable.
    /// If the file was rewritten (not just appended to) meanwhile, that
    /// snapshot no longer exists and the older durable state is kept (an
    /// append-only log never gets here).
    fn fsync_done(&mut self, ino: u64, covers: Instant, len: usize, rewrites: u64) -> Result<(), Errno> {
        self.running.retain(|&r| r != (ino, covers));
        let node = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let Body::File(f) = &mut node.body else { return Err(Errno::EISDIR) };
        if f.rewrites == rewrites {
            let n = match f.durable {
                Durable::Prefix(n) => n.max(len),
                Durable::Copy(_) => len,
            };
            f.durable = Durable::Prefix(n);
        }
        if f.all_durable() {
            node.dirty_since = None;
        }
        self.record(ino, SyncKind::Fsync, covers);
        Ok(())
    }

    /// The flusher's pass: writes back what has been dirty for longer than `expire`.
    fn write_back_expired(&mut self, expire: Duration) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.dirty_since.is_some_and(|t| now.duration_since(t) >= expire))
            .map(|(&ino, _)| ino)
            .collect();
        for ino in due {
            self.nodes.get_mut(&ino).expect("due").make_durable();
            self.record(ino, SyncKind::Writeback, now);
        }
    }

    /// The power cut: every file and directory falls back to its durable
    /// state; what is no longer reachable from the root is gone.
    fn lose_undurable(&mut self) {
        for n in self.nodes.values_mut() {
            match &mut n.body {
                Body::File(f) => {
                    f.data = f.durable_bytes().to_vec();
                    f.durable = Durable::Prefix(f.data.len());
                }
                Body::Dir(d) => d.entries = d.durable.clone(),
            }
            n.dirty_since = None;
        }
        let mut alive = vec![INodeNo::ROOT.0];
        let mut i = 0;
        while i < alive.len() {
            if let Body::Dir(d) = &self.nodes[&alive[i]].body {
                alive.extend(d.entries.values().copied().filter(|ino| self.nodes.contains_key(ino)));
            }
            i += 1;
        }
        self.nodes.retain(|ino, _| alive.contains(ino));
        for n in self.nodes.values_mut() {
            if let Body::Dir(d) = &mut n.body {
                d.entries.retain(|_, ino| alive.contains(ino));
                d.durable = d.entries.clone();
            }
        }
    }
}

/// State shared by the FUSE handler, the flusher and the test.
struct Shared {
    fs: Mutex<Fs>,
    fsync_delay_ms: AtomicU64,
    /// The flusher stops at the power cut (set and read under the `fs` lock).
    frozen: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Fs> {
        self.fs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The FUSE request handler.
struct Handler(Arc<Shared>);

fn reply_entry(r: Result<FileAttr, Errno>, reply: ReplyEntry) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Handler {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = self.0.lock();
        reply_entry(fs.lookup(parent.0, name).and_then(|ino| fs.attr(ino)), reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.0.lock().attr(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut fs = self.0.lock();
        let r = (|| {
            if let Some(size) = size {
                let f = fs.file_mut(ino.0)?;
                let size = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
                f.before_rewrite(size);
                f.data.resize(size, 0);
                fs.nodes.get_mut(&ino.0).expect("file").dirty();
            }
            let n = fs.nodes.get_mut(&ino.0).ok_or(Errno::ENOENT)?;
            if let Some(m) = mode {
                n.perm = (m & 0o7777) as u16;
            }
            n.uid = uid.unwrap_or(n.uid);
            n.gid = gid.unwrap_or(n.gid);
            Ok(n.attr(ino.0))
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut fs = self.0.lock();
        reply_entry(fs.create(req, parent.0, name, mode & !umask, false).and_then(|ino| fs.attr(ino)), reply);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut fs = self.0.lock();
        reply_entry(fs.create(req, parent.0, name, mode & !umask, true).and_then(|ino| fs.attr(ino)), reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.0.lock().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(self.0.lock().remove(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply_empty(self.0.lock().rename((parent.0, name), (newparent.0, newname), flags), reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.0.lock().attr(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut fs = self.0.lock();
        match fs.create(req, parent.0, name, mode & !umask, false).and_then(|ino| fs.attr(ino)) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut fs = self.0.lock();
        match fs.file_mut(ino.0) {
            Ok(f) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(f.data.len());
                let end = start.saturating_add(size as usize).min(f.data.len());
                reply.data(&f.data[start..end]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut fs = self.0.lock();
        let r = (|| {
            let f = fs.file_mut(ino.0)?;
            let at = if flags.0 & libc::O_APPEND != 0 {
                f.data.len()
            } else {
                usize::try_from(offset).map_err(|_| Errno::EFBIG)?
            };
            let end = at.checked_add(data.len()).ok_or(Errno::EFBIG)?;
            if at < f.data.len() {
                f.before_rewrite(at);
            }
            if f.data.len() < end {
                f.data.resize(end, 0);
            }
            f.data[at..end].copy_from_slice(data);
            fs.nodes.get_mut(&ino.0).expect("file").dirty();
            Ok(data.len() as u32)
        })();
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close() makes nothing durable.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let covers = Instant::now();
        let delay = Duration::from_millis(self.0.fsync_delay_ms.load(Ordering::Relaxed));
        let mut fs = self.0.lock();
        let (len, rewrites) = match fs.file_mut(ino.0) {
            Ok(f) => (f.data.len(), f.rewrites),
            Err(e) => return reply.error(e),
        };
        if delay.is_zero() {
            return reply_empty(fs.fsync_done(ino.0, covers, len, rewrites), reply);
        }
        fs.running.push((ino.0, covers));
        drop(fs);
        // A slow disk: answer later, from another thread, so the FUSE workers stay free.
        let shared = self.0.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            reply_empty(shared.lock().fsync_done(ino.0, covers, len, rewrites), reply);
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.0.lock().dir(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let fs = self.0.lock();
        let d = match fs.dir(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let dots = [(ino.0, FileType::Directory, OsString::from(".")), (ino.0, FileType::Directory, "..".into())];
        let entries = d.entries.iter().map(|(name, &i)| {
            let kind = match fs.nodes.get(&i).map(|n| &n.body) {
                Some(Body::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (i, kind, name.clone())
        });
        for (n, (i, kind, name)) in dots.into_iter().chain(entries).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), n as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let covers = Instant::now();
        let mut fs = self.0.lock();
        match fs.nodes.get_mut(&ino.0) {
            Some(n) => {
                n.make_durable();
                fs.record(ino.0, SyncKind::FsyncDir, covers);
                reply.ok();
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let used: u64 = self
            .0
            .lock()
            .nodes
            .values()
            .map(|n| match &n.body {
                Body::File(f) => f.data.len() as u64,
                Body::Dir(_) => 0,
            })
            .sum();
        let blocks = 1 << 22; // 16 GiB of 4 KiB blocks
        let free = blocks - (used / 4096).min(blocks);
        reply.statfs(blocks, free, free, 1 << 20, 1 << 20, 4096, 255, 4096);
    }
}

/// A mounted lossyfs.
pub struct LossyFs {
    shared: Arc<Shared>,
    mountpoint: PathBuf,
    session: Option<BackgroundSession>,
    flusher: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl LossyFs {
    /// Mounts an empty lossyfs on `mountpoint` (an existing directory), with
    /// the kernel's writeback modelled by `writeback` (`None`: nothing
    /// becomes durable unless fsynced). Needs root and /dev/fuse.
    pub fn mount(mountpoint: &Path, writeback: Option<Writeback>) -> LossyFs {
        let shared = Arc::new(Shared {
            fs: Mutex::new(Fs::new()),
            fsync_delay_ms: AtomicU64::new(0),
            frozen: AtomicBool::new(false),
        });
        let flusher = writeback.map(|wb| {
            let stop = Arc::new(AtomicBool::new(false));
            let (s, st) = (shared.clone(), stop.clone());
            let h = std::thread::Builder::new()
                .name("lossyfs-flusher".into())
                .spawn(move || {
                    while !st.load(Ordering::Relaxed) {
                        std::thread::sleep(wb.interval);
                        let mut fs = s.lock();
                        if !s.frozen.load(Ordering::Relaxed) {
                            fs.write_back_expired(wb.expire);
                        }
                    }
                })
                .expect("start the flusher");
            (stop, h)
        });
        let mut fs = LossyFs { shared, mountpoint: mountpoint.to_path_buf(), session: None, flusher };
        fs.attach();
        fs
    }

    fn attach(&mut self) {
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("lossyfs".into()), MountOption::RW];
        // Several workers, so one request waiting (a slow fsync) does not stall the rest.
        config.n_threads = Some(4);
        let session = fuser::spawn_mount(Handler(self.shared.clone()), &self.mountpoint, &config).unwrap_or_else(|e| {
            panic!("mounting lossyfs on {} (needs root and /dev/fuse): {e}", self.mountpoint.display())
        });
        self.session = Some(session);
    }

    /// Unmounts. Fails if the file system is still busy after a few seconds
    /// (a file still open on it: the user is not dead), after detaching it
    /// lazily so that it goes away once that file is closed.
    fn detach(&mut self) -> Result<(), String> {
        let Some(session) = self.session.take() else { return Ok(()) };
        let path = CString::new(self.mountpoint.as_os_str().as_bytes()).expect("mount path");
        // A process that was just killed may still be releasing its files: retry while busy.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // SAFETY: umount2 with a valid C string.
            if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
                // The session's workers see the connection end and exit.
                let _ = session.join();
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EBUSY) || Instant::now() > deadline {
                // SAFETY: as above; a lazy unmount does not wait for the file system's users.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
                return Err(format!("unmounting {}: {err}", self.mountpoint.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes every later file fsync take `d` (zero: instant).
    pub fn set_fsync_delay(&self, d: Duration) {
        self.shared.fsync_delay_ms.store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Slow fsyncs in progress: (file name, start).
    pub fn running_fsyncs(&self) -> Vec<(String, Instant)> {
        let fs = self.shared.lock();
        fs.running
            .iter()
            .filter_map(|(ino, t)| fs.nodes.get(ino).map(|n| (n.name.to_string_lossy().into_owned(), *t)))
            .collect()
    }

    /// Every sync so far, in completion order.
    pub fn events(&self) -> Vec<SyncEvent> {
        self.shared.lock().events.clone()
    }

    /// The power cut and the reboot. At the cut the disk stops writing back
    /// and `stop_users` ends whoever uses the file system (`kill -9`: it must
    /// leave no file open); then everything not durable is dropped and the
    /// file system is mounted again.
    pub fn power_loss(&mut self, stop_users: impl FnOnce()) {
        {
            let _fs = self.shared.lock();
            self.shared.frozen.store(true, Ordering::Relaxed);
        }
        stop_users();
        if let Err(e) = self.detach() {
            panic!("power loss: {e} (is a file still open on it?)");
        }
        self.shared.lock().lose_undurable();
        self.attach();
        self.shared.frozen.store(false, Ordering::Relaxed);
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        if let Some((stop, h)) = self.flusher.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        if let Err(e) = self.detach() {
            eprintln!("lossyfs: {e}");
        }
    }
}
