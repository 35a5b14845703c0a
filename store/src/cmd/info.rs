//! INFO: the server's state as `field:value` lines in `# Section` groups,
//! with Redis's section and field names so existing tools can read it.

use super::{Args, Ctx};
use crate::server::Server;
use std::fmt::Write;

/// Sections INFO prints with no argument (or `default`).
const DEFAULT: &[&str] =
    &["server", "clients", "memory", "persistence", "durability", "stats", "replication", "cpu", "keyspace"];

/// INFO [section ...]
pub fn info(ctx: &mut Ctx, a: &Args) {
    let mut wanted: Vec<String> = a.from(1).map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()).collect();
    if wanted.is_empty() || wanted.iter().any(|s| s == "default" || s == "all" || s == "everything") {
        wanted = DEFAULT.iter().map(|s| s.to_string()).collect();
    }
    let text = render(ctx.srv, ctx.c.id, &wanted);
    ctx.c.reply.verbatim(text.as_bytes());
}

/// Renders the requested sections.
pub fn render(srv: &Server, _caller: u64, sections: &[String]) -> String {
    let mut out = String::new();
    for name in DEFAULT {
        if !sections.iter().any(|s| s == name) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let title = format!("{}{}", name[..1].to_ascii_uppercase(), &name[1..]);
        let _ = write!(out, "# {title}\r\n");
        match *name {
            "server" => server(srv, &mut out),
            "clients" => clients(srv, &mut out),
            "memory" => memory(srv, &mut out),
            "persistence" => persistence(srv, &mut out),
            "durability" => srv.aof.durability.info(srv.config.appendfsync, crate::util::now_us(), &mut out),
            "stats" => stats(srv, &mut out),
            "replication" => replication(srv, &mut out),
            "cpu" => cpu(&mut out),
            "keyspace" => keyspace(srv, &mut out),
            _ => {}
        }
    }
    out
}

macro_rules! field {
    ($out:expr, $name:expr, $val:expr) => {
        let _ = write!($out, "{}:{}\r\n", $name, $val);
    };
}

fn server(srv: &Server, out: &mut String) {
    let uts = nix::sys::utsname::uname().ok();
    let os = uts.map_or_else(String::new, |u| {
        format!("{} {} {}", u.sysname().to_string_lossy(), u.release().to_string_lossy(), u.machine().to_string_lossy())
    });
    let uptime = srv.started.elapsed().as_secs();
    field!(out, "redis_version", crate::REDIS_VERSION);
    field!(out, "redis_git_sha1", "00000000");
    field!(out, "redis_git_dirty", 0);
    field!(out, "redis_build_id", "0");
    field!(out, "redis_mode", "standalone");
    field!(out, "cowstore_version", env!("CARGO_PKG_VERSION"));
    field!(out, "os", os);
    field!(out, "arch_bits", 64);
    field!(out, "monotonic_clock", "POSIX clock_gettime");
    field!(out, "multiplexing_api", "epoll");
    field!(out, "process_id", std::process::id());
    field!(out, "process_supervised", "no");
    field!(out, "run_id", srv.run_id);
    field!(out, "tcp_port", srv.tcp_port);
    field!(out, "server_time_usec", crate::util::now_us());
    field!(out, "uptime_in_seconds", uptime);
    field!(out, "uptime_in_days", uptime / 86400);
    field!(out, "hz", srv.config.hz);
    field!(out, "configured_hz", srv.config.hz);
    field!(out, "executable", std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default());
    field!(out, "config_file", srv.config.config_file);
    field!(out, "io_threads_active", 0);
}

fn clients(srv: &Server, out: &mut String) {
    // Redis tracks peaks over the last seconds; the current largest buffers
    // of the other clients are what cowstore can report.
    let (mut max_in, mut max_out) = (0, 0);
    for (_, c) in srv.clients.iter() {
        max_in = max_in.max(c.conn.as_ref().map_or(0, |conn| conn.qbuf.len()));
        max_out = max_out.max(c.reply.buf.capacity());
    }
    field!(out, "connected_clients", srv.clients.len());
    field!(out, "cluster_connections", 0);
    field!(out, "maxclients", srv.config.maxclients);
    field!(out, "client_recent_max_input_buffer", max_in);
    field!(out, "client_recent_max_output_buffer", max_out);
    field!(out, "blocked_clients", 0);
    field!(out, "tracking_clients", 0);
    field!(out, "clients_in_timeout_table", 0);
}

