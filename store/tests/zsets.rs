//! Sorted set commands against a real cowstore: encoding conversions at the
//! thresholds, a 100k-member set checked against a sorted-vector model
//! (ranks, ranges, removals, pops), ZSCAN completeness and RESP3 shapes.

mod common;
use common::{Raw, Resp, Server, bulk, encoding, q};
use std::collections::{HashMap, HashSet};

/// Members per ZADD when loading.
const BATCH: usize = 2000;

/// Formats a score the way Redis prints it (`%.17g`), for sending.
fn text(s: f64) -> String {
    if s == f64::INFINITY {
        "inf".into()
    } else if s == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{s:e}")
    }
}

#[test]
fn listpack_converts_at_the_thresholds_and_never_back() {
    let s = Server::start(&[]);
    let mut c = s.client();
    // Defaults: 128 entries, 64-byte members.
    for i in 0..128 {
        q::<i64>(&mut c, &["ZADD", "d", &i.to_string(), &format!("m{i}")]);
    }
    assert_eq!(encoding(&mut c, "d"), "listpack");
    q::<i64>(&mut c, &["ZADD", "d", "1", "one-more"]);
    assert_eq!(encoding(&mut c, "d"), "skiplist");
    let m64 = "x".repeat(64);
    let m65 = "x".repeat(65);
    q::<i64>(&mut c, &["ZADD", "v", "1", &m64]);
    assert_eq!(encoding(&mut c, "v"), "listpack");
    q::<i64>(&mut c, &["ZADD", "v", "1", &m65]);
    assert_eq!(encoding(&mut c, "v"), "skiplist");

    let _: String = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-entries", "16"]);
    for i in 0..16 {
        q::<i64>(&mut c, &["ZADD", "z", &i.to_string(), &format!("m{i}")]);
        assert_eq!(encoding(&mut c, "z"), "listpack");
    }
    // Updating an existing member does not count.
    q::<i64>(&mut c, &["ZADD", "z", "100", "m0"]);
    assert_eq!(encoding(&mut c, "z"), "listpack");
    q::<i64>(&mut c, &["ZADD", "z", "NX", "5", "m16"]);
    assert_eq!(encoding(&mut c, "z"), "skiplist");
    let all: Vec<(String, f64)> = q(&mut c, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]);
    assert_eq!(all.len(), 17);
    assert_eq!(all[0], ("m1".into(), 1.0));
    assert_eq!(all[16], ("m0".into(), 100.0));
    for i in 1..=16 {
        q::<i64>(&mut c, &["ZREM", "z", &format!("m{i}")]);
    }
    assert_eq!(encoding(&mut c, "z"), "skiplist");
    assert_eq!(q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "-1"]), ["m0"]);
    // A failed XX on a missing key creates nothing; ZADD on a new key with a
    // long first member starts as a skiplist.
    let _: String = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-value", "4"]);
    q::<i64>(&mut c, &["ZADD", "n", "XX", "1", "abcdef"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "n"]), 0);
    q::<i64>(&mut c, &["ZADD", "n", "1", "abcde", "2", "b"]);
    assert_eq!(encoding(&mut c, "n"), "skiplist");
    q::<i64>(&mut c, &["ZADD", "n2", "1", "abcd", "2", "b"]);
    assert_eq!(encoding(&mut c, "n2"), "listpack");
    // COPY keeps the encoding and the contents.
    for key in ["n", "n2"] {
        let dst = format!("{key}-copy");
        assert_eq!(q::<i64>(&mut c, &["COPY", key, &dst]), 1);
        assert_eq!(encoding(&mut c, &dst), encoding(&mut c, key));
        let a: Vec<(String, f64)> = q(&mut c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]);
        let b: Vec<(String, f64)> = q(&mut c, &["ZRANGE", &dst, "0", "-1", "WITHSCORES"]);
        assert_eq!(a, b);
    }
    let _: String = q(&mut c, &["CONFIG", "SET", "zset-max-listpack-entries", "0"]);
    q::<i64>(&mut c, &["ZADD", "e", "1", "a"]);
    assert_eq!(encoding(&mut c, "e"), "skiplist");
}

/// The model: (score, member) kept sorted as the server orders them.
struct Model(Vec<(f64, String)>);

