//! cowstore under hostile conditions (issue 17): bad manifests and AOFs,
//! orphaned fork children, descriptor exhaustion, clients that never read,
//! and big or slow inputs. Each test reproduces one case.

mod common;
use common::{Server, q, start_expect_exit};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn aof_dir(dir: &Path) -> PathBuf {
    dir.join("appendonlydir")
}

/// Every file of the AOF directory with its bytes.
fn snapshot_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(aof_dir(dir))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

/// A directory holding an AOF of `n` keys (k0..), written with fsync always.
fn aof_with_keys(n: usize) -> PathBuf {
    let s = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = s.client();
    for i in 0..n {
        q::<String>(&mut c, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    s.dir.clone()
}

fn incr_file(dir: &Path) -> PathBuf {
    aof_dir(dir).join("appendonly.aof.1.incr.aof")
}

fn resp(args: &[&str]) -> Vec<u8> {
    common::resp_request(&args.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>())
}

// Point 2: an empty manifest is refused and no AOF file is touched.
#[test]
fn empty_manifest_is_refused_and_files_kept() {
    let dir = aof_with_keys(50);
    std::fs::write(aof_dir(&dir).join("appendonly.aof.manifest"), b"").unwrap();
    let before = snapshot_files(&dir);
    assert!(std::fs::metadata(incr_file(&dir)).unwrap().len() > 1000);
    let (code, log) = start_expect_exit(&dir, &["--appendonly", "yes"]).expect("must refuse to start");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("Found an empty AOF manifest"), "{log}");
    assert_eq!(snapshot_files(&dir), before, "no AOF file may change");
    // A manifest of comments only is just as empty.
    std::fs::write(aof_dir(&dir).join("appendonly.aof.manifest"), b"# nothing\n").unwrap();
    let (code, log) = start_expect_exit(&dir, &["--appendonly", "yes"]).expect("must refuse to start");
    assert_eq!(code, Some(1), "{log}");
    // No manifest at all, but AOF files in the directory: they are not overwritten.
    std::fs::remove_file(aof_dir(&dir).join("appendonly.aof.manifest")).unwrap();
    let before = snapshot_files(&dir);
    let (code, log) = start_expect_exit(&dir, &["--appendonly", "yes"]).expect("must refuse to start");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("refusing to overwrite"), "{log}");
    assert_eq!(snapshot_files(&dir), before);
    // Turning the AOF on at runtime over such files refuses too.
    std::fs::write(aof_dir(&dir).join("appendonly.aof.manifest"), b"").unwrap();
    let before = snapshot_files(&dir);
    let s = Server::start_in(dir.clone(), &["--appendonly", "no"]);
    let e = redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query::<()>(&mut s.client()).unwrap_err();
    assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    drop(s);
    assert_eq!(snapshot_files(&dir), before);
}

// Point 10: a valid manifest in another spelling is read and left alone.
#[test]
fn valid_manifest_is_not_rewritten() {
    let dir = aof_with_keys(20);
    let m = aof_dir(&dir).join("appendonly.aof.manifest");
    let text = std::fs::read_to_string(&m).unwrap();
    let odd: String = text
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            format!("file  \"{}\"  seq {} type {}\r\n", w[1], w[3], w[5])
        })
        .collect();
    std::fs::write(&m, &odd).unwrap();
    let s = Server::start_in(dir.clone(), &["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 20);
    q::<String>(&mut c, &["SET", "more", "1"]);
    drop(s);
    assert_eq!(std::fs::read_to_string(&m).unwrap(), odd);
}

/// Appends `extra` to the incr file and checks that startup refuses with the
/// file and `at` named, leaving every file as it was.
fn refused_at(dir: &Path, extra: &[u8], want: &str) {
    let incr = incr_file(dir);
    let mut bytes = std::fs::read(&incr).unwrap();
    let at = bytes.len();
    bytes.extend_from_slice(extra);
    std::fs::write(&incr, &bytes).unwrap();
    let before = snapshot_files(dir);
    let (code, log) = start_expect_exit(dir, &["--appendonly", "yes"]).expect("must refuse to start");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(want) && log.contains(&format!("byte offset {at}")) && log.contains("incr.aof"), "{log}");
    assert_eq!(snapshot_files(dir), before, "no AOF file may change");
    bytes.truncate(at);
    std::fs::write(&incr, &bytes).unwrap();
}

