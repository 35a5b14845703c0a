//! Differential tests: every script in `tests/scripts/*.txt` is run against
//! cowstore and against Debian's redis-server 7.0, and the replies must be
//! identical byte for byte.
//!
//! Script lines are commands in inline syntax (see `common::split_line`).
//! Prefixes change how a reply is compared:
//! - `!unordered <cmd>`: the reply is an array compared as a multiset
//!   (SMEMBERS, HGETALL of a large hash, ...), nested one level for pairs
//!   when the command is HGETALL-like (`!pairs`);
//! - `!ignore <cmd>`: the command runs on both but replies are not compared
//!   (random results);
//! - `!len <cmd>`: only the array length is compared;
//! - `!scan <cmd>`: a SCAN-family reply reduced to what does not depend on
//!   the hash seed: whether the cursor is 0, and the elements as a multiset
//!   (HSCAN and ZSCAN pairs kept together);
//! - `# ...` is a comment; `!flush` runs FLUSHALL on both.

mod common;
use common::{Raw, RedisServer, Resp, Server, split_line};

/// Renders a reply readably for failure messages.
fn show(r: &Resp) -> String {
    match r {
        Resp::Line(k, b) => format!("{}{}", *k as char, String::from_utf8_lossy(b)),
        Resp::Bulk(_, b) => format!("{:?}", String::from_utf8_lossy(b)),
        Resp::NullBulk => "(nil)".into(),
        Resp::NullArray => "(nil array)".into(),
        Resp::Agg(k, v) => format!("{}[{}]", *k as char, v.iter().map(show).collect::<Vec<_>>().join(", ")),
    }
}

fn sorted_items(r: &Resp, pairs: bool) -> Resp {
    match r {
        Resp::Agg(k, items) => {
            let mut v: Vec<Resp> =
                if pairs { items.chunks(2).map(|c| Resp::Agg(b'*', c.to_vec())).collect() } else { items.clone() };
            v.sort();
            Resp::Agg(*k, v)
        }
        other => other.clone(),
    }
}

/// See `!scan` in the module header.
fn scan_outcome(r: &Resp, pairs: bool) -> Resp {
    match r {
        Resp::Agg(k, v) if v.len() == 2 => {
            let done = v[0] == Resp::Bulk(b'$', b"0".to_vec());
            let walk = if done { "done" } else { "more" };
            Resp::Agg(*k, vec![Resp::Line(b'+', walk.into()), sorted_items(&v[1], pairs)])
        }
        other => other.clone(),
    }
}

#[test]
fn scripts_match_redis_server() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let ours = Server::start(&[]);
    let theirs = RedisServer::start(&[]);
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in files.iter().filter(|p| p.extension().is_some_and(|e| e == "txt")) {
        let (mut a, mut b) = (Raw::new(ours.port), Raw::new(theirs.port));
        a.call_bytes(&[b"FLUSHALL".to_vec()]);
        b.call_bytes(&[b"FLUSHALL".to_vec()]);
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (mode, cmd) = match line.split_once(' ') {
                Some((m, rest)) if m.starts_with('!') => (m, rest),
                _ if line == "!flush" => ("!flush", "FLUSHALL"),
                _ => ("", line),
            };
            let args = split_line(cmd);
            let (ra, rb) = (a.call_bytes(&args), b.call_bytes(&args));
            let same = match mode {
                "!ignore" => true,
                "!unordered" => sorted_items(&ra, false) == sorted_items(&rb, false),
                "!pairs" => sorted_items(&ra, true) == sorted_items(&rb, true),
                "!scan" => {
                    let pairs = matches!(cmd.as_bytes().first(), Some(b'h' | b'H' | b'z' | b'Z'));
                    scan_outcome(&ra, pairs) == scan_outcome(&rb, pairs)
                }
                "!len" => match (&ra, &rb) {
                    (Resp::Agg(_, x), Resp::Agg(_, y)) => x.len() == y.len(),
                    _ => ra == rb,
                },
                _ => ra == rb,
            };
            checked += 1;
            if !same {
                failures.push(format!(
                    "{}:{}: {line}\n  cowstore:     {}\n  redis-server: {}",
                    f.file_name().unwrap().to_string_lossy(),
                    n + 1,
                    show(&ra),
                    show(&rb)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} replies differ:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 0);
}
