//! A bounded fuzz run inside `cargo test` (issue 17): the RESP request
//! parser, the RDB loader and the AOF loader get mutations of valid inputs
//! that cowstore itself produced (flipped, inserted, deleted and duplicated
//! bytes, truncations). Each must end with a value or an error, never a
//! panic, and allocate at most [`ALLOC_BOUND`]: 4 MiB plus 256 bytes per
//! input byte (the loaders reserve at most 1 MiB ahead of the data, and an
//! LZF string may expand 256 times its compressed size).
//!
//! Proptest runs a fixed number of cases per target (about 3 s in all here)
//! and shrinks a failing input to a small one before reporting it.

use cowstore::client::Client;
use cowstore::cmd::{Args, dispatch};
use cowstore::config::Config;
use cowstore::keyspace::Keyspace;
use cowstore::protocol::request::{ArgSource, Limits, RequestParser};
use cowstore::rdb::load::{LoadOptions, load_rdb};
use cowstore::rdb::save::{SaveOptions, write_rdb};
use cowstore::server::Server;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunConfig, TestCaseError, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts this thread's live heap bytes and their peak.
struct Meter;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counters are plain thread-local cells.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|c| {
            c.set(c.get() + l.size());
            let _ = PEAK.try_with(|p| p.set(p.get().max(c.get())));
        });
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get().saturating_sub(l.size())));
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Most bytes one case may allocate beyond what it held at its start.
fn alloc_bound(input_len: usize) -> usize {
    (4 << 20) + 256 * input_len
}

/// Runs `f` and returns the peak of heap bytes it added.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

/// One edit of a seed: (position, kind, byte).
type Edit = (usize, u8, u8);

fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(pos, kind, byte) in edits {
        let at = if v.is_empty() { 0 } else { pos % v.len() };
        match kind % 6 {
            0 if !v.is_empty() => v[at] = byte,
            1 => v.insert(at, byte),
            2 if !v.is_empty() => {
                v.remove(at);
            }
            3 => v.truncate(at),
            4 => {
                // Duplicate a chunk: repeated headers, doubled commands.
                let end = (at + byte as usize).min(v.len());
                let chunk = v[at..end].to_vec();
                v.splice(at..at, chunk);
            }
            _ if !v.is_empty() => v[at] ^= 1 << (byte % 8),
            _ => {}
        }
    }
    v
}

fn edits() -> impl Strategy<Value = (usize, Vec<Edit>)> {
    (any::<usize>(), prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..8))
}

/// Counts a case and records the largest peak seen with its input size.
/// Notes one case's heap peak in `worst` (largest peak, its input length,
/// cases run) and checks it against [`alloc_bound`].
fn within_bound(worst: &Cell<(usize, usize, usize)>, peak: usize, len: usize) -> Result<(), TestCaseError> {
    let (p, l, n) = worst.get();
    worst.set(if peak > p { (peak, len, n + 1) } else { (p, l, n + 1) });
    prop_assert!(peak <= alloc_bound(len), "{peak} bytes for {len} input bytes");
    Ok(())
}

/// Prints what a fuzz run saw.
fn summary(worst: &Cell<(usize, usize, usize)>) {
    let (peak, len, cases) = worst.get();
    eprintln!("{cases} cases; largest heap peak {peak} bytes, for {len} input bytes");
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunConfig { cases, failure_persistence: None, ..RunConfig::default() })
}

/// Runs a command on an in-process server, as the AOF loader does.
fn run(srv: &mut Server, c: &mut Client, args: &[&[u8]]) {
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    for a in args {
        ranges.push((buf.len(), buf.len() + a.len()));
        buf.extend_from_slice(a);
    }
    dispatch(srv, c, &Args::new(&buf, &ranges));
    c.reply.buf.clear();
}

/// Commands that build every encoding cowstore writes (ints, embedded and
/// raw strings, listpack and big lists, hashes, intsets, sets, sorted sets).
fn seed_commands() -> Vec<Vec<Vec<u8>>> {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut c = |a: &[&str]| cmds.push(a.iter().map(|s| s.as_bytes().to_vec()).collect());
    c(&["SET", "int", "12345"]);
    c(&["SET", "str", "hello world"]);
    c(&["SET", "long", &"abcdefgh".repeat(40)]);
    c(&["PEXPIREAT", "str", "99999999999999"]);
    c(&["RPUSH", "list", "a", "b", "1", "2"]);
    c(&["HSET", "hash", "f", "v", "n", "7"]);
    c(&["SADD", "intset", "1", "2", "3"]);
    c(&["SADD", "set", "x", "y"]);
    c(&["ZADD", "zset", "1.5", "a", "2", "b"]);
    c(&["SELECT", "3"]);
    for i in 0..130 {
        c(&["ZADD", "bigz", &i.to_string(), &format!("m{i}")]);
        c(&["HSET", "bigh", &format!("f{i}"), &"v".repeat(70)]);
        c(&["SADD", "bigs", &format!("s{i}")]);
        c(&["RPUSH", "bigl", &"e".repeat(i)]);
    }
    cmds
}

