//! String commands: SET and its variants, GET and its variants, counters,
//! APPEND and ranges.

use super::flags::*;
use super::{Args, Command, Ctx, NOT_FLOAT, NOT_INT, OVERFLOW, SYNTAX, WRONGTYPE, command};
use crate::util::{FloatIncrError, long_double_add, parse_i64};
use crate::value::Value;

/// The string command table.
pub const COMMANDS: &[Command] = &[
    command("get", 2, READONLY | FAST, 1, 1, 1, "@string", get),
    command("set", -3, WRITE | DENYOOM, 1, 1, 1, "@string", set),
    command("setnx", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", setnx),
    command("setex", 4, WRITE | DENYOOM, 1, 1, 1, "@string", setex),
    command("psetex", 4, WRITE | DENYOOM, 1, 1, 1, "@string", psetex),
    command("getset", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", getset),
    command("getdel", 2, WRITE | FAST, 1, 1, 1, "@string", getdel),
    command("getex", -2, WRITE | FAST, 1, 1, 1, "@string", getex),
    command("mset", -3, WRITE | DENYOOM, 1, -1, 2, "@string", mset),
    command("msetnx", -3, WRITE | DENYOOM, 1, -1, 2, "@string", msetnx),
    command("mget", -2, READONLY | FAST, 1, -1, 1, "@string", mget),
    command("incr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", incr),
    command("decr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", decr),
    command("incrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", incrby),
    command("decrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", decrby),
    command("incrbyfloat", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", incrbyfloat),
    command("append", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "@string", append),
    command("strlen", 2, READONLY | FAST, 1, 1, 1, "@string", strlen),
    command("getrange", 4, READONLY, 1, 1, 1, "@string", getrange),
    command("substr", 4, READONLY, 1, 1, 1, "@string", getrange),
    command("setrange", 4, WRITE | DENYOOM, 1, 1, 1, "@string", setrange),
];

/// Replies with a value's string bytes; `false` (after a WRONGTYPE error) if it is not a string.
pub fn reply_str(ctx: &mut Ctx, v: &Value) -> bool {
    reply_str_to(&mut ctx.c.reply, v)
}

fn reply_str_to(r: &mut crate::protocol::reply::Reply, v: &Value) -> bool {
    match v {
        Value::Int(i) => r.bulk_int(*i),
        Value::Embed { len, buf } => r.bulk(&buf[..*len as usize]),
        Value::Raw(b) => r.bulk(b),
        _ => {
            r.error(WRONGTYPE);
            return false;
        }
    }
    true
}

fn get(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.null(),
        Some(v) => {
            reply_str_to(&mut ctx.c.reply, v);
        }
    }
}

/// Expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq)]
enum Ttl {
    Unchanged,
    Keep,
    Persist,
    At(i64),
}

/// Parses `EX s | PX ms | EXAT t | PXAT tms` at `a[*i]`; returns None after
/// replying with an error. `Some(None)` means the word is not a TTL option.
fn parse_ttl_option(ctx: &mut Ctx, a: &Args, i: &mut usize, cmd: &str) -> Option<Option<i64>> {
    let word = a.lower(*i);
    let (mul, absolute) = match word.as_str() {
        "ex" => (1000, false),
        "px" => (1, false),
        "exat" => (1000, true),
        "pxat" => (1, true),
        _ => return Some(None),
    };
    if *i + 1 >= a.len() {
        ctx.err(SYNTAX);
        return None;
    }
    let n = ctx.int(&a[*i + 1])?;
    *i += 1;
    let invalid = format!("ERR invalid expire time in '{cmd}' command");
    if n <= 0 {
        ctx.err(&invalid);
        return None;
    }
    let base = if absolute { 0 } else { ctx.srv.ks.now };
    match n.checked_mul(mul).and_then(|ms| ms.checked_add(base)) {
        Some(when) => Some(Some(when)),
        None => {
            ctx.err(&invalid);
            None
        }
    }
}

fn set(ctx: &mut Ctx, a: &Args) {
    let (mut nx, mut xx, mut want_get) = (false, false, false);
    let mut ttl = Ttl::Unchanged;
    let mut i = 3;
    while i < a.len() {
        match a.lower(i).as_str() {
            "nx" if !xx => nx = true,
            "xx" if !nx => xx = true,
            "get" => want_get = true,
            "keepttl" if ttl == Ttl::Unchanged => ttl = Ttl::Keep,
            _ if ttl == Ttl::Unchanged => match parse_ttl_option(ctx, a, &mut i, "set") {
                None => return,
                Some(Some(when)) => ttl = Ttl::At(when),
                Some(None) => return ctx.err(SYNTAX),
            },
            _ => return ctx.err(SYNTAX),
        }
        i += 1;
    }
    let db = ctx.db();
    let key = &a[1];
    let exists = if want_get {
        match ctx.srv.ks.read(db, key) {
            None => {
                ctx.c.reply.null();
                false
            }
            Some(v) => {
                if !reply_str_to(&mut ctx.c.reply, v) {
                    return;
                }
                true
            }
        }
    } else {
        ctx.srv.ks.exists(db, key)
    };
    if (nx && exists) || (xx && !exists) {
        if !want_get {
            ctx.c.reply.null();
        }
        return;
    }
    let val = match ctx.c.qbuf_window {
        Some((start, _)) if crate::query_buffer::adoptable(ctx.c.qbuf_window, &a[2]) => {
            // Stored for now as an empty string; the event loop moves the
            // query buffer in as the value once the command is done.
            let at = a[2].as_ptr() as usize - start;
            let key = key.to_vec();
            ctx.c.adoption = Some(crate::query_buffer::Adoption { db, key, range: (at, at + a[2].len()) });
            Value::Raw(Box::default())
        }
        _ => Value::string(&a[2]),
    };
    match ttl {
        Ttl::At(when) => {
            ctx.srv.ks.set_expiring(db, key, val, Some(when));
            // Logged with an absolute expiry so replaying it later is exact.
            ctx.log_as(&[&[b"SET", key, &a[2], b"PXAT", when.to_string().as_bytes()]]);
        }
        _ => ctx.srv.ks.set(db, key, val, ttl == Ttl::Keep),
    }
    if !want_get {
        ctx.c.reply.ok();
    }
}

fn setnx(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    if ctx.srv.ks.exists(db, &a[1]) {
        return ctx.c.reply.int(0);
    }
    ctx.srv.ks.set(db, &a[1], Value::string(&a[2]), false);
    ctx.c.reply.int(1);
}

fn setex_generic(ctx: &mut Ctx, a: &Args, mul: i64, cmd: &str) {
    let Some(n) = ctx.int(&a[2]) else { return };
    let when = if n <= 0 { None } else { n.checked_mul(mul).and_then(|ms| ms.checked_add(ctx.srv.ks.now)) };
    let Some(when) = when else {
        return ctx.err(&format!("ERR invalid expire time in '{cmd}' command"));
    };
    let db = ctx.db();
    ctx.srv.ks.set_expiring(db, &a[1], Value::string(&a[3]), Some(when));
    ctx.log_as(&[&[b"SET", &a[1], &a[3], b"PXAT", when.to_string().as_bytes()]]);
    ctx.c.reply.ok();
}

fn setex(ctx: &mut Ctx, a: &Args) {
    setex_generic(ctx, a, 1000, "setex");
}

fn psetex(ctx: &mut Ctx, a: &Args) {
    setex_generic(ctx, a, 1, "psetex");
}

fn getset(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.null(),
        Some(v) => {
            if !reply_str_to(&mut ctx.c.reply, v) {
                return;
            }
        }
    }
    ctx.srv.ks.set(db, &a[1], Value::string(&a[2]), false);
}

fn getdel(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.null(),
        Some(v) => {
            if reply_str_to(&mut ctx.c.reply, v) {
                ctx.srv.ks.delete(db, &a[1]);
                ctx.log_as(&[&[b"DEL", &a[1]]]);
            }
        }
    }
}

