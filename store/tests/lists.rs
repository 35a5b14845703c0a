//! List commands against a real cowstore: large lists, pop orders, moves,
//! WATCH invalidation and RESP3 null shapes (the exact replies of small cases
//! are compared with redis-server by `scripts/lists.txt`).

mod common;
use common::{Raw, Resp, Server, bulk, cmd, err, q};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn push_pop_orders_and_counts() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["RPUSH", "l", "a", "b", "c"]), 3);
    assert_eq!(q::<i64>(&mut c, &["LPUSH", "l", "x", "y"]), 5);
    assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]), ["y", "x", "a", "b", "c"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["LPOP", "l", "2"]), ["y", "x"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["RPOP", "l", "2"]), ["c", "b"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["RPOP", "l", "0"]), Vec::<String>::new());
    assert_eq!(q::<Option<Vec<String>>>(&mut c, &["RPOP", "nokey", "3"]), None);
    assert_eq!(q::<Vec<String>>(&mut c, &["RPOP", "l", "100"]), ["a"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "l"]), 0);
    assert_eq!(q::<i64>(&mut c, &["LPUSHX", "l", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "l"]), 0);
    assert_eq!(err(&mut c, &["LPOP", "l", "-1"]), "ERR value is out of range, must be positive");
    q::<String>(&mut c, &["SET", "s", "x"]);
    assert_eq!(err(&mut c, &["LPUSH", "s", "a"]), WRONGTYPE);
    assert_eq!(err(&mut c, &["LMOVE", "s", "d", "LEFT", "LEFT"]), WRONGTYPE);
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "s"]), "embstr");
    q::<i64>(&mut c, &["RPUSH", "l", "1"]);
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "l"]), "quicklist");
    assert_eq!(q::<String>(&mut c, &["TYPE", "l"]), "list");
}

#[test]
fn big_list_range_index_insert() {
    const N: usize = 100_000;
    let s = Server::start(&[]);
    let mut c = s.client();
    for chunk in (0..N).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::cmd("RPUSH");
        p.arg("big");
        for i in chunk {
            p.arg(format!("e{i}"));
        }
        p.query::<i64>(&mut c).unwrap();
    }
    assert_eq!(q::<usize>(&mut c, &["LLEN", "big"]), N);
    let all: Vec<String> = q(&mut c, &["LRANGE", "big", "0", "-1"]);
    assert_eq!(all.len(), N);
    assert!(all.iter().enumerate().all(|(i, e)| *e == format!("e{i}")));
    assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", "big", "50000", "50002"]), ["e50000", "e50001", "e50002"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", "big", "-2", "-1"]), ["e99998", "e99999"]);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "0"]), "e0");
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "77777"]), "e77777");
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "-1"]), "e99999");
    assert_eq!(q::<Option<String>>(&mut c, &["LINDEX", "big", "100000"]), None);
    // LINSERT in the middle and near both ends.
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "big", "BEFORE", "e50000", "mid"]), N as i64 + 1);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "big", "AFTER", "e99999", "last"]), N as i64 + 2);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "big", "AFTER", "e0", "second"]), N as i64 + 3);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "1"]), "second");
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "50001"]), "mid");
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "50002"]), "e50000");
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "-1"]), "last");
    assert_eq!(q::<i64>(&mut c, &["LPOS", "big", "mid"]), 50001);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "big", "e99990", "RANK", "-1"]), 99992);
    assert_eq!(q::<Option<i64>>(&mut c, &["LPOS", "big", "e99990", "MAXLEN", "1000"]), None);
    assert_eq!(q::<i64>(&mut c, &["LREM", "big", "0", "mid"]), 1);
    q::<String>(&mut c, &["LSET", "big", "-2", "changed"]);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "-2"]), "changed");
    q::<String>(&mut c, &["LTRIM", "big", "1000", "-1001"]);
    assert_eq!(q::<usize>(&mut c, &["LLEN", "big"]), N + 2 - 2000);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "big", "0"]), "e999");
    // Pops at both ends drain it completely; the key then disappears.
    let mut left = N + 2 - 2000;
    while left > 0 {
        let n = left.min(7000);
        let got: Vec<String> =
            q(&mut c, &[if left.is_multiple_of(2) { "LPOP" } else { "RPOP" }, "big", &n.to_string()]);
        assert_eq!(got.len(), n);
        left -= n;
    }
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "big"]), 0);
}

