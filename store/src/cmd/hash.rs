//! Hash commands: field reads and writes, counters, whole-hash replies,
//! HRANDFIELD and HSCAN.

use super::flags::*;
use super::scan::{Scanned, Visit};
use super::{Args, Command, Ctx, NOT_FLOAT, OVERFLOW, SYNTAX, WRONGTYPE, command};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::types::Limits;
use crate::types::hash::Hash;
use crate::util::{FloatIncrError, fmt_i64, long_double_add, parse_i64};
use crate::value::Value;
use std::collections::HashSet;

/// The hash command table.
pub const COMMANDS: &[Command] = &[
    command("hset", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "@hash", hset),
    command("hsetnx", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "@hash", hsetnx),
    command("hget", 3, READONLY | FAST, 1, 1, 1, "@hash", hget),
    command("hmset", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "@hash", hmset),
    command("hmget", -3, READONLY | FAST, 1, 1, 1, "@hash", hmget),
    command("hdel", -3, WRITE | FAST, 1, 1, 1, "@hash", hdel),
    command("hlen", 2, READONLY | FAST, 1, 1, 1, "@hash", hlen),
    command("hexists", 3, READONLY | FAST, 1, 1, 1, "@hash", hexists),
    command("hgetall", 2, READONLY, 1, 1, 1, "@hash", hgetall),
    command("hkeys", 2, READONLY, 1, 1, 1, "@hash", hkeys),
    command("hvals", 2, READONLY, 1, 1, 1, "@hash", hvals),
    command("hincrby", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "@hash", hincrby),
    command("hincrbyfloat", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "@hash", hincrbyfloat),
    command("hstrlen", 3, READONLY | FAST, 1, 1, 1, "@hash", hstrlen),
    command("hrandfield", -2, READONLY, 1, 1, 1, "@hash", hrandfield),
    command("hscan", -3, READONLY, 1, 1, 1, "@hash", hscan),
];

/// A reply this large stops HRANDFIELD with a negative count and closes the
/// connection (Redis stops at its output-buffer limit the same way) rather
/// than letting one request grow memory without bound.
const MAX_REPLY_BYTES: usize = 1 << 30;

/// The hash at `key` for modification: `Ok(None)` when absent, `Err` when
/// the key holds another type.
fn hash_mut<'a>(ks: &'a mut Keyspace, db: usize, key: &[u8]) -> Result<Option<&'a mut Hash>, ()> {
    match ks.write(db, key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(()),
    }
}

/// The hash at `key` for reading (counts a keyspace hit or miss).
fn hash_ref<'a>(ks: &'a mut Keyspace, db: usize, key: &[u8]) -> Result<Option<&'a Hash>, ()> {
    match ks.read(db, key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(()),
    }
}

/// Sets fields of the hash at `key`, creating it when absent, as `changes`
/// changes; returns how many fields were new, or `None` (nothing changed)
/// when `key` holds another type.
fn set_fields<'p>(
    ks: &mut Keyspace,
    db: usize,
    key: &[u8],
    pairs: impl Iterator<Item = (&'p [u8], &'p [u8])>,
    lim: &Limits,
    changes: u64,
) -> Option<usize> {
    let set_all = |h: &mut Hash| pairs.map(|(f, v)| h.insert(f, v, lim) as usize).sum::<usize>();
    match hash_mut(ks, db, key) {
        Err(()) => None,
        Ok(Some(h)) => {
            let n = set_all(h);
            ks.changed(db, key, changes);
            Some(n)
        }
        Ok(None) => {
            let mut h = Hash::new();
            let n = set_all(&mut h);
            ks.create(db, key, Value::Hash(Box::new(h)), changes);
            Some(n)
        }
    }
}

/// HSET and HMSET: checks the pairs, sets them; `Some(new fields)` on success.
fn hset_generic(ctx: &mut Ctx, a: &Args, name: &str) -> Option<usize> {
    if a.len() % 2 == 1 {
        ctx.err(&format!("ERR wrong number of arguments for '{name}' command"));
        return None;
    }
    let lim = Limits::of(&ctx.srv.config);
    let db = ctx.db();
    let mut args = a.from(2);
    let pairs = std::iter::from_fn(|| Some((args.next()?, args.next()?)));
    let Some(n) = set_fields(&mut ctx.srv.ks, db, &a[1], pairs, &lim, ((a.len() - 2) / 2) as u64) else {
        ctx.err(WRONGTYPE);
        return None;
    };
    Some(n)
}

fn hset(ctx: &mut Ctx, a: &Args) {
    if let Some(n) = hset_generic(ctx, a, "hset") {
        ctx.c.reply.int(n as i64);
    }
}

fn hmset(ctx: &mut Ctx, a: &Args) {
    if hset_generic(ctx, a, "hmset").is_some() {
        ctx.c.reply.ok();
    }
}

