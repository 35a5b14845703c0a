//! Every write command reaches the AOF. For each command the command table
//! flags `WRITE`, its examples below run against a fixture keyspace with the
//! AOF logging into memory. An example that changes the keyspace must have
//! appended to the AOF, and replaying what it appended onto the same fixture
//! must give the same keyspace (so a relative expiry or a random pick logged
//! as received fails too). A write command without an example fails the test:
//! a new command is covered as soon as it is in the table.
//!
//! It runs in process, on the library: no server, no files.

use cowstore::aof::State;
use cowstore::client::Client;
use cowstore::cmd::{Args, TABLE, dispatch, flags};
use cowstore::config::Config;
use cowstore::server::Server;
use cowstore::value::Value;

/// The keyspace every example starts from (expiries absolute, so two
/// servers built from it at different times hold the same data).
const FIXTURE: &[&str] = &[
    "SELECT 1",
    "SET other 1",
    "SELECT 0",
    "SET s hello",
    "SET n 10",
    "SET f 1.5",
    "SET t tmp",
    "PEXPIREAT t 4102444800000",
    "RPUSH l a b c d",
    "RPUSH l2 x",
    "HSET h f1 v1 f2 2 f3 1.5",
    "SADD set a b c d e f g h i j k l m n o p",
    "SADD set2 c d e f",
    "SADD iset 1 2 3",
    "ZADD z 1 a 2 b 3 c 4 d",
    "ZADD zl 0 a 0 b 0 c",
];

/// Invocations of each write command, run one by one on a fresh fixture.
const EXAMPLES: &[(&str, &[&str])] = &[
    ("set", &["SET s v", "SET s v EX 100", "SET s v PX 100000 GET", "SET t v KEEPTTL", "SET new v EXAT 4102444800"]),
    ("setnx", &["SETNX new v"]),
    ("setex", &["SETEX s 100 v"]),
    ("psetex", &["PSETEX new 100000 v"]),
    ("getset", &["GETSET s v"]),
    ("getdel", &["GETDEL s"]),
    ("getex", &["GETEX s EX 100", "GETEX t PERSIST", "GETEX s PXAT 1", "GETEX s EXAT 4102444800"]),
    ("mset", &["MSET a 1 b 2 s 3"]),
    ("msetnx", &["MSETNX a 1 b 2"]),
    ("incr", &["INCR n", "INCR new"]),
    ("decr", &["DECR n"]),
    ("incrby", &["INCRBY n 5"]),
    ("decrby", &["DECRBY n 5"]),
    ("incrbyfloat", &["INCRBYFLOAT f 0.1", "INCRBYFLOAT new 3"]),
    ("append", &["APPEND s xyz", "APPEND new xyz"]),
    ("setrange", &["SETRANGE s 10 xyz", "SETRANGE new 2 ab"]),
    ("del", &["DEL s l nokey"]),
    ("unlink", &["UNLINK s h"]),
    ("expire", &["EXPIRE s 100", "EXPIRE s -1", "EXPIRE t 50 LT"]),
    ("pexpire", &["PEXPIRE s 100000"]),
    ("expireat", &["EXPIREAT s 4102444800", "EXPIREAT s 1"]),
    ("pexpireat", &["PEXPIREAT s 4102444800000"]),
    ("persist", &["PERSIST t"]),
    ("rename", &["RENAME t t2", "RENAME s l"]),
    ("renamenx", &["RENAMENX t t2"]),
    ("copy", &["COPY t t2", "COPY s l REPLACE", "COPY t t DB 1"]),
    ("move", &["MOVE t 1"]),
    ("flushdb", &["FLUSHDB"]),
    ("flushall", &["FLUSHALL"]),
    ("swapdb", &["SWAPDB 0 1"]),
    ("lpush", &["LPUSH l x y", "LPUSH newl x"]),
    ("rpush", &["RPUSH l x y"]),
    ("lpushx", &["LPUSHX l x"]),
    ("rpushx", &["RPUSHX l x"]),
    ("lpop", &["LPOP l", "LPOP l 10"]),
    ("rpop", &["RPOP l 2"]),
    ("lset", &["LSET l 1 z"]),
    ("lrem", &["LREM l 0 a"]),
    ("ltrim", &["LTRIM l 1 2"]),
    ("linsert", &["LINSERT l BEFORE b z"]),
    ("lmove", &["LMOVE l l2 LEFT RIGHT", "LMOVE l newl RIGHT LEFT", "LMOVE l l LEFT RIGHT"]),
    ("rpoplpush", &["RPOPLPUSH l l2"]),
    ("hset", &["HSET h f1 x f9 y", "HSET newh a 1"]),
    ("hsetnx", &["HSETNX h f9 v"]),
    ("hmset", &["HMSET h f1 x f8 y"]),
    ("hdel", &["HDEL h f1 f2", "HDEL h f1 f2 f3"]),
    ("hincrby", &["HINCRBY h f2 5", "HINCRBY newh x 3"]),
    ("hincrbyfloat", &["HINCRBYFLOAT h f3 0.1"]),
    ("sadd", &["SADD set x y a", "SADD news 1 2"]),
    ("srem", &["SREM set a b"]),
    ("spop", &["SPOP set", "SPOP set 2", "SPOP set 14", "SPOP set 20", "SPOP iset"]),
    ("smove", &["SMOVE set set2 a", "SMOVE set news a"]),
    ("sinterstore", &["SINTERSTORE dst set set2", "SINTERSTORE s set nokey"]),
    ("sunionstore", &["SUNIONSTORE dst set set2"]),
    ("sdiffstore", &["SDIFFSTORE dst set set2"]),
    ("zadd", &["ZADD z 5 e 1.5 a", "ZADD z INCR 2 a", "ZADD newz 1 x", "ZADD z XX CH 9 a"]),
    ("zincrby", &["ZINCRBY z 1.5 b"]),
    ("zrem", &["ZREM z a b"]),
    ("zpopmin", &["ZPOPMIN z", "ZPOPMIN z 10"]),
    ("zpopmax", &["ZPOPMAX z 2"]),
    ("zremrangebyscore", &["ZREMRANGEBYSCORE z 2 3"]),
    ("zremrangebyrank", &["ZREMRANGEBYRANK z 0 1"]),
    ("zremrangebylex", &["ZREMRANGEBYLEX zl [a [b"]),
];

