//! Bad and unusual input over raw TCP: truncated frames, malformed headers,
//! huge and negative lengths, binary garbage, big arguments, disconnects,
//! inline commands and deep pipelines. Where Redis's answer is deterministic
//! it is compared byte for byte with redis-server's; in every case the server
//! must stay up and another client must be unaffected.

mod common;
use common::{RedisServer, Resp, Server, read_resp, resp_request};
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Sends `bytes` on a fresh connection; returns what came back and whether
/// the server closed the connection within `wait`.
fn exchange(port: u16, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The server may close before taking everything; what it answered still counts.
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// A connection kept open across a test to check the server still serves it.
struct Bystander {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Bystander {
    fn new(port: u16) -> Bystander {
        let w = TcpStream::connect(("127.0.0.1", port)).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Bystander { r: BufReader::new(w.try_clone().unwrap()), w }
    }

    fn call(&mut self, args: &[&[u8]]) -> Resp {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        self.w.write_all(&resp_request(&args)).unwrap();
        read_resp(&mut self.r).unwrap_or_else(|e| panic!("bystander got no reply to {args:?}: {e}"))
    }

    fn ping(&mut self) {
        assert_eq!(self.call(&[b"PING"]), Resp::Line(b'+', b"PONG".to_vec()), "the other client was affected");
    }
}

/// The RSS of a process in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

const WAIT: Duration = Duration::from_millis(500);

#[test]
fn malformed_requests_match_redis() {
    let mut s = Server::start(&[]);
    let r = RedisServer::start(&[]);
    let mut other = Bystander::new(s.port);
    let cases: &[&[u8]] = &[
        // Wrong type bytes where a header belongs.
        b"*1\r\n:5\r\n",
        b"*1\r\n+PING\r\n",
        b"*2\r\n$4\r\nECHO\r\n*1\r\n",
        b"*1\r\n$4\r\nPING\r\n*1\r\n-x\r\n",
        // Bad multibulk counts.
        b"*x\r\n",
        b"*1 \r\n$4\r\nPING\r\n",
        b"*01\r\n$4\r\nPING\r\n",
        b"*1\n$4\r\nPING\r\n",
        b"*3000000000\r\n",
        b"*-5\r\nPING\r\n",
        // Empty requests are skipped.
        b"*-1\r\nPING\r\n",
        b"*0\r\nPING\r\n",
        b"\r\n\r\n  \r\nPING\r\n",
        // Bad bulk lengths: negative, huge, not numbers.
        b"*1\r\n$-5\r\n",
        b"*2\r\n$4\r\nECHO\r\n$-1\r\n",
        b"*1\r\n$99999999999\r\n",
        b"*1\r\n$2147483648\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$+4\r\nPING\r\n",
        b"*1\r\n$4\nPING\r\n",
        // Bulks with the wrong trailer are taken at their length, like Redis.
        b"*1\r\n$4\r\nPINGxx",
        b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPINGxx\r\n",
        b"*1\r\n$0\r\n\r\n",
        // Inline requests.
        b"$4\r\nPING\r\n",
        b"PING\n",
        b"PING\rx\n",
        b"SET k \"a\r\n",
        b"SET k \"a\"b\r\n",
        b"ECHO 'x\r\n",
        b"SET k 'a\\'b'\r\nGET k\r\n",
        b"ECHO \"\\x41\\n\\t\\\\ \\\"q\\\"\"\r\n",
        b"ECHO \"\\xZZ\"\r\n",
        b"SET \"key with spaces\" \"value with spaces\"\r\nGET \"key with spaces\"\r\n",
        b"GET \"\"\r\n",
        b"  ECHO    spaced   \r\n",
        b"ping\r\nPiNg\r\n",
        // Binary garbage: a NUL before the newline leaves the request unfinished.
        b"\x00\x01\x02\xff\r\n",
        b"ECHO a\x00b\r\n",
        b"\xff\xfe\xfd\r\n",
        b"\x1b[A\x1b[B\r\n",
    ];
    let mut differences = Vec::new();
    for case in cases {
        let mine = exchange(s.port, case, WAIT);
        let redis = exchange(r.port, case, WAIT);
        if mine != redis {
            differences.push(format!(
                "{:?}\n  cowstore:     {:?} closed={}\n  redis-server: {:?} closed={}",
                String::from_utf8_lossy(case),
                String::from_utf8_lossy(&mine.0),
                mine.1,
                String::from_utf8_lossy(&redis.0),
                redis.1
            ));
        }
        assert!(s.alive(), "cowstore died on {:?}", String::from_utf8_lossy(case));
        other.ping();
    }
    assert!(differences.is_empty(), "replies differ:\n{}", differences.join("\n"));
    // Protocol errors close only that connection and are counted.
    let (reply, closed) = exchange(s.port, b"*1\r\n$-5\r\n", WAIT);
    assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    other.ping();
}

#[test]
fn random_garbage_never_hurts_the_server() {
    let mut s = Server::start(&[]);
    let mut other = Bystander::new(s.port);
    let mut rng = cowstore::util::Rng::new(0xc0ffee);
    for round in 0..200 {
        let len = 1 + rng.below(4096) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        // Bias some rounds towards protocol-looking input.
        match round % 4 {
            0 => bytes.splice(0..0, b"*3\r\n$3\r\nSET\r\n".iter().copied()).for_each(drop),
            1 => bytes.iter_mut().filter(|b| **b < 32).for_each(|b| *b = b'\n'),
            2 => bytes.splice(0..0, b"*1\r\n$".iter().copied()).for_each(drop),
            _ => {}
        }
        let _ = exchange(s.port, &bytes, Duration::from_millis(20));
        assert!(s.alive(), "cowstore died on round {round}: {bytes:?}");
    }
    other.ping();
}

#[test]
fn truncated_frames_wait_for_the_rest() {
    let s = Server::start(&[]);
    let mut other = Bystander::new(s.port);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let full = resp_request(&[b"SET".to_vec(), b"k".to_vec(), b"hello world".to_vec()]);
    // Cut in every interesting place: in a header, between header and data, in the data, in the trailer.
    for cut in [1, 3, 4, 8, 13, 16, 20, full.len() - 1] {
        c.write_all(&full[..cut]).unwrap();
        let mut buf = [0u8; 64];
        assert!(c.read(&mut buf).is_err(), "a reply came before the request was complete (cut {cut})");
        other.ping();
        c.write_all(&full[cut..]).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reply = [0u8; 5];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+OK\r\n");
        c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    }
    // One byte at a time, several commands.
    let mut bytes = resp_request(&[b"INCR".to_vec(), b"n".to_vec()]);
    bytes.extend(b"INCR n\r\n");
    bytes.extend(resp_request(&[b"GET".to_vec(), b"k".to_vec()]));
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for b in &bytes {
        c.write_all(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut r = BufReader::new(c);
    assert_eq!(read_resp(&mut r).unwrap(), Resp::Line(b':', b"1".to_vec()));
    assert_eq!(read_resp(&mut r).unwrap(), Resp::Line(b':', b"2".to_vec()));
    assert_eq!(read_resp(&mut r).unwrap(), Resp::Bulk(b'$', b"hello world".to_vec()));
    other.ping();
}

#[test]
fn disconnect_mid_command() {
    let mut s = Server::start(&[]);
    let mut other = Bystander::new(s.port);
    for partial in
        [&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel"[..], b"*3\r\n$3\r\nSET", b"SET k v", b"*1\r\n$10000000\r\nabc"]
    {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.write_all(partial).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        c.shutdown(Shutdown::Both).unwrap();
        drop(c);
        std::thread::sleep(Duration::from_millis(20));
        assert!(s.alive());
        other.ping();
    }
    assert_eq!(other.call(&[b"EXISTS", b"k"]), Resp::Line(b':', b"0".to_vec()), "a cut-off SET must not run");
    // A client that closes without reading its replies.
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let mut req = Vec::new();
    for _ in 0..10000 {
        req.extend(resp_request(&[b"ECHO".to_vec(), vec![b'x'; 1000]]));
    }
    c.write_all(&req).unwrap();
    drop(c);
    let start = Instant::now();
    loop {
        assert!(s.alive());
        other.ping();
        let info = match other.call(&[b"INFO", b"clients"]) {
            Resp::Bulk(_, b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        if info.contains("connected_clients:1\r\n") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the departed client was not freed: {info}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ten_megabyte_argument() {
    let s = Server::start(&[]);
    let mut other = Bystander::new(s.port);
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let mut c = Bystander::new(s.port);
    assert_eq!(c.call(&[b"SET", b"big", &big]), Resp::Line(b'+', b"OK".to_vec()));
    assert_eq!(c.call(&[b"GET", b"big"]), Resp::Bulk(b'$', big.clone()));
    assert_eq!(c.call(&[b"STRLEN", b"big"]), Resp::Line(b':', big.len().to_string().into_bytes()));
    assert_eq!(c.call(&[b"ECHO", &big]), Resp::Bulk(b'$', big.clone()));
    // Sent slowly in pieces, while another client is served.
    let req = resp_request(&[b"SET".to_vec(), b"big2".to_vec(), big.clone()]);
    for chunk in req.chunks(1 << 20) {
        c.w.write_all(chunk).unwrap();
        other.ping();
    }
    assert_eq!(read_resp(&mut c.r).unwrap(), Resp::Line(b'+', b"OK".to_vec()));
    assert_eq!(c.call(&[b"GET", b"big2"]), Resp::Bulk(b'$', big));
    other.ping();
}

#[test]
fn oversized_bulks_are_refused_without_allocating() {
    let mut s = Server::start(&[]);
    let mut other = Bystander::new(s.port);
    assert_eq!(other.call(&[b"CONFIG", b"SET", b"proto-max-bulk-len", b"1mb"]), Resp::Line(b'+', b"OK".to_vec()));
    let before = rss(s.pid());
    // Only the header and a little data: what the server does not read would
    // turn its close into a reset that could swallow the reply.
    let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10485760\r\n".to_vec();
    req.extend(vec![b'x'; 1000]);
    let (reply, closed) = exchange(s.port, &req, Duration::from_secs(2));
    assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    // 1 MB is still fine.
    let ok = vec![b'y'; 1024 * 1024];
    assert_eq!(other.call(&[b"SET", b"k", &ok]), Resp::Line(b'+', b"OK".to_vec()));
    let (reply, closed) = exchange(s.port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\nyyy", Duration::from_secs(2));
    assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    assert!(rss(s.pid()) < before + 8 * 1024 * 1024, "RSS grew from {before} to {}", rss(s.pid()));
    other.call(&[b"CONFIG", b"SET", b"proto-max-bulk-len", b"512mb"]);

    // Within the limit, a client's claim is not allocated before the bytes arrive.
    let before = rss(s.pid());
    let mut liars = Vec::new();
    for _ in 0..8 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n").unwrap();
        c.write_all(&[b'z'; 100_000]).unwrap();
        liars.push(c);
    }
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"*2147483647\r\n$4\r\nPING\r\n").unwrap();
    liars.push(c);
    std::thread::sleep(Duration::from_millis(300));
    other.ping();
    let after = rss(s.pid());
    assert!(after < before + 64 * 1024 * 1024, "claims of 8 x 500 MB grew RSS from {before} to {after}");
    drop(liars);
    std::thread::sleep(Duration::from_millis(100));
    assert!(s.alive());
    other.ping();

    // The query buffer limit drops a client that sends too much without finishing.
    other.call(&[b"CONFIG", b"SET", b"client-query-buffer-limit", b"1mb"]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sent = 0;
    let chunk = vec![b'a'; 64 * 1024];
    c.write_all(b"*2\r\n$4\r\nECHO\r\n$100000000\r\n").unwrap();
    while sent < 8 * 1024 * 1024 {
        if c.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the client over the query buffer limit should have been closed");
    assert!(s.alive());
    other.ping();
}

#[test]
fn unauthenticated_clients_get_small_limits() {
    let mut s = Server::start(&["--requirepass", "pw"]);
    let r = RedisServer::start(&["--requirepass", "pw"]);
    let mut other = Bystander::new(s.port);
    assert_eq!(other.call(&[b"AUTH", b"pw"]), Resp::Line(b'+', b"OK".to_vec()));
    let mut big_count = b"*100\r\n".to_vec();
    for _ in 0..100 {
        big_count.extend(b"$1\r\nx\r\n");
    }
    let mut big_bulk = b"*2\r\n$4\r\nAUTH\r\n$20000\r\n".to_vec();
    big_bulk.extend(vec![b'p'; 20002]);
    for case in [&big_count[..], &big_bulk, b"*1000000\r\n", b"*11\r\n", b"*2\r\n$4\r\nECHO\r\n$16385\r\n"] {
        let mine = exchange(s.port, case, WAIT);
        let redis = exchange(r.port, case, WAIT);
        assert_eq!(mine, redis, "{:?}", String::from_utf8_lossy(&case[..case.len().min(40)]));
        assert!(mine.1, "the connection must be closed");
        assert!(s.alive());
        other.ping();
    }
    // At the limits it is fine.
    let (reply, closed) = exchange(s.port, b"*10\r\n$4\r\nPING\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n", WAIT);
    assert!(reply.starts_with(b"-NOAUTH") || reply.starts_with(b"-ERR wrong number"), "{reply:?}");
    assert!(!closed);
    // Authenticated clients are not limited.
    assert!(matches!(
        other.call(&[b"MSET", b"a", b"1", b"b", b"2", b"c", b"3", b"d", b"4", b"e", b"5", b"f", b"6"]),
        Resp::Line(b'+', _)
    ));
}

#[test]
fn inline_commands() {
    let s = Server::start(&[]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"SET greeting \"hello world\"\r\nGET greeting\r\nSET q 'it\\'s'\r\nGET q\r\nSET esc \"tab\\there\\x21\"\r\nGET esc\r\nEXISTS greeting q esc nokey\r\n").unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut next = || read_resp(&mut r).unwrap();
    assert_eq!(next(), Resp::Line(b'+', b"OK".to_vec()));
    assert_eq!(next(), Resp::Bulk(b'$', b"hello world".to_vec()));
    assert_eq!(next(), Resp::Line(b'+', b"OK".to_vec()));
    assert_eq!(next(), Resp::Bulk(b'$', b"it's".to_vec()));
    assert_eq!(next(), Resp::Line(b'+', b"OK".to_vec()));
    assert_eq!(next(), Resp::Bulk(b'$', b"tab\there!".to_vec()));
    assert_eq!(next(), Resp::Line(b':', b"3".to_vec()));
    // Mixed with multibulk in the same write, and with bare \n line ends (telnet, nc).
    let mut mixed = b"PING\n".to_vec();
    mixed.extend(resp_request(&[b"ECHO".to_vec(), b"multi bulk".to_vec()]));
    mixed.extend(b"ECHO \"inline again\"\n");
    c.write_all(&mixed).unwrap();
    assert_eq!(next(), Resp::Line(b'+', b"PONG".to_vec()));
    assert_eq!(next(), Resp::Bulk(b'$', b"multi bulk".to_vec()));
    assert_eq!(next(), Resp::Bulk(b'$', b"inline again".to_vec()));
    // An inline request longer than 64 KB is a protocol error.
    let (reply, closed) = exchange(s.port, &vec![b'a'; 70 * 1024], Duration::from_secs(2));
    assert_eq!(reply, b"-ERR Protocol error: too big inline request\r\n");
    assert!(closed);
}

#[test]
fn pipelining_ten_thousand_commands_in_one_write() {
    let s = Server::start(&[]);
    let mut other = Bystander::new(s.port);
    let c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = Vec::new();
    for i in 0..10_000 {
        match i % 3 {
            0 => {
                req.extend(resp_request(&[b"SET".to_vec(), format!("k{i}").into_bytes(), format!("v{i}").into_bytes()]))
            }
            1 => req.extend(resp_request(&[b"INCR".to_vec(), b"counter".to_vec()])),
            _ => req.extend(format!("GET k{}\r\n", i - 2).into_bytes()),
        }
    }
    let start = Instant::now();
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&req).unwrap())
    };
    let mut r = BufReader::new(c);
    let mut incr = 0;
    for i in 0..10_000 {
        let reply = read_resp(&mut r).unwrap_or_else(|e| panic!("reply {i}: {e}"));
        let want = match i % 3 {
            0 => Resp::Line(b'+', b"OK".to_vec()),
            1 => {
                incr += 1;
                Resp::Line(b':', incr.to_string().into_bytes())
            }
            _ => Resp::Bulk(b'$', format!("v{}", i - 2).into_bytes()),
        };
        assert_eq!(reply, want, "reply {i} out of order");
    }
    writer.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    other.ping();
    assert_eq!(other.call(&[b"DBSIZE"]), Resp::Line(b':', b"3335".to_vec()));
}
