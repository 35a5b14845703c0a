//! What SCAN, HSCAN, SSCAN and ZSCAN share (Redis's `scanGenericCommand`):
//! cursor and option parsing, the walk over a hash table's buckets with its
//! COUNT rule, and the whole of the collection variants, which differ only in
//! the type they walk and the items each entry replies.
//!
//! COUNT bounds the elements *visited*, as in Redis 7.0: a walk stops once
//! that many were collected, before MATCH (and SCAN's TYPE and expiry)
//! filter them, so a selective pattern may return few elements or none with
//! a non-zero cursor. Compact encodings (listpack, intset) are returned whole
//! in one call with cursor 0, whatever the cursor and COUNT.

use super::{Args, Ctx, NOT_INT, SYNTAX, WRONGTYPE};
use crate::glob;
use crate::protocol::reply::Reply;
use crate::util::parse_i64;
use crate::value::Value;
use std::cell::Cell;

/// Parses a SCAN cursor the way Redis does (C's `strtoul`): an unsigned 64-bit
/// integer with an optional sign (`-1` wraps to the largest cursor); the empty
/// string is cursor 0; leading spaces, trailing garbage and overflow are errors.
pub fn parse_cursor(ctx: &mut Ctx, b: &[u8]) -> Option<u64> {
    let v = strtoul(b);
    if v.is_none() {
        ctx.err("ERR invalid cursor");
    }
    v
}

fn strtoul(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SCAN-family options: MATCH, COUNT and (for SCAN) TYPE.
pub struct ScanOpts {
    /// MATCH pattern.
    pub pattern: Option<Vec<u8>>,
    /// COUNT hint.
    pub count: usize,
    /// TYPE filter (SCAN only).
    pub kind: Option<String>,
}

/// Parses `[MATCH p] [COUNT n] [TYPE t]` from `a[from..]`; replies on error.
pub fn parse_scan_opts(ctx: &mut Ctx, a: &Args, from: usize, allow_type: bool) -> Option<ScanOpts> {
    let mut o = ScanOpts { pattern: None, count: 10, kind: None };
    let mut i = from;
    while i < a.len() {
        let opt = a.lower(i);
        if i + 1 >= a.len() {
            ctx.err(SYNTAX);
            return None;
        }
        match opt.as_str() {
            "match" => o.pattern = Some(a[i + 1].to_vec()).filter(|p| p != b"*"),
            "count" => match parse_i64(&a[i + 1]) {
                None => {
                    ctx.err(NOT_INT);
                    return None;
                }
                Some(n) if n < 1 => {
                    ctx.err(SYNTAX);
                    return None;
                }
                Some(n) => o.count = n as usize,
            },
            "type" if allow_type => o.kind = Some(a.lower(i + 1)),
            _ => {
                ctx.err(SYNTAX);
                return None;
            }
        }
        i += 2;
    }
    Some(o)
}

/// Walks a hash table's buckets from `cursor` as Redis does: `step` scans one
/// bucket and returns the next cursor. The walk ends when the table is done
/// (cursor 0), once `visited()` reaches `count`, or after `count * 10` more
/// buckets, so that a sparse table cannot block the server.
pub fn walk(mut cursor: u64, count: usize, mut step: impl FnMut(u64) -> u64, visited: impl Fn() -> usize) -> u64 {
    // COUNT comes from the client: saturate rather than overflow.
    let mut budget = count.saturating_mul(10);
    loop {
        cursor = step(cursor);
        if cursor == 0 || budget == 0 || visited() >= count {
            return cursor;
        }
        budget -= 1;
    }
}

/// Receives each entry a walk visits: its name, which MATCH tests, and a
/// writer of its reply items.
pub type Visit<'a> = dyn FnMut(&[u8], &dyn Fn(&mut Reply)) + 'a;

/// A collection HSCAN, SSCAN or ZSCAN walks.
pub trait Scanned {
    /// Reply items per entry: 1 (a member) or 2 (field and value, member and
    /// score). Redis counts each item as an element, against COUNT times this.
    const WIDTH: usize;

    /// The collection `v` holds, if it is of this type.
    fn of(v: &Value) -> Option<&Self>;

    /// Scans one bucket from `cursor` (a compact encoding: everything,
    /// returning 0), passing each entry to `f`.
    fn step(&self, cursor: u64, f: &mut Visit) -> u64;
}

/// HSCAN, SSCAN and ZSCAN: `<cmd> key cursor [MATCH pattern] [COUNT count]`.
pub fn collection<C: Scanned>(ctx: &mut Ctx, a: &Args) {
    let Some(cursor) = parse_cursor(ctx, &a[2]) else { return };
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => {
            let r = &mut ctx.c.reply;
            r.array(2);
            r.bulk(b"0");
            return r.array(0);
        }
        Some(v) if C::of(v).is_none() => return ctx.err(WRONGTYPE),
        Some(_) => {}
    }
    // Options are parsed after the lookup, as Redis does.
    let Some(o) = parse_scan_opts(ctx, a, 3, false) else { return };
    let c = ctx.srv.ks.dbs[db].dict.get(&a[1]).and_then(C::of).expect("checked above");
    // Entries are encoded straight into a scratch buffer: the reply's cursor
    // comes first but is known only after the walk.
    let mut items = Reply::default();
    let (visited, mut matched) = (Cell::new(0usize), 0usize);
    let mut each = |name: &[u8], write: &dyn Fn(&mut Reply)| {
        visited.set(visited.get() + C::WIDTH);
        if o.pattern.as_ref().is_none_or(|p| glob::matches(p, name, false)) {
            write(&mut items);
            matched += 1;
        }
    };
    let cursor = walk(cursor, o.count.saturating_mul(C::WIDTH), |cur| c.step(cur, &mut each), || visited.get());
    let r = &mut ctx.c.reply;
    r.array(2);
    r.bulk(cursor.to_string().as_bytes());
    r.array(matched * C::WIDTH);
    r.raw(&items.buf);
}
