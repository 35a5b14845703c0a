//! Set commands: membership (SADD, SREM, SISMEMBER, SMISMEMBER, SCARD,
//! SMEMBERS), random access (SPOP, SRANDMEMBER), SMOVE, the algebra (SINTER,
//! SUNION, SDIFF, their STORE forms, SINTERCARD) and SSCAN.
//!
//! Reply order follows Redis 7.0 wherever it is deterministic there: an
//! intset answers in ascending order, and results that Redis builds as a new
//! set (SUNION, SDIFF, SPOP of the whole set) are built the same way here, so
//! an all-integer result comes back sorted.

use super::flags::*;
use super::scan::{Scanned, Visit};
use super::{Args, Command, Ctx, NOT_INT, SYNTAX, WRONGTYPE, command};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::types::Limits;
use crate::types::set::{Member, Set};
use crate::util::parse_i64;
use crate::value::Value;
use std::collections::HashSet;

/// The set command table.
pub const COMMANDS: &[Command] = &[
    command("sadd", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "@set", sadd),
    command("srem", -3, WRITE | FAST, 1, 1, 1, "@set", srem),
    command("sismember", 3, READONLY | FAST, 1, 1, 1, "@set", sismember),
    command("smismember", -3, READONLY | FAST, 1, 1, 1, "@set", smismember),
    command("scard", 2, READONLY | FAST, 1, 1, 1, "@set", scard),
    command("smembers", 2, READONLY, 1, 1, 1, "@set", smembers),
    command("spop", -2, WRITE | FAST, 1, 1, 1, "@set", spop),
    command("srandmember", -2, READONLY, 1, 1, 1, "@set", srandmember),
    command("smove", 4, WRITE | FAST, 1, 2, 1, "@set", smove),
    command("sinter", -2, READONLY, 1, -1, 1, "@set", sinter),
    command("sinterstore", -3, WRITE | DENYOOM, 1, -1, 1, "@set", sinterstore),
    command("sintercard", -3, READONLY, 0, 0, 0, "@set", sintercard),
    command("sunion", -2, READONLY, 1, -1, 1, "@set", sunion),
    command("sunionstore", -3, WRITE | DENYOOM, 1, -1, 1, "@set", sunionstore),
    command("sdiff", -2, READONLY, 1, -1, 1, "@set", sdiff),
    command("sdiffstore", -3, WRITE | DENYOOM, 1, -1, 1, "@set", sdiffstore),
    command("sscan", -3, READONLY, 1, 1, 1, "@set", sscan),
];

/// A reply this large stops SRANDMEMBER with a negative count and closes the
/// connection (Redis stops at its output-buffer limit the same way) rather
/// than letting one request grow memory without bound.
const MAX_REPLY_BYTES: usize = 1 << 30;

/// SPOP's count error (Redis's `getPositiveLongFromObjectOrReply`).
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

#[inline]
fn reply_member(r: &mut Reply, m: Member) {
    match m {
        Member::Int(i) => r.bulk_int(i),
        Member::Bytes(b) => r.bulk(b),
    }
}

/// Replies with a whole set as a RESP3 set (an array in RESP2).
fn reply_set(r: &mut Reply, s: &Set) {
    r.set(s.len());
    for m in s.iter() {
        reply_member(r, m);
    }
}

/// Copies a set the way Redis's SUNION builds its result: a fresh set that
/// starts as an intset, so its encoding (and reply order) is recomputed.
fn rebuilt(s: &Set, limits: &Limits) -> Set {
    let mut out = Set::new();
    for m in s.iter() {
        out.insert_member(m, limits);
    }
    out
}

fn sadd(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let key = &a[1];
    let limits = Limits::of(&ctx.srv.config);
    let mut added = 0u64;
    match ctx.srv.ks.write(db, key) {
        Some(Value::Set(s)) => {
            for m in a.from(2) {
                added += s.insert(m, &limits) as u64;
            }
            if added > 0 {
                ctx.srv.ks.changed(db, key, added);
            }
        }
        Some(_) => return ctx.err(WRONGTYPE),
        None => {
            let mut s = Set::new();
            for m in a.from(2) {
                added += s.insert(m, &limits) as u64;
            }
            ctx.srv.ks.create(db, key, Value::Set(Box::new(s)), added);
        }
    }
    ctx.c.reply.int(added as i64);
}

