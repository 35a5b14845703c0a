//! Generic key commands: deletion, existence, types, expiry, iteration
//! (KEYS, SCAN, RANDOMKEY), renaming and copying, OBJECT.

use super::flags::*;
use super::scan::{parse_cursor, parse_scan_opts, walk};
use super::{Args, Command, Ctx, SYNTAX, command};
use crate::glob;
use crate::value::Value;

/// The generic key command table.
pub const COMMANDS: &[Command] = &[
    command("del", -2, WRITE, 1, -1, 1, "@keyspace", del),
    command("unlink", -2, WRITE | FAST, 1, -1, 1, "@keyspace", del),
    command("exists", -2, READONLY | FAST, 1, -1, 1, "@keyspace", exists),
    command("touch", -2, READONLY | FAST, 1, -1, 1, "@keyspace", exists),
    command("type", 2, READONLY | FAST, 1, 1, 1, "@keyspace", type_),
    command("expire", -3, WRITE | FAST, 1, 1, 1, "@keyspace", expire),
    command("pexpire", -3, WRITE | FAST, 1, 1, 1, "@keyspace", pexpire),
    command("expireat", -3, WRITE | FAST, 1, 1, 1, "@keyspace", expireat),
    command("pexpireat", -3, WRITE | FAST, 1, 1, 1, "@keyspace", pexpireat),
    command("ttl", 2, READONLY | FAST, 1, 1, 1, "@keyspace", ttl),
    command("pttl", 2, READONLY | FAST, 1, 1, 1, "@keyspace", pttl),
    command("expiretime", 2, READONLY | FAST, 1, 1, 1, "@keyspace", expiretime),
    command("pexpiretime", 2, READONLY | FAST, 1, 1, 1, "@keyspace", pexpiretime),
    command("persist", 2, WRITE | FAST, 1, 1, 1, "@keyspace", persist),
    command("keys", 2, READONLY, 0, 0, 0, "@keyspace", keys),
    command("scan", -2, READONLY, 0, 0, 0, "@keyspace", scan),
    command("randomkey", 1, READONLY, 0, 0, 0, "@keyspace", randomkey),
    command("rename", 3, WRITE, 1, 2, 1, "@keyspace", rename),
    command("renamenx", 3, WRITE | FAST, 1, 2, 1, "@keyspace", renamenx),
    command("copy", -3, WRITE | DENYOOM, 1, 2, 1, "@keyspace", copy),
    command("move", 3, WRITE | FAST, 1, 1, 1, "@keyspace", move_),
    command("object", -2, READONLY, 2, 2, 1, "@keyspace", object),
];

fn del(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let mut n = 0;
    for key in a.from(1) {
        if ctx.srv.ks.delete(db, key) {
            n += 1;
        }
    }
    ctx.c.reply.int(n);
}

fn exists(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let n = a.from(1).filter(|k| ctx.srv.ks.read(db, k).is_some()).count();
    ctx.c.reply.int(n as i64);
}

fn type_(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let name = ctx.srv.ks.read(db, &a[1]).map_or("none", |v| v.kind().name());
    ctx.c.reply.simple(name);
}

/// Parses EXPIRE's `NX | XX | GT | LT` flags.
fn expire_flags(ctx: &mut Ctx, a: &Args) -> Option<(bool, bool, bool, bool)> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for i in 3..a.len() {
        match a.lower(i).as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "gt" => gt = true,
            "lt" => lt = true,
            _ => {
                ctx.err(&format!("ERR Unsupported option {}", String::from_utf8_lossy(&a[i])));
                return None;
            }
        }
    }
    if nx && (xx || gt || lt) {
        ctx.err("ERR NX and XX, GT or LT options at the same time are not compatible");
        return None;
    }
    if gt && lt {
        ctx.err("ERR GT and LT options at the same time are not compatible");
        return None;
    }
    Some((nx, xx, gt, lt))
}

/// EXPIRE and friends: `mul` converts the argument to ms, `relative` adds now.
fn expire_generic(ctx: &mut Ctx, a: &Args, mul: i64, relative: bool, name: &str) {
    // Redis checks the flags before the time argument.
    let Some((nx, xx, gt, lt)) = expire_flags(ctx, a) else { return };
    let Some(n) = ctx.int(&a[2]) else { return };
    let base = if relative { ctx.srv.ks.now } else { 0 };
    let Some(when) = n.checked_mul(mul).and_then(|ms| ms.checked_add(base)) else {
        return ctx.err(&format!("ERR invalid expire time in '{name}' command"));
    };
    let db = ctx.db();
    let key = &a[1];
    if !ctx.srv.ks.exists(db, key) {
        return ctx.c.reply.int(0);
    }
    let current = ctx.srv.ks.expire_at(db, key);
    let allowed = match current {
        None => !(xx || gt),
        Some(cur) => !(nx || (gt && when <= cur) || (lt && when >= cur)),
    };
    if !allowed {
        return ctx.c.reply.int(0);
    }
    if when <= ctx.srv.ks.now {
        ctx.srv.ks.delete(db, key);
        ctx.log_as(&[&[b"DEL", key]]);
    } else {
        ctx.srv.ks.set_expire(db, key, when);
        ctx.log_as(&[&[b"PEXPIREAT", key, when.to_string().as_bytes()]]);
    }
    ctx.c.reply.int(1);
}

