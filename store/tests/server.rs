//! Server and connection behaviour a script cannot express: authentication,
//! database isolation across connections, INFO, CONFIG round trips, CLIENT
//! LIST, COMMAND INFO against redis-server, SHUTDOWN and startup errors.

mod common;
use common::{Raw, RedisServer, Resp, Server, err, line, q, read_resp, resp_request, temp_dir};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn requirepass_auth_noauth_and_hello_auth() {
    let s = Server::start(&["--requirepass", "s3cret"]);
    let mut c = Raw::new(s.port);
    assert_eq!(c.call(&["PING"]), line(b'-', "NOAUTH Authentication required."));
    assert_eq!(c.call(&["GET", "k"]), line(b'-', "NOAUTH Authentication required."));
    // Unknown commands and wrong arity are reported before authentication, as in Redis.
    assert_eq!(c.text(&["NOSUCH"]), "ERR unknown command 'NOSUCH', with args beginning with: ");
    assert_eq!(c.text(&["GET"]), "ERR wrong number of arguments for 'get' command");
    assert_eq!(c.call(&["AUTH", "wrong"]), line(b'-', "WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(
        c.call(&["AUTH", "nobody", "s3cret"]),
        line(b'-', "WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.call(&["PING"]), line(b'-', "NOAUTH Authentication required."));
    assert_eq!(c.call(&["AUTH", "s3cret"]), line(b'+', "OK"));
    assert_eq!(c.call(&["PING"]), line(b'+', "PONG"));
    assert_eq!(c.call(&["AUTH", "default", "s3cret"]), line(b'+', "OK"));
    // A failed AUTH does not log an authenticated client out.
    assert!(matches!(c.call(&["AUTH", "bad"]), Resp::Line(b'-', _)));
    assert_eq!(c.call(&["SET", "k", "v"]), line(b'+', "OK"));

    let mut h = Raw::new(s.port);
    let noauth_hello = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
    assert_eq!(h.text(&["HELLO", "3"]), noauth_hello);
    assert_eq!(h.text(&["HELLO"]), noauth_hello);
    assert_eq!(
        h.text(&["HELLO", "3", "AUTH", "default", "nope"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(h.call(&["GET", "k"]), line(b'-', "NOAUTH Authentication required."));
    match h.call(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "viahello"]) {
        Resp::Agg(b'%', items) => {
            assert_eq!(items.len(), 14);
            assert_eq!(items[4], Resp::Bulk(b'$', b"proto".to_vec()));
            assert_eq!(items[5], line(b':', "3"));
        }
        other => panic!("HELLO 3 is not a RESP3 map: {other:?}"),
    }
    assert_eq!(h.call(&["GET", "k"]), Resp::Bulk(b'$', b"v".to_vec()));
    assert_eq!(h.call(&["GET", "nokey"]), line(b'_', ""));
    assert_eq!(h.call(&["CLIENT", "GETNAME"]), Resp::Bulk(b'$', b"viahello".to_vec()));

    // QUIT works before AUTH; unauthenticated clients may not send big requests.
    let mut quitter = Raw::new(s.port);
    assert_eq!(quitter.call(&["QUIT"]), line(b'+', "OK"));
    let big: Vec<&str> = std::iter::repeat_n("x", 20).collect();
    let mut greedy = Raw::new(s.port);
    assert_eq!(greedy.text(&big), "ERR Protocol error: unauthenticated multibulk length");

    // Clearing the password lets everyone in, including clients that never authenticated.
    let mut late = Raw::new(s.port);
    assert_eq!(late.call(&["PING"]), line(b'-', "NOAUTH Authentication required."));
    assert_eq!(c.call(&["CONFIG", "SET", "requirepass", ""]), line(b'+', "OK"));
    assert_eq!(late.call(&["PING"]), line(b'+', "PONG"));
    assert_eq!(
        late.text(&["AUTH", "x"]),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    // Setting one again locks out the clients that never authenticated, not the others.
    assert_eq!(c.call(&["CONFIG", "SET", "requirepass", "again"]), line(b'+', "OK"));
    assert_eq!(late.call(&["PING"]), line(b'-', "NOAUTH Authentication required."));
    assert_eq!(c.call(&["PING"]), line(b'+', "PONG"));
    assert_eq!(Raw::new(s.port).call(&["PING"]), line(b'-', "NOAUTH Authentication required."));
}

#[test]
fn select_isolates_databases_per_connection() {
    let s = Server::start(&[]);
    let mut a = s.client();
    let mut b = s.client();
    assert_eq!(q::<String>(&mut a, &["SELECT", "1"]), "OK");
    assert_eq!(q::<String>(&mut a, &["SET", "k", "in1"]), "OK");
    assert_eq!(q::<Option<String>>(&mut b, &["GET", "k"]), None);
    assert_eq!(q::<String>(&mut b, &["SET", "k", "in0"]), "OK");
    assert_eq!(q::<String>(&mut a, &["GET", "k"]), "in1");
    assert_eq!(q::<i64>(&mut a, &["DBSIZE"]), 1);
    for db in 2..16 {
        assert_eq!(q::<String>(&mut b, &["SELECT", &db.to_string()]), "OK");
        assert_eq!(q::<i64>(&mut b, &["DBSIZE"]), 0, "db {db}");
        assert_eq!(q::<i64>(&mut b, &["EXISTS", "k"]), 0, "db {db}");
    }
    assert_eq!(err(&mut b, &["SELECT", "16"]), "ERR DB index is out of range");
    assert_eq!(q::<String>(&mut b, &["SELECT", "0"]), "OK");
    assert_eq!(q::<String>(&mut a, &["FLUSHDB"]), "OK");
    assert_eq!(q::<String>(&mut b, &["GET", "k"]), "in0");
    assert_eq!(q::<Option<String>>(&mut a, &["GET", "k"]), None);
    // SWAPDB swaps what connections see, whichever database they selected.
    q::<String>(&mut a, &["SET", "k", "in1"]);
    assert_eq!(q::<String>(&mut b, &["SWAPDB", "0", "1"]), "OK");
    assert_eq!(q::<String>(&mut b, &["GET", "k"]), "in1");
    assert_eq!(q::<String>(&mut a, &["GET", "k"]), "in0");
    let info: String = q(&mut a, &["INFO", "keyspace"]);
    assert!(info.contains("db0:keys=1,expires=0,avg_ttl=0\r\n"), "{info}");
    assert!(info.contains("db1:keys=1,expires=0,avg_ttl=0\r\n"), "{info}");
    // A new connection starts in db 0; RESET goes back there.
    let mut fresh = s.client();
    assert_eq!(q::<String>(&mut fresh, &["GET", "k"]), "in1");
    let mut r = Raw::new(s.port);
    r.call(&["SELECT", "1"]);
    assert_eq!(r.call(&["RESET"]), line(b'+', "RESET"));
    assert_eq!(r.call(&["GET", "k"]), Resp::Bulk(b'$', b"in1".to_vec()));
    // The number of databases is configurable.
    let few = Server::start(&["--databases", "2"]);
    let mut c = few.client();
    assert_eq!(q::<String>(&mut c, &["SELECT", "1"]), "OK");
    assert_eq!(err(&mut c, &["SELECT", "2"]), "ERR DB index is out of range");
    assert_eq!(err(&mut c, &["SWAPDB", "0", "2"]), "ERR DB index is out of range");
}

/// INFO output as section → ordered field names and values.
fn parse_info(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for l in text.split("\r\n") {
        if let Some(name) = l.strip_prefix("# ") {
            section = name.to_ascii_lowercase();
            out.entry(section.clone()).or_default();
        } else if let Some((k, v)) = l.split_once(':') {
            out.entry(section.clone()).or_default().push((k.to_string(), v.to_string()));
        } else {
            assert!(l.is_empty(), "stray INFO line {l:?}");
        }
    }
    out
}

fn field<'a>(info: &'a BTreeMap<String, Vec<(String, String)>>, section: &str, name: &str) -> &'a str {
    info[section].iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name}"))
}

/// INFO fields cowstore adds on purpose (documented in the README).
const EXTENSIONS: &[&str] = &["anon_huge_pages", "anon_huge_pages_human", "thp_disabled"];

#[test]
fn info_sections_use_redis_field_names() {
    let s = Server::start(&[]);
    let r = RedisServer::start(&[]);
    let mut ours = s.client();
    let mut theirs = r.client();
    for c in [&mut ours, &mut theirs] {
        q::<String>(c, &["SET", "k", "v", "EX", "100"]);
    }
    let sections = ["server", "clients", "memory", "persistence", "stats", "keyspace"];
    let required: &[(&str, &[&str])] = &[
        (
            "server",
            &[
                "redis_version",
                "redis_mode",
                "os",
                "arch_bits",
                "process_id",
                "run_id",
                "tcp_port",
                "uptime_in_seconds",
                "hz",
                "executable",
                "config_file",
            ],
        ),
        ("clients", &["connected_clients", "maxclients", "blocked_clients"]),
        (
            "memory",
            &[
                "used_memory",
                "used_memory_human",
                "used_memory_rss",
                "used_memory_peak",
                "maxmemory",
                "maxmemory_policy",
                "mem_fragmentation_ratio",
                "mem_allocator",
            ],
        ),
        ("persistence", &["loading", "rdb_changes_since_last_save"]),
        (
            "stats",
            &[
                "total_connections_received",
                "total_commands_processed",
                "instantaneous_ops_per_sec",
                "total_net_input_bytes",
                "total_net_output_bytes",
                "rejected_connections",
                "expired_keys",
                "evicted_keys",
                "keyspace_hits",
                "keyspace_misses",
                "total_error_replies",
            ],
        ),
        ("keyspace", &["db0"]),
    ];
    for section in sections {
        let mine = parse_info(&q::<String>(&mut ours, &["INFO", section]));
        let redis = parse_info(&q::<String>(&mut theirs, &["INFO", section]));
        assert_eq!(mine.keys().collect::<Vec<_>>(), vec![section], "INFO {section} prints exactly that section");
        let redis_names: HashSet<&str> = redis[section].iter().map(|(k, _)| k.as_str()).collect();
        for (name, _) in &mine[section] {
            assert!(
                redis_names.contains(name.as_str())
                    || name.starts_with("cowstore_")
                    || EXTENSIONS.contains(&name.as_str()),
                "INFO {section}: field {name} is not one redis-server prints"
            );
        }
        let names: HashSet<&str> = mine[section].iter().map(|(k, _)| k.as_str()).collect();
        for want in required.iter().find(|(s, _)| *s == section).unwrap().1 {
            assert!(names.contains(want), "INFO {section} lacks {want}");
        }
    }
    // The default and `all` show every section above, in Redis's order.
    for args in [&["INFO"][..], &["INFO", "default"], &["INFO", "all"], &["INFO", "everything"]] {
        let text: String = q(&mut ours, args);
        let order: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# ")).collect();
        let want = ["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Keyspace"];
        let mut it = order.iter();
        for w in want.iter().filter(|w| **w != "CPU") {
            assert!(
                it.any(|o| o.eq_ignore_ascii_case(w)),
                "{args:?}: section {w} missing or out of order in {order:?}"
            );
        }
    }
    assert_eq!(q::<String>(&mut ours, &["INFO", "nosuchsection"]), "");
    let two = parse_info(&q::<String>(&mut ours, &["INFO", "server", "KEYSPACE"]));
    assert_eq!(two.keys().collect::<Vec<_>>(), vec!["keyspace", "server"]);

    // Values.
    let info = parse_info(&q::<String>(&mut ours, &["INFO"]));
    assert_eq!(field(&info, "server", "redis_version"), "7.0.15");
    assert_eq!(field(&info, "server", "tcp_port"), s.port.to_string());
    assert_eq!(field(&info, "server", "process_id"), s.pid().to_string());
    assert_eq!(field(&info, "keyspace", "db0"), "keys=1,expires=1,avg_ttl=0");
    assert!(field(&info, "memory", "used_memory").parse::<u64>().unwrap() > 0);
    assert!(field(&info, "memory", "used_memory_rss").parse::<u64>().unwrap() > 0);
    let stat = |c: &mut redis::Connection, name: &str| -> i64 {
        field(&parse_info(&q::<String>(c, &["INFO", "stats"])), "stats", name).parse().unwrap()
    };
    let (hits, misses) = (stat(&mut ours, "keyspace_hits"), stat(&mut ours, "keyspace_misses"));
    q::<Option<String>>(&mut ours, &["GET", "k"]);
    q::<Option<String>>(&mut ours, &["GET", "nokey"]);
    q::<i64>(&mut ours, &["TTL", "nokey"]);
    assert_eq!(stat(&mut ours, "keyspace_hits"), hits + 1);
    assert_eq!(stat(&mut ours, "keyspace_misses"), misses + 2);
    let cmds = stat(&mut ours, "total_commands_processed");
    q::<String>(&mut ours, &["PING"]);
    assert_eq!(stat(&mut ours, "total_commands_processed"), cmds + 2, "PING and INFO count");
    let conns = stat(&mut ours, "total_connections_received");
    let mut other = s.client();
    q::<String>(&mut other, &["PING"]);
    assert_eq!(stat(&mut ours, "total_connections_received"), conns + 1);
    let clients = parse_info(&q::<String>(&mut ours, &["INFO", "clients"]));
    assert_eq!(field(&clients, "clients", "connected_clients"), "2");
    let errors = stat(&mut ours, "total_error_replies");
    err(&mut ours, &["NOSUCHCOMMAND"]);
    assert_eq!(stat(&mut ours, "total_error_replies"), errors + 1);
    q::<String>(&mut ours, &["SET", "e", "1", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(20));
    let expired = stat(&mut ours, "expired_keys");
    assert_eq!(q::<i64>(&mut ours, &["EXISTS", "e"]), 0);
    assert!(stat(&mut ours, "expired_keys") >= expired, "expired_keys");
    let dirty = |c: &mut redis::Connection| -> i64 {
        field(&parse_info(&q::<String>(c, &["INFO", "persistence"])), "persistence", "rdb_changes_since_last_save")
            .parse()
            .unwrap()
    };
    let before = dirty(&mut ours);
    q::<String>(&mut ours, &["MSET", "a", "1", "b", "2"]);
    q::<i64>(&mut ours, &["DEL", "a", "b", "nokey"]);
    assert_eq!(dirty(&mut ours), before + 4);
    // RESETSTAT zeroes the counters.
    assert_eq!(q::<String>(&mut ours, &["CONFIG", "RESETSTAT"]), "OK");
    assert_eq!(stat(&mut ours, "keyspace_hits"), 0);
    assert!(stat(&mut ours, "total_commands_processed") <= 2);
    // RESP3: INFO is a verbatim string.
    let mut r3 = Raw::new(s.port);
    r3.call(&["HELLO", "3"]);
    match r3.call(&["INFO", "server"]) {
        Resp::Bulk(b'=', text) => assert!(text.starts_with(b"txt:# Server\r\n")),
        other => panic!("INFO in RESP3: {other:?}"),
    }
}

/// A case for one mutable option: a value to set, what CONFIG GET then shows,
/// and a value that must be refused (None for free-form strings).
struct Case {
    name: &'static str,
    good: String,
    shown: String,
    bad: Option<&'static str>,
}

fn case(name: &'static str, good: &str, shown: &str, bad: Option<&'static str>) -> Case {
    Case { name, good: good.into(), shown: shown.into(), bad }
}

#[test]
fn config_set_round_trips_every_mutable_option() {
    // Protected options (dir, dbfilename) are refused unless enabled, as in Redis 7.0.
    let plain = Server::start(&[]);
    let mut p = Raw::new(plain.port);
    for name in ["dir", "dbfilename"] {
        assert_eq!(
            p.call(&["CONFIG", "SET", name, "x"]),
            Resp::Line(
                b'-',
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - can't set protected config")
                    .into_bytes()
            )
        );
    }
    let s = Server::start(&["--enable-protected-configs", "yes"]);
    let mut c = Raw::new(s.port);
    let other_dir = temp_dir("config-dir");
    let other = other_dir.display().to_string();
    let cases = vec![
        case("requirepass", "s3cret", "s3cret", None),
        case("hz", "50", "50", Some("abc")),
        case("busy-poll-usec", "0", "0", Some("-1")),
        case("maxclients", "500", "500", Some("0")),
        case("timeout", "30", "30", Some("-1")),
        case("proto-max-bulk-len", "2mb", "2097152", Some("100")),
        case("client-query-buffer-limit", "2mb", "2097152", Some("1000")),
        case("loglevel", "verbose", "verbose", Some("loud")),
        case("dir", &other, &other, Some("/nonexistent/cowstore/dir")),
        case("dbfilename", "other.rdb", "other.rdb", Some("sub/dump.rdb")),
        case("save", "100 10 20 30", "100 10 20 30", Some("100")),
        case("rdbcompression", "no", "no", Some("maybe")),
        case("stop-writes-on-bgsave-error", "no", "no", Some("1")),
        case("appendonly", "no", "no", Some("maybe")),
        case("appendfsync", "always", "always", Some("sometimes")),
        case("auto-aof-rewrite-percentage", "50", "50", Some("-1")),
        case("auto-aof-rewrite-min-size", "1mb", "1048576", Some("lots")),
        case("no-appendfsync-on-rewrite", "yes", "yes", Some("x")),
        case("aof-load-truncated", "no", "no", Some("x")),
        case("aof-use-rdb-preamble", "no", "no", Some("x")),
        case("hash-max-listpack-entries", "64", "64", Some("abc")),
        case("hash-max-listpack-value", "32", "32", Some("abc")),
        case("set-max-intset-entries", "100", "100", Some("-1")),
        case("zset-max-listpack-entries", "64", "64", Some("abc")),
        case("zset-max-listpack-value", "32", "32", Some("abc")),
        case("protected-mode", "no", "no", Some("maybe")),
        case(
            "client-output-buffer-limit",
            "normal 1mb 512kb 10",
            "normal 1048576 524288 10 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
            Some("normal 1 2"),
        ),
        case("maxmemory-clients", "10%", "10%", Some("200%")),
        case("rdb-key-save-delay", "7", "7", Some("x")),
    ];
    for o in cowstore::config::OPTIONS.iter().filter(|o| o.mutable) {
        assert!(cases.iter().any(|c| c.name == o.name), "add a CONFIG SET round-trip case for '{}'", o.name);
    }
    let get = |c: &mut Raw, name: &str| -> String {
        match c.call(&["CONFIG", "GET", name]) {
            Resp::Agg(_, v) if v.len() == 2 => match &v[1] {
                Resp::Bulk(_, b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            },
            other => panic!("CONFIG GET {name}: {other:?}"),
        }
    };
    for t in &cases {
        let before = get(&mut c, t.name);
        assert_eq!(c.call(&["CONFIG", "SET", t.name, &t.good]), line(b'+', "OK"), "CONFIG SET {} {}", t.name, t.good);
        assert_eq!(get(&mut c, t.name), t.shown, "{}", t.name);
        if let Some(bad) = t.bad {
            match c.call(&["CONFIG", "SET", t.name, bad]) {
                Resp::Line(b'-', e) => {
                    let e = String::from_utf8_lossy(&e);
                    let prefix = format!("ERR CONFIG SET failed (possibly related to argument '{}') - ", t.name);
                    assert!(e.starts_with(&prefix), "{e}");
                }
                other => panic!("CONFIG SET {} {bad} was accepted: {other:?}", t.name),
            }
            assert_eq!(get(&mut c, t.name), t.shown, "{} changed by a refused value", t.name);
        }
        if t.name == "requirepass" {
            // Still authenticated: the password was set after this client connected.
            assert_eq!(c.call(&["PING"]), line(b'+', "PONG"));
        }
        assert_eq!(c.call(&["CONFIG", "SET", t.name, &before]), line(b'+', "OK"), "restore {}", t.name);
        assert_eq!(get(&mut c, t.name), before);
    }
    // Several at once: all or nothing.
    assert_eq!(c.call(&["CONFIG", "SET", "timeout", "5", "maxclients", "77"]), line(b'+', "OK"));
    assert_eq!((get(&mut c, "timeout"), get(&mut c, "maxclients")), ("5".into(), "77".into()));
    assert!(matches!(c.call(&["CONFIG", "SET", "timeout", "6", "maxclients", "zero"]), Resp::Line(b'-', _)));
    assert_eq!((get(&mut c, "timeout"), get(&mut c, "maxclients")), ("5".into(), "77".into()));
    // Aliases, clamping and immutable options.
    assert_eq!(c.call(&["CONFIG", "SET", "hash-max-ziplist-entries", "9"]), line(b'+', "OK"));
    assert_eq!(get(&mut c, "hash-max-listpack-entries"), "9");
    assert_eq!(c.call(&["CONFIG", "SET", "hz", "100000"]), line(b'+', "OK"));
    assert_eq!(get(&mut c, "hz"), "500");
    for name in ["databases", "daemonize", "logfile", "pidfile", "rdbchecksum", "enable-debug-command"] {
        assert_eq!(
            c.text(&["CONFIG", "SET", name, "1"]),
            format!("ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config")
        );
    }
    // CONFIG GET * lists every option with its value.
    match c.call(&["CONFIG", "GET", "*"]) {
        Resp::Agg(_, v) => {
            let names: HashSet<Vec<u8>> = v
                .chunks(2)
                .map(|p| match &p[0] {
                    Resp::Bulk(_, b) => b.clone(),
                    other => panic!("{other:?}"),
                })
                .collect();
            for o in cowstore::config::OPTIONS {
                assert!(names.contains(o.name.as_bytes()), "CONFIG GET * lacks {}", o.name);
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn runtime_limits_take_effect() {
    let s = Server::start(&[]);
    let mut c = Raw::new(s.port);
    // maxclients: the connection over the limit is told and closed.
    assert_eq!(c.call(&["CONFIG", "SET", "maxclients", "2"]), line(b'+', "OK"));
    let mut second = Raw::new(s.port);
    assert_eq!(second.call(&["PING"]), line(b'+', "PONG"));
    let third = s.raw(b"PING\r\n", Duration::from_secs(2));
    assert_eq!(third, b"-ERR max number of clients reached\r\n");
    drop(second);
    assert_eq!(c.call(&["CONFIG", "SET", "maxclients", "10000"]), line(b'+', "OK"));
    // timeout: an idle client is closed, a busy one is not.
    assert_eq!(c.call(&["CONFIG", "SET", "timeout", "1"]), line(b'+', "OK"));
    let idle = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(c.call(&["PING"]), line(b'+', "PONG"));
    }
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut &idle, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "idle client should have been closed");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn client_list_and_info_fields() {
    let s = Server::start(&[]);
    let r = RedisServer::start(&[]);
    let names = |line: &str| -> Vec<String> {
        line.trim_end().split(' ').map(|kv| kv.split_once('=').map_or(kv, |(k, _)| k).to_string()).collect()
    };
    let mut theirs = Raw::new(r.port);
    let redis_fields = names(&theirs.text(&["CLIENT", "INFO"]));
    let mut c = Raw::new(s.port);
    let id = match c.call(&["CLIENT", "ID"]) {
        Resp::Line(b':', n) => String::from_utf8(n).unwrap(),
        other => panic!("{other:?}"),
    };
    c.call(&["CLIENT", "SETNAME", "lister"]);
    c.call(&["SELECT", "3"]);
    let info = c.text(&["CLIENT", "INFO"]);
    assert!(info.ends_with('\n') && info.lines().count() == 1, "{info:?}");
    let fields = names(&info);
    assert_eq!(&fields[..redis_fields.len()], &redis_fields[..], "CLIENT INFO fields in Redis 7.0's order");
    let kv: BTreeMap<&str, &str> = info.trim_end().split(' ').filter_map(|kv| kv.split_once('=')).collect();
    assert_eq!(kv["id"], id);
    assert_eq!(kv["name"], "lister");
    assert_eq!(kv["db"], "3");
    assert_eq!(kv["flags"], "N");
    assert_eq!(kv["multi"], "-1");
    assert_eq!(kv["resp"], "2");
    assert!(kv["addr"].starts_with("127.0.0.1:"));
    assert_eq!(kv["laddr"], format!("127.0.0.1:{}", s.port));
    assert!(kv["cmd"].starts_with("client"), "{}", kv["cmd"]);
    for n in ["qbuf", "qbuf-free", "obl", "tot-mem", "age", "idle", "fd"] {
        assert!(kv[n].parse::<i64>().is_ok_and(|v| (0..1 << 40).contains(&v)), "{n}={}", kv[n]);
    }
    // CLIENT LIST: one line per client, in id order, including the caller.
    let mut other = Raw::new(s.port);
    other.call(&["MULTI"]);
    other.call(&["PING"]);
    let list = c.text(&["CLIENT", "LIST"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with(&format!("id={id} ")));
    assert!(lines[1].contains(" flags=x ") && lines[1].contains(" multi=1 "), "{}", lines[1]);
    for l in &lines {
        assert_eq!(&names(l)[..redis_fields.len()], &redis_fields[..]);
    }
    assert_eq!(c.text(&["CLIENT", "LIST", "ID", &id]).lines().count(), 1);
    assert_eq!(c.text(&["CLIENT", "LIST", "ID", "99999"]), "");
    assert_eq!(c.text(&["CLIENT", "LIST", "TYPE", "normal"]).lines().count(), 2);
    assert_eq!(c.text(&["CLIENT", "LIST", "TYPE", "pubsub"]), "");
    // RESP3: verbatim strings.
    let mut r3 = Raw::new(s.port);
    r3.call(&["HELLO", "3"]);
    match r3.call(&["CLIENT", "INFO"]) {
        Resp::Bulk(b'=', text) => assert!(text.starts_with(b"txt:id=")),
        other => panic!("{other:?}"),
    }
    // Ids only grow.
    let next: i64 = match Raw::new(s.port).call(&["CLIENT", "ID"]) {
        Resp::Line(b':', n) => String::from_utf8(n).unwrap().parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(next > id.parse().unwrap());
}

#[test]
fn command_info_agrees_with_redis() {
    let s = Server::start(&[]);
    let r = RedisServer::start(&[]);
    let mut ours = Raw::new(s.port);
    let mut theirs = Raw::new(r.port);
    let names = match ours.call(&["COMMAND", "LIST"]) {
        Resp::Agg(_, v) => v,
        other => panic!("{other:?}"),
    };
    match ours.call(&["COMMAND", "COUNT"]) {
        Resp::Line(b':', n) => assert_eq!(String::from_utf8(n).unwrap(), names.len().to_string()),
        other => panic!("{other:?}"),
    }
    let mut differences = Vec::new();
    for n in names {
        let Resp::Bulk(_, name) = n else { panic!() };
        let name = String::from_utf8(name).unwrap();
        let (Resp::Agg(_, mine), Resp::Agg(_, redis)) =
            (ours.call(&["COMMAND", "INFO", &name]), theirs.call(&["COMMAND", "INFO", &name]))
        else {
            panic!("COMMAND INFO {name}")
        };
        let Resp::Agg(_, mine) = &mine[0] else { panic!("{name}: {mine:?}") };
        assert_eq!(mine.len(), 10, "{name}: COMMAND INFO entries have 10 fields");
        assert_eq!(mine[0], Resp::Bulk(b'$', name.as_bytes().to_vec()));
        // Commands of cowstore's own (not in Redis) have nothing to agree with.
        let Resp::Agg(_, redis) = &redis[0] else { continue };
        // Arity and key positions must match exactly: clients route by them.
        for (i, what) in [(1, "arity"), (3, "first key"), (4, "last key"), (5, "step")] {
            if mine[i] != redis[i] {
                differences.push(format!("{name}: {what} {:?} vs redis {:?}", mine[i], redis[i]));
            }
        }
        // Flags: the ones cowstore reports must be Redis's (it may omit some).
        let flags = |v: &Resp| -> HashSet<Vec<u8>> {
            match v {
                Resp::Agg(_, f) => f
                    .iter()
                    .map(|x| match x {
                        Resp::Line(_, b) | Resp::Bulk(_, b) => b.clone(),
                        other => panic!("{other:?}"),
                    })
                    .collect(),
                other => panic!("{other:?}"),
            }
        };
        let (fm, fr) = (flags(&mine[2]), flags(&redis[2]));
        for f in &fm {
            if !fr.contains(f) {
                differences.push(format!("{name}: flag {} not set by redis", String::from_utf8_lossy(f)));
            }
        }
        for f in ["write", "readonly", "denyoom", "admin", "fast", "no_auth", "loading", "stale", "noscript"] {
            if fr.contains(f.as_bytes()) && !fm.contains(f.as_bytes()) {
                differences.push(format!("{name}: lacks redis flag {f}"));
            }
        }
    }
    assert!(differences.is_empty(), "COMMAND INFO differs from redis-server 7.0:\n{}", differences.join("\n"));
    // Unknown commands answer null; the reply shape of the full list.
    assert_eq!(ours.call(&["COMMAND", "INFO", "nosuch"]), Resp::Agg(b'*', vec![Resp::NullBulk]));
    match ours.call(&["COMMAND"]) {
        Resp::Agg(_, v) => assert!(v.len() > 100),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ours.call(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
        Resp::Agg(b'*', vec![Resp::Bulk(b'$', b"a".to_vec()), Resp::Bulk(b'$', b"b".to_vec())])
    );
    assert_eq!(ours.text(&["COMMAND", "GETKEYS", "PING"]), "ERR The command has no key arguments");
    assert_eq!(ours.text(&["COMMAND", "GETKEYS", "GET"]), "ERR Invalid number of arguments specified for command");
    assert_eq!(ours.text(&["COMMAND", "GETKEYS", "nosuch"]), "ERR Invalid command specified");
}

#[test]
fn debug_populate_sleep_and_permission() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["DEBUG", "POPULATE", "100000"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 100000);
    assert_eq!(q::<String>(&mut c, &["GET", "key:99999"]), "value:99999");
    assert_eq!(q::<String>(&mut c, &["DEBUG", "POPULATE", "10", "big", "1000"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "big:3"]), 1000);
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "big:3"]), "raw");
    // SLEEP blocks the whole server.
    let port = s.port;
    let sleeper = std::thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
        q::<String>(&mut c, &["DEBUG", "SLEEP", "1"])
    });
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert!(start.elapsed() >= Duration::from_millis(250), "PING was answered during DEBUG SLEEP");
    assert_eq!(sleeper.join().unwrap(), "OK");
    // POPULATE invalidates WATCH on the keys it creates.
    let mut w = Raw::new(s.port);
    w.call(&["WATCH", "fresh:0"]);
    q::<String>(&mut c, &["DEBUG", "POPULATE", "1", "fresh"]);
    w.call(&["MULTI"]);
    assert_eq!(w.call(&["EXEC"]), Resp::NullArray);

    let denied = Server::start(&["--enable-debug-command", "no"]);
    let mut d = denied.client();
    assert!(err(&mut d, &["DEBUG", "SLEEP", "0"]).starts_with("ERR DEBUG command not allowed."));
    let local = Server::start(&["--enable-debug-command", "local"]);
    let mut l = local.client();
    assert_eq!(q::<String>(&mut l, &["DEBUG", "SLEEP", "0"]), "OK");
}

#[test]
fn shutdown_exits_zero() {
    for args in [&["SHUTDOWN"][..], &["SHUTDOWN", "NOSAVE"], &["shutdown", "now", "force"]] {
        let mut s = Server::start(&[]);
        let mut c = Raw::new(s.port);
        assert_eq!(c.call(&["SET", "k", "v"]), line(b'+', "OK"));
        assert_eq!(c.text(&["SHUTDOWN", "NOSAVE", "SAVE"]), "ERR syntax error");
        assert_eq!(c.text(&["SHUTDOWN", "ABORT"]), "ERR No shutdown in progress.");
        let req: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        c.w.write_all(&resp_request(&req)).unwrap();
        // Like Redis, the connection closes without a reply.
        assert!(read_resp(&mut c.r).is_err());
        assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0), "{args:?}\n{}", s.log());
    }
    // SIGTERM also shuts down cleanly.
    let mut s = Server::start(&[]);
    Command::new("kill").arg("-TERM").arg(s.pid().to_string()).status().unwrap();
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Runs the binary with `args`; returns (exit code, stderr + stdout).
fn run_cowstore(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cowstore"))
        .args(args)
        .current_dir(temp_dir("startup"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
            return (out.status.code(), text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("cowstore {args:?} did not exit");
}

#[test]
fn startup_errors_name_the_problem() {
    let port = common::free_port().to_string();
    let (code, out) = run_cowstore(&["--port", &port, "--no-such-option", "1"]);
    assert!(code.is_some_and(|c| c != 0), "{code:?}");
    assert!(out.contains("no-such-option"), "{out}");
    let (code, out) = run_cowstore(&["--port", "notaport"]);
    assert!(code.is_some_and(|c| c != 0));
    assert!(out.contains("port"), "{out}");

    let dir = temp_dir("conf");
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, format!("# a comment\nport {port}\n\nbogus-directive yes\n")).unwrap();
    let (code, out) = run_cowstore(&[conf.to_str().unwrap()]);
    assert!(code.is_some_and(|c| c != 0));
    assert!(out.contains("line 4") && out.contains("bogus-directive"), "{out}");
    std::fs::write(&conf, format!("port {port}\nmaxclients lots\n")).unwrap();
    let (code, out) = run_cowstore(&[conf.to_str().unwrap()]);
    assert!(code.is_some_and(|c| c != 0));
    assert!(out.contains("line 2") && out.contains("maxclients"), "{out}");
    std::fs::write(&conf, "requirepass \"unbalanced\n").unwrap();
    let (code, out) = run_cowstore(&[conf.to_str().unwrap()]);
    assert!(code.is_some_and(|c| c != 0));
    assert!(out.contains("line 1"), "{out}");
    let (code, out) = run_cowstore(&[dir.join("missing.conf").to_str().unwrap()]);
    assert!(code.is_some_and(|c| c != 0));
    assert!(out.contains("missing.conf"), "{out}");
    // The port is taken: a clear error, not a hang.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = taken.local_addr().unwrap().port().to_string();
    let (code, out) = run_cowstore(&["--port", &p, "--save", ""]);
    assert!(code.is_some_and(|c| c != 0));
    assert!(out.contains(&p), "{out}");

    // A good file plus an override: the override wins, the rest applies.
    let port = common::free_port();
    std::fs::write(&conf, format!("port 1\ntimeout 77\nsave \"\"\ndir {}\n", dir.display())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cowstore"))
        .arg(&conf)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "cowstore with a config file did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Raw::new(port);
    let pair = |v: Resp| match v {
        Resp::Agg(_, v) => v
            .into_iter()
            .map(|x| match x {
                Resp::Bulk(_, b) => String::from_utf8(b).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(pair(c.call(&["CONFIG", "GET", "timeout"])), ["timeout", "77"]);
    assert_eq!(pair(c.call(&["CONFIG", "GET", "port"])), ["port".to_string(), port.to_string()]);
    let info = c.text(&["INFO", "server"]);
    assert!(info.contains("config_file:") && info.contains("bad.conf"), "{info}");
    let _ = child.kill();
    let _ = child.wait();
}