fn seed_server() -> Server {
    let mut srv = Server::new(Config::default());
    let mut c = Client::internal(0);
    for cmd in seed_commands() {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_slice()).collect();
        run(&mut srv, &mut c, &args);
    }
    srv
}

fn rdb_of(srv: &Server, compression: bool) -> Vec<u8> {
    let opts = SaveOptions { compression, checksum: true, aof_base: false, key_delay_us: 0 };
    write_rdb(Vec::new(), &srv.ks, opts, &mut |_| {}).unwrap().0
}

fn aof_of(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        cowstore::aof::append_command(&mut out, c.iter().map(|a| a.as_slice()));
    }
    out
}

#[test]
fn fuzz_resp_parser() {
    let mut seeds: Vec<Vec<u8>> =
        vec![b"PING\r\nSET \"a b\" 'c\\'d' \"\\x41\\n\"\r\n\r\n".to_vec(), b"*0\r\n*-1\r\n\x0bECHO x\r\n".to_vec()];
    seeds.push(aof_of(&seed_commands()[..40]));
    let worst = Cell::new((0, 0, 0));
    let mut r = runner(100_000);
    r.run(&edits(), |(pick, edits)| {
        let input = mutate(&seeds[pick % seeds.len()], &edits);
        let unauth = pick % 2 == 0;
        let peak = peak_of(|| {
            let mut p = RequestParser::default();
            let mut pos = 0;
            let lim = Limits { max_bulk: 512 << 20, unauthenticated: unauth };
            // Fed in two pieces, as reads deliver it.
            let cut = if input.is_empty() { 0 } else { pick % input.len() };
            for end in [cut, input.len()] {
                while let Ok(true) = p.parse(&input[..end], &mut pos, lim) {
                    let (ranges, src) = p.args();
                    let len = if src == ArgSource::Inline { p.inline_buf().len() } else { end };
                    assert!(ranges.iter().all(|&(a, b)| a <= b && b <= len));
                }
                assert!(pos <= end);
            }
        });
        within_bound(&worst, peak, input.len())
    })
    .unwrap();
    summary(&worst);
}

#[test]
fn fuzz_rdb_loader() {
    let srv = seed_server();
    let seeds = [rdb_of(&srv, true), rdb_of(&srv, false)];
    let limits = cowstore::types::Limits::of(&Config::default());
    let worst = Cell::new((0, 0, 0));
    let mut r = runner(30_000);
    r.run(&edits(), |(pick, edits)| {
        let input = mutate(&seeds[pick % seeds.len()], &edits);
        let verify_checksum = pick % 4 == 0;
        let peak = peak_of(|| {
            let mut ks = Keyspace::new(16);
            let opts = LoadOptions { verify_checksum, skip_expired: false, limits };
            let _ = load_rdb(&input[..], &mut ks, opts);
        });
        within_bound(&worst, peak, input.len())
    })
    .unwrap();
    summary(&worst);
}

#[test]
fn fuzz_aof_loader() {
    let dir = std::env::temp_dir().join(format!("cowstore-fuzz-aof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cmds = seed_commands();
    let mut with_preamble = rdb_of(&seed_server(), true);
    with_preamble.extend_from_slice(&aof_of(&cmds[..20]));
    let mut tx = aof_of(&cmds[..10]);
    tx.extend_from_slice(&aof_of(&[vec![b"MULTI".to_vec()], cmds[0].clone(), vec![b"EXEC".to_vec()]]));
    let seeds = [aof_of(&cmds), with_preamble, tx];
    let manifest = "file appendonly.aof.1.incr.aof seq 1 type i\n";
    cowstore::log::set_level("warning");
    let worst = Cell::new((0, 0, 0));
    let mut r = runner(3000);
    r.run(&edits(), |(pick, edits)| {
        let input = mutate(&seeds[pick % seeds.len()], &edits);
        std::fs::write(dir.join("appendonly.aof.manifest"), manifest).unwrap();
        std::fs::write(dir.join("appendonly.aof.1.incr.aof"), &input).unwrap();
        let mut srv = Server::new(Config { aof_load_truncated: pick % 2 == 0, ..Config::default() });
        srv.aof.dir = dir.clone();
        let peak = peak_of(|| {
            let _ = cowstore::aof::load::load_at_startup(&mut srv);
        });
        drop(srv);
        within_bound(&worst, peak, input.len())
    })
    .unwrap();
    summary(&worst);
    let _ = std::fs::remove_dir_all(&dir);
}
