//! List commands: pushes and pops at both ends (with counts), ranges,
//! indexes, LREM, LTRIM, LINSERT, LPOS and moves between lists. The blocking
//! variants are not implemented.

use super::flags::*;
use super::{Args, Command, Ctx, NOT_INT, SYNTAX, WRONGTYPE, clamp_range, command};
use crate::keyspace::Keyspace;
use crate::types::list::List;
use crate::util::parse_i64;
use crate::value::Value;

/// The list command table.
pub const COMMANDS: &[Command] = &[
    command("lpush", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "@list", lpush),
    command("rpush", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "@list", rpush),
    command("lpushx", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "@list", lpushx),
    command("rpushx", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "@list", rpushx),
    command("lpop", -2, WRITE | FAST, 1, 1, 1, "@list", lpop),
    command("rpop", -2, WRITE | FAST, 1, 1, 1, "@list", rpop),
    command("llen", 2, READONLY | FAST, 1, 1, 1, "@list", llen),
    command("lrange", 4, READONLY, 1, 1, 1, "@list", lrange),
    command("lindex", 3, READONLY, 1, 1, 1, "@list", lindex),
    command("lset", 4, WRITE | DENYOOM, 1, 1, 1, "@list", lset),
    command("lrem", 4, WRITE, 1, 1, 1, "@list", lrem),
    command("ltrim", 4, WRITE, 1, 1, 1, "@list", ltrim),
    command("linsert", 5, WRITE | DENYOOM, 1, 1, 1, "@list", linsert),
    command("lpos", -3, READONLY, 1, 1, 1, "@list", lpos),
    command("lmove", 5, WRITE | DENYOOM, 1, 2, 1, "@list", lmove),
    command("rpoplpush", 3, WRITE | DENYOOM, 1, 2, 1, "@list", rpoplpush),
];

const NO_SUCH_KEY: &str = "ERR no such key";
const OUT_OF_RANGE: &str = "ERR index out of range";
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";

/// The list at `key` for modification: `Ok(None)` when absent, `Err` when
/// the key holds another type.
fn list_mut<'a>(ks: &'a mut Keyspace, db: usize, key: &[u8]) -> Result<Option<&'a mut List>, ()> {
    match ks.write(db, key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(()),
    }
}

/// The list at `key` for reading (counts a keyspace hit or miss).
fn list_ref<'a>(ks: &'a mut Keyspace, db: usize, key: &[u8]) -> Result<Option<&'a List>, ()> {
    match ks.read(db, key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(()),
    }
}

/// LPUSH/RPUSH/LPUSHX/RPUSHX: `front` picks the end, `xx` requires the key.
fn push_generic(ctx: &mut Ctx, a: &Args, front: bool, xx: bool) {
    let db = ctx.db();
    let key = &a[1];
    let pushed = (a.len() - 2) as u64;
    let n = match list_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(Some(l)) => {
            for v in a.from(2) {
                l.push(v, front);
            }
            let n = l.len();
            ctx.srv.ks.changed(db, key, pushed);
            n
        }
        Ok(None) if xx => return ctx.c.reply.int(0),
        Ok(None) => {
            let mut l = List::new();
            for v in a.from(2) {
                l.push(v, front);
            }
            let n = l.len();
            ctx.srv.ks.create(db, key, Value::List(Box::new(l)), pushed);
            n
        }
    };
    ctx.c.reply.int(n as i64);
}

fn lpush(ctx: &mut Ctx, a: &Args) {
    push_generic(ctx, a, true, false);
}

fn rpush(ctx: &mut Ctx, a: &Args) {
    push_generic(ctx, a, false, false);
}

fn lpushx(ctx: &mut Ctx, a: &Args) {
    push_generic(ctx, a, true, true);
}

fn rpushx(ctx: &mut Ctx, a: &Args) {
    push_generic(ctx, a, false, true);
}

/// LPOP/RPOP with an optional count: a bulk string without a count, an
/// array with one (null array for a missing key, empty array for count 0).
fn pop_generic(ctx: &mut Ctx, a: &Args, front: bool) {
    if a.len() > 3 {
        let name = if front { "lpop" } else { "rpop" };
        return ctx.err(&format!("ERR wrong number of arguments for '{name}' command"));
    }
    let count = if a.len() == 3 {
        match parse_i64(&a[2]) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return ctx.err(MUST_BE_POSITIVE),
        }
    } else {
        None
    };
    let db = ctx.db();
    let key = &a[1];
    let r = &mut ctx.c.reply;
    let l = match list_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return r.error(WRONGTYPE),
        Ok(None) if count.is_some() => return r.null_array(),
        Ok(None) => return r.null(),
        Ok(Some(l)) => l,
    };
    let popped = match count {
        Some(0) => return r.array(0),
        None => {
            let v = l.pop(front).expect("lists in the keyspace are never empty");
            r.bulk(&v);
            1
        }
        Some(n) => {
            let n = n.min(l.len() as u64) as usize;
            r.array(n);
            for _ in 0..n {
                let v = l.pop(front).expect("n <= len");
                r.bulk(&v);
            }
            n
        }
    };
    let empty = l.is_empty();
    ctx.srv.ks.collection_changed(db, key, empty, popped as u64);
}

