//! Hash commands against a real cowstore: encoding conversion at the
//! thresholds, HSCAN completeness and COUNT, HRANDFIELD's guarantees and RESP3 shapes
//! (the exact replies of small cases are compared with redis-server by
//! `scripts/hashes.txt`).

mod common;
use common::{Raw, Resp, Server, bulk, cmd, encoding, err, q};
use std::collections::{HashMap, HashSet};

fn text(r: &Resp) -> String {
    match r {
        Resp::Bulk(_, b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// Fills `key` with `n` fields `f{i}` = `v{i}`, 500 per HSET.
fn fill(c: &mut redis::Connection, key: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut p = redis::cmd("HSET");
        p.arg(key);
        for i in chunk {
            p.arg(format!("f{i}")).arg(format!("v{i}"));
        }
        p.query::<i64>(c).unwrap();
    }
}

#[test]
fn encoding_converts_past_thresholds_and_never_back() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["CONFIG", "SET", "hash-max-listpack-entries", "4"]);
    q::<String>(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "8"]);
    // Entries: 4 fit, the 5th converts.
    fill(&mut c, "h", 4);
    assert_eq!(encoding(&mut c, "h"), "listpack");
    q::<i64>(&mut c, &["HSET", "h", "f0", "updated"]);
    assert_eq!(encoding(&mut c, "h"), "listpack");
    q::<i64>(&mut c, &["HSET", "h", "f4", "v4"]);
    assert_eq!(encoding(&mut c, "h"), "hashtable");
    q::<i64>(&mut c, &["HDEL", "h", "f1", "f2", "f3", "f4"]);
    assert_eq!(encoding(&mut c, "h"), "hashtable");
    assert_eq!(
        q::<HashMap<String, String>>(&mut c, &["HGETALL", "h"]),
        HashMap::from([("f0".into(), "updated".into())])
    );
    // Value length: 8 bytes fit, 9 convert; field names count the same way.
    q::<i64>(&mut c, &["HSET", "v", "a", "12345678"]);
    assert_eq!(encoding(&mut c, "v"), "listpack");
    q::<i64>(&mut c, &["HSET", "v", "a", "123456789"]);
    assert_eq!(encoding(&mut c, "v"), "hashtable");
    q::<i64>(&mut c, &["HSET", "k", "abcdefgh", "1"]);
    assert_eq!(encoding(&mut c, "k"), "listpack");
    q::<i64>(&mut c, &["HSET", "k", "abcdefghi", "1"]);
    assert_eq!(encoding(&mut c, "k"), "hashtable");
    // Counters convert when their result grows too long.
    q::<i64>(&mut c, &["HSET", "n", "a", "99999999"]);
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "n", "a", "1"]), 100000000);
    assert_eq!(encoding(&mut c, "n"), "hashtable");
    q::<i64>(&mut c, &["HSET", "fl", "a", "1"]);
    assert_eq!(q::<String>(&mut c, &["HINCRBYFLOAT", "fl", "a", "0.0000001"]), "1.0000001");
    assert_eq!(encoding(&mut c, "fl"), "hashtable");
    // HSETNX on an existing field does not convert (Redis 7.0 checks after the existence test).
    q::<i64>(&mut c, &["HSET", "nx", "a", "1"]);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "nx", "a", "far-too-long-value"]), 0);
    assert_eq!(encoding(&mut c, "nx"), "listpack");
    // A limit of 0 entries makes every hash a table.
    q::<String>(&mut c, &["CONFIG", "SET", "hash-max-ziplist-entries", "0"]);
    q::<i64>(&mut c, &["HSET", "z", "a", "1"]);
    assert_eq!(encoding(&mut c, "z"), "hashtable");
    // The values survive every conversion.
    assert_eq!(q::<String>(&mut c, &["HGET", "v", "a"]), "123456789");
    assert_eq!(q::<String>(&mut c, &["HGET", "n", "a"]), "100000000");
}

