//! Set commands against a real cowstore: encoding conversions at the
//! thresholds, SSCAN completeness, random-member fairness, large set
//! algebra against a model, RESP3 shapes and change signalling.

mod common;
use common::{Raw, Resp, Server, bulk, encoding, q};
use std::collections::{HashMap, HashSet};

/// Adds `members` to `key` in batches (one round trip per batch).
fn sadd_all(c: &mut redis::Connection, key: &str, members: &[String]) {
    for chunk in members.chunks(2000) {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(key);
        for m in chunk {
            cmd.arg(m);
        }
        let _: i64 = cmd.query(c).unwrap();
    }
}

#[test]
fn intset_converts_at_the_threshold_and_never_back() {
    let s = Server::start(&[]);
    let mut c = s.client();
    // Default threshold: 512 integers stay an intset, the 513th converts.
    let ints: Vec<String> = (0..512).map(|i| (i * 7 - 1000).to_string()).collect();
    sadd_all(&mut c, "d", &ints);
    assert_eq!(encoding(&mut c, "d"), "intset");
    assert_eq!(q::<i64>(&mut c, &["SADD", "d", "100000"]), 1);
    assert_eq!(encoding(&mut c, "d"), "hashtable");

    let _: String = q(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "16"]);
    for i in 1..=16 {
        assert_eq!(q::<i64>(&mut c, &["SADD", "s", &i.to_string()]), 1);
        assert_eq!(encoding(&mut c, "s"), "intset", "after {i}");
    }
    assert_eq!(q::<i64>(&mut c, &["SADD", "s", "17"]), 1);
    assert_eq!(encoding(&mut c, "s"), "hashtable");
    // Shrinking does not convert back.
    for i in 1..=15 {
        q::<i64>(&mut c, &["SREM", "s", &i.to_string()]);
    }
    assert_eq!(encoding(&mut c, "s"), "hashtable");
    assert_eq!(q::<HashSet<String>>(&mut c, &["SMEMBERS", "s"]), HashSet::from(["16".into(), "17".into()]));

    // Non-canonical integers are strings.
    for (i, m) in ["01", "-0", "+1", " 1", "1.0", "9223372036854775808", "0x1"].iter().enumerate() {
        let key = format!("nc{i}");
        q::<i64>(&mut c, &["SADD", &key, m]);
        assert_eq!(encoding(&mut c, &key), "hashtable", "{m}");
    }
    q::<i64>(&mut c, &["SADD", "edge", "-9223372036854775808", "9223372036854775807", "0"]);
    assert_eq!(encoding(&mut c, "edge"), "intset");
    assert_eq!(q::<Vec<String>>(&mut c, &["SMEMBERS", "edge"]), ["-9223372036854775808", "0", "9223372036854775807"]);
    // A non-integer converts a small intset at once.
    q::<i64>(&mut c, &["SADD", "mix", "1", "2"]);
    q::<i64>(&mut c, &["SADD", "mix", "x"]);
    assert_eq!(encoding(&mut c, "mix"), "hashtable");

    // Results built by the server follow the same rules.
    q::<i64>(&mut c, &["SADD", "a", "1", "2", "3", "x"]);
    q::<i64>(&mut c, &["SADD", "b", "1", "2", "3", "y"]);
    assert_eq!(q::<i64>(&mut c, &["SINTERSTORE", "i", "a", "b"]), 3);
    assert_eq!(encoding(&mut c, "i"), "intset");
    assert_eq!(q::<i64>(&mut c, &["SUNIONSTORE", "u", "a", "b"]), 5);
    assert_eq!(encoding(&mut c, "u"), "hashtable");
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "a", "moved", "x"]), 1);
    assert_eq!(encoding(&mut c, "moved"), "hashtable");
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "a", "moved2", "1"]), 1);
    assert_eq!(encoding(&mut c, "moved2"), "intset");
    // COPY keeps the encoding.
    assert_eq!(q::<i64>(&mut c, &["COPY", "edge", "edge2"]), 1);
    assert_eq!(encoding(&mut c, "edge2"), "intset");
    assert_eq!(q::<i64>(&mut c, &["COPY", "u", "u2"]), 1);
    assert_eq!(encoding(&mut c, "u2"), "hashtable");
    assert_eq!(q::<i64>(&mut c, &["SCARD", "u2"]), 5);

    // 0 means no intsets at all.
    let _: String = q(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "0"]);
    q::<i64>(&mut c, &["SADD", "z", "1"]);
    assert_eq!(encoding(&mut c, "z"), "hashtable");
}