impl Model {
    fn sort(&mut self) {
        self.0.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then_with(|| a.1.as_bytes().cmp(b.1.as_bytes())));
    }
    fn rank(&self, m: &str) -> usize {
        self.0.iter().position(|e| e.1 == m).unwrap()
    }
    fn in_range(&self, min: f64, max: f64) -> Vec<(String, f64)> {
        self.0.iter().filter(|e| e.0 >= min && e.0 <= max).map(|e| (e.1.clone(), e.0)).collect()
    }
    fn slice(&self, a: usize, b: usize) -> Vec<(String, f64)> {
        self.0[a..b].iter().map(|e| (e.1.clone(), e.0)).collect()
    }
}

/// Compares the whole set with the model, 10k entries per request, then in
/// one reply (several MB for the full set).
fn check_all(c: &mut redis::Connection, key: &str, model: &Model) {
    let n = model.0.len();
    assert_eq!(q::<usize>(c, &["ZCARD", key]), n);
    for start in (0..n).step_by(10_000) {
        let end = (start + 10_000).min(n);
        let page: Vec<(String, f64)> = q(c, &["ZRANGE", key, &start.to_string(), &(end - 1).to_string(), "WITHSCORES"]);
        assert_eq!(page, model.slice(start, end), "ranks {start}..{end}");
    }
    let all: Vec<(String, f64)> = q(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]);
    assert_eq!(all.len(), n);
    assert!(all.iter().zip(&model.0).all(|(a, m)| a.0 == m.1 && a.1 == m.0));
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn large_sorted_set_matches_a_model() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let mut rng = Lcg(42);
    let n = 100_000;
    let mut model = Model(Vec::with_capacity(n));
    for i in 0..n {
        // Many ties (members then order the entries), some fractions, a few infinities.
        let score = match i % 1000 {
            0 => f64::INFINITY,
            1 => f64::NEG_INFINITY,
            _ if i % 7 == 0 => (rng.next() % 1000) as f64 / 8.0,
            _ => (rng.next() % 5000) as f64,
        };
        model.0.push((score, format!("member:{i}")));
    }
    for chunk in model.0.chunks(BATCH) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg("big");
        for (s, m) in chunk {
            cmd.arg(text(*s)).arg(m);
        }
        assert_eq!(cmd.query::<usize>(&mut c).unwrap(), chunk.len());
    }
    model.sort();
    assert_eq!(encoding(&mut c, "big"), "skiplist");
    check_all(&mut c, "big", &model);

    // Ranks, both ways.
    for _ in 0..500 {
        let i = rng.next() as usize % n;
        let m = &model.0[i].1;
        assert_eq!(q::<usize>(&mut c, &["ZRANK", "big", m]), i);
        assert_eq!(q::<usize>(&mut c, &["ZREVRANK", "big", m]), n - 1 - i);
        assert_eq!(q::<f64>(&mut c, &["ZSCORE", "big", m]), model.0[i].0);
    }
    // Rank ranges, including negative indexes and reversed.
    for (a, b) in [(0i64, 9i64), (50_000, 50_010), (-10, -1), (99_990, 200_000), (-100_001, 3)] {
        let lo = if a < 0 { (n as i64 + a).max(0) } else { a } as usize;
        let hi = (if b < 0 { n as i64 + b } else { b.min(n as i64 - 1) }) as usize + 1;
        let got: Vec<(String, f64)> = q(&mut c, &["ZRANGE", "big", &a.to_string(), &b.to_string(), "WITHSCORES"]);
        assert_eq!(got, model.slice(lo, hi), "ZRANGE {a} {b}");
        let mut rev = model.slice(n - hi, n - lo);
        rev.reverse();
        let got: Vec<(String, f64)> = q(&mut c, &["ZREVRANGE", "big", &a.to_string(), &b.to_string(), "WITHSCORES"]);
        assert_eq!(got, rev, "ZREVRANGE {a} {b}");
    }
    // Score ranges with LIMIT, counts.
    for (min, max) in [(100.0, 105.0), (-1.0, 0.5), (4999.0, f64::INFINITY), (f64::NEG_INFINITY, 3.0), (7.0, 6.0)] {
        let expected = model.in_range(min, max);
        let got: Vec<(String, f64)> = q(&mut c, &["ZRANGEBYSCORE", "big", &text(min), &text(max), "WITHSCORES"]);
        assert_eq!(got, expected, "ZRANGEBYSCORE {min} {max}");
        assert_eq!(q::<usize>(&mut c, &["ZCOUNT", "big", &text(min), &text(max)]), expected.len());
        let got: Vec<(String, f64)> =
            q(&mut c, &["ZRANGE", "big", &text(min), &text(max), "BYSCORE", "LIMIT", "3", "5", "WITHSCORES"]);
        assert_eq!(got, expected.iter().skip(3).take(5).cloned().collect::<Vec<_>>());
        let mut rev = expected.clone();
        rev.reverse();
        let got: Vec<(String, f64)> =
            q(&mut c, &["ZREVRANGEBYSCORE", "big", &text(max), &text(min), "WITHSCORES", "LIMIT", "2", "4"]);
        assert_eq!(got, rev.iter().skip(2).take(4).cloned().collect::<Vec<_>>());
    }
    let open: Vec<String> = q(&mut c, &["ZRANGEBYSCORE", "big", "(100", "(102"]);
    let expected: Vec<String> = model.0.iter().filter(|e| e.0 > 100.0 && e.0 < 102.0).map(|e| e.1.clone()).collect();
    assert_eq!(open, expected);

    // Updates move members; increments too.
    for _ in 0..2000 {
        let i = rng.next() as usize % model.0.len();
        let new = (rng.next() % 5000) as f64 + 0.25;
        let m = model.0[i].1.clone();
        assert_eq!(q::<i64>(&mut c, &["ZADD", "big", "CH", &text(new), &m]), (model.0[i].0 != new) as i64);
        model.0[i].0 = new;
    }
    let m = model.0[10].1.clone();
    let inc: f64 = q(&mut c, &["ZINCRBY", "big", "1.5", &m]);
    model.0[10].0 += 1.5;
    assert_eq!(inc, model.0[10].0);
    model.sort();
    check_all(&mut c, "big", &model);
    assert_eq!(q::<usize>(&mut c, &["ZRANK", "big", &m]), model.rank(&m));

    // Removal by rank, by score, by member, and pops.
    assert_eq!(q::<usize>(&mut c, &["ZREMRANGEBYRANK", "big", "1000", "30999"]), 30_000);
    model.0.drain(1000..31_000);
    assert_eq!(q::<usize>(&mut c, &["ZREMRANGEBYRANK", "big", "-500", "-1"]), 500);
    let len = model.0.len();
    model.0.truncate(len - 500);
    check_all(&mut c, "big", &model);
    let doomed = model.in_range(2000.0, 3000.0).len();
    assert_eq!(q::<usize>(&mut c, &["ZREMRANGEBYSCORE", "big", "2000", "3000"]), doomed);
    model.0.retain(|e| !(e.0 >= 2000.0 && e.0 <= 3000.0));
    for _ in 0..1000 {
        let i = rng.next() as usize % model.0.len();
        let (_, m) = model.0.remove(i);
        assert_eq!(q::<i64>(&mut c, &["ZREM", "big", &m, "not-a-member"]), 1);
    }
    let popped: Vec<(String, f64)> = q(&mut c, &["ZPOPMIN", "big", "100"]);
    assert_eq!(popped, model.slice(0, 100));
    model.0.drain(0..100);
    let popped: Vec<(String, f64)> = q(&mut c, &["ZPOPMAX", "big", "100"]);
    let mut top = model.slice(model.0.len() - 100, model.0.len());
    top.reverse();
    assert_eq!(popped, top);
    let len = model.0.len();
    model.0.truncate(len - 100);
    check_all(&mut c, "big", &model);
    for _ in 0..200 {
        let i = rng.next() as usize % model.0.len();
        let m = &model.0[i].1;
        assert_eq!(q::<usize>(&mut c, &["ZRANK", "big", m]), i);
    }
    // Down to nothing: the key goes away.
    assert_eq!(q::<usize>(&mut c, &["ZREMRANGEBYRANK", "big", "0", "-1"]), model.0.len());
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "big"]), 0);
}

