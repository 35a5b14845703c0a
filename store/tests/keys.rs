//! Key commands against a real cowstore: expiry (lazy and active), TTL
//! arithmetic, SCAN completeness, RANDOMKEY and KEYS with expired keys.

mod common;
use common::{Resp, Server, bulk, err, int, q, read_resp, resp_request};
use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends every command in one write and reads every reply.
fn pipeline(port: u16, cmds: &[Vec<&str>]) -> Vec<Resp> {
    let mut w = TcpStream::connect(("127.0.0.1", port)).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    let mut out = Vec::new();
    for c in cmds {
        out.extend(resp_request(&c.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>()));
    }
    w.write_all(&out).unwrap();
    cmds.iter().map(|c| read_resp(&mut r).unwrap_or_else(|e| panic!("{c:?}: {e}"))).collect()
}

fn ok() -> Resp {
    Resp::Line(b'+', b"OK".to_vec())
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET").arg(format!("short:{i}")).arg("v").arg("PX").arg(100 + i % 200).ignore();
    }
    for i in 0..10 {
        p.cmd("SET").arg(format!("keep:{i}")).arg("v").ignore();
    }
    for i in 0..10 {
        p.cmd("SET").arg(format!("later:{i}")).arg("v").arg("EX").arg(1000).ignore();
    }
    p.query::<()>(&mut c).unwrap();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 2020);
    // DBSIZE and INFO do not look keys up, so only the active cycle can remove them.
    let start = Instant::now();
    while q::<i64>(&mut c, &["DBSIZE"]) > 20 {
        assert!(start.elapsed() < Duration::from_millis(1500), "expired keys still counted after 1.5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let info: String = q(&mut c, &["INFO", "stats"]);
    assert!(info.contains("expired_keys:2000\r\n"), "{info}");
    let ks: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(ks.contains("db0:keys=20,expires=10,"), "{ks}");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "keep:3", "later:3", "short:3"]), 2);
    // Expiry in other databases too.
    q::<String>(&mut c, &["SELECT", "7"]);
    for i in 0..100 {
        q::<String>(&mut c, &["SET", &format!("k{i}"), "v", "PX", "50"]);
    }
    let start = Instant::now();
    while q::<i64>(&mut c, &["DBSIZE"]) > 0 {
        assert!(start.elapsed() < Duration::from_millis(1500), "db 7 keys did not expire");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lazy_expiry_on_access() {
    let s = Server::start(&[]);
    // All in one write: the event loop runs these in one pass, so the cron
    // (active expiry) cannot run between DEBUG SLEEP and the lookups.
    let readers: &[&[&str]] = &[
        &["GET", "k"],
        &["EXISTS", "k"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["TYPE", "k"],
        &["STRLEN", "k"],
        &["OBJECT", "ENCODING", "k"],
        &["EXPIRETIME", "k"],
        &["PERSIST", "k"],
        &["EXPIRE", "k", "100"],
        &["RENAME", "k", "k2"],
        &["COPY", "k", "k2"],
        &["MOVE", "k", "1"],
        &["SET", "k", "new", "NX"],
        &["APPEND", "k", "x"],
        &["INCR", "k"],
        &["DEL", "k"],
    ];
    let expected = [
        Resp::NullBulk,
        int(0),
        int(-2),
        int(-2),
        Resp::Line(b'+', b"none".to_vec()),
        int(0),
        Resp::NullBulk,
        int(-2),
        int(0),
        int(0),
        Resp::Line(b'-', b"ERR no such key".to_vec()),
        int(0),
        int(0),
        ok(),
        int(1),
        int(1),
        int(0),
    ];
    for (reader, want) in readers.iter().zip(expected) {
        let mut cmds: Vec<Vec<&str>> =
            vec![vec!["FLUSHALL"], vec!["SET", "k", "12", "PX", "30"], vec!["DEBUG", "SLEEP", "0.1"]];
        cmds.push(vec!["DBSIZE"]);
        cmds.push(reader.to_vec());
        cmds.push(vec!["INFO", "stats"]);
        let r = pipeline(s.port, &cmds);
        assert_eq!(r[3], int(1), "{reader:?}: the key was removed before it was accessed");
        assert_eq!(r[4], want, "{reader:?}");
        let Resp::Bulk(_, info) = &r[5] else { panic!() };
        assert!(String::from_utf8_lossy(info).contains("expired_keys:"), "{reader:?}");
    }
    // KEYS skips expired keys without deleting them; SCAN and RANDOMKEY delete them.
    let r = pipeline(
        s.port,
        &[
            vec!["FLUSHALL"],
            vec!["SET", "gone", "1", "PX", "20"],
            vec!["SET", "live", "1"],
            vec!["DEBUG", "SLEEP", "0.1"],
            vec!["KEYS", "*"],
            vec!["DBSIZE"],
            vec!["SCAN", "0", "COUNT", "100"],
            vec!["DBSIZE"],
        ],
    );
    assert_eq!(r[4], Resp::Agg(b'*', vec![bulk("live")]));
    assert_eq!(r[5], int(2));
    assert_eq!(r[6], Resp::Agg(b'*', vec![bulk("0"), Resp::Agg(b'*', vec![bulk("live")])]));
    assert_eq!(r[7], int(1));
}

#[test]
fn randomkey_skips_expired_keys() {
    let s = Server::start(&[]);
    let mut cmds: Vec<Vec<String>> = vec![vec!["SET".into(), "live".into(), "1".into()]];
    for i in 0..3000 {
        cmds.push(vec!["SET".into(), format!("dead:{i}"), "1".into(), "PX".into(), "1".into()]);
    }
    cmds.push(vec!["DEBUG".into(), "SLEEP".into(), "0.05".into()]);
    cmds.push(vec!["RANDOMKEY".into()]);
    cmds.push(vec!["DBSIZE".into()]);
    let cmds: Vec<Vec<&str>> = cmds.iter().map(|c| c.iter().map(String::as_str).collect()).collect();
    let r = pipeline(s.port, &cmds);
    let n = r.len();
    assert_eq!(r[n - 2], bulk("live"), "RANDOMKEY must find the one live key");
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["RANDOMKEY"]), "live");
    q::<i64>(&mut c, &["DEL", "live"]);
    assert_eq!(q::<Option<String>>(&mut c, &["RANDOMKEY"]), None);
    // With many keys every one turns up eventually.
    for i in 0..20 {
        q::<String>(&mut c, &["SET", &format!("r{i}"), "1"]);
    }
    let mut seen = HashSet::new();
    for _ in 0..2000 {
        seen.insert(q::<String>(&mut c, &["RANDOMKEY"]));
    }
    assert_eq!(seen.len(), 20);
}

