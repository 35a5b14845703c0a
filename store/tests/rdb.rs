//! RDB snapshots: BGSAVE by fork() is exactly the keyspace at the fork,
//! failures are reported and lose nothing, and dumps interoperate with
//! Debian's redis-server 7.0 in both directions.

mod common;
use common::data::{assert_same, capture, load_mixed};
use common::{RedisServer, Server, info_field, q, temp_dir};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn wait_bgsave(con: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while info_field(con, "rdb_bgsave_in_progress") != "0" {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids of the direct children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

#[test]
fn bgsave_is_exactly_the_keyspace_at_fork() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["DEBUG", "POPULATE", "200000", "bulk", "64"]);
    // One connection: SETs before BGSAVE are in the snapshot, SETs after it are not.
    let mut raw = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let mut pipeline = Vec::new();
    for i in 0..20_000 {
        let cmd = if i == 10_000 { "BGSAVE".to_string() } else { format!("SET w:{i} {i}") };
        pipeline.extend_from_slice(cmd.as_bytes());
        pipeline.extend_from_slice(b"\r\n");
    }
    // Meanwhile another client overwrites the bulk keys in order, round after round.
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
        let mut round = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            round += 1;
            let mut p = redis::pipe();
            for k in 0..2000 {
                p.cmd("SET").arg(format!("r:{k}")).arg(round).ignore();
            }
            p.query::<()>(&mut c).unwrap();
        }
        round
    });
    std::thread::sleep(Duration::from_millis(100));
    raw.write_all(&pipeline).unwrap();
    let mut rd = BufReader::new(raw);
    let mut line = String::new();
    for _ in 0..20_000 {
        line.clear();
        rd.read_line(&mut line).unwrap();
    }
    wait_bgsave(&mut c);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds > 2, "the writer should have raced the save");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");

    // Load the dump into a fresh server and check the cut.
    let dir = temp_dir("cut");
    std::fs::copy(s.dir.join("dump.rdb"), dir.join("dump.rdb")).unwrap();
    let s2 = Server::start_in(dir, &[]);
    let mut c2 = s2.client();
    for i in 0..20_000 {
        let v: Option<String> = redis::cmd("GET").arg(format!("w:{i}")).query(&mut c2).unwrap();
        if i < 10_000 {
            assert_eq!(v, Some(i.to_string()), "w:{i} was written before the fork");
        } else {
            assert_eq!(v, None, "w:{i} was written after the fork");
        }
    }
    assert_eq!(q::<i64>(&mut c2, &["EXISTS", "bulk:0", "bulk:199999"]), 2);
    // The overwriter's keys must show one instant of its sequence: rounds never
    // increase along the key order (a prefix of round R+1, then round R).
    let vals: Vec<Option<u64>> =
        (0..2000).map(|k| redis::cmd("GET").arg(format!("r:{k}")).query(&mut c2).unwrap()).collect();
    let present: Vec<u64> = vals.iter().flatten().copied().collect();
    if !present.is_empty() {
        assert_eq!(present.len(), vals.iter().take(present.len()).flatten().count(), "a missing key in the middle");
        assert!(present.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1), "not one instant: {present:?}");
    }
}

#[test]
fn cowstore_dump_loads_in_redis_server() {
    let s = Server::start(&[]);
    let mut c = s.client();
    load_mixed(&mut c);
    let ours = capture(&mut c);
    assert_eq!(q::<String>(&mut c, &["SAVE"]), "OK");
    let dump = s.dir.join("dump.rdb");
    let check = Command::new("redis-check-rdb").arg(&dump).output().expect("redis-check-rdb");
    let text = String::from_utf8_lossy(&check.stdout).to_string() + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success() && text.contains("RDB looks OK"), "redis-check-rdb: {text}");
    let dir = temp_dir("interop-redis");
    std::fs::copy(&dump, dir.join("dump.rdb")).unwrap();
    let r = RedisServer::start_in(dir, &[]);
    let mut rc = r.client();
    assert_same(&capture(&mut rc), &ours, "redis-server on cowstore's dump");
}

#[test]
fn redis_server_dump_loads_in_cowstore() {
    let r = RedisServer::start(&[]);
    let mut rc = r.client();
    load_mixed(&mut rc);
    let theirs = capture(&mut rc);
    for (compression, name) in [("yes", "lzf"), ("no", "plain")] {
        q::<String>(&mut rc, &["CONFIG", "SET", "rdbcompression", compression]);
        assert_eq!(q::<String>(&mut rc, &["SAVE"]), "OK");
        let dir = temp_dir(name);
        std::fs::copy(r.dir.join("dump.rdb"), dir.join("dump.rdb")).unwrap();
        let s = Server::start_in(dir, &[]);
        let mut c = s.client();
        assert_same(&capture(&mut c), &theirs, &format!("rdbcompression {compression}"));
        assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), q::<i64>(&mut rc, &["DBSIZE"]));
    }
}

