//! Memory the workloads write: mappings of whole 4 KiB pages.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Bytes in a base page.
pub const PAGE: usize = 4096;
/// Bytes in a PMD-mapped huge page; regions start on this boundary.
pub const HUGE: usize = 2 << 20;

/// A mapping of `pages` pages, kept for the life of the process. Every
/// access is a relaxed atomic byte (a plain `mov` on x86), so threads may
/// share a region; each byte access is a real load or store the compiler
/// keeps.
pub struct Region {
    base: *mut u8,
    pages: usize,
}

// SAFETY: the mapping lives as long as the process and is only accessed
// through atomic byte operations.
unsafe impl Sync for Region {}

impl Region {
    /// Private anonymous memory, every page written once (so it is present
    /// and a fork shares it), with `MADV_HUGEPAGE` if `thp` and
    /// `MADV_NOHUGEPAGE` otherwise.
    pub fn private(pages: usize, thp: bool) -> Region {
        let r = Region::map(pages, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
        r.advise(if thp { libc::MADV_HUGEPAGE } else { libc::MADV_NOHUGEPAGE }, "MADV_(NO)HUGEPAGE");
        r
    }

    /// A mapping of `pages` pages with mmap `flags`, on `fd` if not -1,
    /// starting on a 2 MiB boundary (anonymous) or at offset 0 (file).
    pub fn map(pages: usize, flags: i32, fd: i32) -> Region {
        let len = pages * PAGE;
        let spare = if fd < 0 { HUGE } else { 0 };
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh mapping the kernel places; only used through `base`.
        let raw = unsafe { libc::mmap(std::ptr::null_mut(), len + spare, prot, flags, fd, 0) };
        if raw == libc::MAP_FAILED {
            crate::fail(&format!("mmap of {pages} pages: {}", std::io::Error::last_os_error()));
        }
        Region { base: (raw as usize).next_multiple_of(if fd < 0 { HUGE } else { PAGE }) as *mut u8, pages }
    }

    /// madvise(2) over the whole region; fails loudly.
    pub fn advise(&self, advice: i32, name: &str) {
        // SAFETY: the range is this region's own mapping.
        if unsafe { libc::madvise(self.base.cast(), self.len(), advice) } != 0 {
            crate::fail(&format!("madvise {name}: {}", std::io::Error::last_os_error()));
        }
    }

    /// Writes `value` into the first byte of each page in `pages`.
    pub fn write(&self, pages: std::ops::Range<usize>, value: u8) {
        assert!(pages.end <= self.pages, "page {} past the region's {}", pages.end, self.pages);
        for p in pages {
            self.byte(p).store(value, Relaxed);
        }
    }

    /// Reads the first byte of each page in `pages` and adds them up.
    pub fn read(&self, pages: std::ops::Range<usize>) -> u64 {
        assert!(pages.end <= self.pages, "page {} past the region's {}", pages.end, self.pages);
        pages.map(|p| u64::from(self.byte(p).load(Relaxed))).sum()
    }

    /// The first byte of page `p`.
    fn byte(&self, p: usize) -> &AtomicU8 {
        debug_assert!(p < self.pages);
        // SAFETY: page `p` lies inside the mapping, which is never unmapped;
        // all accesses to it are atomic.
        unsafe { AtomicU8::from_ptr(self.base.add(p * PAGE)) }
    }

    /// Start address.
    pub fn addr(&self) -> usize {
        self.base as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.pages * PAGE
    }

    /// `{"addr", "len", "pages"}` for the result file.
    pub fn json(&self) -> Value {
        json!({ "addr": self.addr(), "len": self.len(), "pages": self.pages })
    }

    /// Flushes a shared file mapping to disk and waits (`msync(MS_SYNC)`).
    pub fn sync(&self) {
        // SAFETY: the range is this region's own mapping.
        if unsafe { libc::msync(self.base.cast(), self.len(), libc::MS_SYNC) } != 0 {
            crate::fail(&format!("msync: {}", std::io::Error::last_os_error()));
        }
    }
}