#[test]
fn lex_ranges_on_a_large_set_match_a_model() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let mut words: Vec<String> =
        (0..20_000).map(|i| format!("{:x}", (i as u64).wrapping_mul(2654435761) % 1_000_003)).collect();
    for chunk in words.chunks(BATCH) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg("lex");
        for w in chunk {
            cmd.arg(0).arg(w);
        }
        let _: usize = cmd.query(&mut c).unwrap();
    }
    words.sort();
    words.dedup();
    assert_eq!(q::<usize>(&mut c, &["ZCARD", "lex"]), words.len());
    for (min, max) in [("[1", "[2"), ("(a", "+"), ("-", "(5"), ("[f", "[e"), ("[abc", "(abd")] {
        let ok = |w: &String| {
            let lo = match min {
                "-" => true,
                _ if min.starts_with('[') => w.as_str() >= &min[1..],
                _ => w.as_str() > &min[1..],
            };
            let hi = match max {
                "+" => true,
                _ if max.starts_with('[') => w.as_str() <= &max[1..],
                _ => w.as_str() < &max[1..],
            };
            lo && hi
        };
        let expected: Vec<String> = words.iter().filter(|w| ok(w)).cloned().collect();
        assert_eq!(q::<Vec<String>>(&mut c, &["ZRANGEBYLEX", "lex", min, max]), expected, "{min} {max}");
        assert_eq!(q::<usize>(&mut c, &["ZLEXCOUNT", "lex", min, max]), expected.len());
        let mut rev = expected.clone();
        rev.reverse();
        assert_eq!(
            q::<Vec<String>>(&mut c, &["ZREVRANGEBYLEX", "lex", max, min, "LIMIT", "1", "7"]),
            rev.iter().skip(1).take(7).cloned().collect::<Vec<_>>()
        );
    }
    let n = q::<usize>(&mut c, &["ZREMRANGEBYLEX", "lex", "[2", "(8"]);
    let kept: Vec<String> = words.iter().filter(|w| !(w.as_str() >= "2" && w.as_str() < "8")).cloned().collect();
    assert_eq!(n, words.len() - kept.len());
    assert_eq!(q::<Vec<String>>(&mut c, &["ZRANGE", "lex", "0", "-1"]), kept);
}

