//! The copy-on-write table: faults, copies and reuses of the target and its
//! children, per snapshot window, per memory region and per page size.

use crate::procfs::{AddressSpace, PAGE, Region, RegionKind};
use probe_ebpf::{PageKey, PageStat, counter};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Counts for one slice of the table.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Tally {
    /// Write faults on present pages.
    pub faults: u64,
    /// Faults where the kernel copied the page.
    pub copies: u64,
    /// Faults where the kernel reused the page without copying.
    pub reuses: u64,
    /// Faults on the shared zero page (the page had only been read): the
    /// kernel mapped a fresh zeroed page, as it would without a fork.
    pub zero_fills: u64,
    /// Distinct pages faulted on.
    pub pages: u64,
    /// Distinct pages copied.
    pub copied_pages: u64,
    /// Bytes copied (copies × 4 KiB).
    pub bytes_copied: u64,
}

impl Tally {
    fn add(&mut self, s: &PageStat) {
        self.faults += s.faults as u64;
        self.copies += s.copies as u64;
        self.zero_fills += s.zero_fills as u64;
        self.reuses = self.faults.saturating_sub(self.copies + self.zero_fills);
        self.pages += 1;
        self.copied_pages += (s.copies > 0) as u64;
        self.bytes_copied = self.copies * PAGE;
    }

    fn from_counters(counters: &[u64], faults: u32, copies: u32, zero_fills: u32) -> Tally {
        let [faults, copies, zero_fills] = [faults, copies, zero_fills].map(|i| counters[i as usize]);
        Tally {
            faults,
            copies,
            zero_fills,
            reuses: faults.saturating_sub(copies + zero_fills),
            bytes_copied: copies * PAGE,
            ..Tally::default()
        }
    }
}

/// A slice split by who faulted and when.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Split {
    /// The target, while a forked child was alive.
    pub parent_window: Tally,
    /// The target, with no child alive.
    pub parent_outside: Tally,
    /// The forked children themselves.
    pub child: Tally,
}

impl Split {
    fn slot(&mut self, role: Role) -> &mut Tally {
        match role {
            Role::Window => &mut self.parent_window,
            Role::Outside => &mut self.parent_outside,
            Role::Child => &mut self.child,
        }
    }
}

/// One memory region of the target.
#[derive(Debug, Serialize)]
pub struct RegionRow {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Heap, stack, anonymous, file or special.
    pub kind: RegionKind,
    /// Backing file or pseudo-name.
    pub path: String,
    /// `AnonHugePages` when the address space was read (at fork for window pages).
    pub anon_huge_bytes: u64,
    /// What happened in the region.
    #[serde(flatten)]
    pub split: Split,
}

/// One snapshot window's pages.
#[derive(Debug, Serialize)]
pub struct WindowRow {
    /// Forking process.
    pub parent: u32,
    /// Window number in that process.
    pub epoch: u32,
    /// The child that held it open.
    pub child: u32,
    /// The target's faults while the window was open.
    pub parent_faults: Tally,
    /// The child's own faults.
    pub child_faults: Tally,
}

/// The copy-on-write table.
#[derive(Debug, Serialize)]
pub struct CowReport {
    /// Totals from the in-kernel counters (exact even if the page map filled up);
    /// distinct page counts from the page map.
    pub total: Split,
    /// Per snapshot window.
    pub windows: Vec<WindowRow>,
    /// Per memory region (regions the faults fell in).
    pub regions: Vec<RegionRow>,
    /// Faults on pages backed by 4 KiB pages.
    pub base_pages: Split,
    /// Faults on pages that were part of a transparent huge page.
    pub huge_pages: Split,
}

#[derive(Clone, Copy)]
enum Role {
    Window,
    Outside,
    Child,
}

/// What the table needs to know about the recording.
pub struct Context<'a> {
    /// Forked children: child → (parent, epoch).
    pub children: HashMap<u32, (u32, u32)>,
    /// Address spaces read at each fork: (pid, epoch).
    pub at_fork: &'a HashMap<(u32, u32), AddressSpace>,
    /// The latest address space read of each process.
    pub latest: &'a HashMap<u32, AddressSpace>,
}