fn expire(ctx: &mut Ctx, a: &Args) {
    expire_generic(ctx, a, 1000, true, "expire");
}

fn pexpire(ctx: &mut Ctx, a: &Args) {
    expire_generic(ctx, a, 1, true, "pexpire");
}

fn expireat(ctx: &mut Ctx, a: &Args) {
    expire_generic(ctx, a, 1000, false, "expireat");
}

fn pexpireat(ctx: &mut Ctx, a: &Args) {
    expire_generic(ctx, a, 1, false, "pexpireat");
}

/// Replies -2 (no key), -1 (no expiry) or what `f` makes of the expiry time.
/// The lookup counts as a keyspace hit or miss, as in Redis.
fn ttl_generic(ctx: &mut Ctx, a: &Args, f: impl Fn(i64, i64) -> i64) {
    let db = ctx.db();
    if ctx.srv.ks.read(db, &a[1]).is_none() {
        return ctx.c.reply.int(-2);
    }
    match ctx.srv.ks.expire_at(db, &a[1]) {
        None => ctx.c.reply.int(-1),
        Some(when) => {
            let v = f(when, ctx.srv.ks.now);
            ctx.c.reply.int(v)
        }
    }
}

fn ttl(ctx: &mut Ctx, a: &Args) {
    ttl_generic(ctx, a, |when, now| ((when - now).max(0) + 500) / 1000);
}

fn pttl(ctx: &mut Ctx, a: &Args) {
    ttl_generic(ctx, a, |when, now| (when - now).max(0));
}

fn expiretime(ctx: &mut Ctx, a: &Args) {
    // Rounded to the nearest second, like TTL.
    ttl_generic(ctx, a, |when, _| (when.max(0) + 500) / 1000);
}

fn pexpiretime(ctx: &mut Ctx, a: &Args) {
    ttl_generic(ctx, a, |when, _| when);
}

fn persist(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    if ctx.srv.ks.exists(db, &a[1]) && ctx.srv.ks.persist(db, &a[1]) {
        return ctx.c.reply.int(1);
    }
    ctx.c.reply.int(0);
}

fn keys(ctx: &mut Ctx, a: &Args) {
    let pattern = &a[1];
    let all = pattern == b"*";
    let ks = &ctx.srv.ks;
    let d = &ks.dbs[ctx.c.db];
    let r = &mut ctx.c.reply;
    let deferred = r.begin_array();
    let mut n = 0;
    for node in d.dict.iter() {
        if (all || glob::matches(pattern, &node.key, false)) && d.expires.get(&node.key).is_none_or(|&w| w > ks.now) {
            r.bulk(&node.key);
            n += 1;
        }
    }
    r.end_array(deferred, n);
}

fn scan(ctx: &mut Ctx, a: &Args) {
    let Some(cursor) = parse_cursor(ctx, &a[1]) else { return };
    let Some(o) = parse_scan_opts(ctx, a, 2, true) else { return };
    let db = ctx.db();
    let mut found: Vec<Vec<u8>> = Vec::new();
    let dict = &ctx.srv.ks.dbs[db].dict;
    // COUNT bounds the keys visited, before MATCH and TYPE filter them.
    let visited = std::cell::Cell::new(0usize);
    let cursor = walk(
        cursor,
        o.count,
        |cur| {
            dict.scan(cur, |n| {
                visited.set(visited.get() + 1);
                let matched = o.pattern.as_ref().is_none_or(|p| glob::matches(p, &n.key, false))
                    && o.kind.as_ref().is_none_or(|k| n.val.kind().name() == k);
                if matched {
                    found.push(n.key.to_vec());
                }
            })
        },
        || visited.get(),
    );
    // Keys that turn out to be expired are deleted here, as Redis does.
    found.retain(|k| !ctx.srv.ks.expire_if_needed(db, k));
    let r = &mut ctx.c.reply;
    r.array(2);
    r.bulk(cursor.to_string().as_bytes());
    r.array(found.len());
    for k in &found {
        r.bulk(k);
    }
}