/// A server with the AOF logging into its in-memory buffer (never flushed).
fn server(logging: bool) -> (Server, Client) {
    let mut srv = Server::new(Config::default());
    if logging {
        srv.aof.state = State::On;
        srv.ks.log_expired = true;
    }
    (srv, Client::internal(1))
}

/// Runs one command; returns its reply.
fn run(srv: &mut Server, c: &mut Client, args: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    for a in args {
        ranges.push((buf.len(), buf.len() + a.len()));
        buf.extend_from_slice(a);
    }
    c.reply.buf.clear();
    dispatch(srv, c, &Args::new(&buf, &ranges));
    std::mem::take(&mut c.reply.buf)
}

fn run_line(srv: &mut Server, c: &mut Client, line: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    run(srv, c, &args)
}

/// A fresh server holding the fixture, its AOF buffer empty.
fn fixture(logging: bool) -> (Server, Client) {
    let (mut srv, mut c) = server(logging);
    for line in FIXTURE {
        let reply = run_line(&mut srv, &mut c, line);
        assert_ne!(reply.first(), Some(&b'-'), "fixture `{line}`: {}", String::from_utf8_lossy(&reply));
    }
    srv.aof.buf.clear();
    (srv, c)
}

/// The keyspace as sorted lines: database, key, value (members sorted where
/// order is not part of the value) and expiry.
fn dump(srv: &Server) -> Vec<String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut lines = Vec::new();
    for (i, db) in srv.ks.dbs.iter().enumerate() {
        for node in db.dict.iter() {
            let value = match &node.val {
                Value::List(l) => format!("list {:?}", l.iter().map(text).collect::<Vec<_>>()),
                Value::Set(s) => {
                    let mut m: Vec<String> = s.iter().map(|m| text(&m.to_vec())).collect();
                    m.sort();
                    format!("set {m:?}")
                }
                Value::Hash(h) => {
                    let mut p: Vec<(String, String)> = h.iter().map(|(f, v)| (text(f), text(v))).collect();
                    p.sort();
                    format!("hash {p:?}")
                }
                Value::ZSet(z) => format!("zset {:?}", z.iter().map(|(m, s)| (text(m), s)).collect::<Vec<_>>()),
                v => format!("string {:?}", text(v.as_str(&mut [0; 20]).unwrap_or_default())),
            };
            let ttl = db.expires.get(&node.key).copied();
            lines.push(format!("db{i} {:?} {value} expires {ttl:?}", text(&node.key)));
        }
    }
    lines.sort();
    lines
}