// Point 4: commands that administer the server are refused while loading.
#[test]
fn admin_commands_in_the_aof_are_refused() {
    let dir = aof_with_keys(10);
    for cmd in [
        &["BGREWRITEAOF"][..],
        &["SHUTDOWN", "NOSAVE"],
        &["CONFIG", "SET", "appendonly", "no"],
        &["DEBUG", "SLEEP", "0"],
        &["SAVE"],
    ] {
        let mut extra = resp(cmd);
        extra.extend_from_slice(&resp(&["SET", "after", "1"]));
        refused_at(&dir, &extra, "is not a command the AOF writer logs");
    }
    // The data commands, SELECT and MULTI/EXEC still load.
    let incr = incr_file(&dir);
    let mut bytes = std::fs::read(&incr).unwrap();
    for c in [&["SELECT", "3"][..], &["MULTI"], &["SET", "tx", "1"], &["EXEC"], &["SELECT", "0"], &["DEL", "k0"]] {
        bytes.extend_from_slice(&resp(c));
    }
    std::fs::write(&incr, &bytes).unwrap();
    let s = Server::start_in(dir, &["--appendonly", "yes"]);
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 9);
    q::<String>(&mut c, &["SELECT", "3"]);
    assert_eq!(q::<String>(&mut c, &["GET", "tx"]), "1");
}

// Point 9: trailing bytes that are not a command are refused, not cut.
#[test]
fn trailing_garbage_in_the_last_aof_is_refused() {
    let dir = aof_with_keys(10);
    refused_at(&dir, b"garbage", "Bad file format");
    refused_at(&dir, b"\0\0\0\0", "Bad file format");
    refused_at(&dir, b"\n", "Bad file format");
    // A command cut short is still the one repairable tail.
    let incr = incr_file(&dir);
    let whole = std::fs::read(&incr).unwrap();
    let mut cut = whole.clone();
    cut.extend_from_slice(&resp(&["SET", "lost", "value"])[..20]);
    std::fs::write(&incr, &cut).unwrap();
    let s = Server::start_in(dir, &["--appendonly", "yes"]);
    assert_eq!(q::<i64>(&mut s.client(), &["DBSIZE"]), 10);
    assert_eq!(std::fs::read(&incr).unwrap(), whole);
}

