//! Debian's real Redis tools against cowstore: redis-cli (one-shot commands,
//! `--pipe` mass insertion, RESP3 with `-3`, `--scan`, `-n`, `-a`) compared
//! with the same invocations against redis-server, and redis-benchmark.

mod common;
use common::{RedisServer, Server, q};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs redis-cli on `port` with `args` (and `stdin`); returns stdout and stderr.
fn cli(port: u16, args: &[&str], stdin: &[u8]) -> (String, String) {
    let mut child = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli must be installed (apt-get install redis-tools)");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn redis_cli_one_shot_commands_match_redis() {
    let s = Server::start(&[]);
    let r = RedisServer::start(&[]);
    let invocations: &[&[&str]] = &[
        &["SET", "k", "v"],
        &["GET", "k"],
        &["--no-raw", "GET", "k"],
        &["GET", "nokey"],
        &["--no-raw", "GET", "nokey"],
        &["SET", "spaced", "a value with spaces"],
        &["--no-raw", "GET", "spaced"],
        &["INCR", "n"],
        &["--no-raw", "INCRBY", "n", "41"],
        &["MSET", "a", "1", "b", "2"],
        &["--no-raw", "MGET", "a", "nokey", "b"],
        &["MGET", "a", "nokey", "b"],
        &["DEL", "a", "b", "nokey"],
        &["--no-raw", "EXISTS", "k", "n"],
        &["EXPIRE", "k", "100"],
        &["TTL", "k"],
        &["TYPE", "k"],
        &["--no-raw", "TYPE", "nokey"],
        &["PERSIST", "k"],
        &["--no-raw", "CONFIG", "GET", "maxclients"],
        &["CONFIG", "SET", "timeout", "0"],
        &["--no-raw", "PING"],
        &["PING", "hello"],
        &["ECHO", "with\\nescape"],
        &["--no-raw", "ECHO", "binary\\x00zero"],
        &["GET"],
        &["--no-raw", "GET"],
        &["NOSUCHCOMMAND", "x"],
        &["--no-raw", "INCR", "k"],
        &["-n", "3", "SET", "indb3", "x"],
        &["-n", "3", "GET", "indb3"],
        &["GET", "indb3"],
        &["-n", "3", "DBSIZE"],
        &["--no-raw", "MULTI"],
        &["-r", "3", "INCR", "repeat"],
        &["--no-raw", "-r", "2", "GET", "repeat"],
        &["--no-raw", "SCAN", "0", "MATCH", "spaced", "COUNT", "100"],
        &["--no-raw", "KEYS", "spaced"],
        &["--no-raw", "OBJECT", "ENCODING", "n"],
        &["--no-raw", "COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
        &["--no-raw", "CLIENT", "GETNAME"],
        &["--no-raw", "CLIENT", "SETNAME", "bad name"],
        // RESP3: maps, nulls and integers are shown by type.
        &["-3", "--no-raw", "CONFIG", "GET", "maxclients"],
        &["-3", "--no-raw", "GET", "nokey"],
        &["-3", "--no-raw", "GET", "k"],
        &["-3", "--no-raw", "MGET", "k", "nokey"],
        &["-3", "--no-raw", "INCR", "n"],
        &["-3", "GET", "k"],
        &["-3", "--no-raw", "HELLO", "3", "SETNAME", "bad name"],
        &["-3", "--no-raw", "EXISTS", "nokey"],
        &["-3", "--no-raw", "PING"],
    ];
    let mut differences = Vec::new();
    for args in invocations {
        let mine = cli(s.port, args, b"");
        let redis = cli(r.port, args, b"");
        if mine != redis {
            differences.push(format!("redis-cli {args:?}\n  cowstore:     {mine:?}\n  redis-server: {redis:?}"));
        }
    }
    // Commands from standard input, one per line.
    let script = b"SET piped 1\nINCR piped\nGET piped\nDEL piped\nGET piped\n";
    let (mine, redis) = (cli(s.port, &[], script), cli(r.port, &[], script));
    if mine != redis {
        differences.push(format!("redis-cli < script\n  cowstore:     {mine:?}\n  redis-server: {redis:?}"));
    }
    // -x reads the last argument from standard input.
    let (mine, redis) = (
        cli(s.port, &["-x", "SET", "fromstdin"], b"line one\nline two\n"),
        cli(r.port, &["-x", "SET", "fromstdin"], b"line one\nline two\n"),
    );
    assert_eq!(mine, redis);
    assert_eq!(cli(s.port, &["GET", "fromstdin"], b""), cli(r.port, &["GET", "fromstdin"], b""));
    assert!(differences.is_empty(), "redis-cli output differs:\n{}", differences.join("\n"));
}

#[test]
fn redis_cli_pipe_mass_insertion() {
    let s = Server::start(&[]);
    let mut proto = Vec::new();
    for i in 0..100_000 {
        let (k, v) = (format!("key:{i}"), format!("value:{i}"));
        proto.extend(format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len()).into_bytes());
    }
    for i in 0..1000 {
        proto.extend(format!("*2\r\n$4\r\nINCR\r\n$4\r\nctr{}\r\n", i % 10).into_bytes());
    }
    let (out, err) = cli(s.port, &["--pipe"], &proto);
    assert!(out.contains("errors: 0, replies: 101000"), "stdout: {out}\nstderr: {err}");
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 100_010);
    assert_eq!(q::<String>(&mut c, &["GET", "key:99999"]), "value:99999");
    assert_eq!(q::<i64>(&mut c, &["GET", "ctr7"]), 100);
    // Errors are counted, not fatal.
    let mut bad = b"*2\r\n$3\r\nGET\r\n$3\r\nctr\r\n".to_vec();
    bad.extend(b"*1\r\n$7\r\nNOSUCH1\r\n*2\r\n$4\r\nINCR\r\n$5\r\nkey:1\r\n");
    let (out, err) = cli(s.port, &["--pipe"], &bad);
    assert!(out.contains("errors: 2, replies: 3"), "stdout: {out}\nstderr: {err}");
    // --scan walks the keyspace with SCAN.
    let (out, _) = cli(s.port, &["--scan", "--pattern", "key:9999*"], b"");
    let mut keys: Vec<&str> = out.lines().collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys,
        [
            "key:9999",
            "key:99990",
            "key:99991",
            "key:99992",
            "key:99993",
            "key:99994",
            "key:99995",
            "key:99996",
            "key:99997",
            "key:99998",
            "key:99999"
        ]
    );
    let (out, _) = cli(s.port, &["--scan"], b"");
    assert_eq!(out.lines().collect::<std::collections::HashSet<_>>().len(), 100_010);
    // --bigkeys samples with SCAN, TYPE and the size commands.
    let (out, err) = cli(s.port, &["--bigkeys"], b"");
    assert!(out.contains("Sampled 100010 keys") && out.contains("100010 strings"), "stdout: {out}\nstderr: {err}");
}

