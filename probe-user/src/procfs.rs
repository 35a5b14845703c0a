//! What cowscope reads from `/proc`: memory maps, THP backing, vmstat counters
//! and file descriptor paths.

use serde::Serialize;
use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    os::unix::fs::FileExt,
};

/// Bytes in a base page.
pub const PAGE: u64 = 4096;
/// Bytes in a PMD-mapped transparent huge page.
const HUGE: u64 = 2 << 20;

impl Region {
    /// Whether the mapping is shared (`MAP_SHARED`): writes to it are never copy-on-write.
    pub fn shared(&self) -> bool {
        self.perms.as_bytes().get(3) == Some(&b's')
    }
}

/// The kind of memory a mapping holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionKind {
    /// `[heap]`.
    Heap,
    /// `[stack]`.
    Stack,
    /// Anonymous mappings.
    Anon,
    /// File mappings.
    File,
    /// vdso, vvar and the like.
    Special,
    /// Not mapped in any address space cowscope read.
    Unknown,
}

/// One line of `/proc/PID/maps`, with its THP backing from smaps.
#[derive(Clone, Debug, Serialize)]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `rwxp` permissions.
    pub perms: String,
    /// What the mapping holds.
    pub kind: RegionKind,
    /// Backing file or pseudo-name, empty for anonymous memory.
    pub path: String,
    /// `AnonHugePages` of the mapping in bytes.
    pub anon_huge_bytes: u64,
}

/// A process's address space at one moment.
#[derive(Clone, Debug, Default)]
pub struct AddressSpace {
    /// Mappings, sorted by address.
    pub regions: Vec<Region>,
    /// 2 MiB-aligned chunks backed by a transparent huge page.
    pub huge_chunks: HashSet<u64>,
    /// When it was read, `CLOCK_MONOTONIC` ns.
    pub read_at: u64,
}

impl AddressSpace {
    /// Reads `/proc/PID/smaps` and, for mappings holding huge pages, which 2 MiB
    /// chunks are THP-backed (`pagemap` + `kpageflags`). `None` if the process is gone.
    ///
    /// Both walk the process's page tables under its mmap lock, which its
    /// `fork()` needs for writing: read a live target this way only when the
    /// THP figures are needed (at attach and for the final report), never
    /// periodically. A forked child's copy is free to read.
    pub fn read(pid: u32) -> Option<AddressSpace> {
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        let regions = parse_smaps(&smaps);
        if regions.is_empty() {
            // An exiting process's memory is already gone.
            return None;
        }
        let huge_chunks = huge_chunks(pid, &regions);
        Some(AddressSpace { regions, huge_chunks, read_at: crate::recorder::monotonic_ns() })
    }

    /// Reads only the mappings (`/proc/PID/maps`, no page-table walk), keeping
    /// the THP figures of `previous` for the mappings that are still there.
    pub fn reread_maps(pid: u32, previous: Option<&AddressSpace>) -> Option<AddressSpace> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let mut regions = parse_smaps(&maps);
        if regions.is_empty() {
            return None;
        }
        let mut huge_chunks = HashSet::new();
        if let Some(prev) = previous {
            for r in &mut regions {
                if let Some(old) = prev.regions.iter().find(|o| (o.start, o.end) == (r.start, r.end)) {
                    r.anon_huge_bytes = old.anon_huge_bytes;
                }
            }
            huge_chunks = prev.huge_chunks.clone();
        }
        Some(AddressSpace { regions, huge_chunks, read_at: crate::recorder::monotonic_ns() })
    }

    /// The mapping that holds `addr`.
    pub fn region_of(&self, addr: u64) -> Option<&Region> {
        let i = self.regions.partition_point(|r| r.end <= addr);
        self.regions.get(i).filter(|r| r.start <= addr)
    }

    /// Whether `addr` lies in a THP-backed chunk.
    pub fn is_huge(&self, addr: u64) -> bool {
        self.huge_chunks.contains(&(addr & !(HUGE - 1)))
    }
}

fn parse_smaps(text: &str) -> Vec<Region> {
    let mut regions: Vec<Region> = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some(first) = parts.next() else { continue };
        if let Some((s, e)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16))
        {
            let perms = parts.next().unwrap_or("").to_string();
            // The path is the rest of the line after five fields; it may hold spaces.
            let mut path = line;
            for _ in 0..5 {
                path = path.trim_start().split_once(char::is_whitespace).map_or("", |(_, r)| r);
            }
            let path = path.trim().to_string();
            let kind = match path.as_str() {
                "[heap]" => RegionKind::Heap,
                p if p.starts_with("[stack") => RegionKind::Stack,
                "" => RegionKind::Anon,
                p if p.starts_with("[anon") => RegionKind::Anon,
                p if p.starts_with('[') => RegionKind::Special,
                _ => RegionKind::File,
            };
            regions.push(Region { start, end, perms, kind, path, anon_huge_bytes: 0 });
        } else if first == "AnonHugePages:"
            && let Some(r) = regions.last_mut()
        {
            r.anon_huge_bytes = parts.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
        }
    }
    regions
}

