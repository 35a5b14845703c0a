//! Transactions with more than one connection: WATCH invalidation by other
//! clients, expiry of watched keys, atomicity of EXEC, RESP3 replies.

mod common;
use common::{Raw, Resp, Server, q, read_resp, resp_request};
use std::io::Write;
use std::time::Duration;

/// WATCH `key` (in the selected db), then let `other` run `change`, then
/// MULTI / PING / EXEC; true when EXEC ran the transaction.
fn watch_then(this: &mut Raw, key: &str, other: &mut Raw, change: &[&[&str]]) -> bool {
    assert_eq!(this.call(&["WATCH", key]), ok());
    for c in change {
        let r = other.call(c);
        assert!(!matches!(r, Resp::Line(b'-', _)), "{c:?}: {r:?}");
    }
    assert_eq!(this.call(&["MULTI"]), ok());
    assert_eq!(this.call(&["PING"]), Resp::Line(b'+', b"QUEUED".to_vec()));
    match this.call(&["EXEC"]) {
        Resp::NullArray => false,
        Resp::Agg(_, v) if v.len() == 1 => true,
        other => panic!("EXEC: {other:?}"),
    }
}

fn ok() -> Resp {
    Resp::Line(b'+', b"OK".to_vec())
}

#[test]
fn watch_is_invalidated_by_other_connections() {
    let s = Server::start(&[]);
    let mut a = Raw::new(s.port);
    let mut b = Raw::new(s.port);
    let setup = |b: &mut Raw| {
        b.call(&["FLUSHALL"]);
        b.call(&["SET", "k", "1"]);
        b.call(&["SET", "src", "x"]);
    };
    // (change made by the other client, whether EXEC must fail)
    let cases: &[(&[&[&str]], bool)] = &[
        (&[&["SET", "k", "2"]], true),
        (&[&["SET", "other", "2"]], false),
        (&[&["GET", "k"]], false),
        (&[&["INCR", "k"]], true),
        (&[&["APPEND", "k", "x"]], true),
        (&[&["SETRANGE", "k", "0", "x"]], true),
        (&[&["DEL", "k"]], true),
        (&[&["UNLINK", "k"]], true),
        (&[&["DEL", "nokey"]], false),
        (&[&["EXPIRE", "k", "100"]], true),
        (&[&["EXPIRE", "k", "100", "XX"]], false),
        (&[&["PERSIST", "k"]], false),
        (&[&["RENAME", "k", "k2"]], true),
        (&[&["RENAME", "src", "k"]], true),
        (&[&["COPY", "src", "k", "REPLACE"]], true),
        (&[&["COPY", "src", "k"]], false),
        (&[&["MOVE", "k", "1"]], true),
        (&[&["SELECT", "1"], &["SET", "k", "x"], &["SELECT", "0"]], false),
        (&[&["FLUSHDB"]], true),
        (&[&["FLUSHALL"]], true),
        (&[&["SELECT", "1"], &["FLUSHDB"], &["SELECT", "0"]], false),
        (&[&["SWAPDB", "0", "1"]], true),
        (&[&["SWAPDB", "1", "2"]], false),
        (&[&["MSET", "a", "1", "k", "2"]], true),
        (&[&["GETDEL", "k"]], true),
        (&[&["GETEX", "k", "EX", "100"]], true),
        (&[&["MULTI"], &["SET", "k", "3"], &["EXEC"]], true),
        (&[&["MULTI"], &["SET", "k", "3"], &["DISCARD"]], false),
    ];
    for (change, fails) in cases {
        setup(&mut b);
        assert_eq!(watch_then(&mut a, "k", &mut b, change), !fails, "{change:?}");
    }
    // A key absent when watched: creating it (even in a swapped-in db) counts.
    setup(&mut b);
    b.call(&["DEL", "k"]);
    assert!(!watch_then(&mut a, "k", &mut b, &[&["SET", "k", "new"]]));
    b.call(&["DEL", "k"]);
    assert!(!watch_then(
        &mut a,
        "k",
        &mut b,
        &[&["SELECT", "1"], &["SET", "k", "x"], &["SWAPDB", "0", "1"], &["SELECT", "0"]]
    ));
    b.call(&["FLUSHALL"]);
    assert!(watch_then(&mut a, "k", &mut b, &[&["FLUSHALL"]]), "flushing a db without the key is not a change");
    // Watching in db 1 while the other client writes db 0.
    a.call(&["SELECT", "1"]);
    assert!(watch_then(&mut a, "k", &mut b, &[&["SET", "k", "db0"]]));
    assert!(!watch_then(&mut a, "k", &mut b, &[&["SELECT", "1"], &["SET", "k", "db1"], &["SELECT", "0"]]));
    a.call(&["SELECT", "0"]);
    // Several watched keys: any change fails, UNWATCH forgets them all.
    a.call(&["WATCH", "x", "y"]);
    a.call(&["WATCH", "z"]);
    b.call(&["SET", "z", "1"]);
    a.call(&["MULTI"]);
    assert_eq!(a.call(&["EXEC"]), Resp::NullArray);
    a.call(&["WATCH", "x", "y", "z"]);
    a.call(&["UNWATCH"]);
    b.call(&["SET", "x", "1"]);
    a.call(&["MULTI"]);
    assert_eq!(a.call(&["EXEC"]), Resp::Agg(b'*', vec![]));
    // A client that watched and went away leaves nothing behind.
    for _ in 0..100 {
        let mut gone = Raw::new(s.port);
        gone.call(&["WATCH", "k"]);
        gone.call(&["MULTI"]);
    }
    b.call(&["SET", "k", "after"]);
    assert_eq!(b.call(&["PING"]), Resp::Line(b'+', b"PONG".to_vec()));
}