/// The pid in the log line `marker<pid>`, waiting for it to appear.
fn pid_from_log(s: &Server, marker: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(rest) = s.log().split(marker).nth(1) {
            return rest.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no '{marker}' in the log:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True once `pid` no longer runs (gone, or a zombie nobody reaped yet).
fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(st) if st.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

// Point 3: a fork child whose parent was killed stops and never renames.
#[test]
fn orphaned_fork_children_never_publish() {
    // BGSAVE: 400 keys at 10 ms each keep the child busy for 4 s.
    let s = Server::start(&["--rdb-key-save-delay", "10000"]);
    let dir = s.dir.clone();
    let mut c = s.client();
    for i in 0..400 {
        q::<String>(&mut c, &["SET", &format!("old:{i}"), "v"]);
    }
    q::<String>(&mut c, &["BGSAVE"]);
    let child = pid_from_log(&s, "Background saving started by pid ");
    drop(s); // SIGKILL
    assert!(gone_within(child, Duration::from_secs(2)), "the BGSAVE child {child} outlived its parent");
    // A new instance saves newer data; no stale snapshot may replace it later.
    let s2 = Server::start_in(dir.clone(), &[]);
    let mut c2 = s2.client();
    q::<String>(&mut c2, &["SET", "new", "1"]);
    q::<String>(&mut c2, &["SAVE"]);
    drop(s2);
    let s3 = Server::start_in(dir.clone(), &[]);
    let mut c3 = s3.client();
    assert_eq!(q::<i64>(&mut c3, &["DBSIZE"]), 1);
    assert_eq!(q::<String>(&mut c3, &["GET", "new"]), "1");
    drop(s3);
    // The AOF rewrite child likewise.
    let s = Server::start(&["--appendonly", "yes", "--rdb-key-save-delay", "10000"]);
    let mut c = s.client();
    for i in 0..400 {
        q::<String>(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    let child = pid_from_log(&s, "Background append only file rewriting started by pid ");
    drop(s);
    assert!(gone_within(child, Duration::from_secs(2)), "the rewrite child {child} outlived its parent");
}

/// CAP_SYS_RESOURCE (linux/capability.h).
const CAP_SYS_RESOURCE: libc::c_ulong = 24;

/// A process killed when dropped (a failed assertion must not leave it running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts cowstore with its open-files limit set to `nofile` (soft and hard,
/// without the privilege to raise it); returns the process, port and dir.
fn start_with_nofile(nofile: u64, extra: &[&str]) -> (KillOnDrop, u16, PathBuf) {
    use std::os::unix::process::CommandExt;
    let dir = common::temp_dir("nofile");
    let port = common::free_port();
    let log = std::fs::File::create(dir.join("cowstore.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cowstore"));
    cmd.args(["--port", &port.to_string(), "--save", "", "--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let l = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            // Root could raise it again: drop that capability (ignored if not held).
            libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
            Ok(())
        });
    }
    let child = KillOnDrop(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::answers_ping(port) {
        assert!(Instant::now() < deadline, "cowstore did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port, dir)
}

fn ping(port: u16) -> Vec<u8> {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)) else {
        return b"(connect failed)".to_vec();
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(b"PING\r\n");
    let mut buf = [0u8; 128];
    let n = s.read(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

// Point 1: maxclients is fitted to the open-files limit at startup, as Redis does.
#[test]
fn maxclients_is_fitted_to_the_open_files_limit() {
    // More clients than any limit allows (above fs.nr_open), so the outcome
    // does not depend on whether the test may raise limits.
    let (_server, port, dir) = start_with_nofile(64, &["--maxclients", "2000000"]);
    let log = std::fs::read_to_string(dir.join("cowstore.log")).unwrap();
    assert!(log.contains("maxclients has been reduced to 32 to compensate for low ulimit"), "{log}");
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut c).unwrap();
    assert_eq!(got[1], "32");
    let e = redis::cmd("CONFIG").arg("SET").arg("maxclients").arg("2000000").query::<()>(&mut c).unwrap_err();
    assert!(e.to_string().contains("not able to handle the specified number of clients, try with 32"), "{e}");
    // 40 more clients: the first 31 are served, the rest refused, none wedges.
    let conns: Vec<_> = (0..40).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ping(port), b"-ERR max number of clients reached\r\n");
    drop(conns);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ping(port), b"+PONG\r\n");
}

/// Lets this test process open many sockets (soft limit up to the hard one).
fn raise_own_nofile() {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64
}

// Point 1: out of descriptors, a burst of connections never wedges the listener.
#[test]
fn descriptor_exhaustion_never_wedges_the_listener() {
    raise_own_nofile();
    let s = Server::start(&[]);
    // Lower the running server's limit under what maxclients needs.
    let limit = open_fds(s.pid()) + 8;
    let l = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: prlimit on a process we started, with a struct we own.
    assert_eq!(unsafe { libc::prlimit(s.pid() as i32, libc::RLIMIT_NOFILE, &l, std::ptr::null_mut()) }, 0);
    let burst: Vec<_> = (0..700)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], s.port).into(), Duration::from_millis(200)).ok()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(burst);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ping(s.port), b"+PONG\r\n", "the server stopped accepting after EMFILE");
    assert!(s.log().contains("Too many open files"), "{}", s.log());
}