fn hsetnx(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let exists = match hash_mut(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(h) => h.is_some_and(|h| h.get(&a[2]).is_some()),
    };
    if exists {
        return ctx.c.reply.int(0);
    }
    let lim = Limits::of(&ctx.srv.config);
    set_fields(&mut ctx.srv.ks, db, &a[1], std::iter::once((&a[2], &a[3])), &lim, 1);
    ctx.c.reply.int(1);
}

fn hget(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    match hash_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => r.error(WRONGTYPE),
        Ok(h) => match h.and_then(|h| h.get(&a[2])) {
            Some(v) => r.bulk(v),
            None => r.null(),
        },
    }
}

fn hmget(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    let h = match hash_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => return r.error(WRONGTYPE),
        Ok(h) => h,
    };
    r.array(a.len() - 2);
    for f in a.from(2) {
        match h.and_then(|h| h.get(f)) {
            Some(v) => r.bulk(v),
            None => r.null(),
        }
    }
}

fn hdel(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let key = &a[1];
    let h = match hash_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(None) => return ctx.c.reply.int(0),
        Ok(Some(h)) => h,
    };
    let mut deleted = 0u64;
    for f in a.from(2) {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let empty = h.is_empty();
    if deleted > 0 {
        ctx.srv.ks.collection_changed(db, key, empty, deleted);
    }
    ctx.c.reply.int(deleted as i64);
}

fn hlen(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match hash_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => ctx.err(WRONGTYPE),
        Ok(h) => ctx.c.reply.int(h.map_or(0, Hash::len) as i64),
    }
}

fn hexists(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match hash_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => ctx.err(WRONGTYPE),
        Ok(h) => ctx.c.reply.int(h.is_some_and(|h| h.get(&a[2]).is_some()) as i64),
    }
}

fn hstrlen(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match hash_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => ctx.err(WRONGTYPE),
        Ok(h) => ctx.c.reply.int(h.and_then(|h| h.get(&a[2])).map_or(0, <[u8]>::len) as i64),
    }
}

/// HGETALL (a map), HKEYS and HVALS (arrays).
fn getall_generic(ctx: &mut Ctx, a: &Args, fields: bool, values: bool) {
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    let h = match hash_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => return r.error(WRONGTYPE),
        Ok(h) => h,
    };
    let n = h.map_or(0, Hash::len);
    if fields && values {
        r.map(n)
    } else {
        r.array(n)
    }
    for (f, v) in h.into_iter().flat_map(Hash::iter) {
        if fields {
            r.bulk(f);
        }
        if values {
            r.bulk(v);
        }
    }
}

fn hgetall(ctx: &mut Ctx, a: &Args) {
    getall_generic(ctx, a, true, true);
}

fn hkeys(ctx: &mut Ctx, a: &Args) {
    getall_generic(ctx, a, true, false);
}

fn hvals(ctx: &mut Ctx, a: &Args) {
    getall_generic(ctx, a, false, true);
}

fn hincrby(ctx: &mut Ctx, a: &Args) {
    let Some(incr) = ctx.int(&a[3]) else { return };
    let db = ctx.db();
    let (key, field) = (&a[1], &a[2]);
    let old = match hash_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(h) => match h.and_then(|h| h.get(field)) {
            None => 0,
            Some(v) => match parse_i64(v) {
                Some(n) => n,
                None => return ctx.err("ERR hash value is not an integer"),
            },
        },
    };
    let Some(new) = old.checked_add(incr) else { return ctx.err(OVERFLOW) };
    let mut buf = [0; 20];
    let lim = Limits::of(&ctx.srv.config);
    set_fields(&mut ctx.srv.ks, db, key, std::iter::once((field, fmt_i64(new, &mut buf))), &lim, 1);
    ctx.c.reply.int(new);
}

fn hincrbyfloat(ctx: &mut Ctx, a: &Args) {
    // The increment is checked before the key, as Redis does.
    match long_double_add(None, &a[3]) {
        Ok(_) => {}
        Err(FloatIncrError::NotFinite) => return ctx.err("ERR value is NaN or Infinity"),
        Err(_) => return ctx.err(NOT_FLOAT),
    }
    let db = ctx.db();
    let (key, field) = (&a[1], &a[2]);
    let result = match hash_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(h) => long_double_add(h.and_then(|h| h.get(field)), &a[3]),
    };
    let text = match result {
        Ok(t) => t,
        Err(FloatIncrError::BadBase) => return ctx.err("ERR hash value is not a float"),
        Err(FloatIncrError::NotFinite) => return ctx.err("ERR increment would produce NaN or Infinity"),
        Err(FloatIncrError::BadIncrement) => return ctx.err(NOT_FLOAT),
    };
    let lim = Limits::of(&ctx.srv.config);
    set_fields(&mut ctx.srv.ks, db, key, std::iter::once((field, &text[..])), &lim, 1);
    // Logged as the result, so replay does not depend on float rounding.
    ctx.log_as(&[&[b"HSET", key, field, &text]]);
    ctx.c.reply.bulk(&text);
}