#[test]
fn watched_keys_that_expire() {
    let s = Server::start(&[]);
    let mut a = Raw::new(s.port);
    let mut b = Raw::new(s.port);
    // A key alive at WATCH that expires before EXEC fails the transaction (Redis 7.0).
    a.call(&["SET", "e", "1", "PX", "100"]);
    a.call(&["WATCH", "e"]);
    std::thread::sleep(Duration::from_millis(300));
    a.call(&["MULTI"]);
    a.call(&["PING"]);
    assert_eq!(a.call(&["EXEC"]), Resp::NullArray);
    // A TTL far away does not.
    a.call(&["SET", "e", "1", "EX", "100"]);
    assert!(watch_then(&mut a, "e", &mut b, &[&["GET", "e"]]));
}

#[test]
fn exec_runs_without_interleaving() {
    let s = Server::start(&[]);
    let port = s.port;
    let mut a = Raw::new(port);
    a.call(&["SET", "n", "0"]);
    let reader = std::thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
        let mut seen = Vec::new();
        for _ in 0..300 {
            seen.push(q::<i64>(&mut c, &["GET", "n"]));
        }
        seen
    });
    for _ in 0..20 {
        // Queue 500 increments in one write, then EXEC: readers see 0 mod 500.
        let mut req = resp_request(&[b"MULTI".to_vec()]);
        for _ in 0..500 {
            req.extend(resp_request(&[b"INCR".to_vec(), b"n".to_vec()]));
        }
        a.w.write_all(&req).unwrap();
        for _ in 0..501 {
            read_resp(&mut a.r).unwrap();
        }
        match a.call(&["EXEC"]) {
            Resp::Agg(_, v) => assert_eq!(v.len(), 500),
            other => panic!("{other:?}"),
        }
    }
    for v in reader.join().unwrap() {
        assert_eq!(v % 500, 0, "a reader saw a transaction half done: {v}");
    }
    assert_eq!(a.call(&["GET", "n"]), Resp::Bulk(b'$', b"10000".to_vec()));
}

#[test]
fn transactions_in_resp3_and_after_disconnects() {
    let s = Server::start(&[]);
    let mut a = Raw::new(s.port);
    let mut b = Raw::new(s.port);
    a.call(&["HELLO", "3"]);
    a.call(&["WATCH", "k"]);
    b.call(&["SET", "k", "1"]);
    a.call(&["MULTI"]);
    a.call(&["GET", "k"]);
    assert_eq!(a.call(&["EXEC"]), Resp::Line(b'_', vec![]), "a failed EXEC is a RESP3 null");
    a.call(&["MULTI"]);
    a.call(&["GET", "nokey"]);
    a.call(&["INCR", "k"]);
    assert_eq!(a.call(&["EXEC"]), Resp::Agg(b'*', vec![Resp::Line(b'_', vec![]), Resp::Line(b':', b"2".to_vec())]));
    // A transaction cut off by a disconnect never runs.
    let mut gone = Raw::new(s.port);
    gone.call(&["MULTI"]);
    gone.call(&["SET", "never", "1"]);
    drop(gone);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.call(&["EXISTS", "never"]), Resp::Line(b':', b"0".to_vec()));
    // Errors while queueing abort EXEC, errors while running do not.
    a.call(&["MULTI"]);
    a.call(&["SET", "a", "1"]);
    assert!(matches!(a.call(&["NOSUCH"]), Resp::Line(b'-', _)));
    assert_eq!(
        a.call(&["EXEC"]),
        Resp::Line(b'-', b"EXECABORT Transaction discarded because of previous errors.".to_vec())
    );
    assert_eq!(b.call(&["EXISTS", "a"]), Resp::Line(b':', b"0".to_vec()));
    a.call(&["MULTI"]);
    assert_eq!(
        a.call(&["EXEC", "now"]),
        Resp::Line(
            b'-',
            b"EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command".to_vec()
        )
    );
    assert_eq!(a.call(&["EXEC"]), Resp::Line(b'-', b"ERR EXEC without MULTI".to_vec()));
    // SHUTDOWN inside MULTI is refused and the server stays up.
    a.call(&["MULTI"]);
    assert_eq!(a.call(&["SHUTDOWN"]), Resp::Line(b'-', b"ERR Command not allowed inside a transaction".to_vec()));
    assert!(matches!(a.call(&["EXEC"]), Resp::Line(b'-', _)));
    assert_eq!(b.call(&["PING"]), Resp::Line(b'+', b"PONG".to_vec()));
}