/// Sends `bytes` on a new connection (from `from`) and returns what came
/// back before the server closed it or `wait` passed.
fn raw_from(port: u16, from: [u8; 4], bytes: &[u8], wait: Duration) -> Vec<u8> {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from((from, 0)).into()).unwrap();
    sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

// Point 12: replies to odd bytes are Redis's, byte for byte.
#[test]
fn odd_bytes_get_redis_replies() {
    let ours = Server::start(&[]);
    let theirs = common::RedisServer::start(&[]);
    let cases: &[&[u8]] = &[
        b"*1\r\n\xf4\r\n",
        b"*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n*1\r\n\xc3\r\n",
        b"\x0bPING\r\n",
        b"\x0b\x0cPING\x0b\r\nECHO \"a\"\x0b\r\n",
        b"*1\x00\r\n$4\r\nPING\r\n",
        b"*1\r\n$4\x00\r\nPING\r\n",
        b"\x00PING\r\n",
        b"CONFIG \xf4\xf5\r\n",
        b"CLIENT \xf4\r\n",
        b"COMMAND \xf4\x00\xf5\r\n",
        b"HELLO 3 \xf4\r\n",
    ];
    for case in cases {
        let a = raw_from(ours.port, [127, 0, 0, 1], case, Duration::from_millis(300));
        let b = raw_from(theirs.port, [127, 0, 0, 1], case, Duration::from_millis(300));
        assert_eq!(a.escape_ascii().to_string(), b.escape_ascii().to_string(), "for {}", case.escape_ascii());
    }
}

// Point 8: protected mode refuses clients that are not 127.0.0.1 or ::1
// while no password is set, with Redis's reply.
#[test]
fn protected_mode_matches_redis() {
    let ours = Server::start(&[]);
    let theirs = common::RedisServer::start(&[]);
    let wait = Duration::from_millis(500);
    let denied = raw_from(theirs.port, [127, 0, 0, 2], b"PING\r\n", wait);
    assert!(denied.starts_with(b"-DENIED"));
    assert_eq!(raw_from(ours.port, [127, 0, 0, 2], b"PING\r\n", wait), denied);
    assert_eq!(raw_from(ours.port, [127, 0, 0, 1], b"PING\r\n", wait), b"+PONG\r\n");
    let mut c = ours.client();
    q::<String>(&mut c, &["CONFIG", "SET", "protected-mode", "no"]);
    assert_eq!(raw_from(ours.port, [127, 0, 0, 2], b"PING\r\n", wait), b"+PONG\r\n");
    q::<String>(&mut c, &["CONFIG", "SET", "protected-mode", "yes", "requirepass", "pw"]);
    assert!(raw_from(ours.port, [127, 0, 0, 2], b"PING\r\n", wait).starts_with(b"-NOAUTH"));
}

// Point 8: the listen queue is tcp-backlog (511) long, not mio's 128.
#[test]
fn listen_backlog_is_tcp_backlog() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    let s = Server::start(&[]);
    let out = Command::new("ss").args(["-ltnH", &format!("sport = :{}", s.port)]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let send_q: u32 = text.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(send_q, 511.min(somaxconn), "{text}");
}

/// Reads from `s` until the server closes it (true) or `wait` passes (false);
/// returns whether it closed and how many bytes came.
fn read_until_closed(s: &mut std::net::TcpStream, wait: Duration) -> (bool, usize) {
    use std::io::Read;
    s.set_read_timeout(Some(wait)).unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, got),
            Err(_) => return (false, got),
        }
    }
}

