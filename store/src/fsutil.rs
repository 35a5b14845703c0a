//! Durable file replacement: write a temp file, fsync it, rename it over the
//! target, fsync the directory; with Redis's incremental writeback
//! (`sync_file_range` every 4 MB) so a large file never accumulates gigabytes
//! of dirty pages that one final fsync must push out.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Bytes between incremental writeback requests (Redis's REDIS_AUTOSYNC_BYTES).
const AUTOSYNC_BYTES: u64 = 4 * 1024 * 1024;
/// Write buffer in front of the file.
const BUFFER: usize = 1 << 20;

/// A file that starts writeback of each completed 4 MB chunk and waits for
/// the one before it, as Redis's `rioFileWrite` does.
pub struct AutosyncFile {
    file: File,
    written: u64,
    kicked: u64,
}

impl AutosyncFile {
    /// Wraps an open file.
    pub fn new(file: File) -> AutosyncFile {
        AutosyncFile { file, written: 0, kicked: 0 }
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Write for AutosyncFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        while self.written - self.kicked >= AUTOSYNC_BYTES {
            let fd = self.file.as_raw_fd();
            // SAFETY: plain syscalls on a descriptor we own.
            unsafe {
                if libc::sync_file_range(fd, self.kicked as i64, AUTOSYNC_BYTES as i64, libc::SYNC_FILE_RANGE_WRITE)
                    != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if self.kicked >= AUTOSYNC_BYTES {
                    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                    if libc::sync_file_range(fd, (self.kicked - AUTOSYNC_BYTES) as i64, AUTOSYNC_BYTES as i64, flags)
                        != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            self.kicked += AUTOSYNC_BYTES;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes `target` durably: `fill` writes the content into `tmp`, which is
/// then fsynced and renamed over `target`, and the directory is fsynced.
/// On any error the temp file is removed and `target` is left as it was.
pub fn replace_durably<T>(
    target: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<AutosyncFile>) -> io::Result<T>,
) -> io::Result<T> {
    let result = (|| {
        let f = File::create(tmp)?;
        let mut w = BufWriter::with_capacity(BUFFER, AutosyncFile::new(f));
        let out = fill(&mut w)?;
        w.flush()?;
        let inner = w.into_inner().map_err(|e| e.into_error())?;
        inner.file().sync_all()?;
        drop(inner);
        if crate::fork::orphaned() {
            return Err(io::Error::other("the server process died: not replacing the file"));
        }
        std::fs::rename(tmp, target)?;
        fsync_dir(target)?;
        Ok(out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Fsyncs the directory containing `path`, making a rename in it durable.
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
