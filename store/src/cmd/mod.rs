//! The command table and dispatch.
//!
//! Each command family lives in its own module and exports a `COMMANDS` table
//! of [`Command`] entries: name, arity (negative = at least), flags, key
//! positions, and a handler `fn(&mut Ctx, &Args)` that parses its arguments
//! and writes its reply. [`dispatch`] does what Redis's `processCommand` does
//! before a handler runs: lookup, arity, authentication and MULTI queueing.
//!
//! # The rule for writes: what reaches the AOF
//!
//! A command is logged to the AOF when it is flagged [`flags::WRITE`] and
//! the keyspace counted a change while its handler ran; it is logged as
//! received, unless the handler declared other commands with
//! [`Ctx::log_as`] (see [`Log`]). So, when adding a command:
//!
//! 1. **Change data only through the keyspace's mutators**, which count the
//!    changes themselves (`Keyspace::set`, `delete`, `set_expire`, ...). A
//!    value modified in place after `Keyspace::write` is reported with
//!    `Keyspace::changed`, `collection_changed` or `create`, with the number
//!    of elements changed (Redis's `server.dirty` increments). The same call
//!    invalidates WATCH, so an unreported change is wrong twice.
//! 2. **Flag it `WRITE`** if it can change the keyspace; nothing else is
//!    ever logged.
//! 3. **Call [`Ctx::log_as`] when replaying the command as received would
//!    not redo what it did**: a relative expiry (log the absolute time), a
//!    random pick (log what was picked), a float result (log the text), or
//!    a rewrite such as an expiry in the past (log DEL).
//! 4. **Give it an example in `store/tests/aof_coverage.rs`.** That test runs
//!    every `WRITE` command of [`TABLE`], checks that each change reached the
//!    AOF and that replaying the log gives the same keyspace, and fails for a
//!    write command without an example.

pub mod command;
pub mod config;
pub mod connection;
pub mod debug;
pub mod hash;
pub mod info;
pub mod keys;
pub mod list;
pub mod persistence;
pub mod scan;
pub mod server;
pub mod set;
pub mod string;
pub mod transaction;
pub mod zset;

use crate::client::{Client, QueuedCommand};
use crate::server::Server;
use crate::util::{parse_f64, parse_i64};
use std::collections::HashMap;
use std::sync::LazyLock;

/// `WRONGTYPE` error text.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Integer parse error text.
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
/// Float parse error text.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
/// Generic syntax error text.
pub const SYNTAX: &str = "ERR syntax error";
/// Refusal of writes after a failed background save.
pub const MISCONF_RDB: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
/// Arithmetic overflow error text.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// Command flags (the names `COMMAND INFO` reports).
pub mod flags {
    /// May modify the keyspace.
    pub const WRITE: u32 = 1;
    /// Never modifies the keyspace.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory use.
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// O(1) or O(log N).
    pub const FAST: u32 = 1 << 4;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 5;
    /// Runs immediately even inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const NO_QUEUE: u32 = 1 << 6;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 7;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 8;
    /// Not allowed from scripts.
    pub const NOSCRIPT: u32 = 1 << 9;

    /// Flag names in `COMMAND INFO` order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
    ];
}

/// A command's arguments (including the name at index 0), borrowed from the
/// query buffer.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    /// Arguments given as ranges into `buf`.
    pub fn new(buf: &'a [u8], ranges: &'a [(usize, usize)]) -> Args<'a> {
        Args { buf, ranges }
    }

    /// Number of arguments including the command name.
    #[inline]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`.
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (a, b) = self.ranges[i];
        &self.buf[a..b]
    }

    /// Arguments from `i` on.
    pub fn from(&self, i: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.ranges[i.min(self.ranges.len())..].iter().map(move |&(a, b)| &buf[a..b])
    }

    /// Argument `i` lowercased as a string (for option keywords).
    pub fn lower(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).to_ascii_lowercase()
    }

    /// A self-contained copy (for MULTI queueing).
    pub fn to_owned_command(&self) -> QueuedCommand {
        let mut buf = Vec::new();
        let mut ranges = Vec::with_capacity(self.len());
        for a in self.from(0) {
            ranges.push((buf.len(), buf.len() + a.len()));
            buf.extend_from_slice(a);
        }
        QueuedCommand { buf, ranges }
    }
}

impl std::ops::Index<usize> for Args<'_> {
    type Output = [u8];
    fn index(&self, i: usize) -> &[u8] {
        self.get(i)
    }
}

/// What a write command that changed the keyspace puts in the AOF (see the
/// module header for the rule).
pub enum Log {
    /// The command as received: replaying it redoes exactly what it did.
    AsReceived,
    /// These commands instead (each a list of arguments), because replaying
    /// the command as received would not redo the same thing.
    Rewritten(Vec<Vec<Vec<u8>>>),
}

/// A handler's view: the server and the calling client.
pub struct Ctx<'a> {
    /// Shared server state.
    pub srv: &'a mut Server,
    /// The calling client (its reply buffer is `c.reply`).
    pub c: &'a mut Client,
    /// What goes to the AOF if the command changed the keyspace.
    log: Log,
}

