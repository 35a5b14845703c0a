//! DEBUG: POPULATE (bulk-load test data) and SLEEP (block the server), gated
//! by `enable-debug-command` as in Redis 7.

use super::{Args, Ctx};
use crate::util::parse_i64;
use crate::value::Value;

/// DEBUG <subcommand> ...
pub fn debug(ctx: &mut Ctx, a: &Args) {
    if !allowed(ctx) {
        return ctx.err("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    }
    match a.lower(1).as_str() {
        "populate" if (3..=5).contains(&a.len()) => populate(ctx, a),
        "sleep" if a.len() == 3 => {
            // Like Redis (strtod without checks): whatever does not parse sleeps 0 s.
            let secs = leading_f64(&a[2]);
            if secs > 0.0 {
                std::thread::sleep(std::time::Duration::from_secs_f64(secs.min(1e9)));
            }
            ctx.c.reply.ok();
        }
        "help" if a.len() == 2 => {
            let lines = [
                "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "POPULATE <count> [<prefix>] [<size>]",
                "    Create <count> string keys named key:<num>. If <prefix> is specified then",
                "    it is used instead of the 'key' prefix. These are not propagated to",
                "    replicas. Cluster slots are not respected so keys not belonging to the",
                "    current node can be created in cluster mode.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
                "HELP",
                "    Prints this help.",
            ];
            ctx.c.reply.array(lines.len());
            for l in lines {
                ctx.c.reply.simple(l);
            }
        }
        _ => ctx.err(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(&a[1][..a[1].len().min(128)])
        )),
    }
}

/// The number at the start of `b`, as C's `strtod` reads it (0 when there is none).
fn leading_f64(b: &[u8]) -> f64 {
    // A number longer than 64 bytes is not worth scanning for.
    let text = String::from_utf8_lossy(&b[..b.len().min(64)]);
    let t = text.trim_start();
    (1..=t.len()).rev().filter(|&n| t.is_char_boundary(n)).find_map(|n| t[..n].parse::<f64>().ok()).unwrap_or(0.0)
}

fn allowed(ctx: &Ctx) -> bool {
    super::permitted(ctx.srv.config.enable_debug_command, ctx.c)
}

/// A non-negative integer argument, or Redis's "must be positive" error.
fn positive(ctx: &mut Ctx, b: &[u8]) -> Option<i64> {
    let v = parse_i64(b).filter(|n| *n >= 0);
    if v.is_none() {
        ctx.err("ERR value is out of range, must be positive");
    }
    v
}

/// Creates `count` keys `prefix:N` holding `value:N` (cut or zero-padded to
/// `size` when given and not 0), skipping keys that exist, like Redis's DEBUG
/// POPULATE. Like Redis it does not count as changes for save points.
fn populate(ctx: &mut Ctx, a: &Args) {
    let Some(count) = positive(ctx, &a[2]) else { return };
    let size = if a.len() == 5 {
        let Some(s) = positive(ctx, &a[4]) else { return };
        usize::try_from(s).ok().filter(|s| *s > 0)
    } else {
        None
    };
    if let Some(s) = size
        && s > ctx.srv.config.proto_max_bulk_len as usize
    {
        return ctx.err("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let prefix: &[u8] = if a.len() >= 4 { &a[3] } else { b"key" };
    let db = ctx.db();
    let mut key = Vec::with_capacity(prefix.len() + 21);
    let mut val = Vec::new();
    for i in 0..count {
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        crate::util::push_i64(&mut key, i);
        // Redis formats the key into a 128-byte buffer.
        key.truncate(KEY_BUF - 1);
        if ctx.srv.ks.exists(db, &key) {
            continue;
        }
        val.clear();
        val.extend_from_slice(b"value:");
        crate::util::push_i64(&mut val, i);
        if let Some(s) = size {
            val.resize(s, 0);
        }
        ctx.srv.ks.dbs[db].dict.insert_new(crate::sbytes::SBytes::new(&key), Value::string_no_int(&val));
        ctx.srv.ks.changed(db, &key, 0);
    }
    ctx.c.reply.ok();
}

/// Size of the buffer Redis's DEBUG POPULATE formats keys into.
const KEY_BUF: usize = 128;