#[test]
fn killed_child_leaves_previous_dump_and_server_serving() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["SET", "before", "1"]);
    q::<String>(&mut c, &["SAVE"]);
    let dump = s.dir.join("dump.rdb");
    let before = std::fs::read(&dump).unwrap();
    q::<String>(&mut c, &["DEBUG", "POPULATE", "2000000", "k", "100"]);
    let mut killed = false;
    for _ in 0..5 {
        assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "Background saving started");
        let deadline = Instant::now() + Duration::from_secs(5);
        let child = loop {
            if let Some(&p) = children(s.pid()).first() {
                break Some(p);
            }
            if Instant::now() > deadline {
                break None;
            }
        };
        if let Some(p) = child {
            // Give it time to create its temp file, then kill it.
            std::thread::sleep(Duration::from_millis(50));
            if Command::new("kill").args(["-9", &p.to_string()]).status().unwrap().success() {
                wait_bgsave(&mut c);
                if info_field(&mut c, "rdb_last_bgsave_status") == "err" {
                    killed = true;
                    break;
                }
            }
        }
        wait_bgsave(&mut c);
    }
    assert!(killed, "could not kill a save child mid-save");
    assert_eq!(std::fs::read(&dump).unwrap(), before, "the previous dump must be untouched");
    let temps: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("temp-"))
        .collect();
    assert!(temps.is_empty(), "temp file left behind");
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(q::<String>(&mut c, &["SET", "after", "1"]), "OK");
    assert!(s.log().contains("terminated by signal 9"), "log: {}", s.log());
}

/// A mount point, unmounted when dropped (tests run as root, as in CI).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size`.
    fn new(size: &str) -> Option<Tmpfs> {
        let dir = temp_dir("tmpfs");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_the_save_and_denies_writes_until_a_save_succeeds() {
    let Some(small) = Tmpfs::new("1m") else {
        panic!("mounting a tmpfs needs root (CI runs tests as root)");
    };
    let s = Server::start(&["--save", "3600 1", "--enable-protected-configs", "yes"]);
    let mut c = s.client();
    q::<String>(&mut c, &["DEBUG", "POPULATE", "50000", "k", "100"]);
    q::<String>(&mut c, &["CONFIG", "SET", "rdbcompression", "no"]);
    q::<String>(&mut c, &["CONFIG", "SET", "dir", small.0.to_str().unwrap()]);
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    wait_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "err");
    let e = common::err(&mut c, &["SET", "x", "1"]);
    assert!(e.starts_with("MISCONF"), "{e}");
    assert_eq!(q::<String>(&mut c, &["GET", "k:1"]).len(), 100, "reads still work");
    assert!(std::fs::read_dir(&small.0).unwrap().next().is_none(), "no partial file left on the full disk");
    // A good directory again: the next save succeeds and writes are accepted.
    q::<String>(&mut c, &["CONFIG", "SET", "dir", s.dir.to_str().unwrap()]);
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    wait_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert_eq!(q::<String>(&mut c, &["SET", "x", "1"]), "OK");
}

#[test]
fn unwritable_directory_fails_the_save() {
    let dir = temp_dir("ro");
    assert!(Command::new("mount").args(["--bind"]).arg(&dir).arg(&dir).status().unwrap().success());
    // Unmounted when dropped, after the server (declared later, dropped first).
    let ro = Tmpfs(dir.clone());
    assert!(Command::new("mount").args(["-o", "remount,ro,bind"]).arg(&dir).arg(&dir).status().unwrap().success());
    let s = Server::start(&["--save", "3600 1", "--enable-protected-configs", "yes"]);
    let mut c = s.client();
    q::<String>(&mut c, &["SET", "a", "1"]);
    q::<String>(&mut c, &["CONFIG", "SET", "dir", dir.to_str().unwrap()]);
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    wait_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "err");
    assert!(common::err(&mut c, &["SET", "b", "1"]).starts_with("MISCONF"));
    assert!(common::err(&mut c, &["SAVE"]).starts_with("ERR"));
    assert!(s.log().contains("Write error saving DB on disk"), "{}", s.log());
    drop(s);
    drop(ro);
}

/// Starts cowstore on `dump`; returns its exit code and output (it must refuse to start).
fn start_on_bad_dump(bytes: &[u8]) -> (Option<i32>, String, Vec<u8>) {
    let dir = temp_dir("bad");
    let path = dir.join("dump.rdb");
    std::fs::write(&path, bytes).unwrap();
    let log = dir.join("out.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cowstore"))
        .args(["--port", &common::free_port().to_string(), "--dir", dir.to_str().unwrap()])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(&log).unwrap(), std::fs::read(&path).unwrap())
}