/// Like Redis, samples until a live key turns up, deleting the expired keys it
/// meets on the way (each step returns or shrinks the dict, so it ends).
fn randomkey(ctx: &mut Ctx, _a: &Args) {
    let db = ctx.db();
    let ks = &mut ctx.srv.ks;
    while let Some(node) = ks.dbs[db].dict.random(&mut ks.rng) {
        let key = node.key.to_vec();
        if !ks.expire_if_needed(db, &key) {
            return ctx.c.reply.bulk(&key);
        }
    }
    ctx.c.reply.null();
}

/// Moves `src` to `dst` (with its expiry); `nx` refuses to overwrite.
fn rename_generic(ctx: &mut Ctx, a: &Args, nx: bool) {
    let db = ctx.db();
    let (src, dst) = (&a[1], &a[2]);
    if !ctx.srv.ks.exists(db, src) {
        return ctx.err("ERR no such key");
    }
    if src == dst {
        return if nx { ctx.c.reply.int(0) } else { ctx.c.reply.ok() };
    }
    if nx && ctx.srv.ks.exists(db, dst) {
        return ctx.c.reply.int(0);
    }
    ctx.srv.ks.rename(db, src, db, dst);
    if nx { ctx.c.reply.int(1) } else { ctx.c.reply.ok() }
}

fn rename(ctx: &mut Ctx, a: &Args) {
    rename_generic(ctx, a, false);
}

fn renamenx(ctx: &mut Ctx, a: &Args) {
    rename_generic(ctx, a, true);
}

/// Parses a database index argument (a C `int`, as Redis's `getIntFromObject`); replies on error.
pub fn db_index(ctx: &mut Ctx, b: &[u8]) -> Option<usize> {
    let n = ctx.int(b)?;
    if i32::try_from(n).is_err() {
        ctx.err("ERR value is out of range, value must between -2147483648 and 2147483647");
        return None;
    }
    if n < 0 || n as usize >= ctx.srv.ks.dbs.len() {
        ctx.err("ERR DB index is out of range");
        return None;
    }
    Some(n as usize)
}

fn copy(ctx: &mut Ctx, a: &Args) {
    let src_db = ctx.db();
    let mut dst_db = src_db;
    let mut replace = false;
    let mut i = 3;
    while i < a.len() {
        match a.lower(i).as_str() {
            "replace" => replace = true,
            "db" if i + 1 < a.len() => {
                let Some(d) = db_index(ctx, &a[i + 1]) else { return };
                dst_db = d;
                i += 1;
            }
            _ => return ctx.err(SYNTAX),
        }
        i += 1;
    }
    let (src, dst) = (&a[1], &a[2]);
    if src_db == dst_db && src == dst {
        return ctx.err("ERR source and destination objects are the same");
    }
    let ks = &mut ctx.srv.ks;
    let Some(v) = ks.read(src_db, src) else { return ctx.c.reply.int(0) };
    let copy = v.duplicate();
    let when = ks.expire_at(src_db, src);
    if !replace && ks.exists(dst_db, dst) {
        return ctx.c.reply.int(0);
    }
    ks.set_expiring(dst_db, dst, copy, when);
    ctx.c.reply.int(1);
}

fn move_(ctx: &mut Ctx, a: &Args) {
    let src_db = ctx.db();
    let Some(dst_db) = db_index(ctx, &a[2]) else { return };
    if src_db == dst_db {
        return ctx.err("ERR source and destination objects are the same");
    }
    let key = &a[1];
    let ks = &mut ctx.srv.ks;
    if !ks.exists(src_db, key) || ks.exists(dst_db, key) {
        return ctx.c.reply.int(0);
    }
    ks.rename(src_db, key, dst_db, key);
    ctx.c.reply.int(1);
}

fn object(ctx: &mut Ctx, a: &Args) {
    let sub = a.lower(1);
    if sub == "help" && a.len() == 2 {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ];
        ctx.c.reply.array(lines.len());
        for l in lines {
            ctx.c.reply.simple(l);
        }
        return;
    }
    if !matches!(sub.as_str(), "encoding" | "freq" | "idletime" | "refcount" | "help") {
        return ctx.err(&format!("ERR unknown subcommand '{}'. Try OBJECT HELP.", String::from_utf8_lossy(&a[1])));
    }
    if a.len() != if sub == "help" { 2 } else { 3 } {
        return ctx.err(&format!("ERR wrong number of arguments for 'object|{sub}' command"));
    }
    let db = ctx.db();
    let Some(v) = ctx.srv.ks.read(db, &a[2]) else { return ctx.c.reply.null() };
    match sub.as_str() {
        "encoding" => {
            let e = v.encoding();
            ctx.c.reply.bulk(e.as_bytes())
        }
        // Redis shares the objects of the integers 0..9999 (OBJ_SHARED_INTEGERS).
        "refcount" => ctx.c.reply.int(if matches!(v, Value::Int(0..=9999)) { i32::MAX as i64 } else { 1 }),
        "idletime" => ctx.c.reply.int(0),
        _ => ctx.err(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
    }
}