#[test]
fn sscan_visits_every_member() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let members: Vec<String> = (0..20_000).map(|i| format!("member:{i}")).collect();
    sadd_all(&mut c, "big", &members);
    for count in ["1", "10", "1000"] {
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let (next, batch): (String, Vec<String>) = q(&mut c, &["SSCAN", "big", &cursor, "COUNT", count]);
            seen.extend(batch);
            calls += 1;
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), members.len(), "COUNT {count}");
        if count == "1000" {
            assert!(calls < 100, "COUNT is honoured ({calls} calls)");
        }
    }
    // MATCH filters after the visit; the scan still completes.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, batch): (String, Vec<String>) = q(&mut c, &["SSCAN", "big", &cursor, "MATCH", "member:1?"]);
        seen.extend(batch);
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    let expected: HashSet<String> = (10..20).map(|i| format!("member:{i}")).collect();
    assert_eq!(seen, expected);
    // Members present for the whole scan are returned even while the set grows and shrinks.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut step = 0;
    loop {
        let (next, batch): (String, Vec<String>) = q(&mut c, &["SSCAN", "big", &cursor, "COUNT", "50"]);
        seen.extend(batch);
        step += 1;
        if step == 5 {
            let extra: Vec<String> = (0..30_000).map(|i| format!("extra:{i}")).collect();
            sadd_all(&mut c, "big", &extra);
        }
        if step == 40 {
            for i in 0..15_000 {
                let _: i64 = redis::cmd("SREM").arg("big").arg(format!("extra:{i}")).query(&mut c).unwrap();
            }
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    for m in &members {
        assert!(seen.contains(m), "{m} missed");
    }
    // An intset comes back whole, with cursor 0, whatever COUNT says.
    let ints: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    sadd_all(&mut c, "ints", &ints);
    let (cursor, batch): (String, Vec<String>) = q(&mut c, &["SSCAN", "ints", "0", "COUNT", "1"]);
    assert_eq!(cursor, "0");
    assert_eq!(batch, ints);
}

/// Pearson's chi-square statistic of observed counts against a uniform distribution.
fn chi_square(counts: &HashMap<String, usize>, categories: usize) -> f64 {
    let total: usize = counts.values().sum();
    let expected = total as f64 / categories as f64;
    let seen: f64 = counts.values().map(|&n| (n as f64 - expected).powi(2) / expected).sum();
    // Categories never drawn count fully.
    seen + (categories - counts.len()) as f64 * expected
}

#[test]
fn random_members_are_spread_evenly() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let words: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    let nums: Vec<String> = (0..10).map(|i| (i * 3).to_string()).collect();
    for (key, members) in [("words", &words), ("nums", &nums)] {
        sadd_all(&mut c, key, members);
        // Negative count: independent draws. df = 9; 40 has probability 1e-5.
        let draws: Vec<String> = q(&mut c, &["SRANDMEMBER", key, "-10000"]);
        assert_eq!(draws.len(), 10_000);
        let mut hist = HashMap::new();
        for d in draws {
            assert!(members.contains(&d));
            *hist.entry(d).or_insert(0) += 1;
        }
        assert!(chi_square(&hist, 10) < 40.0, "{key}: {hist:?}");
        // Positive counts: distinct members, every member equally likely.
        for size in [2usize, 8] {
            let mut hist = HashMap::new();
            for _ in 0..(4000 / size) {
                let got: Vec<String> = q(&mut c, &["SRANDMEMBER", key, &size.to_string()]);
                assert_eq!(got.len(), size);
                assert_eq!(got.iter().collect::<HashSet<_>>().len(), size, "distinct");
                for g in got {
                    *hist.entry(g).or_insert(0) += 1;
                }
            }
            assert!(chi_square(&hist, 10) < 40.0, "{key} count {size}: {hist:?}");
        }
        // SPOP: which member goes first is uniform too.
        let mut hist = HashMap::new();
        for _ in 0..2000 {
            let mut p = redis::pipe();
            p.cmd("SPOP").arg(key).cmd("SADD").arg(key).arg(members);
            let (popped, _): (String, i64) = p.query(&mut c).unwrap();
            *hist.entry(popped).or_insert(0) += 1;
        }
        assert!(chi_square(&hist, 10) < 40.0, "SPOP {key}: {hist:?}");
    }
    // SPOP with a count, by both strategies: distinct members that leave the set.
    let all: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    for count in [1usize, 10, 50, 83, 84, 99, 100, 150] {
        let _: i64 = q(&mut c, &["DEL", "p"]);
        sadd_all(&mut c, "p", &all);
        let popped: Vec<String> = q(&mut c, &["SPOP", "p", &count.to_string()]);
        let popped_set: HashSet<String> = popped.iter().cloned().collect();
        assert_eq!(popped.len(), count.min(100));
        assert_eq!(popped_set.len(), popped.len(), "distinct");
        let rest: HashSet<String> = q(&mut c, &["SMEMBERS", "p"]);
        assert!(rest.is_disjoint(&popped_set));
        assert_eq!(rest.len() + popped.len(), 100);
        assert_eq!(q::<i64>(&mut c, &["EXISTS", "p"]), (count < 100) as i64);
    }
}