impl Ctx<'_> {
    /// Declares that this command, if it changed the keyspace, is logged as
    /// `cmds` (each a list of arguments) instead of as received: a relative
    /// expiry as an absolute one, a random pick as what was picked, a float
    /// result as its text. Free when the AOF is off.
    pub fn log_as(&mut self, cmds: &[&[&[u8]]]) {
        if self.srv.aof.logging() {
            self.log = Log::Rewritten(cmds.iter().map(|c| c.iter().map(|a| a.to_vec()).collect()).collect());
        }
    }

    /// Parses an integer argument, replying with Redis's error if it is not one.
    pub fn int(&mut self, b: &[u8]) -> Option<i64> {
        let v = parse_i64(b);
        if v.is_none() {
            self.c.reply.error(NOT_INT);
        }
        v
    }

    /// Parses a float argument, replying with Redis's error if it is not one.
    pub fn float(&mut self, b: &[u8]) -> Option<f64> {
        let v = parse_f64(b);
        if v.is_none() {
            self.c.reply.error(NOT_FLOAT);
        }
        v
    }

    /// Replies with an error.
    pub fn err(&mut self, msg: &str) {
        self.c.reply.error(msg);
    }

    /// The selected database's number.
    #[inline]
    pub fn db(&self) -> usize {
        self.c.db
    }
}

/// A handler: parses its arguments and writes its reply.
pub type Handler = fn(&mut Ctx, &Args);

/// One entry of the command table.
pub struct Command {
    /// Lowercase name.
    pub name: &'static str,
    /// Argument count including the name; negative means "at least -arity".
    pub arity: i32,
    /// Bit set of [`flags`].
    pub flags: u32,
    /// Position of the first key (0 = none).
    pub first_key: i32,
    /// Position of the last key (-1 = the last argument).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// ACL category (`@string`, `@list`, ...), shown by COMMAND INFO.
    pub category: &'static str,
    /// The implementation.
    pub handler: Handler,
}

impl Command {
    /// True when `n` arguments satisfy the arity.
    pub fn arity_ok(&self, n: usize) -> bool {
        let n = n as i32;
        if self.arity >= 0 { n == self.arity } else { n >= -self.arity }
    }
}

/// Every command, by lowercase name.
pub static TABLE: LazyLock<HashMap<&'static str, &'static Command>> = LazyLock::new(|| {
    let families: &[&[Command]] = &[
        string::COMMANDS,
        list::COMMANDS,
        hash::COMMANDS,
        set::COMMANDS,
        zset::COMMANDS,
        keys::COMMANDS,
        server::COMMANDS,
        connection::COMMANDS,
        transaction::COMMANDS,
        persistence::COMMANDS,
    ];
    families.iter().flat_map(|f| f.iter()).map(|c| (c.name, c)).collect()
});

/// Finds a command by name, ignoring case.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    let mut lower = [0u8; 32];
    if name.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let key = std::str::from_utf8(&lower[..name.len()]).ok()?;
    TABLE.get(key).copied()
}

/// Runs one request: checks it as Redis's `processCommand` does, then queues
/// it (inside MULTI) or calls the handler.
pub fn dispatch(srv: &mut Server, c: &mut Client, args: &Args) {
    let Some(cmd) = lookup(args.get(0)) else {
        if let Some(m) = c.multi.as_mut() {
            m.failed = true;
        }
        srv.stats.error_replies += 1;
        c.reply.raw(&unknown_command(args));
        return;
    };
    if !cmd.arity_ok(args.len()) {
        reject_cmd(srv, c, cmd, &format!("ERR wrong number of arguments for '{}' command", cmd.name));
        return;
    }
    if !c.authenticated && srv.auth_required() && cmd.flags & flags::NO_AUTH == 0 {
        reject_cmd(srv, c, cmd, "NOAUTH Authentication required.");
        return;
    }
    if (cmd.flags & flags::WRITE != 0 || cmd.name == "ping")
        && let Some(e) = srv.write_error()
    {
        reject(srv, c, &e);
        return;
    }
    if cmd.flags & flags::NO_QUEUE == 0
        && let Some(m) = c.multi.as_mut()
    {
        m.queued.push(args.to_owned_command());
        c.reply.raw(b"+QUEUED\r\n");
        return;
    }
    call(srv, c, cmd, args);
}

/// Calls a command's handler and updates the counters.
pub fn call(srv: &mut Server, c: &mut Client, cmd: &'static Command, args: &Args) {
    srv.ks.now = crate::util::now_ms();
    c.last_interaction_ms = srv.ks.now;
    c.last_cmd = cmd.name;
    let (db, dirty, errors, counted) = (c.db, srv.ks.dirty(), c.reply.errors, srv.stats.error_replies);
    let mut ctx = Ctx { srv, c, log: Log::AsReceived };
    (cmd.handler)(&mut ctx, args);
    let log = ctx.log;
    srv.stats.commands_processed += 1;
    // Error replies of this command, less those nested calls (EXEC) counted already.
    let nested = srv.stats.error_replies - counted;
    srv.stats.error_replies += c.reply.errors - errors - nested;
    if srv.aof.logging() {
        crate::aof::propagate_expired(srv);
        // The rule of the module header: a write command that changed the keyspace is logged.
        if srv.ks.dirty() != dirty && cmd.flags & flags::WRITE != 0 {
            crate::aof::propagate(srv, db, args, log);
        }
    }
}