#[test]
fn ttl_arithmetic() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "k", "1500"]), 1);
    let pttl: i64 = q(&mut c, &["PTTL", "k"]);
    assert!((1000..=1500).contains(&pttl), "{pttl}");
    // TTL rounds to the nearest second, as Redis does.
    let ttl: i64 = q(&mut c, &["TTL", "k"]);
    assert!(ttl == 2 || ttl == 1, "{ttl}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let at = now_ms / 1000 + 100;
    assert_eq!(q::<i64>(&mut c, &["EXPIREAT", "k", &at.to_string()]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "k"]), at);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRETIME", "k"]), at * 1000);
    let ttl: i64 = q(&mut c, &["TTL", "k"]);
    assert!((98..=101).contains(&ttl), "{ttl}");
    assert_eq!(q::<i64>(&mut c, &["PEXPIREAT", "k", &(now_ms + 60_000).to_string()]), 1);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRETIME", "k"]), now_ms + 60_000);
    // EX 1 really expires after about a second.
    q::<String>(&mut c, &["SET", "short", "v", "EX", "1"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "short"]), 1);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "short"]), 0);
    // A TTL survives RENAME, COPY and MOVE; SET and GETSET drop it.
    q::<String>(&mut c, &["SET", "t", "v", "EX", "500"]);
    q::<String>(&mut c, &["RENAME", "t", "t2"]);
    assert!(q::<i64>(&mut c, &["TTL", "t2"]) > 490);
    assert_eq!(q::<i64>(&mut c, &["COPY", "t2", "t3"]), 1);
    assert!(q::<i64>(&mut c, &["TTL", "t3"]) > 490);
    assert_eq!(q::<i64>(&mut c, &["MOVE", "t3", "4"]), 1);
    q::<String>(&mut c, &["SELECT", "4"]);
    assert!(q::<i64>(&mut c, &["TTL", "t3"]) > 490);
    q::<String>(&mut c, &["SELECT", "0"]);
    q::<String>(&mut c, &["GETSET", "t2", "x"]);
    assert_eq!(q::<i64>(&mut c, &["TTL", "t2"]), -1);
    let info: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(info.contains("db4:keys=1,expires=1"), "{info}");
    assert_eq!(err(&mut c, &["EXPIRE", "t2", "9223372036854775807"]), "ERR invalid expire time in 'expire' command");
}

