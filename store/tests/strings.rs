//! String commands against a real cowstore, through the `redis` crate.

mod common;
use common::{Server, err, q};

#[test]
fn set_options_and_get_variants() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v"]), "OK");
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "k", "w", "NX"]), None);
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "nope", "w", "XX"]), None);
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "k", "w", "GET"]), Some("v".into()));
    assert_eq!(q::<String>(&mut c, &["SET", "k", "x", "EX", "100"]), "OK");
    let ttl: i64 = q(&mut c, &["TTL", "k"]);
    assert!((99..=100).contains(&ttl));
    assert_eq!(q::<String>(&mut c, &["SET", "k", "y", "KEEPTTL"]), "OK");
    assert!(q::<i64>(&mut c, &["PTTL", "k"]) > 90_000);
    assert_eq!(q::<String>(&mut c, &["SET", "k", "z"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    assert_eq!(err(&mut c, &["SET", "k", "v", "EX", "0"]), "ERR invalid expire time in 'set' command");
    assert_eq!(err(&mut c, &["SET", "k", "v", "EX", "x"]), "ERR value is not an integer or out of range");
    assert_eq!(err(&mut c, &["SET", "k", "v", "NX", "XX"]), "ERR syntax error");
    assert_eq!(err(&mut c, &["SET", "k", "v", "EX", "1", "PX", "1"]), "ERR syntax error");
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v", "PXAT", "99999999999999"]), "OK");
    // EXPIRETIME rounds to the nearest second, as redis-server 7.0 does.
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "k"]), 100000000000);
    assert_eq!(q::<Option<String>>(&mut c, &["GETDEL", "k"]), Some("v".into()));
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "n", "1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "n", "2"]), 0);
    assert_eq!(q::<String>(&mut c, &["GETSET", "n", "3"]), "1");
    assert_eq!(q::<String>(&mut c, &["SETEX", "e", "10", "v"]), "OK");
    assert_eq!(q::<String>(&mut c, &["PSETEX", "e2", "10000", "v"]), "OK");
    assert_eq!(err(&mut c, &["SETEX", "e", "-1", "v"]), "ERR invalid expire time in 'setex' command");
    assert_eq!(q::<String>(&mut c, &["GETEX", "e", "PERSIST"]), "v");
    assert_eq!(q::<i64>(&mut c, &["TTL", "e"]), -1);
    assert_eq!(q::<String>(&mut c, &["GETEX", "e", "EX", "50"]), "v");
    assert_eq!(q::<i64>(&mut c, &["TTL", "e"]), 50);
    assert_eq!(q::<String>(&mut c, &["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["MGET", "a", "zz", "b"]),
        vec![Some("1".into()), None, Some("2".into())]
    );
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "a", "1", "c", "3"]), 0);
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "c", "3", "d", "4"]), 1);
    assert_eq!(err(&mut c, &["MSET", "a", "1", "b"]), "ERR wrong number of arguments for 'mset' command");
}

#[test]
fn counters_and_ranges() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 1);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "41"]), 42);
    assert_eq!(q::<i64>(&mut c, &["DECR", "n"]), 41);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "n", "40"]), 1);
    q::<String>(&mut c, &["SET", "big", "9223372036854775807"]);
    assert_eq!(err(&mut c, &["INCR", "big"]), "ERR increment or decrement would overflow");
    assert_eq!(err(&mut c, &["DECRBY", "n", "-9223372036854775808"]), "ERR decrement would overflow");
    q::<String>(&mut c, &["SET", "s", "abc"]);
    assert_eq!(err(&mut c, &["INCR", "s"]), "ERR value is not an integer or out of range");
    q::<String>(&mut c, &["SET", "f", "10.5"]);
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "f", "0.1"]), "10.6");
    q::<String>(&mut c, &["SET", "g", "0.1"]);
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "g", "0.2"]), "0.3");
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "h", "5e3"]), "5000");
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "s", "1"]), "ERR value is not a valid float");
    assert_eq!(err(&mut c, &["INCRBYFLOAT", "f", "inf"]), "ERR increment would produce NaN or Infinity");
    assert_eq!(q::<i64>(&mut c, &["APPEND", "a", "Hello"]), 5);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "a", " World"]), 11);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "a"]), 11);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "missing"]), 0);
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "a", "0", "4"]), "Hello");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "a", "-5", "-1"]), "World");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "a", "5", "3"]), "");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "a", "0", "100"]), "Hello World");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "a", "6", "Redis"]), 11);
    assert_eq!(q::<String>(&mut c, &["GET", "a"]), "Hello Redis");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "pad", "5", "x"]), 6);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "pad"]), b"\0\0\0\0\0x");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "none", "3", ""]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "none"]), 0);
    assert_eq!(err(&mut c, &["SETRANGE", "a", "-1", "x"]), "ERR offset is out of range");
    assert_eq!(
        err(&mut c, &["SETRANGE", "a", "536870912", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    q::<i64>(&mut c, &["RPUSH", "l", "x"]);
    for cmd in
        [&["GET", "l"][..], &["INCR", "l"], &["APPEND", "l", "x"], &["STRLEN", "l"], &["GETRANGE", "l", "0", "1"]]
    {
        assert_eq!(err(&mut c, cmd), "WRONGTYPE Operation against a key holding the wrong kind of value", "{cmd:?}");
    }
}

#[test]
fn encodings_follow_redis() {
    let s = Server::start(&[]);
    let mut c = s.client();
    let long = "x".repeat(45);
    for (v, enc) in [("12345", "int"), ("hello", "embstr"), (long.as_str(), "raw")] {
        q::<String>(&mut c, &["SET", "k", v]);
        assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "k"]), enc);
        assert_eq!(q::<String>(&mut c, &["GET", "k"]), v);
    }
}