/// Writes one HRANDFIELD entry: the field, and with `withvalues` its value
/// (as a nested pair in RESP3).
fn reply_entry(r: &mut Reply, (f, v): (&[u8], &[u8]), withvalues: bool) {
    if withvalues && r.resp3 {
        r.array(2);
    }
    r.bulk(f);
    if withvalues {
        r.bulk(v);
    }
}

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    if a.len() == 2 {
        let ks = &mut ctx.srv.ks;
        match ks.read(db, &a[1]) {
            None => return ctx.c.reply.null(),
            Some(Value::Hash(_)) => {}
            Some(_) => return ctx.c.reply.error(WRONGTYPE),
        }
        let Some(Value::Hash(h)) = ks.dbs[db].dict.get(&a[1]) else { unreachable!("checked above") };
        let (f, _) = h.random(&mut ks.rng).expect("hashes in the keyspace are never empty");
        return ctx.c.reply.bulk(f);
    }
    let Some(count) = ctx.int(&a[2]) else { return };
    if count == i64::MIN {
        return ctx.err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
    }
    if a.len() > 4 || (a.len() == 4 && !a[3].eq_ignore_ascii_case(b"withvalues")) {
        return ctx.err(SYNTAX);
    }
    let withvalues = a.len() == 4;
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return ctx.err("ERR value is out of range");
    }
    let ks = &mut ctx.srv.ks;
    let r = &mut ctx.c.reply;
    match ks.read(db, &a[1]) {
        None => return r.array(0),
        Some(Value::Hash(_)) => {}
        Some(_) => return r.error(WRONGTYPE),
    }
    let Some(Value::Hash(h)) = ks.dbs[db].dict.get(&a[1]) else { unreachable!("checked above") };
    let rng = &mut ks.rng;
    let n = count.unsigned_abs();
    let per_entry = if withvalues && !r.resp3 { 2 } else { 1 };
    if n == 0 {
        return r.array(0);
    }
    // Negative count (or 1): independent draws, repeats allowed.
    if count < 0 || n == 1 {
        r.array(usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(per_entry));
        for _ in 0..n {
            reply_entry(r, h.random(rng).expect("never empty"), withvalues);
            if r.buf.len() > MAX_REPLY_BYTES {
                ctx.c.close_after_reply = true;
                break;
            }
        }
        return;
    }
    let size = h.len();
    let count = usize::try_from(n).unwrap_or(usize::MAX);
    r.array(count.min(size) * per_entry);
    // At least the whole hash: all of it, in its own order.
    if count >= size {
        for e in h.iter() {
            reply_entry(r, e, withvalues);
        }
        return;
    }
    match h.table() {
        // Compact: `count` distinct entries in listpack order (selection sampling).
        None => {
            let mut need = count;
            for (left, e) in (1..=size).rev().zip(h.iter()) {
                if rng.below(left as u64) < need as u64 {
                    reply_entry(r, e, withvalues);
                    need -= 1;
                    if need == 0 {
                        break;
                    }
                }
            }
        }
        // Large and most of it wanted: drop random entries until `count` remain.
        Some(d) if count * 3 > size => {
            let mut all: Vec<(&[u8], &[u8])> = d.iter().map(|n| (n.key.as_bytes(), n.val.as_bytes())).collect();
            while all.len() > count {
                all.swap_remove(rng.below(all.len() as u64) as usize);
            }
            for e in all {
                reply_entry(r, e, withvalues);
            }
        }
        // Large and a small part wanted: random picks, skipping repeats.
        Some(d) => {
            let mut seen = HashSet::with_capacity(count);
            while seen.len() < count {
                let node = d.random(rng).expect("never empty");
                if seen.insert(node.key.as_bytes()) {
                    reply_entry(r, (&node.key, &node.val), withvalues);
                }
            }
        }
    }
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
fn hscan(ctx: &mut Ctx, a: &Args) {
    super::scan::collection::<Hash>(ctx, a);
}

impl Scanned for Hash {
    const WIDTH: usize = 2;

    fn of(v: &Value) -> Option<&Hash> {
        match v {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    fn step(&self, cursor: u64, f: &mut Visit) -> u64 {
        let mut entry = |field: &[u8], value: &[u8]| {
            f(field, &|r| {
                r.bulk(field);
                r.bulk(value);
            })
        };
        match self.table() {
            Some(d) => d.scan(cursor, |n| entry(&n.key, &n.val)),
            None => {
                for (field, value) in self.iter() {
                    entry(field, value);
                }
                0
            }
        }
    }
}