fn srem(ctx: &mut Ctx, a: &Args) {
    super::remove_members::<Set>(ctx, a);
}

fn sismember(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.int(0),
        Some(Value::Set(s)) => ctx.c.reply.int(s.contains(&a[2]) as i64),
        Some(_) => ctx.err(WRONGTYPE),
    }
}

fn smismember(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    let set = match ctx.srv.ks.read(db, &a[1]) {
        None => None,
        Some(Value::Set(s)) => Some(s),
        Some(_) => return r.error(WRONGTYPE),
    };
    r.array(a.len() - 2);
    for m in a.from(2) {
        r.int(set.is_some_and(|s| s.contains(m)) as i64);
    }
}

fn scard(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.int(0),
        Some(Value::Set(s)) => ctx.c.reply.int(s.len() as i64),
        Some(_) => ctx.err(WRONGTYPE),
    }
}

fn smembers(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.set(0),
        Some(Value::Set(s)) => reply_set(&mut ctx.c.reply, s),
        Some(_) => ctx.err(WRONGTYPE),
    }
}

fn spop(ctx: &mut Ctx, a: &Args) {
    if a.len() == 3 {
        return spop_count(ctx, a);
    }
    if a.len() > 3 {
        return ctx.err(SYNTAX);
    }
    let db = ctx.db();
    let key = &a[1];
    let ks = &mut ctx.srv.ks;
    ks.expire_if_needed(db, key);
    let (member, empty) = match ks.dbs[db].dict.get_mut(key) {
        Some(Value::Set(s)) => match s.pop_random(&mut ks.rng) {
            Some(m) => (m, s.is_empty()),
            None => return ctx.c.reply.null(),
        },
        Some(_) => return ctx.c.reply.error(WRONGTYPE),
        None => return ctx.c.reply.null(),
    };
    ctx.c.reply.bulk(&member);
    ks.collection_changed(db, key, empty, 1);
    ctx.log_as(&[&[b"SREM", key, &member]]);
}

fn spop_count(ctx: &mut Ctx, a: &Args) {
    let Some(count) = parse_i64(&a[2]).filter(|n| *n >= 0) else { return ctx.err(NOT_POSITIVE) };
    let db = ctx.db();
    let key = &a[1];
    let limits = Limits::of(&ctx.srv.config);
    // The AOF gets the members that were popped (SREM), not the random draw.
    let log = ctx.srv.aof.logging();
    let mut popped: Vec<Vec<u8>> = Vec::new();
    let ks = &mut ctx.srv.ks;
    let r = &mut ctx.c.reply;
    ks.expire_if_needed(db, key);
    let s = match ks.dbs[db].dict.get_mut(key) {
        None => return r.set(0),
        Some(Value::Set(s)) => s,
        Some(_) => return r.error(WRONGTYPE),
    };
    if count == 0 {
        return r.set(0);
    }
    let size = s.len();
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count >= size {
        // The whole set, as SUNION of the one key lists it: only a hashtable
        // of few integers would come back in a different (sorted) order.
        let as_intset = matches!(&**s, Set::Table(_))
            && size <= limits.set_intset_entries
            && s.iter().all(|m| parse_i64(m.bytes(&mut [0; 20])).is_some());
        if as_intset {
            reply_set(r, &rebuilt(s, &limits));
        } else {
            reply_set(r, s);
        }
        ks.collection_changed(db, key, true, size as u64);
        ctx.log_as(&[&[b"DEL", key]]);
        return;
    }
    r.set(count);
    let remaining = size - count;
    if remaining * 5 > count {
        // Few to pop: draw them one by one.
        for _ in 0..count {
            let m = s.pop_random(&mut ks.rng).expect("count < size");
            r.bulk(&m);
            if log {
                popped.push(m.to_vec());
            }
        }
    } else {
        // Most of the set goes: draw the members that stay instead, and
        // reply with what is left of the old set.
        let mut keep = Set::new();
        for _ in 0..remaining {
            keep.insert(&s.pop_random(&mut ks.rng).expect("remaining < size"), &limits);
        }
        for m in s.iter() {
            if log {
                popped.push(m.bytes(&mut [0; 20]).to_vec());
            }
            reply_member(r, m);
        }
        **s = keep;
    }
    ks.changed(db, key, count as u64);
    let args: Vec<&[u8]> = [&b"SREM"[..], key].into_iter().chain(popped.iter().map(Vec::as_slice)).collect();
    ctx.log_as(&[&args]);
}

