//! Sorted set commands: ZADD/ZINCRBY, ZREM, lookups (ZSCORE, ZMSCORE, ZCARD,
//! ZRANK, ZREVRANK), counts (ZCOUNT, ZLEXCOUNT), the ZRANGE family (by rank,
//! score or member, forward or reversed, with LIMIT and WITHSCORES), pops,
//! range removal and ZSCAN.
//!
//! Numbers are parsed with C's `strtod`, as Redis does: scores accept
//! everything `strtod` does (hex, `inf`, `infinity`) but no surrounding
//! space, while range bounds keep Redis's looser rules (leading space and an
//! empty string are accepted, anything after a NUL byte is ignored; see
//! [`ScoreRange::parse`]).

use super::flags::*;
use super::scan::{Scanned, Visit};
use super::{Args, Command, Ctx, NOT_FLOAT, SYNTAX, WRONGTYPE, clamp_range, command};
use crate::protocol::reply::Reply;
use crate::types::Limits;
use crate::types::zset::{AddFlags, AddOutcome, LexRange, ScoreRange, ZSet, strtod};
use crate::util::{fmt_g17, parse_i64};
use crate::value::Value;

/// The sorted set command table.
pub const COMMANDS: &[Command] = &[
    command("zadd", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "@sortedset", zadd),
    command("zincrby", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "@sortedset", zincrby),
    command("zrem", -3, WRITE | FAST, 1, 1, 1, "@sortedset", zrem),
    command("zscore", 3, READONLY | FAST, 1, 1, 1, "@sortedset", zscore),
    command("zmscore", -3, READONLY | FAST, 1, 1, 1, "@sortedset", zmscore),
    command("zcard", 2, READONLY | FAST, 1, 1, 1, "@sortedset", zcard),
    command("zcount", 4, READONLY | FAST, 1, 1, 1, "@sortedset", zcount),
    command("zlexcount", 4, READONLY | FAST, 1, 1, 1, "@sortedset", zlexcount),
    command("zrank", 3, READONLY | FAST, 1, 1, 1, "@sortedset", zrank),
    command("zrevrank", 3, READONLY | FAST, 1, 1, 1, "@sortedset", zrevrank),
    command("zrange", -4, READONLY, 1, 1, 1, "@sortedset", zrange),
    command("zrangebyscore", -4, READONLY, 1, 1, 1, "@sortedset", zrangebyscore),
    command("zrevrangebyscore", -4, READONLY, 1, 1, 1, "@sortedset", zrevrangebyscore),
    command("zrevrange", -4, READONLY, 1, 1, 1, "@sortedset", zrevrange),
    command("zrangebylex", -4, READONLY, 1, 1, 1, "@sortedset", zrangebylex),
    command("zrevrangebylex", -4, READONLY, 1, 1, 1, "@sortedset", zrevrangebylex),
    command("zpopmin", -2, WRITE | FAST, 1, 1, 1, "@sortedset", zpopmin),
    command("zpopmax", -2, WRITE | FAST, 1, 1, 1, "@sortedset", zpopmax),
    command("zremrangebyscore", 4, WRITE, 1, 1, 1, "@sortedset", zremrangebyscore),
    command("zremrangebyrank", 4, WRITE, 1, 1, 1, "@sortedset", zremrangebyrank),
    command("zremrangebylex", 4, WRITE, 1, 1, 1, "@sortedset", zremrangebylex),
    command("zscan", -3, READONLY, 1, 1, 1, "@sortedset", zscan),
];

const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";
const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";

/// A score argument, as Redis's `getDoubleFromObject` reads it.
fn parse_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b[0].is_ascii_whitespace() || b[0] == 0x0b {
        return None;
    }
    let (v, n, erange) = strtod(b);
    let bad = n != b.len() || v.is_nan() || (erange && (v.is_infinite() || v == 0.0));
    (!bad).then_some(v)
}

/// A score as a listpack stores it (Redis 7.0's `d2string`): whole numbers
/// within ±2^62 as integers, everything else as `%.17g`.
fn listpack_score_text(s: f64) -> String {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if s.is_finite() && (-LIMIT..=LIMIT).contains(&s) && s.fract() == 0.0 {
        return (s as i64).to_string();
    }
    fmt_g17(s)
}