fn getex(ctx: &mut Ctx, a: &Args) {
    let mut ttl = Ttl::Unchanged;
    let mut i = 2;
    while i < a.len() {
        if a.lower(i) == "persist" && ttl == Ttl::Unchanged {
            ttl = Ttl::Persist;
        } else if ttl == Ttl::Unchanged {
            match parse_ttl_option(ctx, a, &mut i, "getex") {
                None => return,
                Some(Some(when)) => ttl = Ttl::At(when),
                Some(None) => return ctx.err(SYNTAX),
            }
        } else {
            return ctx.err(SYNTAX);
        }
        i += 1;
    }
    let db = ctx.db();
    let key = &a[1];
    match ctx.srv.ks.read(db, key) {
        None => return ctx.c.reply.null(),
        Some(v) => {
            if !reply_str_to(&mut ctx.c.reply, v) {
                return;
            }
        }
    }
    match ttl {
        Ttl::At(when) if when <= ctx.srv.ks.now => {
            ctx.srv.ks.delete(db, key);
            ctx.log_as(&[&[b"DEL", key]]);
        }
        Ttl::At(when) => {
            ctx.srv.ks.set_expire(db, key, when);
            ctx.log_as(&[&[b"PEXPIREAT", key, when.to_string().as_bytes()]]);
        }
        Ttl::Persist => {
            if ctx.srv.ks.persist(db, key) {
                ctx.log_as(&[&[b"PERSIST", key]]);
            }
        }
        Ttl::Unchanged | Ttl::Keep => {}
    }
}