/// `kpageflags` bit: the page belongs to a transparent huge page.
const KPF_THP: u64 = 1 << 22;
/// `pagemap` bit: the page is present in RAM.
const PM_PRESENT: u64 = 1 << 63;

/// Subpages probed per chunk. Pages already copied since the fork are small
/// pages, so a chunk counts as huge if any probed page still belongs to a THP.
const PROBES: [u64; 5] = [511, 256, 0, 384, 128];

/// Finds the THP-backed 2 MiB chunks of mappings that hold huge pages.
fn huge_chunks(pid: u32, regions: &[Region]) -> HashSet<u64> {
    let mut out = HashSet::new();
    let (Ok(pagemap), Ok(kpageflags)) = (File::open(format!("/proc/{pid}/pagemap")), File::open("/proc/kpageflags"))
    else {
        return out;
    };
    let mut entries = vec![0u8; (HUGE / PAGE * 8) as usize];
    let mut word = [0u8; 8];
    for r in regions.iter().filter(|r| r.anon_huge_bytes > 0) {
        let mut chunk = r.start.next_multiple_of(HUGE);
        while chunk + HUGE <= r.end {
            if pagemap.read_exact_at(&mut entries, chunk / PAGE * 8).is_ok() {
                let huge = PROBES.iter().any(|&i| {
                    let at = (i * 8) as usize;
                    let mut e = [0u8; 8];
                    e.copy_from_slice(&entries[at..at + 8]);
                    let entry = u64::from_le_bytes(e);
                    let pfn = entry & ((1 << 55) - 1);
                    entry & PM_PRESENT != 0
                        && pfn != 0
                        && kpageflags.read_exact_at(&mut word, pfn * 8).is_ok()
                        && u64::from_le_bytes(word) & KPF_THP != 0
                });
                if huge {
                    out.insert(chunk);
                }
            }
            chunk += HUGE;
        }
    }
    out
}

/// `/proc/vmstat` counters that show what the kernel did with huge and reused pages.
pub const VMSTAT_KEYS: &[&str] = &["thp_split_pmd", "thp_fault_alloc", "thp_fault_fallback", "pgreuse", "cow_ksm"];

/// A reading of [`VMSTAT_KEYS`].
pub type Vmstat = BTreeMap<String, u64>;

/// Reads [`VMSTAT_KEYS`] from `/proc/vmstat` (system-wide counters).
pub fn vmstat() -> Vmstat {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| VMSTAT_KEYS.contains(k))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}

/// `after - before`, key by key.
pub fn vmstat_delta(before: &Vmstat, after: &Vmstat) -> Vmstat {
    after.iter().map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(v)))).collect()
}

/// The C library a process maps (`libc.so.6` or the like), as a path it can be opened by.
pub fn libc_of(pid: u32) -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let path = parse_smaps(&maps).into_iter().map(|r| r.path).find(|p| {
        let name = p.rsplit('/').next().unwrap_or("");
        name.starts_with("libc.so") || name.starts_with("libc-")
    })?;
    // Through the process's root, in case it runs in another mount namespace.
    let rooted = std::path::PathBuf::from(format!("/proc/{pid}/root{path}"));
    Some(if rooted.exists() { rooted } else { path.into() })
}

/// Path behind a process's file descriptor.
pub fn fd_path(pid: u32, fd: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok().map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_regions_and_huge_bytes() {
        let text = "\
55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
AnonHugePages:         0 kB
7f0000000000-7f0040000000 rw-p 00000000 00:00 0 
AnonHugePages:    524288 kB
7f0040000000-7f0040001000 r--p 00000000 fe:01 1234                       /usr/lib/my lib.so
AnonHugePages:         0 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
";
        let regions = parse_smaps(text);
        assert_eq!(regions.len(), 4);
        assert_eq!(regions[0].kind, RegionKind::Heap);
        assert_eq!(regions[1].kind, RegionKind::Anon);
        assert_eq!(regions[1].anon_huge_bytes, 512 << 20);
        assert_eq!(regions[2].kind, RegionKind::File);
        assert_eq!(regions[2].path, "/usr/lib/my lib.so");
        assert_eq!(regions[3].kind, RegionKind::Stack);
        let space = AddressSpace { regions, huge_chunks: HashSet::from([0x7f0000200000]), read_at: 0 };
        assert_eq!(space.region_of(0x7f0000001000).map(|r| r.kind), Some(RegionKind::Anon));
        assert!(space.region_of(0x7f0040001000).is_none());
        assert!(space.is_huge(0x7f0000201000));
        assert!(!space.is_huge(0x7f0000001000));
    }
}