fn lpop(ctx: &mut Ctx, a: &Args) {
    pop_generic(ctx, a, true);
}

fn rpop(ctx: &mut Ctx, a: &Args) {
    pop_generic(ctx, a, false);
}

fn llen(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match list_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => ctx.err(WRONGTYPE),
        Ok(l) => ctx.c.reply.int(l.map_or(0, List::len) as i64),
    }
}

fn lrange(ctx: &mut Ctx, a: &Args) {
    let (Some(start), Some(end)) = (parse_i64(&a[2]), parse_i64(&a[3])) else {
        return ctx.err(NOT_INT);
    };
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    match list_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => r.error(WRONGTYPE),
        Ok(None) => r.array(0),
        Ok(Some(l)) => match clamp_range(start, end, l.len()) {
            None => r.array(0),
            Some((s, e)) => {
                r.array(e - s + 1);
                for v in l.range(s, e) {
                    r.bulk(v);
                }
            }
        },
    }
}

fn lindex(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let l = match list_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(None) => return ctx.c.reply.null(),
        Ok(Some(l)) => l,
    };
    let Some(index) = parse_i64(&a[2]) else { return ctx.c.reply.error(NOT_INT) };
    match l.resolve(index).and_then(|i| l.get(i)) {
        Some(v) => ctx.c.reply.bulk(v),
        None => ctx.c.reply.null(),
    }
}

fn lset(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let key = &a[1];
    let l = match list_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(None) => return ctx.c.reply.error(NO_SUCH_KEY),
        Ok(Some(l)) => l,
    };
    let Some(index) = parse_i64(&a[2]) else { return ctx.c.reply.error(NOT_INT) };
    match l.resolve(index) {
        Some(i) => {
            l.set(i, &a[3]);
            ctx.srv.ks.changed(db, key, 1);
            ctx.c.reply.ok();
        }
        None => ctx.c.reply.error(OUT_OF_RANGE),
    }
}

fn lrem(ctx: &mut Ctx, a: &Args) {
    let Some(count) = ctx.int(&a[2]) else { return };
    let db = ctx.db();
    let key = &a[1];
    let l = match list_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(None) => return ctx.c.reply.int(0),
        Ok(Some(l)) => l,
    };
    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    let removed = l.remove_matching(&a[3], limit, count < 0);
    let empty = l.is_empty();
    if removed > 0 {
        ctx.srv.ks.collection_changed(db, key, empty, removed as u64);
    }
    ctx.c.reply.int(removed as i64);
}

fn ltrim(ctx: &mut Ctx, a: &Args) {
    let (Some(start), Some(end)) = (parse_i64(&a[2]), parse_i64(&a[3])) else {
        return ctx.err(NOT_INT);
    };
    let db = ctx.db();
    let key = &a[1];
    let l = match list_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(None) => return ctx.c.reply.ok(),
        Ok(Some(l)) => l,
    };
    let before = l.len();
    l.retain_range(clamp_range(start, end, before));
    let removed = before - l.len();
    let empty = l.is_empty();
    ctx.srv.ks.collection_changed(db, key, empty, removed as u64);
    ctx.c.reply.ok();
}