#[test]
fn set_algebra_on_large_sets_matches_a_model() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let a: Vec<String> = (0..30_000).map(|i| format!("k{i}")).collect();
    let b: Vec<String> = (0..30_000).filter(|i| i % 3 == 0).map(|i| format!("k{i}")).collect();
    let n: Vec<String> = (0..5_000).map(|i| (i * 2).to_string()).collect();
    sadd_all(&mut c, "a", &a);
    sadd_all(&mut c, "b", &b);
    sadd_all(&mut c, "n", &n);
    let (sa, sb): (HashSet<String>, HashSet<String>) = (a.iter().cloned().collect(), b.iter().cloned().collect());
    let inter: HashSet<String> = q(&mut c, &["SINTER", "a", "b"]);
    assert_eq!(inter, &sa & &sb);
    let union: HashSet<String> = q(&mut c, &["SUNION", "a", "b", "n"]);
    assert_eq!(union.len(), 35_000);
    let diff: HashSet<String> = q(&mut c, &["SDIFF", "a", "b"]);
    assert_eq!(diff, &sa - &sb);
    let diff2: HashSet<String> = q(&mut c, &["SDIFF", "b", "a"]);
    assert!(diff2.is_empty());
    assert_eq!(q::<i64>(&mut c, &["SINTERCARD", "2", "a", "b"]), 10_000);
    assert_eq!(q::<i64>(&mut c, &["SINTERCARD", "2", "a", "b", "LIMIT", "123"]), 123);
    assert_eq!(q::<i64>(&mut c, &["SINTERSTORE", "i", "b", "a"]), 10_000);
    assert_eq!(q::<i64>(&mut c, &["SDIFFSTORE", "d", "a", "b", "nokey"]), 20_000);
    assert_eq!(q::<i64>(&mut c, &["SUNIONSTORE", "u", "n", "n"]), 5_000);
    assert_eq!(encoding(&mut c, "u"), "hashtable");
    assert_eq!(q::<i64>(&mut c, &["SCARD", "d"]), 20_000);
    // Big intsets: configured threshold above the size.
    let _: String = q(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "100000"]);
    let evens: Vec<String> = (0..20_000).map(|i| (i * 2).to_string()).collect();
    let threes: Vec<String> = (0..20_000).map(|i| (i * 3).to_string()).collect();
    sadd_all(&mut c, "e", &evens);
    sadd_all(&mut c, "t", &threes);
    assert_eq!(encoding(&mut c, "e"), "intset");
    let six: Vec<String> = q(&mut c, &["SINTER", "e", "t"]);
    let expected: Vec<String> =
        (0..40_000 / 6 + 1).map(|i| (i * 6).to_string()).filter(|v| v.parse::<i64>().unwrap() < 40_000).collect();
    assert_eq!(six, expected, "intset intersections come back sorted");
}