/// Runs a full SCAN with `opts`, returning every key seen and the number of calls.
fn scan_all(c: &mut redis::Connection, opts: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(opts);
        let (next, batch): (String, Vec<String>) = q(c, &args);
        keys.extend(batch);
        calls += 1;
        cursor = next;
        if cursor == "0" {
            return (keys, calls);
        }
        assert!(calls < 1_000_000, "SCAN does not terminate");
    }
}

#[test]
fn scan_is_complete() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["DEBUG", "POPULATE", "20000"]);
    q::<String>(&mut c, &["SET", "other", "x"]);
    let (keys, calls) = scan_all(&mut c, &[]);
    let set: HashSet<&String> = keys.iter().collect();
    assert_eq!(set.len(), 20001);
    assert!(calls > 1000, "COUNT defaults to 10: {calls} calls");
    let (keys, calls) = scan_all(&mut c, &["COUNT", "1000"]);
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 20001);
    assert!(calls < 100, "{calls}");
    let (keys, _) = scan_all(&mut c, &["MATCH", "key:1999*", "COUNT", "500"]);
    let mut keys: Vec<String> = keys.into_iter().collect::<HashSet<_>>().into_iter().collect();
    keys.sort();
    let mut want: Vec<String> = std::iter::once("key:1999".to_string())
        .chain((0..10).map(|i| format!("key:1999{i}")))
        .filter(|k| k[4..].parse::<u32>().unwrap() < 20000)
        .collect();
    want.sort();
    assert_eq!(keys, want);
    let (keys, _) = scan_all(&mut c, &["TYPE", "string", "COUNT", "1000"]);
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 20001);
    let (keys, _) = scan_all(&mut c, &["TYPE", "zset", "COUNT", "1000"]);
    assert!(keys.is_empty());
    // Keys present for the whole scan are returned even if the table grows meanwhile.
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut step = 0;
    loop {
        let (next, batch): (String, Vec<String>) = q(&mut c, &["SCAN", &cursor, "COUNT", "200"]);
        seen.extend(batch);
        if step == 5 {
            q::<String>(&mut c, &["DEBUG", "POPULATE", "60000", "grown"]);
        }
        step += 1;
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    for i in 0..20000 {
        assert!(seen.contains(&format!("key:{i}")), "key:{i} missed while the table grew");
    }
    // And while it shrinks.
    q::<String>(&mut c, &["FLUSHALL"]);
    q::<String>(&mut c, &["DEBUG", "POPULATE", "50000"]);
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut step = 0;
    loop {
        let (next, batch): (String, Vec<String>) = q(&mut c, &["SCAN", &cursor, "COUNT", "100"]);
        seen.extend(batch);
        if step == 3 {
            let mut p = redis::pipe();
            for i in 1000..50000 {
                p.cmd("DEL").arg(format!("key:{i}")).ignore();
            }
            p.query::<()>(&mut c).unwrap();
            // Give the cron time to shrink the table.
            std::thread::sleep(Duration::from_millis(300));
        }
        step += 1;
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    for i in 0..1000 {
        assert!(seen.contains(&format!("key:{i}")), "key:{i} missed while the table shrank");
    }
}

#[test]
fn keys_patterns_and_large_keyspaces() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["DEBUG", "POPULATE", "5000", "user"]);
    q::<String>(&mut c, &["DEBUG", "POPULATE", "500", "item"]);
    let all: Vec<String> = q(&mut c, &["KEYS", "*"]);
    assert_eq!(all.len(), 5500);
    let items: Vec<String> = q(&mut c, &["KEYS", "item:*"]);
    assert_eq!(items.len(), 500);
    let some: Vec<String> = q(&mut c, &["KEYS", "user:4[0-9]9"]);
    assert_eq!(some.len(), 10);
    let binary = b"bin\x00ary\xff";
    redis::cmd("SET").arg(&binary[..]).arg("v").query::<()>(&mut c).unwrap();
    let found: Vec<Vec<u8>> = redis::cmd("KEYS").arg("bin*").query(&mut c).unwrap();
    assert_eq!(found, vec![binary.to_vec()]);
    assert_eq!(q::<i64>(&mut c, &["DEL", "user:1", "user:2", "nokey", "user:1"]), 2);
    assert_eq!(q::<i64>(&mut c, &["UNLINK", "user:3", "user:4"]), 2);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 5497);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "user:1", "user:5", "user:5"]), 2);
}