#[test]
fn redis_cli_auth_and_resp3() {
    let s = Server::start(&["--requirepass", "pw"]);
    let (out, _) = cli(s.port, &["PING"], b"");
    assert_eq!(out.trim(), "NOAUTH Authentication required.");
    let (out, _) = cli(s.port, &["-a", "pw", "--no-auth-warning", "PING"], b"");
    assert_eq!(out, "PONG\n");
    let (out, _) = cli(s.port, &["-a", "wrong", "--no-auth-warning", "PING"], b"");
    assert!(out.contains("WRONGPASS") || out.contains("NOAUTH"), "{out}");
    let (out, _) =
        cli(s.port, &["--user", "default", "--pass", "pw", "--no-auth-warning", "-3", "--no-raw", "HELLO", "3"], b"");
    assert!(out.contains("\"proto\" => (integer) 3"), "{out}");
    let (out, _) =
        cli(s.port, &["-a", "pw", "--no-auth-warning", "-3", "--no-raw", "CONFIG", "GET", "requirepass"], b"");
    assert_eq!(out, "1# \"requirepass\" => \"pw\"\n");
    let (out, err) = cli(s.port, &["-a", "pw", "--no-auth-warning", "INFO", "server"], b"");
    assert!(out.starts_with("# Server\r\nredis_version:7.0.15\r\n"), "{out:?} {err}");
}

/// Every test the issue names; the collection ones need the list, hash, set
/// and sorted set commands.
const BENCH_TESTS: &str = "ping,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset";

#[test]
fn redis_benchmark_runs_every_command_without_errors() {
    let s = Server::start(&[]);
    let start = Instant::now();
    let out = Command::new("redis-benchmark")
        // redis-benchmark 7.0 exits at the first error reply ("Error from server: ...").
        .args(["-p", &s.port.to_string(), "-q", "-n", "20000", "-t", BENCH_TESTS])
        .stdin(Stdio::null())
        .output()
        .expect("redis-benchmark must be installed (apt-get install redis-tools)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-benchmark failed: {}\n{stdout}\n{stderr}", out.status);
    let lines: Vec<&str> =
        stdout.split(['\r', '\n']).chain(stderr.split(['\r', '\n'])).map(str::trim).filter(|l| !l.is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("rror") || l.contains("ERR") || l.contains("WARN") || l.contains("WRONGTYPE"))
        .collect();
    assert!(errors.is_empty(), "redis-benchmark reported errors:\n{}\n\nfull output:\n{stdout}", errors.join("\n"));
    // One result line per test (LRANGE is four: 100, 300, 500 and 600 elements).
    let tests = ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP", "SADD", "HSET"];
    let more = ["SPOP", "ZADD", "ZPOPMIN", "LRANGE_100", "LRANGE_300", "LRANGE_500", "LRANGE_600", "MSET"];
    for test in tests.iter().chain(&more) {
        let done = |l: &&str| {
            l.strip_prefix(test).is_some_and(|rest| rest.starts_with([':', ' '])) && l.contains("requests per second")
        };
        assert!(lines.iter().any(done), "no result for {test}:\n{stdout}");
    }
    assert!(start.elapsed() < Duration::from_secs(600));
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}