fn srandmember(ctx: &mut Ctx, a: &Args) {
    if a.len() == 3 {
        return srandmember_count(ctx, a);
    }
    if a.len() > 3 {
        return ctx.err(SYNTAX);
    }
    let db = ctx.db();
    let ks = &mut ctx.srv.ks;
    match ks.read(db, &a[1]) {
        None => return ctx.c.reply.null(),
        Some(Value::Set(_)) => {}
        Some(_) => return ctx.c.reply.error(WRONGTYPE),
    }
    let Some(Value::Set(s)) = ks.dbs[db].dict.get(&a[1]) else { unreachable!("checked above") };
    let r = &mut ctx.c.reply;
    if s.random_with(&mut ks.rng, |m| reply_member(r, m)).is_none() {
        r.null();
    }
}

fn srandmember_count(ctx: &mut Ctx, a: &Args) {
    let l = match parse_i64(&a[2]) {
        None => return ctx.err(NOT_INT),
        Some(i64::MIN) => {
            return ctx
                .err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
        }
        Some(l) => l,
    };
    let db = ctx.db();
    let ks = &mut ctx.srv.ks;
    let r = &mut ctx.c.reply;
    match ks.read(db, &a[1]) {
        None => return r.array(0),
        Some(Value::Set(_)) => {}
        Some(_) => return r.error(WRONGTYPE),
    }
    let Some(Value::Set(s)) = ks.dbs[db].dict.get(&a[1]) else { unreachable!("checked above") };
    let rng = &mut ks.rng;
    let count = usize::try_from(l.unsigned_abs()).unwrap_or(usize::MAX);
    if count == 0 || s.is_empty() {
        return r.array(0);
    }
    // Negative count (or 1): independent draws, repeats allowed.
    if l < 0 || count == 1 {
        r.array(count);
        for _ in 0..count {
            s.random_with(rng, |m| reply_member(r, m));
            if r.buf.len() > MAX_REPLY_BYTES {
                ctx.c.close_after_reply = true;
                break;
            }
        }
        return;
    }
    let size = s.len();
    // At least the whole set: all of it, in its own order.
    if count >= size {
        r.array(size);
        for m in s.iter() {
            reply_member(r, m);
        }
        return;
    }
    r.array(count);
    if count * 3 > size {
        // Close to the whole set: drop random members until `count` remain.
        let mut all: Vec<Member> = s.iter().collect();
        while all.len() > count {
            let i = rng.below(all.len() as u64) as usize;
            all.swap_remove(i);
        }
        for m in all {
            reply_member(r, m);
        }
    } else {
        // Much smaller than the set: draw until `count` distinct members.
        let mut picked: HashSet<Vec<u8>> = HashSet::with_capacity(count);
        while picked.len() < count {
            picked.insert(s.random_with(rng, |m| m.to_vec()).expect("sets are never empty"));
        }
        for m in picked {
            r.bulk(&m);
        }
    }
}