fn linsert(ctx: &mut Ctx, a: &Args) {
    let after = match a.lower(2).as_str() {
        "after" => true,
        "before" => false,
        _ => return ctx.err(SYNTAX),
    };
    let db = ctx.db();
    let key = &a[1];
    let l = match list_mut(&mut ctx.srv.ks, db, key) {
        Err(()) => return ctx.err(WRONGTYPE),
        Ok(None) => return ctx.c.reply.int(0),
        Ok(Some(l)) => l,
    };
    let Some(pivot) = l.position(&a[3]) else { return ctx.c.reply.int(-1) };
    l.insert(pivot + after as usize, &a[4]);
    let n = l.len();
    ctx.srv.ks.changed(db, key, 1);
    ctx.c.reply.int(n as i64);
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
fn lpos(ctx: &mut Ctx, a: &Args) {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut i = 3;
    while i < a.len() {
        let more = i + 1 < a.len();
        match a.lower(i).as_str() {
            "rank" if more => {
                let Some(r) = ctx.int(&a[i + 1]) else { return };
                if r == 0 {
                    return ctx.err(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                    );
                }
                rank = r;
            }
            "count" if more => match parse_i64(&a[i + 1]) {
                Some(c) if c >= 0 => count = Some(c),
                _ => return ctx.err("ERR COUNT can't be negative"),
            },
            "maxlen" if more => match parse_i64(&a[i + 1]) {
                Some(m) if m >= 0 => maxlen = m,
                _ => return ctx.err("ERR MAXLEN can't be negative"),
            },
            _ => return ctx.err(SYNTAX),
        }
        i += 2;
    }
    // A negative rank scans from the tail. Like Redis, the arithmetic wraps
    // (RANK -9223372036854775808 stays negative and so matches at once).
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    let l = match list_ref(&mut ctx.srv.ks, db, &a[1]) {
        Err(()) => return r.error(WRONGTYPE),
        Ok(None) if count.is_some() => return r.array(0),
        Ok(None) => return r.null(),
        Ok(Some(l)) => l,
    };
    let ele = &a[2];
    let len = l.len();
    let limit = if maxlen == 0 { len } else { (maxlen as u64).min(len as u64) as usize };
    let mut matches = 0i64;
    let deferred = count.map(|_| r.begin_array());
    let mut emitted = 0;
    let mut found = None;
    for k in 0..limit {
        let idx = if from_tail { len - 1 - k } else { k };
        if l.get(idx) != Some(ele) {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        match count {
            None => {
                found = Some(idx);
                break;
            }
            Some(c) => {
                r.int(idx as i64);
                emitted += 1;
                if c != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= c {
                    break;
                }
            }
        }
    }
    match deferred {
        Some(d) => r.end_array(d, emitted),
        None => match found {
            Some(idx) => r.int(idx as i64),
            None => r.null(),
        },
    }
}

/// Parses LMOVE's `LEFT | RIGHT`; true for LEFT (the head).
fn parse_end(ctx: &mut Ctx, b: &[u8]) -> Option<bool> {
    if b.eq_ignore_ascii_case(b"left") {
        Some(true)
    } else if b.eq_ignore_ascii_case(b"right") {
        Some(false)
    } else {
        ctx.err(SYNTAX);
        None
    }
}

/// Pops from one end of `src` and pushes onto one end of `dst`, replying
/// with the element (null when `src` does not exist).
fn move_generic(ctx: &mut Ctx, src: &[u8], dst: &[u8], from_front: bool, to_front: bool) {
    let db = ctx.db();
    let ks = &mut ctx.srv.ks;
    let r = &mut ctx.c.reply;
    if src == dst {
        let l = match list_mut(ks, db, src) {
            Err(()) => return r.error(WRONGTYPE),
            Ok(None) => return r.null(),
            Ok(Some(l)) => l,
        };
        let v = l.pop(from_front).expect("lists in the keyspace are never empty");
        r.bulk(&v);
        l.push_owned(v, to_front);
    } else {
        match list_mut(ks, db, src) {
            Err(()) => return r.error(WRONGTYPE),
            Ok(None) => return r.null(),
            Ok(Some(_)) => {}
        }
        if list_mut(ks, db, dst).is_err() {
            return r.error(WRONGTYPE);
        }
        let Ok(Some(l)) = list_mut(ks, db, src) else { unreachable!("checked above") };
        let v = l.pop(from_front).expect("lists in the keyspace are never empty");
        let empty = l.is_empty();
        r.bulk(&v);
        // One change for the move, as in Redis, counted at the source.
        match list_mut(ks, db, dst) {
            Ok(Some(d)) => {
                d.push_owned(v, to_front);
                ks.changed(db, dst, 0);
            }
            _ => {
                let mut d = List::new();
                d.push_owned(v, to_front);
                ks.create(db, dst, Value::List(Box::new(d)), 0);
            }
        }
        ks.collection_changed(db, src, empty, 1);
        return;
    }
    ks.changed(db, src, 1);
}

fn lmove(ctx: &mut Ctx, a: &Args) {
    let Some(from) = parse_end(ctx, &a[3]) else { return };
    let Some(to) = parse_end(ctx, &a[4]) else { return };
    move_generic(ctx, &a[1], &a[2], from, to);
}

fn rpoplpush(ctx: &mut Ctx, a: &Args) {
    move_generic(ctx, &a[1], &a[2], false, true);
}