#[test]
fn resp3_shapes() {
    let s = Server::start(&[]);
    let mut c = Raw::new(s.port);
    assert!(matches!(c.call(&["HELLO", "3"]), Resp::Agg(b'%', _)));
    c.call(&["SADD", "s", "3", "1", "2"]);
    let members = Resp::Agg(b'~', vec![bulk("1"), bulk("2"), bulk("3")]);
    assert_eq!(c.call(&["SMEMBERS", "s"]), members);
    assert_eq!(c.call(&["SMEMBERS", "nokey"]), Resp::Agg(b'~', vec![]));
    assert_eq!(c.call(&["SINTER", "s", "s"]), members);
    assert_eq!(c.call(&["SUNION", "s", "nokey"]), members);
    assert_eq!(c.call(&["SDIFF", "s", "nokey"]), members);
    assert_eq!(c.call(&["SRANDMEMBER", "s", "10"]), Resp::Agg(b'*', vec![bulk("1"), bulk("2"), bulk("3")]));
    assert_eq!(c.call(&["SRANDMEMBER", "nokey"]), Resp::Line(b'_', vec![]));
    assert_eq!(c.call(&["SPOP", "nokey"]), Resp::Line(b'_', vec![]));
    assert_eq!(c.call(&["SPOP", "nokey", "3"]), Resp::Agg(b'~', vec![]));
    match c.call(&["SPOP", "s", "2"]) {
        Resp::Agg(b'~', v) => assert_eq!(v.len(), 2),
        other => panic!("SPOP with count: {other:?}"),
    }
    assert_eq!(c.call(&["SMISMEMBER", "s", "x"]), Resp::Agg(b'*', vec![Resp::Line(b':', b"0".to_vec())]));
    assert_eq!(c.call(&["SISMEMBER", "s", "x"]), Resp::Line(b':', b"0".to_vec()));
}

#[test]
fn only_real_changes_invalidate_watch() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<i64>(&mut c, &["SADD", "s", "a", "b"]);
    q::<i64>(&mut c, &["SADD", "t", "x"]);
    // (command, whether it changes the watched key `s`)
    let cases: &[(&[&str], bool)] = &[
        (&["SADD", "s", "a"], false),
        (&["SREM", "s", "zz"], false),
        (&["SMOVE", "s", "t", "zz"], false),
        (&["SMOVE", "t", "s", "zz"], false),
        (&["SADD", "s", "c"], true),
        (&["SREM", "s", "c"], true),
        (&["SMOVE", "t", "s", "x"], true),
        (&["SMOVE", "s", "t", "x"], true),
        (&["SPOP", "s", "0"], false),
        (&["SINTERSTORE", "s", "s", "s"], true),
    ];
    for (cmd, changes) in cases {
        let _: String = q(&mut c, &["WATCH", "s"]);
        let _: () = redis::cmd(cmd[0]).arg(&cmd[1..]).query(&mut c).unwrap();
        let _: String = q(&mut c, &["MULTI"]);
        let _: String = q(&mut c, &["PING"]);
        let res: Option<Vec<String>> = q(&mut c, &["EXEC"]);
        assert_eq!(res.is_none(), *changes, "{cmd:?}");
    }
    // A set with a TTL keeps it when members are added; a STORE replaces it.
    let _: i64 = q(&mut c, &["EXPIRE", "s", "100"]);
    q::<i64>(&mut c, &["SADD", "s", "new"]);
    assert!(q::<i64>(&mut c, &["TTL", "s"]) > 0);
    q::<i64>(&mut c, &["SUNIONSTORE", "s", "s", "t"]);
    assert_eq!(q::<i64>(&mut c, &["TTL", "s"]), -1);
    // Writes count as changes for the save policy.
    let before: String = q(&mut c, &["INFO", "persistence"]);
    let dirty = |info: &str| -> i64 {
        info.lines()
            .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(-1)
    };
    q::<i64>(&mut c, &["SADD", "dirty", "1", "2", "3", "1"]);
    let after: String = q(&mut c, &["INFO", "persistence"]);
    if dirty(&before) >= 0 {
        assert_eq!(dirty(&after) - dirty(&before), 3);
    }
}