// Point 5: a client that has not authenticated cannot make the server
// buffer replies it does not read (Redis's CVE-2025-21605 fix).
#[test]
fn unauthenticated_output_is_capped() {
    use std::io::Write;
    let s = Server::start(&["--requirepass", "secret"]);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // 1.2 MB of PING: 6.8 MB of -NOAUTH replies if they were all kept.
    let _ = sock.write_all(&b"PING\r\n".repeat(200_000));
    let (closed, got) = read_until_closed(&mut sock, Duration::from_secs(5));
    assert!(closed && got < 64 * 1024, "closed: {closed}, {got} bytes of replies");
    assert!(s.log().contains("for overcoming of output buffer limits"), "{}", s.log());
    // An authenticated client is not limited this way.
    let mut c = s.client();
    q::<String>(&mut c, &["AUTH", "secret"]);
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

// Point 8: client-output-buffer-limit (hard and soft) and maxmemory-clients apply.
#[test]
fn client_memory_limits_apply() {
    use std::io::Write;
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 0 0"]);
    q::<String>(&mut c, &["SET", "big", &"x".repeat(1 << 20)]);
    let get = common::resp_request(&[b"GET".to_vec(), b"big".to_vec()]);
    // Hard limit: 50 pipelined GETs of 1 MB never read.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.write_all(&get.repeat(50)).unwrap();
    let (closed, _) = read_until_closed(&mut sock, Duration::from_secs(5));
    assert!(closed, "hard limit not applied");
    // Soft limit: over 512 KB for more than a second.
    q::<String>(&mut c, &["CONFIG", "SET", "client-output-buffer-limit", "normal 0 512kb 1"]);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.write_all(&get.repeat(10)).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let _ = sock.write_all(&get);
    let (closed, _) = read_until_closed(&mut sock, Duration::from_secs(5));
    assert!(closed, "soft limit not applied");
    q::<String>(&mut c, &["CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0"]);
    // maxmemory-clients: a client holding a 10 MB query buffer is evicted.
    q::<String>(&mut c, &["CONFIG", "SET", "maxmemory-clients", "4mb"]);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    sock.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000\r\n").unwrap();
    sock.write_all(&vec![b'v'; 200_000]).unwrap();
    let (closed, _) = read_until_closed(&mut sock, Duration::from_secs(5));
    assert!(closed, "maxmemory-clients not applied");
    assert!(s.log().contains("Evicting client"), "{}", s.log());
    assert_eq!(common::info_field(&mut c, "evicted_clients"), "1");
    // INFO counts what the other clients' buffers hold: here a query buffer
    // with the start of a 1 MB bulk.
    let mut partial = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    partial.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\nvalue").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mem: u64 = common::info_field(&mut c, "mem_clients_normal").parse().unwrap();
    assert!(mem >= 16 * 1024, "mem_clients_normal {mem}");
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

/// A field of /proc/PID/status in kB, as bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = st.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

// Point 6: half-sent big values cost what arrived, not what was announced.
#[test]
fn half_sent_big_values_cost_what_arrived() {
    use std::io::Write;
    raise_own_nofile();
    let s = Server::start(&[]);
    let before = proc_status(s.pid(), "VmRSS:");
    // 400 clients announce 1 MiB values and send 20 KB of each.
    let mut header = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n".to_vec();
    header.extend_from_slice(&[b'v'; 20_000]);
    let conns: Vec<_> = (0..400)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
            c.write_all(&header).unwrap();
            c
        })
        .collect();
    assert_eq!(q::<String>(&mut s.client(), &["PING"]), "PONG");
    std::thread::sleep(Duration::from_millis(300));
    let grown = proc_status(s.pid(), "VmRSS:").saturating_sub(before);
    eprintln!("400 half-sent 1 MiB values: VmRSS grew by {} MB", grown >> 20);
    // 400 x 20 KB = 8 MB arrived; zero-filled 1 MiB buffers would be 400 MB.
    assert!(grown < 64 << 20, "resident memory grew by {} MB for 8 MB received", grown >> 20);
    drop(conns);
}

