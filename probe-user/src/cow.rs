//! The copy-on-write table: faults, copies and reuses of the target and its
//! children, per snapshot window, per memory region and per page size.
//!
//! Every row comes from the same per-page entries, so the totals are the sums
//! of their breakdowns by construction. Entries of closed windows are folded
//! into a [`Table`] and removed from the kernel's map (they can no longer
//! change); a report adds the live entries, read once, to a copy of it.

use crate::procfs::{AddressSpace, PAGE, Region, RegionKind};
use probe_ebpf::{PageKey, PageStat};
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
    /// Distinct pages faulted on (in an interval report: pages first faulted on in it).
    pub pages: u64,
    /// Distinct pages copied.
    pub copied_pages: u64,
    /// Bytes copied (copies × 4 KiB).
    pub bytes_copied: u64,
}

impl Tally {
    /// Adds what happened to one page since `before` (its counts when last
    /// seen; all zero for a page not seen yet).
    fn add(&mut self, before: &PageStat, now: &PageStat) {
        let copies = now.copies.saturating_sub(before.copies);
        let zero_fills = now.zero_fills.saturating_sub(before.zero_fills);
        // Never fewer faults than outcomes, whatever the cut saw earlier.
        self.faults += now.faults.saturating_sub(before.faults).max(copies + zero_fills) as u64;
        self.copies += copies as u64;
        self.zero_fills += zero_fills as u64;
        self.reuses = self.faults.saturating_sub(self.copies + self.zero_fills);
        self.pages += (before.faults == 0) as u64;
        self.copied_pages += (before.copies == 0 && now.copies > 0) as u64;
        self.bytes_copied = self.copies * PAGE;
    }
}

/// A slice split by who faulted and when.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
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
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
pub struct WindowRow {
    /// Forking process.
    pub parent: u32,
    /// Window number in that process.
    pub epoch: u32,
    /// The child that held it open (0 if its fork was not seen).
    pub child: u32,
    /// The target's faults while the window was open.
    pub parent_faults: Tally,
    /// The child's own faults.
    pub child_faults: Tally,
}

/// Write faults on shared mappings (`MAP_SHARED`, anonymous or file): the
/// kernel tracking dirty pages or sharing them, never copy-on-write. Counted
/// apart and left out of every other row.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SharedWrites {
    /// Write faults.
    pub faults: u64,
    /// Distinct pages.
    pub pages: u64,
}

/// The copy-on-write table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CowReport {
    /// Totals: the sums of the rows below (the page map's entries, all of them
    /// unless `drops.page_map` says otherwise).
    pub total: Split,
    /// Per snapshot window.
    pub windows: Vec<WindowRow>,
    /// Per memory region (regions the faults fell in).
    pub regions: Vec<RegionRow>,
    /// Faults on pages backed by 4 KiB pages.
    pub base_pages: Split,
    /// Faults on pages that were part of a transparent huge page.
    pub huge_pages: Split,
    /// Write faults on shared mappings, not copy-on-write (not in the rows above).
    pub shared_mappings: SharedWrites,
}

#[derive(Clone, Copy)]
enum Role {
    Window,
    Outside,
    Child,
}

/// What the table needs to know about the recording.
pub struct Context<'a> {
    /// Window (parent, epoch) → the child holding it, from fork records (for display).
    pub children: HashMap<(u32, u32), u32>,
    /// Address spaces read at each fork: (pid, epoch).
    pub at_fork: &'a HashMap<(u32, u32), AddressSpace>,
    /// The latest address space read of each process.
    pub latest: &'a HashMap<u32, AddressSpace>,
}

