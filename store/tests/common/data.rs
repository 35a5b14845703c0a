//! Whole-dataset capture and the mixed dataset used by persistence tests.

use super::q;
use std::collections::BTreeMap;

/// Every key of every database with its type, value and absolute expiry,
/// in a form that compares equal across servers holding the same data.
pub fn capture(con: &mut redis::Connection) -> BTreeMap<(u32, Vec<u8>), String> {
    let mut out = BTreeMap::new();
    for db in 0..16u32 {
        q::<String>(con, &["SELECT", &db.to_string()]);
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        for k in keys {
            let t: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
            let v = match t.as_str() {
                "string" => String::from_utf8_lossy(&redis::cmd("GET").arg(&k).query::<Vec<u8>>(con).unwrap())
                    .escape_debug()
                    .to_string(),
                "list" => {
                    format!("{:?}", redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).query::<Vec<Vec<u8>>>(con).unwrap())
                }
                "hash" => {
                    let mut p: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(&k).query(con).unwrap();
                    p.sort();
                    format!("{p:?}")
                }
                "set" => {
                    let mut m: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&k).query(con).unwrap();
                    m.sort();
                    format!("{m:?}")
                }
                "zset" => format!(
                    "{:?}",
                    redis::cmd("ZRANGE").arg(&k).arg(0).arg(-1).arg("WITHSCORES").query::<Vec<Vec<u8>>>(con).unwrap()
                ),
                other => panic!("unexpected type {other}"),
            };
            let exp: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(con).unwrap();
            out.insert((db, k), format!("{t} {v} exp={exp}"));
        }
    }
    q::<String>(con, &["SELECT", "0"]);
    out
}

/// Asserts two captures are equal, listing only the keys that differ.
pub fn assert_same(got: &BTreeMap<(u32, Vec<u8>), String>, want: &BTreeMap<(u32, Vec<u8>), String>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => diffs.push(format!("missing db{} {:?}", k.0, String::from_utf8_lossy(&k.1))),
            Some(g) if g != v => diffs.push(format!(
                "db{} {:?}: got {} want {}",
                k.0,
                String::from_utf8_lossy(&k.1),
                &g[..g.len().min(200)],
                &v[..v.len().min(200)]
            )),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        diffs.push(format!("extra db{} {:?}", k.0, String::from_utf8_lossy(&k.1)));
    }
    assert!(diffs.is_empty(), "{what}: {} keys differ:\n{}", diffs.len(), diffs.join("\n"));
}

/// Fills a server with every type in small and large encodings, integers,
/// binary and long strings, several databases and expiries.
pub fn load_mixed(con: &mut redis::Connection) {
    let run = |con: &mut redis::Connection, args: &[&str]| {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query::<redis::Value>(con).unwrap();
    };
    run(con, &["SET", "int8", "12"]);
    run(con, &["SET", "int16", "-3000"]);
    run(con, &["SET", "int32", "70000000"]);
    run(con, &["SET", "int64", "9999999999"]);
    run(con, &["SET", "notint", "0123"]);
    run(con, &["SET", "short", "hello"]);
    run(con, &["SET", "empty", ""]);
    let long = "abc".repeat(400);
    run(con, &["SET", "long-compressible", &long]);
    let random: String = (0..300u32).map(|i| char::from(b'!' + ((i * 7919) % 90) as u8)).collect();
    run(con, &["SET", "long-random", &random]);
    redis::cmd("SET").arg("binary").arg(&[0u8, 1, 2, 255, 13, 10][..]).query::<()>(con).unwrap();
    run(con, &["SET", "volatile", "v", "PX", "3600000"]);
    run(con, &["RPUSH", "list-small", "a", "1", "-5", "hello world", "9999999999"]);
    for i in 0..3000 {
        run(con, &["RPUSH", "list-big", &format!("element-{i}-{}", "x".repeat(i % 50))]);
    }
    run(con, &["HSET", "hash-small", "f1", "v1", "f2", "2", "f3", ""]);
    for i in 0..600 {
        run(con, &["HSET", "hash-big", &format!("field:{i}"), &format!("value:{i}")]);
    }
    run(con, &["HSET", "hash-longval", "f", &"y".repeat(100)]);
    run(con, &["SADD", "set-int", "1", "2", "3", "-100", "70000", "5000000000"]);
    run(con, &["SADD", "set-str", "a", "b", "c"]);
    for i in 0..700 {
        run(con, &["SADD", "set-bigint", &i.to_string()]);
    }
    run(con, &["ZADD", "zset-small", "1", "a", "2.5", "b", "-3", "c", "0.1", "d", "inf", "e", "-inf", "f"]);
    for i in 0..300 {
        run(con, &["ZADD", "zset-big", &format!("{}", i as f64 / 3.0), &format!("member:{i}")]);
    }
    run(con, &["ZADD", "zset-longmember", "5", &"m".repeat(100)]);
    run(con, &["EXPIRE", "hash-small", "7200"]);
    run(con, &["SELECT", "3"]);
    run(con, &["SET", "in-db3", "x"]);
    run(con, &["LPUSH", "list-db3", "z"]);
    run(con, &["SELECT", "15"]);
    run(con, &["SET", "in-db15", "y", "EX", "9000"]);
    run(con, &["SELECT", "0"]);
}