// Point 7: a 512 MB SET costs about 512 MB at its peak, not twice that.
#[test]
fn big_set_peaks_near_its_size() {
    use std::io::Write;
    const SIZE: usize = 512 << 20;
    let s = Server::start(&[]);
    let before = proc_status(s.pid(), "VmHWM:");
    let mut sock = std::io::BufWriter::new(std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap());
    sock.write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${SIZE}\r\n").as_bytes()).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for _ in 0..SIZE >> 20 {
        sock.write_all(&chunk).unwrap();
    }
    sock.write_all(b"\r\n").unwrap();
    let sock = sock.into_inner().unwrap();
    let mut reply = common::Raw { r: std::io::BufReader::new(sock.try_clone().unwrap()), w: sock };
    assert_eq!(common::read_resp(&mut reply.r).unwrap(), common::Resp::Line(b'+', b"OK".to_vec()));
    let peak = proc_status(s.pid(), "VmHWM:").saturating_sub(before);
    assert_eq!(reply.text(&["STRLEN", "big"]), SIZE.to_string());
    for at in [0usize, 300_000_017, SIZE - 3] {
        let got = reply.call(&["GETRANGE", "big", &at.to_string(), &(at + 2).to_string()]);
        let want: Vec<u8> = (at..at + 3).map(|i| ((i % (1 << 20)) % 251) as u8).collect();
        assert_eq!(got, common::Resp::Bulk(b'$', want), "bytes at {at}");
    }
    eprintln!("512 MB SET: VmHWM grew by {} MB", peak >> 20);
    assert!(peak < SIZE as u64 * 5 / 4, "peak grew by {} MB for a {} MB value", peak >> 20, SIZE >> 20);
}

// Points 6/7: big arguments read into their own allocation stay intact in
// every command shape: several in one command, options after them,
// pipelined commands behind them, inside MULTI, and not adopted.
#[test]
fn big_arguments_arrive_intact() {
    use std::io::Write;
    let s = Server::start(&[]);
    let big =
        |n: usize, seed: u8| -> Vec<u8> { (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect() };
    let (a, b, c, d) = (big(100_000, 1), big(70_000, 2), big(300_000, 3), big(40_000, 4));
    let cmd = |args: &[&[u8]]| common::resp_request(&args.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
    let mut wire = Vec::new();
    wire.extend(cmd(&[b"MSET", b"a", &a, b"b", &b]));
    wire.extend(cmd(&[b"SET", b"c", &c, b"EX", b"1000"]));
    wire.extend(cmd(&[b"GET", b"c"]));
    wire.extend(cmd(&[b"RPUSH", b"l", &d, &a]));
    wire.extend(cmd(&[b"MULTI"]));
    wire.extend(cmd(&[b"SET", b"m", &b]));
    wire.extend(cmd(&[b"EXEC"]));
    wire.extend(cmd(&[b"SET", b"last", &d]));
    wire.extend(cmd(&[b"PING"]));
    let mut raw = common::Raw::new(s.port);
    // Sent in uneven slices, so headers and bulks arrive split.
    for chunk in wire.chunks(7_919) {
        raw.w.write_all(chunk).unwrap();
    }
    let mut replies = Vec::new();
    for _ in 0..9 {
        replies.push(common::read_resp(&mut raw.r).unwrap());
    }
    assert_eq!(replies[2], common::Resp::Bulk(b'$', c.clone()));
    assert_eq!(replies[8], common::Resp::Line(b'+', b"PONG".to_vec()));
    let bulk = |raw: &mut common::Raw, args: &[&str]| match raw.call(args) {
        common::Resp::Bulk(_, v) => v,
        other => panic!("{args:?}: {other:?}"),
    };
    assert_eq!(bulk(&mut raw, &["GET", "a"]), a);
    assert_eq!(bulk(&mut raw, &["GET", "b"]), b);
    assert_eq!(bulk(&mut raw, &["GET", "c"]), c);
    assert_eq!(bulk(&mut raw, &["GET", "m"]), b);
    assert_eq!(bulk(&mut raw, &["GET", "last"]), d);
    assert_eq!(bulk(&mut raw, &["LINDEX", "l", "0"]), d);
    assert_eq!(bulk(&mut raw, &["LINDEX", "l", "1"]), a);
    assert_eq!(raw.text(&["TTL", "c"]), "1000");
}