fn mset(ctx: &mut Ctx, a: &Args) {
    if a.len().is_multiple_of(2) {
        return ctx.err("ERR wrong number of arguments for 'mset' command");
    }
    let db = ctx.db();
    for i in (1..a.len()).step_by(2) {
        ctx.srv.ks.set(db, &a[i], Value::string(&a[i + 1]), false);
    }
    ctx.c.reply.ok();
}

fn msetnx(ctx: &mut Ctx, a: &Args) {
    if a.len().is_multiple_of(2) {
        return ctx.err("ERR wrong number of arguments for 'msetnx' command");
    }
    let db = ctx.db();
    if (1..a.len()).step_by(2).any(|i| ctx.srv.ks.exists(db, &a[i])) {
        return ctx.c.reply.int(0);
    }
    for i in (1..a.len()).step_by(2) {
        ctx.srv.ks.set(db, &a[i], Value::string(&a[i + 1]), false);
    }
    ctx.c.reply.int(1);
}

fn mget(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    ctx.c.reply.array(a.len() - 1);
    for key in a.from(1) {
        match ctx.srv.ks.read(db, key) {
            Some(v @ (Value::Int(_) | Value::Embed { .. } | Value::Raw(_))) => {
                reply_str_to(&mut ctx.c.reply, v);
            }
            _ => ctx.c.reply.null(),
        }
    }
}

/// The integer a string value holds, if any (Redis's `getLongLongFromObject`).
fn int_of(v: &Value) -> Result<i64, &'static str> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Embed { .. } | Value::Raw(_) => {
            let mut s = [0; 20];
            v.as_str(&mut s).and_then(parse_i64).ok_or(NOT_INT)
        }
        _ => Err(WRONGTYPE),
    }
}

fn incr_by(ctx: &mut Ctx, key: &[u8], by: i64) {
    let db = ctx.db();
    let cur = match ctx.srv.ks.write(db, key) {
        None => 0,
        Some(v) => match int_of(v) {
            Ok(i) => i,
            Err(e) => return ctx.err(e),
        },
    };
    let Some(new) = cur.checked_add(by) else { return ctx.err(OVERFLOW) };
    match ctx.srv.ks.write(db, key) {
        Some(v) => {
            *v = Value::Int(new);
            ctx.srv.ks.changed(db, key, 1);
        }
        None => ctx.srv.ks.set(db, key, Value::Int(new), false),
    }
    ctx.c.reply.int(new);
}

fn incr(ctx: &mut Ctx, a: &Args) {
    incr_by(ctx, &a[1], 1);
}

fn decr(ctx: &mut Ctx, a: &Args) {
    incr_by(ctx, &a[1], -1);
}

fn incrby(ctx: &mut Ctx, a: &Args) {
    if let Some(n) = ctx.int(&a[2]) {
        incr_by(ctx, &a[1], n);
    }
}

fn decrby(ctx: &mut Ctx, a: &Args) {
    let Some(n) = ctx.int(&a[2]) else { return };
    if n == i64::MIN {
        return ctx.err("ERR decrement would overflow");
    }
    incr_by(ctx, &a[1], -n);
}

fn incrbyfloat(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let key = &a[1];
    let mut s = [0; 20];
    let result = match ctx.srv.ks.write(db, key) {
        None => long_double_add(None, &a[2]),
        Some(v) => match v.as_str(&mut s) {
            None => return ctx.err(WRONGTYPE),
            Some(cur) => long_double_add(Some(cur), &a[2]),
        },
    };
    let text = match result {
        Ok(t) => t,
        Err(FloatIncrError::NotFinite) => return ctx.err("ERR increment would produce NaN or Infinity"),
        Err(_) => return ctx.err(NOT_FLOAT),
    };
    ctx.srv.ks.set(db, key, Value::string(&text), true);
    // Logged as the result, so replay does not depend on float rounding.
    ctx.log_as(&[&[b"SET", key, &text, b"KEEPTTL"]]);
    ctx.c.reply.bulk(&text);
}

