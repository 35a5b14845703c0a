//! Persistence commands: SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF, DURABILITY.

use super::flags::*;
use super::{Args, Command, Ctx, command};
use crate::snapshot;

/// The persistence command table.
pub const COMMANDS: &[Command] = &[
    command("save", 1, ADMIN | NOSCRIPT, 0, 0, 0, "@admin", save),
    command("bgsave", -1, ADMIN | NOSCRIPT, 0, 0, 0, "@admin", bgsave),
    command("lastsave", 1, LOADING | STALE | FAST, 0, 0, 0, "@admin", lastsave),
    command("bgrewriteaof", 1, ADMIN | NOSCRIPT, 0, 0, 0, "@admin", bgrewriteaof),
    command("durability", -1, LOADING | STALE, 0, 0, 0, "@admin", durability),
];

fn save(ctx: &mut Ctx, _a: &Args) {
    match snapshot::save(ctx.srv) {
        Ok(()) => ctx.c.reply.ok(),
        Err(e) => ctx.err(&e),
    }
}

fn bgsave(ctx: &mut Ctx, a: &Args) {
    let schedule = match a.len() {
        1 => false,
        2 if a.lower(1) == "schedule" => true,
        _ => return ctx.err(super::SYNTAX),
    };
    if let Some(c) = &ctx.srv.child
        && schedule
        && c.kind != crate::fork::ChildKind::Rdb
    {
        ctx.srv.rdb.scheduled = true;
        return ctx.c.reply.simple("Background saving scheduled");
    }
    match snapshot::bgsave(ctx.srv) {
        Ok(()) => ctx.c.reply.simple("Background saving started"),
        Err(e) => ctx.err(&e),
    }
}

fn lastsave(ctx: &mut Ctx, _a: &Args) {
    ctx.c.reply.int(ctx.srv.rdb.lastsave);
}

fn bgrewriteaof(ctx: &mut Ctx, _a: &Args) {
    use crate::aof::rewrite::{Started, start};
    match start(ctx.srv) {
        Ok(Started::Now) => ctx.c.reply.simple("Background append only file rewriting started"),
        Ok(Started::Scheduled) => ctx.c.reply.simple("Background append only file rewriting scheduled"),
        Err(e) => ctx.err(&e),
    }
}

/// DURABILITY [RESET]: the ack-to-durable exposure of acknowledged writes per
/// fsync policy (counts, percentiles in µs, log2 buckets). RESET starts the
/// counts afresh: writes acknowledged before it are left out of them.
fn durability(ctx: &mut Ctx, a: &Args) {
    match a.len() {
        1 => ctx.srv.aof.durability.reply(&mut ctx.c.reply),
        2 if a.lower(1) == "reset" => {
            ctx.srv.aof.durability.reset();
            ctx.c.reply.ok();
        }
        _ => ctx.err(super::SYNTAX),
    }
}