/// Rejects a command; a rejected EXEC also discards the transaction, as in Redis.
fn reject_cmd(srv: &mut Server, c: &mut Client, cmd: &Command, msg: &str) {
    if cmd.name == "exec" {
        srv.stats.error_replies += 1;
        return transaction::abort(srv, c, msg);
    }
    reject(srv, c, msg);
}

fn reject(srv: &mut Server, c: &mut Client, msg: &str) {
    if let Some(m) = c.multi.as_mut() {
        m.failed = true;
    }
    srv.stats.error_replies += 1;
    c.reply.error(msg);
}

/// Redis's "unknown command" error, byte for byte: the name and arguments are
/// printed as C strings (up to a NUL), the arguments 128 bytes in all, and
/// newlines become spaces.
fn unknown_command(args: &Args) -> Vec<u8> {
    let cstr = |b: &'_ [u8]| -> usize { b.iter().position(|&c| c == 0).unwrap_or(b.len()) };
    let name = args.get(0);
    let mut msg = b"-ERR unknown command '".to_vec();
    msg.extend_from_slice(&name[..cstr(name).min(128)]);
    msg.extend_from_slice(b"', with args beginning with: ");
    let start = msg.len();
    for a in args.from(1) {
        let used = msg.len() - start;
        if used >= 128 {
            break;
        }
        msg.push(b'\'');
        msg.extend_from_slice(&a[..cstr(a).min(128 - used)]);
        msg.extend_from_slice(b"' ");
    }
    for b in &mut msg {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    msg.extend_from_slice(b"\r\n");
    msg
}

/// Whether a `yes|no|local` setting lets this client through (`local`:
/// loopback connections and internal clients).
pub fn permitted(p: crate::config::Permit, c: &Client) -> bool {
    use crate::config::Permit;
    match p {
        Permit::Yes => true,
        Permit::No => false,
        Permit::Local => {
            c.conn.as_ref().is_none_or(|c| c.addr.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback()))
        }
    }
}

/// A collection whose members SREM and ZREM remove.
pub trait Members {
    /// The collection held by `v`, if `v` is of this type.
    fn of(v: &mut crate::value::Value) -> Option<&mut Self>;
    /// Removes `member`; whether it was there.
    fn remove_member(&mut self, member: &[u8]) -> bool;
    /// Whether no member is left.
    fn none_left(&self) -> bool;
}

/// Implements [`Members`] for collection types, each held in the named `Value` variant.
macro_rules! members_of {
    ($($variant:ident => $ty:path),*) => {$(
        impl Members for $ty {
            fn of(v: &mut crate::value::Value) -> Option<&mut Self> {
                match v {
                    crate::value::Value::$variant(x) => Some(x),
                    _ => None,
                }
            }

            fn remove_member(&mut self, member: &[u8]) -> bool {
                self.remove(member)
            }

            fn none_left(&self) -> bool {
                self.is_empty()
            }
        }
    )*};
}
members_of!(Set => crate::types::set::Set, ZSet => crate::types::zset::ZSet);

/// SREM and ZREM: removes the members `a[2..]` from the collection at `a[1]`,
/// deletes the key once it is empty, and replies with how many went.
pub fn remove_members<C: Members>(ctx: &mut Ctx, a: &Args) {
    let db = ctx.db();
    let key = a.get(1);
    let (removed, empty) = match ctx.srv.ks.write(db, key) {
        None => return ctx.c.reply.int(0),
        Some(v) => match C::of(v) {
            None => return ctx.err(WRONGTYPE),
            Some(c) => {
                let mut n = 0u64;
                for m in a.from(2) {
                    n += c.remove_member(m) as u64;
                    if c.none_left() {
                        break;
                    }
                }
                (n, c.none_left())
            }
        },
    };
    if removed > 0 {
        ctx.srv.ks.collection_changed(db, key, empty, removed);
    }
    ctx.c.reply.int(removed as i64);
}

/// Normalises a Redis range `[start, end]` (negative = from the end) over
/// `len` items; `None` when empty.
pub fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 { (len + start).max(0) } else { start };
    let e = if end < 0 { len + end } else { end.min(len - 1) };
    if s > e || s >= len || len == 0 { None } else { Some((s as usize, e as usize)) }
}

/// Shorthand for building table entries.
#[allow(clippy::too_many_arguments)]
pub const fn command(
    name: &'static str,
    arity: i32,
    flags: u32,
    first_key: i32,
    last_key: i32,
    step: i32,
    category: &'static str,
    handler: Handler,
) -> Command {
    Command { name, arity, flags, first_key, last_key, step, category, handler }
}