#[test]
fn moves_between_lists() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<i64>(&mut c, &["RPUSH", "a", "1", "2", "3"]);
    assert_eq!(q::<String>(&mut c, &["LMOVE", "a", "b", "RIGHT", "LEFT"]), "3");
    assert_eq!(q::<String>(&mut c, &["RPOPLPUSH", "a", "b"]), "2");
    assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", "b", "0", "-1"]), ["2", "3"]);
    // Rotation of one list onto itself.
    q::<i64>(&mut c, &["RPUSH", "r", "x", "y", "z"]);
    assert_eq!(q::<String>(&mut c, &["RPOPLPUSH", "r", "r"]), "z");
    assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", "r", "0", "-1"]), ["z", "x", "y"]);
    // The last element leaves its key behind as nothing.
    assert_eq!(q::<String>(&mut c, &["LMOVE", "a", "b", "LEFT", "RIGHT"]), "1");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a"]), 0);
    assert_eq!(q::<Vec<String>>(&mut c, &["LRANGE", "b", "0", "-1"]), ["2", "3", "1"]);
    assert_eq!(q::<Option<String>>(&mut c, &["LMOVE", "a", "b", "LEFT", "RIGHT"]), None);
    // A wrong-type destination leaves the source untouched.
    q::<String>(&mut c, &["SET", "s", "x"]);
    assert_eq!(err(&mut c, &["RPOPLPUSH", "b", "s"]), WRONGTYPE);
    assert_eq!(q::<usize>(&mut c, &["LLEN", "b"]), 3);
    assert_eq!(err(&mut c, &["LMOVE", "b", "c", "UP", "LEFT"]), "ERR syntax error");
}

#[test]
fn writes_invalidate_watch_and_count_changes() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let mut other = s.client();
    q::<i64>(&mut c, &["RPUSH", "l", "a", "b"]);
    for (change, watched) in [
        (&["LPUSH", "l", "x"][..], "l"),
        (&["LSET", "l", "0", "y"], "l"),
        (&["LREM", "l", "1", "y"], "l"),
        (&["LINSERT", "l", "BEFORE", "a", "z"], "l"),
        (&["LTRIM", "l", "0", "-1"], "l"),
        (&["RPOP", "l"], "l"),
        (&["LMOVE", "l", "dst", "LEFT", "LEFT"], "dst"),
    ] {
        q::<String>(&mut c, &["WATCH", watched]);
        q::<String>(&mut c, &["MULTI"]);
        q::<String>(&mut c, &["PING"]);
        cmd(&mut other, change);
        assert_eq!(cmd(&mut c, &["EXEC"]), redis::Value::Nil, "{change:?} should invalidate WATCH {watched}");
    }
    // Failed or no-op operations do not.
    for noop in
        [&["LREM", "l", "0", "nothing"][..], &["LINSERT", "l", "BEFORE", "nothing", "x"], &["LPUSHX", "none", "x"]]
    {
        q::<String>(&mut c, &["WATCH", "l", "none"]);
        q::<String>(&mut c, &["MULTI"]);
        q::<String>(&mut c, &["PING"]);
        cmd(&mut other, noop);
        assert_ne!(cmd(&mut c, &["EXEC"]), redis::Value::Nil, "{noop:?} should not invalidate WATCH");
    }
    let dirty = |c: &mut redis::Connection| -> u64 {
        let info: String = q(c, &["INFO", "persistence"]);
        info.lines()
            .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("rdb_changes_since_last_save")
    };
    let before = dirty(&mut c);
    q::<i64>(&mut c, &["RPUSH", "d", "1", "2", "3"]);
    assert_eq!(dirty(&mut c), before + 3);
}

#[test]
fn resp3_null_shapes() {
    let s = Server::start(&[]);
    let mut r = Raw::new(s.port);
    assert!(matches!(r.call(&["HELLO", "3"]), Resp::Agg(b'%', _)));
    let null = Resp::Line(b'_', vec![]);
    assert_eq!(r.call(&["LPOP", "nokey"]), null);
    assert_eq!(r.call(&["RPOP", "nokey", "2"]), null);
    assert_eq!(r.call(&["LINDEX", "nokey", "0"]), null);
    assert_eq!(r.call(&["LPOS", "nokey", "a"]), null);
    assert_eq!(r.call(&["LMOVE", "nokey", "d", "LEFT", "LEFT"]), null);
    assert_eq!(r.call(&["RPUSH", "l", "a", "b"]), Resp::Line(b':', b"2".to_vec()));
    assert_eq!(r.call(&["LPOP", "l", "0"]), Resp::Agg(b'*', vec![]));
    assert_eq!(r.call(&["LPOS", "l", "zz"]), null);
    assert_eq!(r.call(&["LPOS", "l", "zz", "COUNT", "0"]), Resp::Agg(b'*', vec![]));
    assert_eq!(r.call(&["RPOP", "l", "5"]), Resp::Agg(b'*', vec![bulk("b"), bulk("a")]));
}