#[test]
fn zscan_visits_every_member_with_its_score() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let mut expected = HashMap::new();
    for chunk in (0..20_000).collect::<Vec<u32>>().chunks(BATCH) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg("z");
        for &i in chunk {
            let score = i as f64 / 10.0;
            cmd.arg(text(score)).arg(format!("m{i}"));
            expected.insert(format!("m{i}"), score);
        }
        let _: usize = cmd.query(&mut c).unwrap();
    }
    for count in ["1", "10", "500"] {
        let mut seen = HashMap::new();
        let mut cursor = "0".to_string();
        loop {
            let (next, flat): (String, Vec<String>) = q(&mut c, &["ZSCAN", "z", &cursor, "COUNT", count]);
            for pair in flat.chunks(2) {
                seen.insert(pair[0].clone(), pair[1].parse::<f64>().unwrap());
            }
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen, expected, "COUNT {count}");
    }
    // MATCH keeps the pairs together.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, flat): (String, Vec<String>) = q(&mut c, &["ZSCAN", "z", &cursor, "MATCH", "m1?", "COUNT", "100"]);
        for pair in flat.chunks(2) {
            assert_eq!(pair[1].parse::<f64>().unwrap(), expected[&pair[0]]);
            seen.insert(pair[0].clone());
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen, (10..20).map(|i| format!("m{i}")).collect::<HashSet<_>>());
    // A listpack comes back whole, in order, with cursor 0.
    q::<i64>(&mut c, &["ZADD", "small", "2", "b", "1", "a", "1e17", "c"]);
    let (cursor, flat): (String, Vec<String>) = q(&mut c, &["ZSCAN", "small", "0", "COUNT", "1"]);
    assert_eq!(cursor, "0");
    assert_eq!(flat, ["a", "1", "b", "2", "c", "100000000000000000"]);
}

fn double(s: &str) -> Resp {
    Resp::Line(b',', s.as_bytes().to_vec())
}

fn arr(v: Vec<Resp>) -> Resp {
    Resp::Agg(b'*', v)
}

