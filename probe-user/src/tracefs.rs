//! Tracefs: finding (or mounting) it, and reading tracepoint field layouts from
//! the running kernel's `events/*/format` files.

use anyhow::{Context, Result, bail};
use probe_ebpf::{Field, Layout};
use std::path::{Path, PathBuf};

/// Where tracefs lives on current kernels.
const TRACEFS: &str = "/sys/kernel/tracing";
/// The old place, under debugfs.
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// The tracefs root, mounting it at `/sys/kernel/tracing` if it is not mounted.
pub fn root() -> Result<PathBuf> {
    for dir in [TRACEFS, DEBUGFS_TRACING] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    let mounted =
        nix::mount::mount(Some("nodev"), TRACEFS, Some("tracefs"), nix::mount::MsFlags::empty(), None::<&str>);
    match mounted {
        Ok(()) if Path::new(TRACEFS).join("events").is_dir() => Ok(PathBuf::from(TRACEFS)),
        _ => bail!("tracefs is not mounted and could not be mounted: run `mount -t tracefs nodev {TRACEFS}`"),
    }
}

/// One tracepoint's `format` file, reduced to its fields.
struct Format {
    name: String,
    fields: Vec<(String, Field)>,
    text: String,
}

impl Format {
    fn read(root: &Path, category: &str, name: &str) -> Result<Format> {
        let path = root.join("events").join(category).join(name).join("format");
        let text = std::fs::read_to_string(&path).map_err(|_| {
            anyhow::anyhow!(
                "tracepoint {category}:{name} is missing ({} not readable): \
                 this kernel lacks it or tracefs is incomplete",
                path.display()
            )
        })?;
        Ok(Format { name: format!("{category}:{name}"), fields: parse(&text), text })
    }

    fn field(&self, name: &str) -> Result<Field> {
        self.optional(name).with_context(|| format!("tracepoint {} has no field `{name}`", self.name))
    }

    fn optional(&self, name: &str) -> Option<Field> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, f)| *f)
    }
}

/// Parses `field:TYPE NAME; offset:N; size:N; signed:N;` lines.
fn parse(text: &str) -> Vec<(String, Field)> {
    text.lines()
        .filter_map(|line| {
            let mut decl = None;
            let (mut offset, mut size) = (None, None);
            for part in line.trim().split(';') {
                let part = part.trim();
                if let Some(d) = part.strip_prefix("field:") {
                    decl = Some(d);
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse::<u16>().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse::<u16>().ok();
                }
            }
            let name = decl?.split_whitespace().last()?;
            let name = name.split('[').next()?.to_string();
            Some((name, Field { offset: offset?, size: size? }))
        })
        .collect()
}

/// The `__GFP_ZERO` bit as `mm_page_alloc`'s print format spells it: either
/// `(1UL) << (8)` (current kernels) or `0x100u` (older ones) in the
/// `{value, "__GFP_ZERO"}` entry; 0 if the format does not say.
fn gfp_zero(text: &str) -> u32 {
    let Some(end) = text.find(r#""__GFP_ZERO"}"#) else {
        return 0;
    };
    let entry = &text[text[..end].rfind('{').map_or(0, |i| i + 1)..end];
    let digits = |s: &str| -> String { s.chars().take_while(char::is_ascii_hexdigit).collect() };
    if let Some(i) = entry.rfind("<<") {
        let shift = digits(entry[i + 2..].trim_start_matches([' ', '(']));
        return shift.parse::<u32>().ok().filter(|&b| b < 32).map_or(0, |b| 1 << b);
    }
    entry.find("0x").and_then(|i| u32::from_str_radix(&digits(&entry[i + 2..]), 16).ok()).unwrap_or(0)
}

/// Field of one of several tracepoints that must all place it the same way.
fn same_field(root: &Path, events: &[(&str, &str)], field: &str) -> Result<Field> {
    let mut found: Option<Field> = None;
    for (category, name) in events {
        let f = Format::read(root, category, name)?.field(field)?;
        match found {
            Some(prev) if prev != f => {
                bail!("field `{field}` differs between tracepoints {events:?}")
            }
            _ => found = Some(f),
        }
    }
    found.context("no tracepoints given")
}