fn smove(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let (src, dst, member) = (&a[1], &a[2], &a[3]);
    let limits = Limits::of(&ctx.srv.config);
    let ks = &mut ctx.srv.ks;
    // Both keys are looked up (and lazily expired) before any check, as in Redis.
    let src_is_set = ks.write(db, src).map(|v| matches!(v, Value::Set(_)));
    let dst_is_set = ks.write(db, dst).map(|v| matches!(v, Value::Set(_)));
    match src_is_set {
        None => return ctx.c.reply.int(0),
        Some(false) => return ctx.c.reply.error(WRONGTYPE),
        Some(true) if dst_is_set == Some(false) => return ctx.c.reply.error(WRONGTYPE),
        Some(true) => {}
    }
    let Some(Value::Set(s)) = ks.dbs[db].dict.get_mut(src) else { unreachable!("checked above") };
    if src == dst {
        return ctx.c.reply.int(s.contains(member) as i64);
    }
    if !s.remove(member) {
        return ctx.c.reply.int(0);
    }
    let empty = s.is_empty();
    ks.collection_changed(db, src, empty, 1);
    match ks.dbs[db].dict.get_mut(dst) {
        Some(Value::Set(d)) => {
            if d.insert(member, &limits) {
                ks.changed(db, dst, 1);
            }
        }
        _ => {
            let mut d = Set::new();
            d.insert(member, &limits);
            ks.create(db, dst, Value::Set(Box::new(d)), 1);
        }
    }
    ctx.c.reply.int(1);
}

/// Looks up `keys` as sets for reading (lazy expiry and hit/miss stats, in
/// order, stopping at the first WRONGTYPE, which is replied). Missing keys
/// are `None`.
fn read_sets<'a, 'k>(
    ks: &'a mut Keyspace,
    r: &mut Reply,
    db: usize,
    keys: impl Iterator<Item = &'k [u8]>,
) -> Option<Vec<Option<&'a Set>>> {
    let keys: Vec<&[u8]> = keys.collect();
    for k in &keys {
        if let Some(v) = ks.read(db, k)
            && !matches!(v, Value::Set(_))
        {
            r.error(WRONGTYPE);
            return None;
        }
    }
    let ks: &'a Keyspace = ks;
    Some(
        keys.iter()
            .map(|k| match ks.dbs[db].dict.get(k) {
                Some(Value::Set(s)) => Some(&**s),
                _ => None,
            })
            .collect(),
    )
}

/// Stores a SINTERSTORE/SUNIONSTORE/SDIFFSTORE result (deleting `dst` when
/// it is empty) and replies with its size.
fn store_result(ctx: &mut Ctx, dst: &[u8], result: Set) {
    let db = ctx.db();
    let n = result.len();
    if n > 0 {
        ctx.srv.ks.set(db, dst, Value::Set(Box::new(result)), false);
    } else {
        ctx.srv.ks.delete(db, dst);
    }
    ctx.c.reply.int(n as i64);
}

/// What an intersection produces.
enum InterOut<'a> {
    /// Reply with the members (SINTER, SMEMBERS).
    Reply,
    /// Store them at this key (SINTERSTORE).
    Store(&'a [u8]),
    /// Reply with their number, stopping at a limit if non-zero (SINTERCARD).
    Count(usize),
}

fn sinter_generic<'k>(ctx: &mut Ctx, keys: impl Iterator<Item = &'k [u8]>, out: InterOut) {
    let db = ctx.db();
    let limits = Limits::of(&ctx.srv.config);
    let r = &mut ctx.c.reply;
    let Some(found) = read_sets(&mut ctx.srv.ks, r, db, keys) else { return };
    let Some(mut sets) = found.into_iter().collect::<Option<Vec<&Set>>>() else {
        // A missing key is an empty set, so the intersection is empty.
        return match out {
            InterOut::Reply => r.set(0),
            InterOut::Count(_) => r.int(0),
            InterOut::Store(dst) => store_result(ctx, dst, Set::new()),
        };
    };
    // Smallest first: fewest candidates to test.
    sets.sort_by_key(|s| s.len());
    let first = sets[0];
    let rest = &sets[1..];
    let in_all = |m: Member| rest.iter().all(|s| std::ptr::eq(*s, first) || s.contains_member(m));
    match out {
        InterOut::Reply => {
            let d = r.begin_array();
            let mut n = 0;
            for m in first.iter().filter(|m| in_all(*m)) {
                reply_member(r, m);
                n += 1;
            }
            r.end_set(d, n);
        }
        InterOut::Count(limit) => {
            let mut n = 0;
            for _ in first.iter().filter(|m| in_all(*m)) {
                n += 1;
                if n == limit {
                    break;
                }
            }
            r.int(n as i64);
        }
        InterOut::Store(dst) => {
            let mut result = Set::new();
            for m in first.iter().filter(|m| in_all(*m)) {
                result.insert_member(m, &limits);
            }
            store_result(ctx, dst, result);
        }
    }
}