/// Splits an AOF buffer into its commands.
fn commands(mut b: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line(b: &mut &[u8], prefix: u8) -> usize {
        assert_eq!(b[0], prefix, "malformed AOF");
        let end = b.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let n = std::str::from_utf8(&b[1..end]).unwrap().parse().unwrap();
        *b = &b[end + 2..];
        n
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = line(&mut b, b'*');
        let mut args = Vec::new();
        for _ in 0..n {
            let len = line(&mut b, b'$');
            args.push(b[..len].to_vec());
            b = &b[len + 2..];
        }
        out.push(args);
    }
    out
}

#[test]
fn every_write_command_that_changes_the_keyspace_reaches_the_aof() {
    let mut problems = Vec::new();
    let mut writes: Vec<&str> = TABLE.values().filter(|c| c.flags & flags::WRITE != 0).map(|c| c.name).collect();
    writes.sort();
    for (name, _) in EXAMPLES {
        assert!(writes.contains(name), "EXAMPLES lists `{name}`, which is not a write command of the table");
    }
    for name in writes {
        let Some((_, examples)) = EXAMPLES.iter().find(|(n, _)| *n == name) else {
            problems.push(format!(
                "`{name}` is a write command without an example in EXAMPLES: add one so its AOF propagation is checked"
            ));
            continue;
        };
        let mut exercised = false;
        for example in *examples {
            let (mut srv, mut c) = fixture(true);
            let before = dump(&srv);
            let reply = run_line(&mut srv, &mut c, example);
            assert_ne!(reply.first(), Some(&b'-'), "`{example}`: {}", String::from_utf8_lossy(&reply));
            let after = dump(&srv);
            if after == before {
                continue;
            }
            exercised = true;
            let logged = commands(&srv.aof.buf);
            if logged.is_empty() {
                problems.push(format!("`{example}` changed the keyspace but nothing reached the AOF"));
                continue;
            }
            // Replay on a copy of the fixture, a few milliseconds later, so
            // that a relative time logged as received lands elsewhere.
            std::thread::sleep(std::time::Duration::from_millis(3));
            let (mut replica, mut rc) = fixture(false);
            for cmd in &logged {
                let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                run(&mut replica, &mut rc, &args);
            }
            let replayed = dump(&replica);
            if replayed != after {
                let shown: Vec<String> =
                    logged.iter().map(|c| String::from_utf8_lossy(&c.join(&b' ')).into_owned()).collect();
                let only =
                    |x: &[String], y: &[String]| x.iter().filter(|l| !y.contains(l)).cloned().collect::<Vec<_>>();
                problems.push(format!(
                    "`{example}` logged {shown:?}, whose replay gives {:?} instead of {:?}",
                    only(&replayed, &after),
                    only(&after, &replayed)
                ));
            }
        }
        if !exercised {
            problems.push(format!("no example of `{name}` changes the keyspace: give it one that does"));
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