#[test]
fn hscan_is_complete_over_a_large_hash() {
    const N: usize = 20_000;
    let s = Server::start(&[]);
    let mut c = s.client();
    fill(&mut c, "big", N);
    assert_eq!(encoding(&mut c, "big"), "hashtable");
    for count in ["1", "10", "1000"] {
        let mut seen = HashMap::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let (next, items): (String, Vec<String>) = q(&mut c, &["HSCAN", "big", &cursor, "COUNT", count]);
            for pair in items.chunks(2) {
                seen.insert(pair[0].clone(), pair[1].clone());
            }
            calls += 1;
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), N, "COUNT {count}");
        assert!(seen.iter().all(|(f, v)| f[1..] == v[1..]));
        if count == "1000" {
            assert!(calls < N / 100, "COUNT 1000 took {calls} calls");
        }
    }
    // MATCH filters fields; values come along.
    let mut matched = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, items): (String, Vec<String>) =
            q(&mut c, &["HSCAN", "big", &cursor, "MATCH", "f1?", "COUNT", "100"]);
        for pair in items.chunks(2) {
            assert_eq!(pair[1], format!("v{}", &pair[0][1..]));
            matched.insert(pair[0].clone());
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(matched, (10..20).map(|i| format!("f{i}")).collect::<HashSet<_>>());
    // Fields present for the whole scan are returned even while the hash
    // grows (rehashing) and shrinks between calls.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut step = 0;
    loop {
        let (next, items): (String, Vec<String>) = q(&mut c, &["HSCAN", "big", &cursor, "COUNT", "50"]);
        seen.extend(items.chunks(2).map(|p| p[0].clone()));
        step += 1;
        if step == 10 {
            fill(&mut c, "big", 3 * N);
        }
        if step == 40 {
            for chunk in (N..3 * N).collect::<Vec<_>>().chunks(500) {
                let mut del = redis::cmd("HDEL");
                del.arg("big");
                for i in chunk {
                    del.arg(format!("f{i}"));
                }
                del.query::<i64>(&mut c).unwrap();
            }
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert!((0..N).all(|i| seen.contains(&format!("f{i}"))));
    // A listpack hash answers in one call.
    q::<i64>(&mut c, &["HSET", "small", "a", "1", "b", "2"]);
    let (next, items): (String, Vec<String>) = q(&mut c, &["HSCAN", "small", "0", "COUNT", "1"]);
    assert_eq!((next.as_str(), items), ("0", vec!["a".into(), "1".into(), "b".into(), "2".into()]));
}

#[test]
fn hrandfield_guarantees_in_both_encodings() {
    let s = Server::start(&[]);
    let mut c = s.client();
    fill(&mut c, "small", 20);
    fill(&mut c, "large", 1000);
    assert_eq!(encoding(&mut c, "small"), "listpack");
    assert_eq!(encoding(&mut c, "large"), "hashtable");
    for (key, size) in [("small", 20usize), ("large", 1000)] {
        // Positive counts: distinct fields, min(count, size) of them.
        for count in [1, 2, 5, size / 3, size / 3 + 1, size - 1, size, size + 5] {
            let got: Vec<String> = q(&mut c, &["HRANDFIELD", key, &count.to_string()]);
            assert_eq!(got.len(), count.min(size), "{key} {count}");
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len(), "{key} {count}: repeats");
            assert!(got.iter().all(|f| f[1..].parse::<usize>().unwrap() < size));
            let pairs: Vec<String> = q(&mut c, &["HRANDFIELD", key, &count.to_string(), "WITHVALUES"]);
            assert_eq!(pairs.len(), 2 * count.min(size));
            assert!(pairs.chunks(2).all(|p| p[0][1..] == p[1][1..]));
        }
        // Negative counts: exactly |count|, repeats allowed, all real fields.
        let got: Vec<String> = q(&mut c, &["HRANDFIELD", key, "-3000"]);
        assert_eq!(got.len(), 3000);
        let distinct: HashSet<_> = got.iter().collect();
        assert!(distinct.len() > size / 2, "{key}: only {} distinct of {size}", distinct.len());
        assert!(got.iter().all(|f| f[1..].parse::<usize>().unwrap() < size));
        let pairs: Vec<String> = q(&mut c, &["HRANDFIELD", key, "-7", "WITHVALUES"]);
        assert_eq!(pairs.len(), 14);
        assert!(pairs.chunks(2).all(|p| p[0][1..] == p[1][1..]));
        // No count: one field, and every field can come up.
        let mut singles = HashSet::new();
        for _ in 0..2000 {
            singles.insert(q::<String>(&mut c, &["HRANDFIELD", key]));
        }
        assert!(singles.len() > size.min(500) / 2, "{key}: {} distinct singles", singles.len());
    }
    // Positive count below the size gives each field a fair chance.
    let mut hits = HashMap::<String, usize>::new();
    for _ in 0..500 {
        for f in q::<Vec<String>>(&mut c, &["HRANDFIELD", "small", "5"]) {
            *hits.entry(f).or_default() += 1;
        }
    }
    assert_eq!(hits.len(), 20);
    assert!(hits.values().all(|&n| n > 50), "{hits:?}");
    assert_eq!(
        err(&mut c, &["HRANDFIELD", "small", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(err(&mut c, &["HRANDFIELD", "small", "4611686018427387904", "WITHVALUES"]), "ERR value is out of range");
}

#[test]
fn counters_and_errors() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "n", "5"]), 5);
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "n", "-7"]), -2);
    q::<i64>(&mut c, &["HSET", "h", "max", "9223372036854775807", "min", "-9223372036854775808", "s", "x"]);
    assert_eq!(err(&mut c, &["HINCRBY", "h", "max", "1"]), "ERR increment or decrement would overflow");
    assert_eq!(err(&mut c, &["HINCRBY", "h", "min", "-1"]), "ERR increment or decrement would overflow");
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "min", "9223372036854775807"]), -1);
    assert_eq!(err(&mut c, &["HINCRBY", "h", "s", "1"]), "ERR hash value is not an integer");
    assert_eq!(err(&mut c, &["HINCRBY", "h", "n", "x"]), "ERR value is not an integer or out of range");
    assert_eq!(q::<String>(&mut c, &["HINCRBYFLOAT", "h", "f", "10.5"]), "10.5");
    assert_eq!(q::<String>(&mut c, &["HINCRBYFLOAT", "h", "f", "0.1"]), "10.6");
    assert_eq!(q::<String>(&mut c, &["HINCRBYFLOAT", "h", "n", "2.5"]), "0.5");
    assert_eq!(err(&mut c, &["HINCRBYFLOAT", "h", "s", "1"]), "ERR hash value is not a float");
    assert_eq!(err(&mut c, &["HINCRBYFLOAT", "h", "f", "x"]), "ERR value is not a valid float");
    assert_eq!(err(&mut c, &["HINCRBYFLOAT", "h", "f", "inf"]), "ERR value is NaN or Infinity");
    q::<i64>(&mut c, &["HSET", "h", "huge", "1e4932"]);
    assert_eq!(err(&mut c, &["HINCRBYFLOAT", "h", "huge", "1e4932"]), "ERR increment would produce NaN or Infinity");
    assert_eq!(q::<i64>(&mut c, &["HSTRLEN", "h", "min"]), 2);
    assert_eq!(err(&mut c, &["HSET", "h", "a"]), "ERR wrong number of arguments for 'hset' command");
    assert_eq!(err(&mut c, &["HMSET", "h", "a", "1", "b"]), "ERR wrong number of arguments for 'hmset' command");
    // HDEL of the last field removes the key; failed writes never create one.
    q::<i64>(&mut c, &["HSET", "one", "f", "v"]);
    assert_eq!(q::<i64>(&mut c, &["HDEL", "one", "f", "g"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "one"]), 0);
    assert_eq!(err(&mut c, &["HINCRBYFLOAT", "none", "f", "x"]), "ERR value is not a valid float");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "none"]), 0);
    // Writes invalidate WATCH; a no-op HDEL does not.
    let mut other = s.client();
    for (change, invalidates) in [(&["HSET", "h", "n", "1"][..], true), (&["HDEL", "h", "nope"], false)] {
        q::<String>(&mut c, &["WATCH", "h"]);
        q::<String>(&mut c, &["MULTI"]);
        q::<String>(&mut c, &["PING"]);
        cmd(&mut other, change);
        assert_eq!(cmd(&mut c, &["EXEC"]) == redis::Value::Nil, invalidates, "{change:?}");
    }
}