fn sinter(ctx: &mut Ctx, a: &Args) {
    sinter_generic(ctx, a.from(1), InterOut::Reply);
}

fn sinterstore(ctx: &mut Ctx, a: &Args) {
    sinter_generic(ctx, a.from(2), InterOut::Store(&a[1]));
}

fn sintercard(ctx: &mut Ctx, a: &Args) {
    let Some(numkeys) = parse_i64(&a[1]).filter(|n| *n >= 1) else {
        return ctx.err("ERR numkeys should be greater than 0");
    };
    if numkeys > (a.len() - 2) as i64 {
        return ctx.err("ERR Number of keys can't be greater than number of args");
    }
    let numkeys = numkeys as usize;
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < a.len() {
        if a[i].eq_ignore_ascii_case(b"limit") && i + 1 < a.len() {
            let Some(l) = parse_i64(&a[i + 1]).filter(|n| *n >= 0) else {
                return ctx.err("ERR LIMIT can't be negative");
            };
            limit = usize::try_from(l).unwrap_or(usize::MAX);
            i += 2;
        } else {
            return ctx.err(SYNTAX);
        }
    }
    sinter_generic(ctx, a.from(2).take(numkeys), InterOut::Count(limit));
}

/// SUNION or SDIFF.
#[derive(PartialEq, Clone, Copy)]
enum SetOp {
    Union,
    Diff,
}

fn sunion_diff<'k>(ctx: &mut Ctx, keys: impl Iterator<Item = &'k [u8]>, dst: Option<&[u8]>, op: SetOp) {
    let db = ctx.db();
    let limits = Limits::of(&ctx.srv.config);
    let r = &mut ctx.c.reply;
    let Some(sets) = read_sets(&mut ctx.srv.ks, r, db, keys) else { return };
    let mut result = Set::new();
    match (op, sets[0]) {
        (SetOp::Union, _) => {
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    result.insert_member(m, &limits);
                }
            }
        }
        (SetOp::Diff, None) => {}
        // The first key again later: everything is subtracted.
        (SetOp::Diff, Some(first)) if sets[1..].iter().flatten().any(|s| std::ptr::eq(*s, first)) => {}
        (SetOp::Diff, Some(first)) => {
            // Redis picks the cheaper of two algorithms; they can leave the
            // result in different encodings, so the choice shows in the order.
            let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
            let one = first.len() * (others.len() + 1) / 2;
            let two = first.len() + others.iter().map(|s| s.len()).sum::<usize>();
            if one <= two {
                for m in first.iter().filter(|m| !others.iter().any(|s| s.contains_member(*m))) {
                    result.insert_member(m, &limits);
                }
            } else {
                for m in first.iter() {
                    result.insert_member(m, &limits);
                }
                for s in &others {
                    if result.is_empty() {
                        break;
                    }
                    for m in s.iter() {
                        result.remove_member(m);
                    }
                }
            }
        }
    }
    match dst {
        Some(dst) => store_result(ctx, dst, result),
        None => reply_set(r, &result),
    }
}

fn sunion(ctx: &mut Ctx, a: &Args) {
    sunion_diff(ctx, a.from(1), None, SetOp::Union);
}

fn sunionstore(ctx: &mut Ctx, a: &Args) {
    sunion_diff(ctx, a.from(2), Some(&a[1]), SetOp::Union);
}

fn sdiff(ctx: &mut Ctx, a: &Args) {
    sunion_diff(ctx, a.from(1), None, SetOp::Diff);
}

fn sdiffstore(ctx: &mut Ctx, a: &Args) {
    sunion_diff(ctx, a.from(2), Some(&a[1]), SetOp::Diff);
}

fn sscan(ctx: &mut Ctx, a: &Args) {
    super::scan::collection::<Set>(ctx, a);
}

impl Scanned for Set {
    const WIDTH: usize = 1;

    fn of(v: &Value) -> Option<&Set> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    fn step(&self, cursor: u64, f: &mut Visit) -> u64 {
        self.scan(cursor, |m| f(m, &|r| r.bulk(m)))
    }
}
