//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, SHUTDOWN.

use super::flags::*;
use super::{Args, Command, Ctx, SYNTAX, command};
use crate::server::ShutdownSave;

/// The server command table (INFO, CONFIG, COMMAND and DEBUG have their own modules).
pub const COMMANDS: &[Command] = &[
    command("dbsize", 1, READONLY | FAST, 0, 0, 0, "@keyspace", dbsize),
    command("flushdb", -1, WRITE, 0, 0, 0, "@keyspace", flushdb),
    command("flushall", -1, WRITE, 0, 0, 0, "@keyspace", flushall),
    command("swapdb", 3, WRITE | FAST, 0, 0, 0, "@keyspace", swapdb),
    command("time", 1, LOADING | STALE | FAST, 0, 0, 0, "@fast", time),
    command("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_QUEUE, 0, 0, 0, "@admin", shutdown),
    command("info", -1, LOADING | STALE, 0, 0, 0, "@dangerous", super::info::info),
    command("config", -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "@admin", super::config::config),
    command("command", -1, LOADING | STALE, 0, 0, 0, "@connection", super::command::command),
    command("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "@admin", super::debug::debug),
];

fn dbsize(ctx: &mut Ctx, _a: &Args) {
    let n = ctx.srv.ks.dbs[ctx.db()].dict.len();
    ctx.c.reply.int(n as i64);
}

/// Checks the optional `ASYNC | SYNC` argument of the flush commands.
fn flush_mode_ok(ctx: &mut Ctx, a: &Args) -> bool {
    match a.len() {
        1 => true,
        2 if matches!(a.lower(1).as_str(), "async" | "sync") => true,
        _ => {
            ctx.err(SYNTAX);
            false
        }
    }
}

fn flushdb(ctx: &mut Ctx, a: &Args) {
    if flush_mode_ok(ctx, a) {
        ctx.srv.ks.flush_db(ctx.db());
        ctx.c.reply.ok();
    }
}

fn flushall(ctx: &mut Ctx, a: &Args) {
    if flush_mode_ok(ctx, a) {
        ctx.srv.ks.flush_all();
        ctx.c.reply.ok();
    }
}

fn swapdb(ctx: &mut Ctx, a: &Args) {
    let n = ctx.srv.ks.dbs.len() as i64;
    // Indexes are C ints in Redis: anything else is "invalid", not "out of range".
    let int = |b: &[u8]| crate::util::parse_i64(b).filter(|v| i32::try_from(*v).is_ok());
    let Some(x) = int(&a[1]) else { return ctx.err("ERR invalid first DB index") };
    let Some(y) = int(&a[2]) else { return ctx.err("ERR invalid second DB index") };
    if x < 0 || x >= n || y < 0 || y >= n {
        return ctx.err("ERR DB index is out of range");
    }
    ctx.srv.ks.swap_db(x as usize, y as usize);
    ctx.c.reply.ok();
}

fn time(ctx: &mut Ctx, _a: &Args) {
    let us = crate::util::now_us();
    ctx.c.reply.array(2);
    ctx.c.reply.bulk((us / 1_000_000).to_string().as_bytes());
    ctx.c.reply.bulk((us % 1_000_000).to_string().as_bytes());
}

fn shutdown(ctx: &mut Ctx, a: &Args) {
    // SHUTDOWN is not queued; inside MULTI it is refused and fails the
    // transaction, as Redis does for its `no_multi` commands.
    if let Some(m) = ctx.c.multi.as_mut() {
        m.failed = true;
        return ctx.err("ERR Command not allowed inside a transaction");
    }
    let (mut nosave, mut save, mut now, mut force, mut abort) = (false, false, false, false, false);
    for i in 1..a.len() {
        match a.lower(i).as_str() {
            "nosave" => nosave = true,
            "save" => save = true,
            "now" => now = true,
            "force" => force = true,
            "abort" => abort = true,
            _ => return ctx.err(SYNTAX),
        }
    }
    if (nosave && save) || (abort && (nosave || save || now || force)) {
        return ctx.err(SYNTAX);
    }
    if abort {
        return ctx.err("ERR No shutdown in progress.");
    }
    let mode = match (nosave, save) {
        (true, _) => ShutdownSave::NoSave,
        (_, true) => ShutdownSave::Save,
        _ => ShutdownSave::Default,
    };
    if let Err(e) = crate::snapshot::prepare_shutdown(ctx.srv, mode)
        && !force
    {
        return ctx.err(&e);
    }
    ctx.srv.shutdown = Some(mode);
}