impl Context<'_> {
    /// The address space that best describes `addr` of `owner` in window `epoch`:
    /// the one read at that fork, else the latest, else any earlier fork's.
    fn locate(&self, owner: u32, epoch: u32, addr: u64) -> Option<(&AddressSpace, &Region)> {
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

/// Rows accumulated from page entries.
#[derive(Clone, Default)]
pub struct Table {
    total: Split,
    windows: BTreeMap<(u32, u32), WindowRow>,
    regions: BTreeMap<(u64, u64, String), RegionRow>,
    base: Split,
    huge: Split,
    shared: SharedWrites,
}

impl Table {
    /// Adds one page entry: what happened to it since `before` (its counts
    /// when it was last added to a table of the same series, or zeros).
    pub fn add(&mut self, ctx: &Context, key: &PageKey, before: &PageStat, stat: &PageStat) {
        let found = ctx.locate(key.owner, key.epoch, key.page());
        if found.is_some_and(|(_, r)| r.shared()) {
            self.shared.faults += stat.faults.saturating_sub(before.faults) as u64;
            self.shared.pages += (before.faults == 0) as u64;
            return;
        }
        let role = match (key.child(), key.epoch) {
            (true, _) => Role::Child,
            (false, 0) => Role::Outside,
            (false, _) => Role::Window,
        };
        self.total.slot(role).add(before, stat);
        if key.epoch > 0 {
            let row = self.windows.entry((key.owner, key.epoch)).or_insert_with(|| WindowRow {
                parent: key.owner,
                epoch: key.epoch,
                child: 0,
                parent_faults: Tally::default(),
                child_faults: Tally::default(),
            });
            if key.child() { &mut row.child_faults } else { &mut row.parent_faults }.add(before, stat);
        }
        let huge_page = found.is_some_and(|(s, _)| s.is_huge(key.page()));
        if huge_page { &mut self.huge } else { &mut self.base }.slot(role).add(before, stat);
        let (start, end, kind, path, anon_huge_bytes) = match found {
            Some((_, r)) => (r.start, r.end, r.kind, r.path.clone(), r.anon_huge_bytes),
            None => (0, 0, RegionKind::Unknown, "(not mapped when read)".to_string(), 0),
        };
        self.regions
            .entry((start, end, path.clone()))
            .or_insert_with(|| RegionRow { start, end, kind, path, anon_huge_bytes, split: Split::default() })
            .split
            .slot(role)
            .add(before, stat);
    }

    /// The report of these rows.
    pub fn report(&self, ctx: &Context) -> CowReport {
        let mut windows: Vec<WindowRow> = self.windows.values().cloned().collect();
        for row in &mut windows {
            row.child = ctx.children.get(&(row.parent, row.epoch)).copied().unwrap_or(0);
        }
        let mut regions: Vec<RegionRow> = self.regions.values().cloned().collect();
        regions.sort_by_key(|r| std::cmp::Reverse(r.split.parent_window.copies + r.split.parent_outside.faults));
        CowReport {
            total: self.total,
            windows,
            regions,
            base_pages: self.base,
            huge_pages: self.huge,
            shared_mappings: self.shared,
        }
    }
}

impl CowReport {
    /// Whether the totals equal the sums of their breakdowns (base + huge
    /// pages, regions, and windows for the in-window rows).
    #[cfg(test)]
    pub fn consistent(&self) -> bool {
        let by_size = add_split(&self.base_pages, &self.huge_pages);
        let mut by_region = Split::default();
        for r in &self.regions {
            by_region = add_split(&by_region, &r.split);
        }
        let window_faults: u64 = self.windows.iter().map(|w| w.parent_faults.faults).sum();
        by_size == self.total && by_region == self.total && window_faults == self.total.parent_window.faults
    }
}

#[cfg(test)]
fn add_split(a: &Split, b: &Split) -> Split {
    let t = |x: &Tally, y: &Tally| Tally {
        faults: x.faults + y.faults,
        copies: x.copies + y.copies,
        reuses: x.reuses + y.reuses,
        zero_fills: x.zero_fills + y.zero_fills,
        pages: x.pages + y.pages,
        copied_pages: x.copied_pages + y.copied_pages,
        bytes_copied: x.bytes_copied + y.bytes_copied,
    };
    Split {
        parent_window: t(&a.parent_window, &b.parent_window),
        parent_outside: t(&a.parent_outside, &b.parent_outside),
        child: t(&a.child, &b.child),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::Region;

    fn space(regions: &[(u64, u64, &str)]) -> AddressSpace {
        AddressSpace {
            regions: regions
                .iter()
                .map(|&(start, end, perms)| Region {
                    start,
                    end,
                    perms: perms.to_string(),
                    kind: RegionKind::Anon,
                    path: String::new(),
                    anon_huge_bytes: 0,
                })
                .collect(),
            huge_chunks: Default::default(),
            read_at: 0,
        }
    }

    #[test]
    fn totals_are_the_sums_of_their_rows_and_shared_mappings_stay_apart() {
        let at_fork = HashMap::from([((1, 1), space(&[(0x1000, 0x9000, "rw-p"), (0x10000, 0x20000, "rw-s")]))]);
        let latest = HashMap::new();
        let ctx = Context { children: HashMap::from([((1, 1), 2)]), at_fork: &at_fork, latest: &latest };
        let mut t = Table::default();
        let none = PageStat::default();
        let copy = PageStat { faults: 1, copies: 1, zero_fills: 0 };
        let reuse = PageStat { faults: 1, copies: 0, zero_fills: 0 };
        t.add(&ctx, &PageKey::new(1, 1, 0x1000, false), &none, &copy);
        t.add(&ctx, &PageKey::new(1, 1, 0x2000, false), &none, &copy);
        t.add(&ctx, &PageKey::new(1, 1, 0x3000, true), &none, &copy);
        t.add(&ctx, &PageKey::new(1, 0, 0x4000, false), &none, &reuse);
        t.add(&ctx, &PageKey::new(1, 1, 0x10000, false), &none, &reuse);
        let first = t.report(&ctx);
        assert!(first.consistent(), "{first:?}");
        assert_eq!(first.total.parent_window.copies, 2);
        assert_eq!(first.total.child.copies, 1);
        assert_eq!(first.total.parent_outside.reuses, 1);
        assert_eq!(first.shared_mappings, SharedWrites { faults: 1, pages: 1 });
        assert_eq!(first.windows[0].child, 2);
        // A later interval: one new page, and a page seen before faulting again.
        let mut next = Table::default();
        next.add(&ctx, &PageKey::new(1, 1, 0x5000, false), &none, &copy);
        let twice = PageStat { faults: 2, copies: 0, zero_fills: 0 };
        next.add(&ctx, &PageKey::new(1, 0, 0x4000, false), &reuse, &twice);
        let delta = next.report(&ctx);
        assert_eq!(delta.total.parent_window.copies, 1);
        assert_eq!(delta.total.parent_outside.faults, 1);
        assert_eq!(delta.total.parent_outside.pages, 0, "not a new page");
        assert!(delta.consistent(), "{delta:?}");
    }
}
