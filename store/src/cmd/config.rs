//! CONFIG GET / SET / RESETSTAT / HELP over the option table in `config.rs`.

use super::{Args, Ctx, SYNTAX};
use crate::config::{OPTIONS, OptionDef, find};
use crate::glob;

/// CONFIG <subcommand> ...
pub fn config(ctx: &mut Ctx, a: &Args) {
    let sub = a.lower(1);
    match sub.as_str() {
        "get" if a.len() >= 3 => get(ctx, a),
        "set" if a.len() >= 4 => set(ctx, a),
        "resetstat" if a.len() == 2 => {
            let peak = crate::memory::allocated();
            ctx.srv.stats = Default::default();
            ctx.srv.stats.peak_memory = peak;
            ctx.srv.ks.stats = Default::default();
            ctx.c.reply.ok();
        }
        "help" if a.len() == 2 => {
            let lines = [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "HELP",
                "    Prints this help.",
            ];
            ctx.c.reply.array(lines.len());
            for l in lines {
                ctx.c.reply.simple(l);
            }
        }
        "get" | "set" | "resetstat" | "help" => {
            ctx.err(&format!("ERR wrong number of arguments for 'config|{sub}' command"))
        }
        _ => ctx.c.reply.error_with("ERR unknown subcommand '", &a[1], 128, "'. Try CONFIG HELP."),
    }
}

/// The name a user's spelling refers to: the option's canonical name or the
/// alias typed (Redis registers aliases as configs of their own), lowercase.
fn entry_name(o: &OptionDef, typed: &str) -> &'static str {
    o.aliases.iter().copied().find(|al| al.eq_ignore_ascii_case(typed)).unwrap_or(o.name)
}

/// Like Redis: a name without glob characters is looked up directly and
/// echoed as typed; a pattern matches canonical names and aliases alike.
fn get(ctx: &mut Ctx, a: &Args) {
    let mut pairs: Vec<(String, &OptionDef)> = Vec::new();
    let seen = |pairs: &[(String, &OptionDef)], n: &str| pairs.iter().any(|(p, _)| p.eq_ignore_ascii_case(n));
    for pat in a.from(2) {
        let typed = String::from_utf8_lossy(pat);
        if !pat.iter().any(|c| matches!(c, b'[' | b'*' | b'?')) {
            if let Some(o) = find(&typed)
                && !seen(&pairs, &typed)
            {
                pairs.push((typed.into_owned(), o));
            }
            continue;
        }
        for o in OPTIONS {
            for name in std::iter::once(o.name).chain(o.aliases.iter().copied()) {
                if !seen(&pairs, name) && glob::matches(pat, name.as_bytes(), true) {
                    pairs.push((name.to_string(), o));
                }
            }
        }
    }
    ctx.c.reply.map(pairs.len());
    for (n, o) in pairs {
        ctx.c.reply.bulk(n.as_bytes());
        ctx.c.reply.bulk(o.get(&ctx.srv.config).as_bytes());
    }
}

/// Applies every pair or none, checking as Redis does: first every name
/// (unknown, immutable, repeated), then every value on a copy of the config.
fn set(ctx: &mut Ctx, a: &Args) {
    if !a.len().is_multiple_of(2) {
        return ctx.err(SYNTAX);
    }
    let mut chosen: Vec<(&OptionDef, &'static str, String)> = Vec::new();
    for i in (2..a.len()).step_by(2) {
        let typed = String::from_utf8_lossy(&a[i]).into_owned();
        let Some(opt) = find(&typed) else {
            return ctx.err(&format!("ERR Unknown option or number of arguments for CONFIG SET - '{typed}'"));
        };
        let entry = entry_name(opt, &typed);
        let problem = if chosen.iter().any(|(_, e, _)| *e == entry) {
            Some("duplicate parameter")
        } else if !opt.mutable {
            Some("can't set immutable config")
        } else if crate::config::PROTECTED.contains(&opt.name)
            && !super::permitted(ctx.srv.config.enable_protected_configs, ctx.c)
        {
            Some("can't set protected config")
        } else {
            None
        };
        if let Some(p) = problem {
            return ctx.err(&format!("ERR CONFIG SET failed (possibly related to argument '{typed}') - {p}"));
        }
        chosen.push((opt, entry, String::from_utf8_lossy(&a[i + 1]).into_owned()));
    }
    let mut next = ctx.srv.config.clone();
    for (opt, entry, value) in &chosen {
        let words: Vec<String> = if opt.name == "save" {
            value.split_whitespace().map(str::to_string).collect()
        } else {
            vec![value.clone()]
        };
        if let Err(e) = opt.set(&mut next, &words) {
            return ctx.err(&format!("ERR CONFIG SET failed (possibly related to argument '{entry}') - {e}"));
        }
    }
    let changed: Vec<&str> = chosen.iter().map(|(o, _, _)| o.name).collect();
    if let Err(e) = crate::server::apply_config(ctx.srv, next, &changed) {
        return ctx.err(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - {e}", changed[0]));
    }
    ctx.c.reply.ok();
}