/// The fault tracepoints, read by one program body.
const FAULTS: &[(&str, &str)] = &[("exceptions", "page_fault_user"), ("exceptions", "page_fault_kernel")];

/// Reads the layout of every field the programs use.
pub fn layout(root: &Path) -> Result<Layout> {
    let alloc = Format::read(root, "kmem", "mm_page_alloc")?;
    let gfp_zero = gfp_zero(&alloc.text);
    if gfp_zero == 0 {
        log::warn!("no __GFP_ZERO in kmem:mm_page_alloc's format: zero-page fills count as copies");
    }
    let tlb = Format::read(root, "tlb", "tlb_flush")?;
    let fork = Format::read(root, "sched", "sched_process_fork")?;
    let exit = Format::read(root, "sched", "sched_process_exit")?;
    let signal = Format::read(root, "signal", "signal_deliver")?;
    let sc = "syscalls";
    Ok(Layout {
        fault_address: same_field(root, FAULTS, "address")?,
        fault_error_code: same_field(root, FAULTS, "error_code")?,
        alloc_order: alloc.field("order")?,
        alloc_migratetype: alloc.field("migratetype")?,
        alloc_gfp_flags: alloc.field("gfp_flags")?,
        tlb_reason: tlb.field("reason")?,
        tlb_pages: tlb.field("pages")?,
        fork_child_pid: fork.field("child_pid")?,
        exit_group_dead: exit.optional("group_dead").unwrap_or(Field::ABSENT),
        exit_group_code: Format::read(root, sc, "sys_enter_exit_group")?.field("error_code")?,
        clone_flags: Format::read(root, sc, "sys_enter_clone")?.field("clone_flags")?,
        clone3_args: Format::read(root, sc, "sys_enter_clone3")?.field("uargs")?,
        sys_fd: same_field(
            root,
            &[
                (sc, "sys_enter_fsync"),
                (sc, "sys_enter_fdatasync"),
                (sc, "sys_enter_sync_file_range"),
                (sc, "sys_enter_write"),
                (sc, "sys_enter_close"),
            ],
            "fd",
        )?,
        sys_ret: same_field(
            root,
            &[
                (sc, "sys_exit_clone"),
                (sc, "sys_exit_clone3"),
                (sc, "sys_exit_fork"),
                (sc, "sys_exit_vfork"),
                (sc, "sys_exit_fsync"),
                (sc, "sys_exit_fdatasync"),
                (sc, "sys_exit_sync_file_range"),
                (sc, "sys_exit_write"),
            ],
            "ret",
        )?,
        free_pid: Format::read(root, "sched", "sched_process_free")?.field("pid")?,
        signal_sig: signal.field("sig")?,
        signal_handler: signal.field("sa_handler")?,
        gfp_zero,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_data_loc() {
        let text = "name: sched_process_fork\nID: 1\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
            \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n\
            \tfield:char comm[16];\toffset:24;\tsize:16;\tsigned:0;\n\nprint fmt: \"x\"\n";
        let fields = parse(text);
        let get = |n: &str| fields.iter().find(|(f, _)| f == n).map(|(_, f)| *f);
        assert_eq!(get("child_pid"), Some(Field { offset: 20, size: 4 }));
        assert_eq!(get("parent_comm"), Some(Field { offset: 8, size: 4 }));
        assert_eq!(get("comm"), Some(Field { offset: 24, size: 16 }));
        assert_eq!(fields.len(), 4);
    }

    #[test]
    fn finds_the_gfp_zero_bit_in_both_spellings() {
        let new = r#"{( unsigned long)(( gfp_t)((((1UL))) << (7))), "__GFP_FS"}, {( unsigned long)(( gfp_t)((((1UL))) << (8))), "__GFP_ZERO"}, {( unsigned long)(( gfp_t)((((1UL))) << (23))), "__GFP_ZEROTAGS"}"#;
        assert_eq!(gfp_zero(new), 0x100);
        let old = r#"{(unsigned long)((__force gfp_t)0x80u), "__GFP_FS"}, {(unsigned long)((__force gfp_t)0x8000u), "__GFP_ZERO"}"#;
        assert_eq!(gfp_zero(old), 0x8000);
        assert_eq!(gfp_zero("print fmt: \"x\""), 0);
    }
}
