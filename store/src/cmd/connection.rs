//! Connection commands: PING, ECHO, SELECT, AUTH, HELLO, QUIT, RESET, CLIENT.

use super::flags::*;
use super::keys::db_index;
use super::{Args, Command, Ctx, command};

/// The connection command table.
pub const COMMANDS: &[Command] = &[
    command("ping", -1, FAST, 0, 0, 0, "@connection", ping),
    command("echo", 2, FAST | LOADING | STALE, 0, 0, 0, "@connection", echo),
    command("select", 2, FAST | LOADING | STALE, 0, 0, 0, "@connection", select),
    command("auth", -2, NO_AUTH | FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@connection", auth),
    command("hello", -1, NO_AUTH | FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@connection", hello),
    command("quit", -1, NO_AUTH | NO_QUEUE | FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@connection", quit),
    command("reset", 1, NO_AUTH | NO_QUEUE | FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@connection", reset),
    command("client", -2, ADMIN | LOADING | STALE | NOSCRIPT, 0, 0, 0, "@connection", client),
];

fn ping(ctx: &mut Ctx, a: &Args) {
    match a.len() {
        1 => ctx.c.reply.raw(b"+PONG\r\n"),
        2 => ctx.c.reply.bulk(&a[1]),
        _ => ctx.err("ERR wrong number of arguments for 'ping' command"),
    }
}

fn echo(ctx: &mut Ctx, a: &Args) {
    ctx.c.reply.bulk(&a[1]);
}

fn select(ctx: &mut Ctx, a: &Args) {
    if let Some(db) = db_index(ctx, &a[1]) {
        ctx.c.db = db;
        ctx.c.reply.ok();
    }
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Checks `user`/`pass` against `requirepass` (only the `default` user exists).
fn check_password(ctx: &Ctx, user: &[u8], pass: &[u8]) -> bool {
    user == b"default" && (ctx.srv.config.requirepass.is_empty() || pass == ctx.srv.config.requirepass.as_bytes())
}

fn auth(ctx: &mut Ctx, a: &Args) {
    if a.len() > 3 {
        return ctx.err(super::SYNTAX);
    }
    let (user, pass): (&[u8], &[u8]) = if a.len() == 3 { (&a[1], &a[2]) } else { (b"default", &a[1]) };
    if a.len() == 2 && !ctx.srv.auth_required() {
        return ctx.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    if check_password(ctx, user, pass) {
        ctx.c.authenticated = true;
        ctx.c.reply.ok();
    } else {
        ctx.err(WRONGPASS);
    }
}

fn hello(ctx: &mut Ctx, a: &Args) {
    let mut proto = if ctx.c.reply.resp3 { 3 } else { 2 };
    let mut i = 1;
    if a.len() >= 2 {
        match crate::util::parse_i64(&a[1]) {
            Some(v @ 2..=3) => proto = v,
            Some(_) => return ctx.err("NOPROTO unsupported protocol version"),
            None => return ctx.err("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut name = None;
    let mut creds = None;
    while i < a.len() {
        match a.lower(i).as_str() {
            "auth" if i + 2 < a.len() => {
                creds = Some((a[i + 1].to_vec(), a[i + 2].to_vec()));
                i += 3;
            }
            "setname" if i + 1 < a.len() => {
                name = Some(a[i + 1].to_vec());
                i += 2;
            }
            _ => return ctx.c.reply.error_with("ERR Syntax error in HELLO option '", &a[i], usize::MAX, "'"),
        }
    }
    if let Some((user, pass)) = creds {
        if !check_password(ctx, &user, &pass) {
            return ctx.err(WRONGPASS);
        }
        ctx.c.authenticated = true;
    }
    if !ctx.c.authenticated && ctx.srv.auth_required() {
        return ctx.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = name {
        if !valid_client_name(&n) {
            return ctx.err(BAD_NAME);
        }
        ctx.c.name = Some(n).filter(|n| !n.is_empty());
    }
    ctx.c.reply.resp3 = proto == 3;
    let id = ctx.c.id as i64;
    let r = &mut ctx.c.reply;
    r.map(7);
    r.bulk(b"server");
    r.bulk(b"redis");
    r.bulk(b"version");
    r.bulk(crate::REDIS_VERSION.as_bytes());
    r.bulk(b"proto");
    r.int(proto);
    r.bulk(b"id");
    r.int(id);
    r.bulk(b"mode");
    r.bulk(b"standalone");
    r.bulk(b"role");
    r.bulk(b"master");
    r.bulk(b"modules");
    r.array(0);
}

fn quit(ctx: &mut Ctx, _a: &Args) {
    ctx.c.reply.ok();
    ctx.c.close_after_reply = true;
}

fn reset(ctx: &mut Ctx, _a: &Args) {
    ctx.c.multi = None;
    ctx.srv.ks.unwatch_all(ctx.c.id);
    ctx.c.db = 0;
    ctx.c.reply.resp3 = false;
    ctx.c.name = None;
    ctx.c.authenticated = !ctx.srv.auth_required();
    ctx.c.reply.simple("RESET");
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn valid_client_name(n: &[u8]) -> bool {
    n.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn client(ctx: &mut Ctx, a: &Args) {
    let sub = a.lower(1);
    let arity_err = |ctx: &mut Ctx| ctx.err(&format!("ERR wrong number of arguments for 'client|{sub}' command"));
    match sub.as_str() {
        "id" if a.len() == 2 => ctx.c.reply.int(ctx.c.id as i64),
        "getname" if a.len() == 2 => match &ctx.c.name {
            Some(n) => ctx.c.reply.bulk(&n.clone()),
            None => ctx.c.reply.null(),
        },
        "setname" if a.len() == 3 => {
            if !valid_client_name(&a[2]) {
                return ctx.err(BAD_NAME);
            }
            ctx.c.name = Some(a[2].to_vec()).filter(|n| !n.is_empty());
            ctx.c.reply.ok();
        }
        "setinfo" if a.len() == 4 => {
            let v = a[3].to_vec();
            if !valid_client_name(&v) && !v.is_empty() {
                return ctx.err("ERR lib-name or lib-ver cannot contain spaces, newlines or special characters.");
            }
            match a.lower(2).as_str() {
                "lib-name" => ctx.c.lib_name = Some(v),
                "lib-ver" => ctx.c.lib_ver = Some(v),
                _ => return ctx.err(&format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(&a[2]))),
            }
            ctx.c.reply.ok();
        }
        "info" if a.len() == 2 => {
            let line = ctx.c.info_line(ctx.srv.ks.now) + "\n";
            ctx.c.reply.verbatim(line.as_bytes());
        }
        "list" => {
            let mut ids: Option<Vec<u64>> = None;
            let mut i = 2;
            while i < a.len() {
                match a.lower(i).as_str() {
                    "type" if i + 1 < a.len() => {
                        let t = a.lower(i + 1);
                        if !matches!(t.as_str(), "normal" | "master" | "replica" | "slave" | "pubsub") {
                            let typed = String::from_utf8_lossy(&a[i + 1]);
                            return ctx.err(&format!("ERR Unknown client type '{typed}'"));
                        }
                        if t != "normal" {
                            ids = Some(vec![]);
                        }
                        i += 2;
                    }
                    "id" if i + 1 < a.len() => {
                        let mut v = Vec::new();
                        for arg in a.from(i + 1) {
                            // Any integer is accepted; ids no client has match nothing.
                            match crate::util::parse_i64(arg) {
                                Some(n) => v.extend(u64::try_from(n).ok()),
                                None => return ctx.err("ERR Invalid client ID"),
                            }
                        }
                        ids = Some(v);
                        i = a.len();
                    }
                    _ => return ctx.err(super::SYNTAX),
                }
            }
            let now = ctx.srv.ks.now;
            let mut lines: Vec<(u64, String)> = ctx.srv.clients.iter().map(|(_, c)| (c.id, c.info_line(now))).collect();
            lines.push((ctx.c.id, ctx.c.info_line(now)));
            lines.sort_by_key(|(id, _)| *id);
            let mut out = String::new();
            for (id, l) in lines {
                if ids.as_ref().is_none_or(|v| v.contains(&id)) {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
            ctx.c.reply.verbatim(out.as_bytes());
        }
        "no-evict" | "no-touch" if a.len() == 3 => match a.lower(2).as_str() {
            "on" | "off" => ctx.c.reply.ok(),
            _ => ctx.err(super::SYNTAX),
        },
        "help" if a.len() == 2 => {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "LIST [options ...]",
                "    Return information about client connections. Options:",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Return clients of specified type.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "    Set client meta attributes.",
                "HELP",
                "    Prints this help.",
            ];
            ctx.c.reply.array(lines.len());
            for l in lines {
                ctx.c.reply.simple(l);
            }
        }
        "id" | "getname" | "setname" | "setinfo" | "info" | "no-evict" | "no-touch" | "help" => arity_err(ctx),
        _ => ctx.c.reply.error_with("ERR unknown subcommand '", &a[1], 128, "'. Try CLIENT HELP."),
    }
}
