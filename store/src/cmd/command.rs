//! COMMAND: introspection of the command table (COUNT, INFO, DOCS, LIST,
//! GETKEYS), enough for redis-cli's hints and for client libraries.

use super::flags::NAMES;
use super::{Args, Command, Ctx, TABLE, lookup};

/// COMMAND [COUNT | INFO name... | DOCS name... | LIST [FILTERBY ...] | GETKEYS cmd args... | HELP]
pub fn command(ctx: &mut Ctx, a: &Args) {
    if a.len() == 1 {
        let all = sorted();
        ctx.c.reply.array(all.len());
        for c in all {
            info_entry(ctx, c);
        }
        return;
    }
    let sub = a.lower(1);
    match sub.as_str() {
        "count" if a.len() == 2 => ctx.c.reply.int(TABLE.len() as i64),
        "list" => list(ctx, a),
        "info" => {
            let cmds: Vec<Option<&Command>> =
                if a.len() == 2 { sorted().into_iter().map(Some).collect() } else { a.from(2).map(lookup).collect() };
            ctx.c.reply.array(cmds.len());
            for c in cmds {
                match c {
                    Some(c) => info_entry(ctx, c),
                    None => ctx.c.reply.null(),
                }
            }
        }
        "docs" => {
            let cmds: Vec<&Command> = if a.len() == 2 { sorted() } else { a.from(2).filter_map(lookup).collect() };
            ctx.c.reply.map(cmds.len());
            for c in cmds {
                let r = &mut ctx.c.reply;
                r.bulk(c.name.as_bytes());
                r.map(3);
                r.bulk(b"summary");
                r.bulk(format!("The {} command.", c.name.to_uppercase()).as_bytes());
                r.bulk(b"since");
                r.bulk(b"1.0.0");
                r.bulk(b"group");
                r.bulk(c.category.trim_start_matches('@').as_bytes());
            }
        }
        "getkeys" if a.len() >= 3 => getkeys(ctx, a),
        "help" if a.len() == 2 => {
            let lines = [
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
                "    If no command names are given, documentation details for all",
                "    commands are returned.",
                "GETKEYS <full-command>",
                "    Return the keys from a full Redis command.",
                "HELP",
                "    Prints this help.",
            ];
            ctx.c.reply.array(lines.len());
            for l in lines {
                ctx.c.reply.simple(l);
            }
        }
        "count" | "getkeys" | "help" => ctx.err(&format!("ERR wrong number of arguments for 'command|{sub}' command")),
        _ => ctx.c.reply.error_with("ERR unknown subcommand '", &a[1], 128, "'. Try COMMAND HELP."),
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]
fn list(ctx: &mut Ctx, a: &Args) {
    let keep: Box<dyn Fn(&Command) -> bool> = match a.len() {
        2 => Box::new(|_| true),
        5 if a.lower(2) == "filterby" => {
            let arg = a[4].to_vec();
            match a.lower(3).as_str() {
                "module" => Box::new(|_| false),
                "aclcat" => {
                    let cat = String::from_utf8_lossy(&arg).to_ascii_lowercase();
                    Box::new(move |c| c.category.trim_start_matches('@') == cat)
                }
                "pattern" => Box::new(move |c| crate::glob::matches(&arg, c.name.as_bytes(), true)),
                _ => return ctx.err(super::SYNTAX),
            }
        }
        _ => return ctx.err(super::SYNTAX),
    };
    let all: Vec<&Command> = sorted().into_iter().filter(|c| keep(c)).collect();
    ctx.c.reply.array(all.len());
    for c in all {
        ctx.c.reply.bulk(c.name.as_bytes());
    }
}

/// COMMAND GETKEYS: the key arguments of a full command, from its key positions.
fn getkeys(ctx: &mut Ctx, a: &Args) {
    let Some(c) = lookup(&a[2]) else { return ctx.err("ERR Invalid command specified") };
    let n = a.len() - 2;
    if c.first_key == 0 {
        return ctx.err("ERR The command has no key arguments");
    }
    if !c.arity_ok(n) {
        return ctx.err("ERR Invalid number of arguments specified for command");
    }
    let last = if c.last_key < 0 { n as i32 + c.last_key } else { c.last_key };
    let keys: Vec<usize> =
        (c.first_key..=last).step_by(c.step.max(1) as usize).map(|i| i as usize + 2).filter(|&i| i < a.len()).collect();
    if keys.is_empty() {
        return ctx.err("ERR Invalid arguments specified for command");
    }
    ctx.c.reply.array(keys.len());
    for i in keys {
        ctx.c.reply.bulk(&a[i]);
    }
}

fn sorted() -> Vec<&'static Command> {
    let mut v: Vec<&Command> = TABLE.values().copied().collect();
    v.sort_by_key(|c| c.name);
    v
}

/// Commands that Redis 7.0 defines as containers of subcommands: COMMAND INFO
/// shows them without flags or keys (those belong to the subcommands).
const CONTAINERS: &[&str] = &["client", "config", "object"];

fn info_entry(ctx: &mut Ctx, c: &Command) {
    let container = CONTAINERS.contains(&c.name);
    let r = &mut ctx.c.reply;
    r.array(10);
    r.bulk(c.name.as_bytes());
    r.int(c.arity as i64);
    let flags: Vec<&str> = NAMES.iter().filter(|(f, _)| !container && c.flags & f != 0).map(|(_, n)| *n).collect();
    r.set(flags.len());
    for f in flags {
        r.simple(f);
    }
    let keys = if container { [0; 3] } else { [c.first_key, c.last_key, c.step] };
    for k in keys {
        r.int(k as i64);
    }
    r.set(1);
    r.simple(if container { "@slow" } else { c.category });
    r.array(0);
    r.array(0);
    r.array(0);
}