fn zadd(ctx: &mut Ctx, a: &Args) {
    zadd_generic(ctx, a, false);
}

fn zincrby(ctx: &mut Ctx, a: &Args) {
    zadd_generic(ctx, a, true);
}

/// ZADD and ZINCRBY (Redis's `zaddGenericCommand`): options, then
/// score/member pairs, all validated before anything changes.
fn zadd_generic(ctx: &mut Ctx, a: &Args, incr: bool) {
    let mut f = AddFlags { incr, ..AddFlags::default() };
    let mut ch = false;
    let mut i = 2;
    while i < a.len() {
        let opt = &a[i];
        if opt.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if opt.eq_ignore_ascii_case(b"ch") {
            ch = true;
        } else if opt.eq_ignore_ascii_case(b"incr") {
            f.incr = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            f.gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            f.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let elements = a.len() - i;
    if !elements.is_multiple_of(2) || elements == 0 {
        return ctx.err(SYNTAX);
    }
    let pairs = elements / 2;
    if f.nx && f.xx {
        return ctx.err("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return ctx.err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && pairs > 1 {
        return ctx.err("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs);
    for p in 0..pairs {
        match parse_score(&a[i + 2 * p]) {
            Some(s) => scores.push(s),
            None => return ctx.err(NOT_FLOAT),
        }
    }
    let db = ctx.db();
    let key = &a[1];
    let limits = Limits::of(&ctx.srv.config);
    let ks = &mut ctx.srv.ks;
    let r = &mut ctx.c.reply;
    let (mut added, mut updated, mut processed) = (0u64, 0u64, 0u64);
    let mut last = 0.0;
    let mut run = |z: &mut ZSet| -> bool {
        for (p, &score) in scores.iter().enumerate() {
            match z.add(&a[i + 2 * p + 1], score, f, &limits) {
                AddOutcome::Skipped => {}
                AddOutcome::NotANumber => return false,
                AddOutcome::Done { added: ad, updated: up, score } => {
                    added += ad as u64;
                    updated += up as u64;
                    processed += 1;
                    last = score;
                }
            }
        }
        true
    };
    let ok = match ks.write(db, key) {
        Some(Value::ZSet(z)) => run(z),
        Some(_) => return r.error(WRONGTYPE),
        None if f.xx => true,
        None => {
            let mut z = ZSet::new();
            let ok = run(&mut z);
            if !z.is_empty() {
                ks.create(db, key, Value::ZSet(Box::new(z)), 0);
            }
            ok
        }
    };
    if added + updated > 0 {
        ks.changed(db, key, added + updated);
    }
    if !ok {
        return r.error(NAN_SCORE);
    }
    if f.incr {
        if processed > 0 { r.double(last) } else { r.null() }
    } else {
        r.int((if ch { added + updated } else { added }) as i64);
    }
}

fn zrem(ctx: &mut Ctx, a: &Args) {
    super::remove_members::<ZSet>(ctx, a);
}

fn zscore(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.null(),
        Some(Value::ZSet(z)) => match z.score(&a[2]) {
            Some(s) => ctx.c.reply.double(s),
            None => ctx.c.reply.null(),
        },
        Some(_) => ctx.err(WRONGTYPE),
    }
}

fn zmscore(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    let z = match ctx.srv.ks.read(db, &a[1]) {
        None => None,
        Some(Value::ZSet(z)) => Some(z),
        Some(_) => return r.error(WRONGTYPE),
    };
    r.array(a.len() - 2);
    for m in a.from(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => r.double(s),
            None => r.null(),
        }
    }
}

fn zcard(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.int(0),
        Some(Value::ZSet(z)) => ctx.c.reply.int(z.len() as i64),
        Some(_) => ctx.err(WRONGTYPE),
    }
}

fn zcount(ctx: &mut Ctx, a: &Args) {
    let Some(range) = ScoreRange::parse(&a[2], &a[3]) else { return ctx.err(NOT_FLOAT_RANGE) };
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.int(0),
        Some(Value::ZSet(z)) => {
            let (lo, hi) = z.score_ranks(&range);
            ctx.c.reply.int((hi - lo) as i64)
        }
        Some(_) => ctx.err(WRONGTYPE),
    }
}

fn zlexcount(ctx: &mut Ctx, a: &Args) {
    let Some(range) = LexRange::parse(&a[2], &a[3]) else { return ctx.err(NOT_LEX_RANGE) };
    let db = ctx.db();
    let z = match ctx.srv.ks.read(db, &a[1]) {
        None => return ctx.c.reply.int(0),
        Some(Value::ZSet(z)) => z,
        Some(_) => return ctx.err(WRONGTYPE),
    };
    let n = match (z.lex_first(&range), &**z) {
        (None, _) => 0,
        (Some(first), ZSet::Pack(_)) => z.iter_from(first).take_while(|(m, _)| range.lte_max(m)).count(),
        // Redis's skiplist answer: the distance between the two ends' ranks.
        (Some(first), ZSet::Skip(_)) => {
            let len = z.len();
            let mut n = len - first;
            if let Some(last) = z.lex_last(&range) {
                n = n.saturating_sub(len - (last + 1));
            }
            n
        }
    };
    ctx.c.reply.int(n as i64);
}

fn zrank(ctx: &mut Ctx, a: &Args) {
    zrank_generic(ctx, a, false);
}

fn zrevrank(ctx: &mut Ctx, a: &Args) {
    zrank_generic(ctx, a, true);
}

fn zrank_generic(ctx: &mut Ctx, a: &Args, rev: bool) {
    let db = ctx.db();
    match ctx.srv.ks.read(db, &a[1]) {
        None => ctx.c.reply.null(),
        Some(Value::ZSet(z)) => match z.rank(&a[2]) {
            Some(r) => ctx.c.reply.int((if rev { z.len() - 1 - r } else { r }) as i64),
            None => ctx.c.reply.null(),
        },
        Some(_) => ctx.err(WRONGTYPE),
    }
}

/// What a ZRANGE-family command ranges over.
#[derive(Clone, Copy, PartialEq)]
enum RangeBy {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Writes ZRANGE-family entries: flat in RESP2, `[member, score]` pairs in
/// RESP3 when scores are wanted.
struct Emitter<'r> {
    r: &'r mut Reply,
    withscores: bool,
    n: usize,
}

impl Emitter<'_> {
    #[inline]
    fn emit(&mut self, m: &[u8], s: f64) {
        if self.withscores && self.r.resp3 {
            self.r.array(2);
        }
        self.r.bulk(m);
        if self.withscores {
            self.r.double(s);
        }
        self.n += 1;
    }

    /// The array length for `n` entries.
    fn items(&self, n: usize) -> usize {
        if self.withscores && !self.r.resp3 { 2 * n } else { n }
    }
}