#[test]
fn corrupt_truncated_or_misdigested_dump_refuses_to_start() {
    let s = Server::start(&[]);
    let mut c = s.client();
    load_mixed(&mut c);
    q::<String>(&mut c, &["SAVE"]);
    let good = std::fs::read(s.dir.join("dump.rdb")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("truncated checksum", good[..good.len() - 3].to_vec()),
        ("not an rdb", b"hello world, this is not a dump".to_vec()),
    ];
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0x01;
    cases.push(("checksum", bad_crc));
    let mut bad_type = good.clone();
    let at = good.windows(6).position(|w| w == b"list-s").expect("list key") - 2;
    bad_type[at] = 99;
    cases.push(("type byte", bad_type));
    for (what, bytes) in cases {
        let (code, text, after) = start_on_bad_dump(&bytes);
        assert_eq!(code, Some(1), "{what}: must refuse to start; output: {text}");
        assert!(text.contains("dump.rdb") && text.contains("byte offset"), "{what}: {text}");
        assert_eq!(after, bytes, "{what}: the file must be left as it was");
    }
}

#[test]
fn save_points_lastsave_shutdown_and_info() {
    let s = Server::start(&["--save", "1 3"]);
    let mut c = s.client();
    let t0: i64 = q(&mut c, &["LASTSAVE"]);
    for i in 0..5 {
        q::<String>(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while q::<i64>(&mut c, &["LASTSAVE"]) == t0 {
        assert!(Instant::now() < deadline, "save point did not trigger");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_bgsave(&mut c);
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
    assert!(info_field(&mut c, "rdb_saves").parse::<u64>().unwrap() >= 1);
    assert!(info_field(&mut c, "total_forks").parse::<u64>().unwrap() >= 1);
    assert!(info_field(&mut c, "latest_fork_usec").parse::<u64>().unwrap() > 0);
    assert!(s.log().contains("changes in 1 seconds. Saving..."), "{}", s.log());
    // A second BGSAVE while one runs is refused.
    q::<String>(&mut c, &["DEBUG", "POPULATE", "1000000"]);
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    assert_eq!(common::err(&mut c, &["BGSAVE"]), "ERR Background save already in progress");
    wait_bgsave(&mut c);
    // SHUTDOWN saves (save points are set) and the data survives a restart.
    q::<String>(&mut c, &["SET", "last", "word"]);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    let mut s = s;
    assert_eq!(s.wait_exit(Duration::from_secs(30)), Some(0));
    let s2 = Server::start_in(s.dir.clone(), &[]);
    let mut c2 = s2.client();
    assert_eq!(q::<String>(&mut c2, &["GET", "last"]), "word");
    assert_eq!(q::<i64>(&mut c2, &["DBSIZE"]), 1_000_006);
}

#[test]
fn cow_size_is_reported_for_a_save_under_writes() {
    let s = Server::start(&[]);
    let mut c = s.client();
    q::<String>(&mut c, &["DEBUG", "POPULATE", "500000", "key", "100"]);
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "Background saving started");
    let mut w = s.client();
    while info_field(&mut c, "rdb_bgsave_in_progress") == "1" {
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET").arg(format!("key:{}", i * 97 % 500_000)).arg("x".repeat(100)).ignore();
        }
        p.query::<()>(&mut w).unwrap();
    }
    let cow: u64 = info_field(&mut c, "rdb_last_cow_size").parse().unwrap();
    assert!(cow >= 4096, "rdb_last_cow_size {cow}");
    assert!(s.log().contains("Fork CoW for RDB: current"), "{}", s.log());
}

#[test]
fn thp_settings_show_in_info_memory() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(info_field(&mut c, "thp_disabled"), "1");
    let s2 = Server::start(&["--disable-thp", "no", "--keyspace-hugepages", "yes"]);
    let mut c2 = s2.client();
    assert_eq!(info_field(&mut c2, "thp_disabled"), "0");
    q::<String>(&mut c2, &["DEBUG", "POPULATE", "300000", "key", "100"]);
    let thp_mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let huge: u64 = info_field(&mut c2, "anon_huge_pages").parse().unwrap();
    if thp_mode.contains("[madvise]") || thp_mode.contains("[always]") {
        assert!(huge > 0, "keyspace-hugepages yes should give huge pages in mode {thp_mode}");
    }
    let plain: u64 = info_field(&mut c, "anon_huge_pages").parse().unwrap();
    assert_eq!(plain, 0, "disable-thp yes must not have huge pages");
}
