//! The append-only file: Redis 7 multi-part layout, interop with Debian's
//! redis-server and redis-check-aof, rewrite by fork, startup repair and
//! refusal, write errors, and the durability exposure per policy.

mod common;
use common::data::{assert_same, capture, load_mixed};
use common::{RedisServer, Server, info_field, q, start_expect_exit, temp_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_rewrite(con: &mut redis::Connection) {
    wait_until("the AOF rewrite", || {
        info_field(con, "aof_rewrite_in_progress") == "0" && info_field(con, "aof_rewrite_scheduled") == "0"
    });
}

/// Waits until a server has written its whole AOF buffer to the file (under
/// `everysec` Redis postpones the write while a background fsync runs).
fn wait_aof_written(con: &mut redis::Connection) {
    wait_until("the AOF write", || {
        info_field(con, "aof_buffer_length") == "0" && info_field(con, "aof_pending_bio_fsync") == "0"
    });
}

/// Copies a directory tree (the AOF directory) to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn manifest(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap()
}

fn check_aof(dir: &Path) -> (bool, String) {
    let out = Command::new("redis-check-aof").arg(dir.join("appendonlydir/appendonly.aof.manifest")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && text.contains("valid"), text)
}

/// Writes the mixed data set plus commands whose logging must be rewritten
/// to replay exactly (relative expiries, float increments, EXEC blocks).
fn load_with_rewrites(c: &mut redis::Connection) {
    load_mixed(c);
    q::<String>(c, &["SET", "ex", "v", "EX", "1000"]);
    q::<String>(c, &["SETEX", "setex", "2000", "v"]);
    q::<i64>(c, &["EXPIRE", "short", "3000"]);
    q::<String>(c, &["INCRBYFLOAT", "float", "0.1"]);
    q::<String>(c, &["INCRBYFLOAT", "float", "0.2"]);
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("tx1")
        .arg("a")
        .ignore()
        .cmd("INCR")
        .arg("tx2")
        .ignore()
        .query(c)
        .unwrap();
    // Random and float results must be logged as what happened, not as asked.
    let _: Option<String> = redis::cmd("SPOP").arg("set-str").query(c).unwrap();
    let _: Vec<String> = redis::cmd("SPOP").arg("set-bigint").arg(5).query(c).unwrap();
    let _: Vec<String> = redis::cmd("SPOP").arg("set-bigint").arg(690).query(c).unwrap();
    let _: String = redis::cmd("HINCRBYFLOAT").arg("hash-small").arg("fl").arg("0.1").query(c).unwrap();
    let _: String = redis::cmd("HINCRBYFLOAT").arg("hash-small").arg("fl").arg("0.2").query(c).unwrap();
    let _: Vec<String> = redis::cmd("SPOP").arg("set-int").arg(100).query(c).unwrap();
}