/// ZRANGE and its older forms (Redis's `zrangeGenericCommand`): parses the
/// options, then the range, then looks the key up.
fn zrange_generic(ctx: &mut Ctx, a: &Args, mut by: RangeBy, mut rev: Option<bool>) {
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = 4;
    while j < a.len() {
        let left = a.len() - j - 1;
        let opt = &a[j];
        if opt.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
        } else if opt.eq_ignore_ascii_case(b"limit") && left >= 2 {
            let Some(o) = ctx.int(&a[j + 1]) else { return };
            let Some(l) = ctx.int(&a[j + 2]) else { return };
            (offset, limit) = (o, l);
            j += 2;
        } else if rev.is_none() && opt.eq_ignore_ascii_case(b"rev") {
            rev = Some(true);
        } else if by == RangeBy::Auto && opt.eq_ignore_ascii_case(b"bylex") {
            by = RangeBy::Lex;
        } else if by == RangeBy::Auto && opt.eq_ignore_ascii_case(b"byscore") {
            by = RangeBy::Score;
        } else {
            return ctx.err(SYNTAX);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if by == RangeBy::Auto {
        by = RangeBy::Rank;
    }
    if limit != -1 && by == RangeBy::Rank {
        return ctx.err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    if withscores && by == RangeBy::Lex {
        return ctx.err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    // Reversed score and lex ranges are given as max, min.
    let (lo_arg, hi_arg) = if rev && by != RangeBy::Rank { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    enum Parsed {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let parsed = match by {
        RangeBy::Score => match ScoreRange::parse(lo_arg, hi_arg) {
            Some(r) => Parsed::Score(r),
            None => return ctx.err(NOT_FLOAT_RANGE),
        },
        RangeBy::Lex => match LexRange::parse(lo_arg, hi_arg) {
            Some(r) => Parsed::Lex(r),
            None => return ctx.err(NOT_LEX_RANGE),
        },
        _ => {
            let Some(start) = ctx.int(lo_arg) else { return };
            let Some(end) = ctx.int(hi_arg) else { return };
            Parsed::Rank(start, end)
        }
    };
    let db = ctx.db();
    let r = &mut ctx.c.reply;
    let z = match ctx.srv.ks.read(db, &a[1]) {
        None => return r.array(0),
        Some(Value::ZSet(z)) => z,
        Some(_) => return r.error(WRONGTYPE),
    };
    let mut out = Emitter { r, withscores, n: 0 };
    let len = z.len();
    match parsed {
        Parsed::Rank(start, end) => {
            let Some((start, end)) = clamp_range(start, end, len) else { return out.r.array(0) };
            let n = end - start + 1;
            let items = out.items(n);
            out.r.array(items);
            let it = if rev { z.iter_rev_from(len - 1 - start) } else { z.iter_from(start) };
            for (m, s) in it.take(n) {
                out.emit(m, s);
            }
        }
        Parsed::Score(range) => {
            let d = out.r.begin_array();
            let (lo, hi) = z.score_ranks(&range);
            // A negative offset walks off the end in Redis: nothing.
            if let Ok(offset) = usize::try_from(offset)
                && offset < hi - lo
            {
                let take = usize::try_from(limit).unwrap_or(usize::MAX).min(hi - lo - offset);
                let it = if rev { z.iter_rev_from(hi - 1 - offset) } else { z.iter_from(lo + offset) };
                for (m, s) in it.take(take) {
                    out.emit(m, s);
                }
            }
            let items = out.items(out.n);
            out.r.end_array(d, items);
        }
        Parsed::Lex(range) => {
            let d = out.r.begin_array();
            let start = if rev { z.lex_last(&range) } else { z.lex_first(&range) };
            if let (Some(start), Ok(offset)) = (start, usize::try_from(offset)) {
                let take = usize::try_from(limit).unwrap_or(usize::MAX);
                if rev {
                    if let Some(from) = start.checked_sub(offset) {
                        for (m, s) in z.iter_rev_from(from).take_while(|(m, _)| range.gte_min(m)).take(take) {
                            out.emit(m, s);
                        }
                    }
                } else if let Some(from) = start.checked_add(offset) {
                    for (m, s) in z.iter_from(from).take_while(|(m, _)| range.lte_max(m)).take(take) {
                        out.emit(m, s);
                    }
                }
            }
            let items = out.items(out.n);
            out.r.end_array(d, items);
        }
    }
}

fn zrange(ctx: &mut Ctx, a: &Args) {
    zrange_generic(ctx, a, RangeBy::Auto, None);
}

fn zrevrange(ctx: &mut Ctx, a: &Args) {
    zrange_generic(ctx, a, RangeBy::Rank, Some(true));
}

fn zrangebyscore(ctx: &mut Ctx, a: &Args) {
    zrange_generic(ctx, a, RangeBy::Score, Some(false));
}

fn zrevrangebyscore(ctx: &mut Ctx, a: &Args) {
    zrange_generic(ctx, a, RangeBy::Score, Some(true));
}

fn zrangebylex(ctx: &mut Ctx, a: &Args) {
    zrange_generic(ctx, a, RangeBy::Lex, Some(false));
}

fn zrevrangebylex(ctx: &mut Ctx, a: &Args) {
    zrange_generic(ctx, a, RangeBy::Lex, Some(true));
}

fn zpopmin(ctx: &mut Ctx, a: &Args) {
    zpop_generic(ctx, a, false);
}

fn zpopmax(ctx: &mut Ctx, a: &Args) {
    zpop_generic(ctx, a, true);
}

/// ZPOPMIN/ZPOPMAX: a flat member/score array, or (RESP3 with a count) an
/// array of [member, score] pairs.
fn zpop_generic(ctx: &mut Ctx, a: &Args, max: bool) {
    if a.len() > 3 {
        return ctx.err(SYNTAX);
    }
    let mut count = None;
    if a.len() == 3 {
        match parse_i64(&a[2]).filter(|n| *n >= 0) {
            Some(n) => count = Some(n),
            None => return ctx.err(NOT_POSITIVE),
        }
    }
    let db = ctx.db();
    let key = &a[1];
    let ks = &mut ctx.srv.ks;
    let r = &mut ctx.c.reply;
    let z = match ks.write(db, key) {
        None => return r.array(0),
        Some(Value::ZSet(z)) => z,
        Some(_) => return r.error(WRONGTYPE),
    };
    if count == Some(0) {
        return r.array(0);
    }
    let nested = r.resp3 && count.is_some();
    let n = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX).min(z.len());
    r.array(if nested { n } else { 2 * n });
    for _ in 0..n {
        let (m, s) = z.pop(max).expect("n <= len");
        if nested {
            r.array(2);
        }
        r.bulk(&m);
        r.double(s);
    }
    let empty = z.is_empty();
    ks.collection_changed(db, key, empty, n as u64);
}

/// How ZREMRANGEBY* selects entries.
enum RemoveBy {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

fn zremrange_generic(ctx: &mut Ctx, a: &Args, by: RemoveBy) {
    let db = ctx.db();
    let key = &a[1];
    let ks = &mut ctx.srv.ks;
    let z = match ks.write(db, key) {
        None => return ctx.c.reply.int(0),
        Some(Value::ZSet(z)) => z,
        Some(_) => return ctx.c.reply.error(WRONGTYPE),
    };
    let removed = match by {
        RemoveBy::Rank(start, end) => {
            let Some((start, end)) = clamp_range(start, end, z.len()) else { return ctx.c.reply.int(0) };
            z.remove_ranks(start, end + 1)
        }
        RemoveBy::Score(range) => {
            let (lo, hi) = z.score_ranks(&range);
            z.remove_ranks(lo, hi)
        }
        RemoveBy::Lex(range) => z.remove_lex(&range),
    };
    let empty = z.is_empty();
    if removed > 0 {
        ks.collection_changed(db, key, empty, removed as u64);
    }
    ctx.c.reply.int(removed as i64);
}

fn zremrangebyrank(ctx: &mut Ctx, a: &Args) {
    let Some(start) = ctx.int(&a[2]) else { return };
    let Some(end) = ctx.int(&a[3]) else { return };
    zremrange_generic(ctx, a, RemoveBy::Rank(start, end));
}

fn zremrangebyscore(ctx: &mut Ctx, a: &Args) {
    match ScoreRange::parse(&a[2], &a[3]) {
        Some(r) => zremrange_generic(ctx, a, RemoveBy::Score(r)),
        None => ctx.err(NOT_FLOAT_RANGE),
    }
}

fn zremrangebylex(ctx: &mut Ctx, a: &Args) {
    match LexRange::parse(&a[2], &a[3]) {
        Some(r) => zremrange_generic(ctx, a, RemoveBy::Lex(r)),
        None => ctx.err(NOT_LEX_RANGE),
    }
}

fn zscan(ctx: &mut Ctx, a: &Args) {
    super::scan::collection::<ZSet>(ctx, a);
}

impl Scanned for ZSet {
    const WIDTH: usize = 2;

    fn of(v: &Value) -> Option<&ZSet> {
        match v {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }

    fn step(&self, cursor: u64, f: &mut Visit) -> u64 {
        let pack = matches!(self, ZSet::Pack(_));
        self.scan(cursor, |m, s| {
            f(m, &|r| {
                r.bulk(m);
                // A listpack holds scores as text (integers when whole); the
                // skiplist's dict holds doubles, printed as `%.17Lg`.
                let text = if pack { listpack_score_text(s) } else { fmt_g17(s) };
                r.bulk(text.as_bytes());
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_like_redis() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"Infinity"), Some(f64::INFINITY));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"1e999", b"1e-999", b"abc", b"1\x002"] {
            assert_eq!(parse_score(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let long = format!("{}1", "0".repeat(100));
        assert_eq!(parse_score(long.as_bytes()), Some(1.0));
    }

    #[test]
    fn listpack_text() {
        assert_eq!(listpack_score_text(1e17), "100000000000000000");
        assert_eq!(listpack_score_text(1e19), "1e+19");
        assert_eq!(listpack_score_text(0.1), "0.10000000000000001");
        assert_eq!(listpack_score_text(f64::NEG_INFINITY), "-inf");
    }
}