#[test]
fn resp3_and_resp2_shapes() {
    let s = Server::start(&[]);
    let mut c = Raw::new(s.port);
    for encoding_entries in ["128", "0"] {
        c.call(&["CONFIG", "SET", "zset-max-listpack-entries", encoding_entries]);
        c.call(&["DEL", "z"]);
        c.call(&["HELLO", "2"]);
        c.call(&["ZADD", "z", "1", "a", "0.1", "b", "3", "c"]);
        let flat = arr(vec![bulk("b"), bulk("0.10000000000000001"), bulk("a"), bulk("1")]);
        assert_eq!(c.call(&["ZRANGE", "z", "0", "1", "WITHSCORES"]), flat);
        assert_eq!(c.call(&["ZRANGEBYSCORE", "z", "0", "1", "WITHSCORES"]), flat);
        assert_eq!(c.call(&["ZSCORE", "z", "b"]), bulk("0.10000000000000001"));
        assert_eq!(c.call(&["ZSCORE", "z", "x"]), Resp::NullBulk);
        assert_eq!(c.call(&["ZPOPMIN", "z"]), arr(vec![bulk("b"), bulk("0.10000000000000001")]));
        assert_eq!(c.call(&["ZPOPMIN", "z", "1"]), arr(vec![bulk("a"), bulk("1")]));
        c.call(&["ZADD", "z", "1", "a", "0.1", "b"]);

        c.call(&["HELLO", "3"]);
        let nested = arr(vec![arr(vec![bulk("b"), double("0.10000000000000001")]), arr(vec![bulk("a"), double("1")])]);
        assert_eq!(c.call(&["ZRANGE", "z", "0", "1", "WITHSCORES"]), nested);
        assert_eq!(c.call(&["ZRANGEBYSCORE", "z", "0", "1", "WITHSCORES"]), nested);
        assert_eq!(c.call(&["ZRANGE", "z", "0", "1"]), arr(vec![bulk("b"), bulk("a")]));
        assert_eq!(c.call(&["ZRANGE", "nokey", "0", "1", "WITHSCORES"]), arr(vec![]));
        assert_eq!(c.call(&["ZSCORE", "z", "b"]), double("0.10000000000000001"));
        assert_eq!(c.call(&["ZSCORE", "z", "x"]), Resp::Line(b'_', vec![]));
        assert_eq!(c.call(&["ZMSCORE", "z", "a", "x"]), arr(vec![double("1"), Resp::Line(b'_', vec![])]));
        assert_eq!(c.call(&["ZINCRBY", "z", "1", "c"]), double("4"));
        assert_eq!(c.call(&["ZADD", "z", "NX", "INCR", "1", "c"]), Resp::Line(b'_', vec![]));
        assert_eq!(c.call(&["ZRANK", "z", "x"]), Resp::Line(b'_', vec![]));
        // ZPOPMIN: flat without a count, nested pairs with one.
        assert_eq!(c.call(&["ZPOPMIN", "z"]), arr(vec![bulk("b"), double("0.10000000000000001")]));
        assert_eq!(c.call(&["ZPOPMIN", "z", "1"]), arr(vec![arr(vec![bulk("a"), double("1")])]));
        assert_eq!(c.call(&["ZPOPMAX", "z", "0"]), arr(vec![]));
        assert_eq!(c.call(&["ZPOPMIN", "nokey"]), arr(vec![]));
        assert_eq!(c.call(&["ZPOPMAX", "z", "5"]), arr(vec![arr(vec![bulk("c"), double("4")])]));
        assert_eq!(c.call(&["EXISTS", "z"]), Resp::Line(b':', b"0".to_vec()));
        // ZSCAN scores stay bulk strings.
        c.call(&["ZADD", "z", "inf", "i"]);
        assert_eq!(c.call(&["ZSCAN", "z", "0"]), arr(vec![bulk("0"), arr(vec![bulk("i"), bulk("inf")])]));
    }
}

#[test]
fn only_real_changes_invalidate_watch() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<i64>(&mut c, &["ZADD", "z", "1", "a", "2", "b"]);
    let cases: &[(&[&str], bool)] = &[
        (&["ZADD", "z", "1", "a"], false),
        (&["ZADD", "z", "NX", "5", "a"], false),
        (&["ZADD", "z", "XX", "5", "nope"], false),
        (&["ZADD", "z", "GT", "0", "a"], false),
        (&["ZREM", "z", "nope"], false),
        (&["ZREMRANGEBYSCORE", "z", "10", "20"], false),
        (&["ZREMRANGEBYRANK", "z", "5", "6"], false),
        (&["ZPOPMIN", "z", "0"], false),
        (&["ZINCRBY", "z", "0", "a"], false),
        (&["ZADD", "z", "3", "a"], true),
        (&["ZINCRBY", "z", "1", "a"], true),
        (&["ZADD", "z", "1", "c"], true),
        (&["ZREM", "z", "c"], true),
        (&["ZPOPMAX", "z"], true),
    ];
    for (cmd, changes) in cases {
        let _: String = q(&mut c, &["WATCH", "z"]);
        let _: () = redis::cmd(cmd[0]).arg(&cmd[1..]).query(&mut c).unwrap();
        let _: String = q(&mut c, &["MULTI"]);
        let _: String = q(&mut c, &["PING"]);
        let res: Option<Vec<String>> = q(&mut c, &["EXEC"]);
        assert_eq!(res.is_none(), *changes, "{cmd:?}");
    }
    // Scores compare as C doubles: -0 equals 0, ties order by member bytes.
    q::<i64>(&mut c, &["ZADD", "t", "0", "b", "-0", "a", "0", "\u{1}", "0", ""]);
    assert_eq!(q::<Vec<String>>(&mut c, &["ZRANGE", "t", "0", "-1"]), ["", "\u{1}", "a", "b"]);
    assert_eq!(q::<usize>(&mut c, &["ZCOUNT", "t", "0", "0"]), 4);
}