impl Context<'_> {
    /// The address space that best describes `addr` of `tgid` in window `epoch`:
    /// the one read at that fork, else the latest, else any earlier fork's.
    fn locate(&self, tgid: u32, epoch: u32, addr: u64) -> Option<(&AddressSpace, &Region)> {
        let (owner, epoch) = self.children.get(&tgid).copied().unwrap_or((tgid, epoch));
        let mut forks: Vec<(&(u32, u32), &AddressSpace)> =
            self.at_fork.iter().filter(|((pid, _), _)| *pid == owner).collect();
        forks.sort_by_key(|((_, e), _)| std::cmp::Reverse(*e));
        let exact = self.at_fork.get(&(owner, epoch)).filter(|_| epoch > 0);
        exact
            .into_iter()
            .chain(self.latest.get(&owner))
            .chain(forks.into_iter().map(|(_, s)| s))
            .find_map(|s| s.region_of(addr).map(|r| (s, r)))
    }
}

/// Builds the table from the page map and the counters.
pub fn table(ctx: &Context, pages: &[(PageKey, PageStat)], counters: &[u64]) -> CowReport {
    use counter::*;
    let mut total = Split {
        parent_window: Tally::from_counters(counters, PARENT_FAULTS_WINDOW, PARENT_COPIES_WINDOW, PARENT_ZERO_WINDOW),
        parent_outside: Tally::from_counters(
            counters,
            PARENT_FAULTS_OUTSIDE,
            PARENT_COPIES_OUTSIDE,
            PARENT_ZERO_OUTSIDE,
        ),
        child: Tally::from_counters(counters, CHILD_FAULTS, CHILD_COPIES, CHILD_ZERO),
    };
    let mut windows: BTreeMap<(u32, u32), WindowRow> = BTreeMap::new();
    let mut regions: BTreeMap<(u64, u64, String), RegionRow> = BTreeMap::new();
    let (mut base, mut huge) = (Split::default(), Split::default());
    for (key, stat) in pages {
        let role = match ctx.children.get(&key.tgid) {
            Some(_) => Role::Child,
            None if key.epoch > 0 => Role::Window,
            None => Role::Outside,
        };
        let t = total.slot(role);
        t.pages += 1;
        t.copied_pages += (stat.copies > 0) as u64;
        let window = match role {
            Role::Child => ctx.children.get(&key.tgid).copied().map(|(p, e)| (p, e, key.tgid)),
            Role::Window => Some((key.tgid, key.epoch, 0)),
            Role::Outside => None,
        };
        if let Some((parent, epoch, child)) = window.filter(|w| w.1 > 0) {
            let row = windows.entry((parent, epoch)).or_insert_with(|| WindowRow {
                parent,
                epoch,
                child: 0,
                parent_faults: Tally::default(),
                child_faults: Tally::default(),
            });
            if child != 0 {
                row.child = child;
                row.child_faults.add(stat);
            } else {
                row.parent_faults.add(stat);
            }
        }
        let found = ctx.locate(key.tgid, key.epoch, key.page);
        let huge_page = found.is_some_and(|(s, _)| s.is_huge(key.page));
        if huge_page { &mut huge } else { &mut base }.slot(role).add(stat);
        let (start, end, kind, path, anon_huge_bytes) = match found {
            Some((_, r)) => (r.start, r.end, r.kind, r.path.clone(), r.anon_huge_bytes),
            None => (0, 0, RegionKind::Unknown, "(not mapped when read)".to_string(), 0),
        };
        regions
            .entry((start, end, path.clone()))
            .or_insert_with(|| RegionRow { start, end, kind, path, anon_huge_bytes, split: Split::default() })
            .split
            .slot(role)
            .add(stat);
    }
    // Children map to their parent's windows even if they faulted on nothing.
    for (&child, &(parent, epoch)) in &ctx.children {
        if let Some(row) = windows.get_mut(&(parent, epoch)) {
            row.child = child;
        }
    }
    let mut regions: Vec<RegionRow> = regions.into_values().collect();
    regions.sort_by_key(|r| std::cmp::Reverse(r.split.parent_window.copies + r.split.parent_outside.faults));
    CowReport { total, windows: windows.into_values().collect(), regions, base_pages: base, huge_pages: huge }
}