/// Formats bytes as Redis's `bytesToHuman` does (`1.50M`).
pub fn human(n: u64) -> String {
    let n = n as f64;
    for (unit, scale) in [("P", 1u64 << 50), ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if n >= scale as f64 {
            return format!("{:.2}{unit}", n / scale as f64);
        }
    }
    format!("{}B", n as u64)
}

fn memory(srv: &Server, out: &mut String) {
    let m = crate::memory::sample();
    field!(out, "used_memory", m.allocated);
    field!(out, "used_memory_human", human(m.allocated));
    field!(out, "used_memory_rss", m.rss);
    field!(out, "used_memory_rss_human", human(m.rss));
    field!(out, "used_memory_peak", m.allocated.max(srv.stats.peak_memory));
    field!(out, "used_memory_peak_human", human(m.allocated.max(srv.stats.peak_memory)));
    field!(out, "allocator_allocated", m.allocated);
    field!(out, "allocator_active", m.active);
    field!(out, "allocator_resident", m.resident);
    field!(out, "total_system_memory", m.total_system);
    field!(out, "total_system_memory_human", human(m.total_system));
    field!(out, "maxmemory", 0);
    field!(out, "maxmemory_human", "0B");
    field!(out, "maxmemory_policy", "noeviction");
    field!(out, "mem_fragmentation_ratio", format!("{:.2}", m.rss as f64 / m.allocated.max(1) as f64));
    field!(out, "mem_clients_slaves", 0);
    field!(
        out,
        "mem_clients_normal",
        srv.clients.iter().map(|(_, c)| crate::client_limits::client_memory(c)).sum::<usize>()
    );
    field!(out, "mem_allocator", "jemalloc");
    field!(out, "anon_huge_pages", m.anon_huge_pages);
    field!(out, "anon_huge_pages_human", human(m.anon_huge_pages));
    field!(out, "thp_disabled", if m.thp_disabled { 1 } else { 0 });
}

fn persistence(srv: &Server, out: &mut String) {
    crate::snapshot::info(srv, out);
}

fn stats(srv: &Server, out: &mut String) {
    let s = &srv.stats;
    field!(out, "total_connections_received", s.connections_received);
    field!(out, "total_commands_processed", s.commands_processed);
    field!(out, "instantaneous_ops_per_sec", s.instantaneous_ops());
    field!(out, "total_net_input_bytes", s.net_input_bytes);
    field!(out, "total_net_output_bytes", s.net_output_bytes);
    field!(out, "rejected_connections", s.rejected_connections);
    field!(out, "expired_keys", srv.ks.stats.expired);
    field!(out, "evicted_keys", 0);
    field!(out, "evicted_clients", s.evicted_clients);
    field!(out, "keyspace_hits", srv.ks.stats.hits);
    field!(out, "keyspace_misses", srv.ks.stats.misses);
    field!(out, "pubsub_channels", 0);
    field!(out, "pubsub_patterns", 0);
    field!(out, "total_error_replies", s.error_replies);
    field!(out, "latest_fork_usec", s.latest_fork_usec);
    field!(out, "total_forks", s.total_forks);
}

fn replication(srv: &Server, out: &mut String) {
    field!(out, "role", "master");
    field!(out, "connected_slaves", 0);
    field!(out, "master_failover_state", "no-failover");
    field!(out, "master_replid", srv.run_id);
    field!(out, "master_replid2", "0000000000000000000000000000000000000000");
    field!(out, "master_repl_offset", 0);
    field!(out, "second_repl_offset", -1);
    field!(out, "repl_backlog_active", 0);
}

fn cpu(out: &mut String) {
    use nix::sys::resource::{UsageWho, getrusage};
    let secs = |t: nix::sys::time::TimeVal| format!("{}.{:06}", t.tv_sec(), t.tv_usec());
    if let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) {
        field!(out, "used_cpu_sys", secs(u.system_time()));
        field!(out, "used_cpu_user", secs(u.user_time()));
    }
    if let Ok(u) = getrusage(UsageWho::RUSAGE_CHILDREN) {
        field!(out, "used_cpu_sys_children", secs(u.system_time()));
        field!(out, "used_cpu_user_children", secs(u.user_time()));
    }
}

fn keyspace(srv: &Server, out: &mut String) {
    for (i, db) in srv.ks.dbs.iter().enumerate() {
        if !db.dict.is_empty() {
            let _ = write!(out, "db{i}:keys={},expires={},avg_ttl=0\r\n", db.dict.len(), db.expires.len());
        }
    }
}