#[test]
fn cowstore_aof_is_valid_for_redis_tools_and_server() {
    for preamble in ["yes", "no"] {
        let s = Server::start(&["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        let mut c = s.client();
        load_with_rewrites(&mut c);
        if preamble == "yes" {
            // Rewrite once so the base holds data and the incr the rest.
            assert!(q::<String>(&mut c, &["BGREWRITEAOF"]).contains("rewriting started"));
            wait_rewrite(&mut c);
            q::<String>(&mut c, &["SET", "after-rewrite", "1"]);
        }
        let ours = capture(&mut c);
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
        let (ok, text) = check_aof(&s.dir);
        assert!(ok, "redis-check-aof (preamble {preamble}): {text}");
        let dir = temp_dir("redis-on-ours");
        copy_dir(&s.dir.join("appendonlydir"), &dir.join("appendonlydir"));
        let r = RedisServer::start_in(dir, &["--appendonly", "yes"]);
        let mut rc = r.client();
        assert_same(&capture(&mut rc), &ours, &format!("redis-server on cowstore's AOF (preamble {preamble})"));
        // And cowstore itself restarts to the same data.
        let s2 = Server::start_in(s.dir.clone(), &["--appendonly", "yes"]);
        assert_same(&capture(&mut s2.client()), &ours, "cowstore restarted");
    }
}

#[test]
fn cowstore_loads_redis_server_aof() {
    for preamble in ["yes", "no"] {
        let r = RedisServer::start(&["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
        let mut rc = r.client();
        load_with_rewrites(&mut rc);
        q::<String>(&mut rc, &["BGREWRITEAOF"]);
        wait_rewrite(&mut rc);
        q::<String>(&mut rc, &["SET", "in-incr", "after rewrite"]);
        q::<i64>(&mut rc, &["RPUSH", "list-small", "more"]);
        let theirs = capture(&mut rc);
        wait_aof_written(&mut rc);
        let dir = temp_dir("ours-on-redis");
        copy_dir(&r.dir.join("appendonlydir"), &dir.join("appendonlydir"));
        let base_kind = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
        assert!(base_kind.contains(if preamble == "yes" { ".base.rdb" } else { ".base.aof" }), "{base_kind}");
        let s = Server::start_in(dir, &["--appendonly", "yes"]);
        assert_same(
            &capture(&mut s.client()),
            &theirs,
            &format!("cowstore on redis-server's AOF, preamble {preamble}"),
        );
    }
}

#[test]
fn rewrite_switches_manifest_and_keeps_concurrent_writes() {
    let s = Server::start(&["--appendonly", "yes"]);
    let mut c = s.client();
    q::<String>(&mut c, &["DEBUG", "POPULATE", "300000", "p", "50"]);
    for i in 0..1000 {
        q::<String>(&mut c, &["SET", &format!("w{i}"), "before"]);
    }
    assert_eq!(info_field(&mut c, "aof_rewrites"), "0");
    q::<String>(&mut c, &["BGREWRITEAOF"]);
    // Writes while the child works land in the new incr file.
    let mut n = 0;
    while info_field(&mut c, "aof_rewrite_in_progress") == "1" || n < 500 {
        q::<String>(&mut c, &["SET", &format!("during{n}"), "x"]);
        n += 1;
    }
    wait_rewrite(&mut c);
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    assert_eq!(info_field(&mut c, "aof_rewrites"), "1");
    let m = manifest(&s.dir);
    assert_eq!(m.lines().count(), 2, "one base and one incr: {m}");
    assert!(
        m.contains("appendonly.aof.2.base.rdb seq 2 type b") && m.contains("appendonly.aof.2.incr.aof seq 2 type i"),
        "{m}"
    );
    let files: Vec<String> = std::fs::read_dir(s.dir.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(files.len(), 3, "old files must be deleted: {files:?}");
    let want = capture(&mut c);
    drop(c);
    drop(s.client());
    let dir = s.dir.clone();
    drop(s);
    let s2 = Server::start_in(dir, &["--appendonly", "yes"]);
    assert_same(&capture(&mut s2.client()), &want, "after restart");
}

#[test]
fn appendonly_turned_on_at_runtime_writes_a_base_first() {
    let s = Server::start(&[]);
    let mut c = s.client();
    load_mixed(&mut c);
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    q::<String>(&mut c, &["CONFIG", "SET", "appendonly", "yes"]);
    q::<String>(&mut c, &["SET", "while-rewriting", "1"]);
    wait_rewrite(&mut c);
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    q::<String>(&mut c, &["SET", "after", "2"]);
    let want = capture(&mut c);
    let dir = s.dir.clone();
    drop(s);
    let s2 = Server::start_in(dir, &["--appendonly", "yes"]);
    assert_same(&capture(&mut s2.client()), &want, "after restart");
}

fn incr_path(dir: &Path) -> PathBuf {
    let m = manifest(dir);
    let name = m.lines().find(|l| l.ends_with("type i")).unwrap().split_whitespace().nth(1).unwrap().to_string();
    dir.join("appendonlydir").join(name)
}

#[test]
fn truncated_tail_is_dropped_or_refused_by_setting() {
    let s = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = s.client();
    for i in 0..100 {
        q::<String>(&mut c, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    let dir = s.dir.clone();
    drop(s);
    let incr = incr_path(&dir);
    let whole = std::fs::read(&incr).unwrap();
    let mut cut = whole.clone();
    cut.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$5\r\nval"); // a command cut short
    std::fs::write(&incr, &cut).unwrap();
    // aof-load-truncated no: refuse, name the file, leave it alone.
    let (code, log) =
        start_expect_exit(&dir, &["--appendonly", "yes", "--aof-load-truncated", "no"]).expect("must refuse");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(incr.file_name().unwrap().to_str().unwrap()) && log.contains("byte offset"), "{log}");
    assert_eq!(std::fs::read(&incr).unwrap(), cut);
    // aof-load-truncated yes (default): drop the partial command with a warning.
    let s2 = Server::start_in(dir.clone(), &["--appendonly", "yes"]);
    let mut c2 = s2.client();
    assert_eq!(q::<i64>(&mut c2, &["DBSIZE"]), 100);
    assert_eq!(q::<Option<String>>(&mut c2, &["GET", "lost"]), None);
    assert!(s2.log().contains("Truncating the AOF"), "{}", s2.log());
    assert_eq!(std::fs::read(&incr).unwrap(), whole);
    // An unfinished MULTI at the end is dropped too.
    drop(c2);
    drop(s2);
    let mut tx = whole.clone();
    tx.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$2\r\ntx\r\n$1\r\n1\r\n");
    std::fs::write(&incr, &tx).unwrap();
    let s3 = Server::start_in(dir, &["--appendonly", "yes"]);
    assert_eq!(q::<Option<String>>(&mut s3.client(), &["GET", "tx"]), None);
}

#[test]
fn corruption_in_the_middle_refuses_to_start() {
    let s = Server::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = s.client();
    for i in 0..50 {
        q::<String>(&mut c, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    let dir = s.dir.clone();
    drop(s);
    let incr = incr_path(&dir);
    let mut bytes = std::fs::read(&incr).unwrap();
    let mid = bytes.len() / 2;
    let at = mid + bytes[mid..].iter().position(|&b| b == b'*').unwrap();
    bytes[at] = b'?';
    std::fs::write(&incr, &bytes).unwrap();
    let (code, log) = start_expect_exit(&dir, &["--appendonly", "yes"]).expect("must refuse");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&format!("byte offset {at}")) && log.contains("incr.aof"), "{log}");
    assert_eq!(std::fs::read(&incr).unwrap(), bytes, "files are left untouched");
    // An unknown command is refused too.
    let mut unknown = std::fs::read(&incr).unwrap();
    unknown[at] = b'*';
    unknown.extend_from_slice(b"*1\r\n$7\r\nNOTACMD\r\n");
    std::fs::write(&incr, &unknown).unwrap();
    let (code, log) = start_expect_exit(&dir, &["--appendonly", "yes"]).expect("must refuse");
    assert_eq!(code, Some(1));
    assert!(log.contains("Unknown command 'NOTACMD'"), "{log}");
}

#[test]
fn automatic_rewrite_by_size() {
    let s = Server::start(&[
        "--appendonly",
        "yes",
        "--auto-aof-rewrite-min-size",
        "100kb",
        "--auto-aof-rewrite-percentage",
        "50",
    ]);
    let mut c = s.client();
    let value = "x".repeat(500);
    for i in 0..1000 {
        q::<String>(&mut c, &["SET", &format!("k{}", i % 50), &value]);
    }
    wait_until("an automatic rewrite", || info_field(&mut c, "aof_rewrites").parse::<u64>().unwrap() >= 1);
    wait_rewrite(&mut c);
    let size: u64 = info_field(&mut c, "aof_current_size").parse().unwrap();
    assert!(size < 100_000, "rewritten AOF should be small, is {size}");
    assert!(s.log().contains("Starting automatic rewriting of AOF"), "{}", s.log());
}

#[test]
fn info_persistence_aof_fields() {
    let s = Server::start(&["--appendonly", "yes"]);
    let mut c = s.client();
    q::<String>(&mut c, &["SET", "a", "1"]);
    for f in [
        "aof_enabled",
        "aof_rewrite_in_progress",
        "aof_rewrite_scheduled",
        "aof_last_rewrite_time_sec",
        "aof_last_bgrewrite_status",
        "aof_last_write_status",
        "aof_last_cow_size",
        "aof_current_size",
        "aof_base_size",
        "aof_buffer_length",
        "aof_delayed_fsync",
    ] {
        info_field(&mut c, f);
    }
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "ok");
    assert!(
        info_field(&mut c, "aof_current_size").parse::<u64>().unwrap()
            > info_field(&mut c, "aof_base_size").parse::<u64>().unwrap()
    );
}

#[test]
fn exposure_is_zero_with_always_and_about_a_second_with_everysec() {
    // everysec: a write waits for the next second's fsync, or up to 2 s more when
    // that fsync is slow (Redis's postponement rule), plus the fsync itself.
    for (policy, max_p99_us) in [("always", 0u64), ("everysec", 4_000_000)] {
        let s = Server::start(&["--appendonly", "yes", "--appendfsync", policy]);
        let mut c = s.client();
        let t = Instant::now();
        let mut i = 0;
        while t.elapsed() < Duration::from_millis(2500) {
            q::<String>(&mut c, &["SET", &format!("k{i}"), "v"]);
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(1500));
        let line = info_field(&mut c, &format!("exposure_{policy}"));
        let field = |k: &str| -> u64 {
            line.split(',').find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap().parse().unwrap()
        };
        assert_eq!(field("acked"), i, "{line}");
        assert_eq!(field("durable"), i, "every acknowledged write became durable: {line}");
        assert!(field("p99_usec") <= max_p99_us.max(1), "{policy}: {line}");
        if policy == "everysec" {
            assert!(field("max_usec") > 100_000, "everysec writes wait for the next fsync: {line}");
        }
        // The same figures through the DURABILITY command.
        let d: redis::Value = redis::cmd("DURABILITY").query(&mut c).unwrap();
        assert!(format!("{d:?}").contains(policy));
    }
}

#[test]
fn full_disk_makes_writes_misconf_until_it_recovers() {
    let dir = temp_dir("aofdisk");
    assert!(
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&dir).status().unwrap().success()
    );
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _m = Umount(dir.clone());
    let s = Server::start_in(dir.clone(), &["--appendonly", "yes"]);
    let mut c = s.client();
    let big = "y".repeat(100_000);
    // Fill the disk through the AOF until a write fails.
    let mut refused = None;
    for i in 0..100 {
        match redis::cmd("SET").arg(format!("k{i}")).arg(&big).query::<String>(&mut c) {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = refused.expect("the disk should fill");
    assert!(e.contains("MISCONF") && e.contains("AOF"), "{e}");
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "err");
    assert!(q::<Option<String>>(&mut c, &["GET", "k0"]).is_some(), "reads still work");
    assert!(s.log().contains("Error writing to the AOF file"), "{}", s.log());
    // More space: the cron retries the write and writes are accepted again.
    assert!(Command::new("mount").args(["-o", "remount,size=20m"]).arg(&dir).status().unwrap().success());
    wait_until("the AOF write to recover", || info_field(&mut c, "aof_last_write_status") == "ok");
    assert_eq!(q::<String>(&mut c, &["SET", "again", "1"]), "OK");
    assert!(s.log().contains("AOF write error looks solved"), "{}", s.log());
}
