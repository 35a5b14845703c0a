//! Transactions: MULTI queues commands, EXEC runs them back to back (nothing
//! else runs in between: there is one thread), WATCH makes EXEC fail if a
//! watched key changed since.

use super::flags::*;
use super::{Args, Command, Ctx, call, command, lookup};
use crate::client::{Client, Multi};
use crate::server::Server;

/// The transaction command table.
pub const COMMANDS: &[Command] = &[
    command("multi", 1, NO_QUEUE | FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@transaction", multi),
    command("exec", 1, NO_QUEUE | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@transaction", exec),
    command("discard", 1, NO_QUEUE | FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@transaction", discard),
    command("watch", -2, NO_QUEUE | FAST | LOADING | STALE | NOSCRIPT, 1, -1, 1, "@transaction", watch),
    command("unwatch", 1, FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@transaction", unwatch),
];

fn multi(ctx: &mut Ctx, _a: &Args) {
    if ctx.c.multi.is_some() {
        return ctx.err("ERR MULTI calls can not be nested");
    }
    ctx.c.multi = Some(Multi::default());
    ctx.c.reply.ok();
}

fn exec(ctx: &mut Ctx, _a: &Args) {
    let Some(m) = ctx.c.multi.take() else {
        return ctx.err("ERR EXEC without MULTI");
    };
    let id = ctx.c.id;
    if m.failed {
        ctx.srv.ks.unwatch_all(id);
        return ctx.err("EXECABORT Transaction discarded because of previous errors.");
    }
    if ctx.srv.ks.watch_invalidated(id) {
        ctx.srv.ks.unwatch_all(id);
        return ctx.c.reply.null_array();
    }
    ctx.srv.ks.unwatch_all(id);
    ctx.c.reply.array(m.queued.len());
    ctx.srv.aof.exec_begin();
    for q in &m.queued {
        let args = Args::new(&q.buf, &q.ranges);
        let cmd = lookup(args.get(0)).expect("checked when queued");
        call(ctx.srv, ctx.c, cmd, &args);
    }
    ctx.srv.aof.exec_end();
}

/// Answers an EXEC that was rejected before running (wrong arity, NOAUTH):
/// like Redis, the transaction is discarded and the reply says why.
pub fn abort(srv: &mut Server, c: &mut Client, msg: &str) {
    c.multi = None;
    srv.ks.unwatch_all(c.id);
    let why = msg.strip_prefix("ERR ").unwrap_or(msg);
    c.reply.error(&format!("EXECABORT Transaction discarded because of: {why}"));
}

fn discard(ctx: &mut Ctx, _a: &Args) {
    if ctx.c.multi.take().is_none() {
        return ctx.err("ERR DISCARD without MULTI");
    }
    ctx.srv.ks.unwatch_all(ctx.c.id);
    ctx.c.reply.ok();
}

fn watch(ctx: &mut Ctx, a: &Args) {
    if ctx.c.multi.is_some() {
        return ctx.err("ERR WATCH inside MULTI is not allowed");
    }
    let db = ctx.db();
    for key in a.from(1) {
        ctx.srv.ks.watch(ctx.c.id, db, key);
    }
    ctx.c.reply.ok();
}

fn unwatch(ctx: &mut Ctx, _a: &Args) {
    ctx.srv.ks.unwatch_all(ctx.c.id);
    ctx.c.reply.ok();
}
