//! cowstore under hostile conditions (issue 17): bad manifests and AOFs,
//! orphaned fork children, descriptor exhaustion, clients that never read,
//! and big or slow inputs. Each test reproduces one case.

mod common;
use common::{Server, q};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts cowstore on `dir`; returns (exit code, log) if it exits within a
/// few seconds, or None if it kept running (it is then killed).
fn start_expect_exit(dir: &Path, extra: &[&str]) -> Option<(Option<i32>, String)> {
    let log = dir.join("start.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cowstore"))
        .args(["--port", &common::free_port().to_string(), "--save", "", "--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return Some((st.code(), std::fs::read_to_string(&log).unwrap()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

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

/// Starts cowstore with its open-files limit set to `nofile` (soft and hard,
/// without the privilege to raise it); returns the process, port and dir.
fn start_with_nofile(nofile: u64, extra: &[&str]) -> (std::process::Child, u16, PathBuf) {
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
    let child = cmd.spawn().unwrap();
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
    let (mut child, port, dir) = start_with_nofile(64, &[]);
    let log = std::fs::read_to_string(dir.join("cowstore.log")).unwrap();
    assert!(log.contains("maxclients has been reduced to 32 to compensate for low ulimit"), "{log}");
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut c).unwrap();
    assert_eq!(got[1], "32");
    let e = redis::cmd("CONFIG").arg("SET").arg("maxclients").arg("100").query::<()>(&mut c).unwrap_err();
    assert!(e.to_string().contains("not able to handle the specified number of clients, try with 32"), "{e}");
    // 40 more clients: the first 31 are served, the rest refused, none wedges.
    let conns: Vec<_> = (0..40).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ping(port), b"-ERR max number of clients reached\r\n");
    drop(conns);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ping(port), b"+PONG\r\n");
    let _ = child.kill();
    let _ = child.wait();
}

/// Open descriptors of process `pid`.
fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64
}

// Point 1: out of descriptors, a burst of connections never wedges the listener.
#[test]
fn descriptor_exhaustion_never_wedges_the_listener() {
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