/// Takes a string value's bytes out as a growable vector (no copy for long strings).
fn take_bytes(v: &mut Value) -> Vec<u8> {
    match std::mem::replace(v, Value::Int(0)) {
        Value::Raw(b) => b.into_vec(),
        other => {
            let mut s = [0; 20];
            other.as_str(&mut s).map(<[u8]>::to_vec).unwrap_or_default()
        }
    }
}

fn too_big(ctx: &mut Ctx, len: u64) -> bool {
    if len > ctx.srv.config.proto_max_bulk_len as u64 {
        ctx.err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return true;
    }
    false
}

fn append(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let key = &a[1];
    let cur_len = match ctx.srv.ks.write(db, key) {
        None => None,
        Some(v) => match v.str_len() {
            Some(l) => Some(l),
            None => return ctx.err(WRONGTYPE),
        },
    };
    let Some(cur_len) = cur_len else {
        ctx.srv.ks.set(db, key, Value::string(&a[2]), false);
        return ctx.c.reply.int(a[2].len() as i64);
    };
    if too_big(ctx, (cur_len + a[2].len()) as u64) {
        return;
    }
    let v = ctx.srv.ks.write(db, key).expect("checked above");
    let mut bytes = take_bytes(v);
    bytes.extend_from_slice(&a[2]);
    let n = bytes.len();
    *v = Value::string_from_vec(bytes);
    ctx.srv.ks.changed(db, key, 1);
    ctx.c.reply.int(n as i64);
}

fn strlen(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]).map(Value::str_len) {
        None => ctx.c.reply.int(0),
        Some(Some(n)) => ctx.c.reply.int(n as i64),
        Some(None) => ctx.err(WRONGTYPE),
    }
}

fn getrange(ctx: &mut Ctx, a: &Args) {
    let (Some(mut start), Some(mut end)) = (parse_i64(&a[2]), parse_i64(&a[3])) else {
        return ctx.err(NOT_INT);
    };
    let db = ctx.db();
    let mut s = [0; 20];
    let Some(v) = ctx.srv.ks.read(db, &a[1]) else { return ctx.c.reply.bulk(b"") };
    let Some(bytes) = v.as_str(&mut s) else { return ctx.c.reply.error(WRONGTYPE) };
    let len = bytes.len() as i64;
    if start < 0 && end < 0 && start > end {
        return ctx.c.reply.bulk(b"");
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end || len == 0 {
        ctx.c.reply.bulk(b"");
    } else {
        ctx.c.reply.bulk(&bytes[start as usize..=end as usize]);
    }
}

fn setrange(ctx: &mut Ctx, a: &Args) {
    let Some(offset) = ctx.int(&a[2]) else { return };
    if offset < 0 {
        return ctx.err("ERR offset is out of range");
    }
    let db = ctx.db();
    let key = &a[1];
    let val = &a[3];
    let cur_len = match ctx.srv.ks.write(db, key) {
        None => None,
        Some(v) => match v.str_len() {
            Some(l) => Some(l),
            None => return ctx.err(WRONGTYPE),
        },
    };
    if val.is_empty() {
        return ctx.c.reply.int(cur_len.unwrap_or(0) as i64);
    }
    if too_big(ctx, offset as u64 + val.len() as u64) {
        return;
    }
    let offset = offset as usize;
    let mut bytes = match ctx.srv.ks.write(db, key) {
        Some(v) => take_bytes(v),
        None => Vec::new(),
    };
    if bytes.len() < offset + val.len() {
        bytes.resize(offset + val.len(), 0);
    }
    bytes[offset..offset + val.len()].copy_from_slice(val);
    let n = bytes.len();
    match ctx.srv.ks.write(db, key) {
        Some(v) => {
            *v = Value::string_from_vec(bytes);
            ctx.srv.ks.changed(db, key, 1);
        }
        None => ctx.srv.ks.set(db, key, Value::string_from_vec(bytes), false),
    }
    ctx.c.reply.int(n as i64);
}