#[test]
fn resp3_shapes() {
    let s = Server::start(&[]);
    let mut r = Raw::new(s.port);
    assert!(matches!(r.call(&["HELLO", "3"]), Resp::Agg(b'%', _)));
    r.call(&["HSET", "h", "a", "1", "b", "2"]);
    assert_eq!(r.call(&["HGETALL", "h"]), Resp::Agg(b'%', vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]));
    assert_eq!(r.call(&["HGETALL", "nokey"]), Resp::Agg(b'%', vec![]));
    assert_eq!(r.call(&["HKEYS", "h"]), Resp::Agg(b'*', vec![bulk("a"), bulk("b")]));
    assert_eq!(r.call(&["HGET", "h", "zz"]), Resp::Line(b'_', vec![]));
    assert_eq!(r.call(&["HRANDFIELD", "nokey"]), Resp::Line(b'_', vec![]));
    assert_eq!(r.call(&["HRANDFIELD", "nokey", "3"]), Resp::Agg(b'*', vec![]));
    // WITHVALUES nests each pair in RESP3, for every sampling strategy.
    let pair = |f: &str, v: &str| Resp::Agg(b'*', vec![bulk(f), bulk(v)]);
    assert_eq!(r.call(&["HRANDFIELD", "h", "5", "WITHVALUES"]), Resp::Agg(b'*', vec![pair("a", "1"), pair("b", "2")]));
    r.call(&["HSET", "big", "f", "x".repeat(100).as_str()]);
    for i in 0..300 {
        r.call(&["HSET", "big", &format!("f{i}"), &format!("v{i}")]);
    }
    for key in ["h", "big"] {
        for count in ["1", "-5", "2", "150", "1000"] {
            let Resp::Agg(b'*', items) = r.call(&["HRANDFIELD", key, count, "WITHVALUES"]) else { panic!() };
            assert!(!items.is_empty());
            for item in &items {
                let Resp::Agg(b'*', kv) = item else { panic!("{key} {count}: {item:?}") };
                assert_eq!(kv.len(), 2);
                let (f, v) = (text(&kv[0]), text(&kv[1]));
                assert!(f == "a" && v == "1" || f == "b" && v == "2" || f[1..] == v[1..] || f == "f");
            }
            let Resp::Agg(b'*', plain) = r.call(&["HRANDFIELD", key, count]) else { panic!() };
            assert!(plain.iter().all(|e| matches!(e, Resp::Bulk(b'$', _))));
        }
    }
    // HSCAN keeps its flat array shape in RESP3.
    assert_eq!(
        r.call(&["HSCAN", "h", "0"]),
        Resp::Agg(b'*', vec![bulk("0"), Resp::Agg(b'*', vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")])])
    );
    assert_eq!(r.call(&["HINCRBYFLOAT", "h", "a", "1.5"]), bulk("2.5"));
}

#[test]
fn hscan_count_bounds_the_fields_visited() {
    // Redis counts a field and its value as two elements against twice
    // COUNT: a call that leaves the walk unfinished visited COUNT fields or
    // more (and, without MATCH, returns them all).
    let s = Server::start(&[]);
    let mut c = s.client();
    fill(&mut c, "h", 1000);
    assert_eq!(encoding(&mut c, "h"), "hashtable");
    for count in [1usize, 10, 100, 400] {
        let (mut cursor, mut seen) = ("0".to_string(), HashSet::new());
        loop {
            let (next, items): (String, Vec<String>) = q(&mut c, &["HSCAN", "h", &cursor, "COUNT", &count.to_string()]);
            seen.extend(items.chunks(2).map(|p| p[0].clone()));
            if next == "0" {
                break;
            }
            assert!(items.len() / 2 >= count, "HSCAN COUNT {count} returned {} fields", items.len() / 2);
            cursor = next;
        }
        assert_eq!(seen.len(), 1000, "COUNT {count}");
    }
}
