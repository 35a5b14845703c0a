//! The `cowstore` server binary: `cowstore [config-file] [--name value ...]`.

use cowstore::config::Config;
use cowstore::server::Server;
use cowstore::{aof, event_loop, fdlimit, log, notice, snapshot, warning};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options once, from this variable, when it starts.
const JEMALLOC_CONF: &str = "_RJEM_MALLOC_CONF";
/// Options that make jemalloc madvise(MADV_HUGEPAGE) every arena it maps.
const JEMALLOC_THP: &str = "thp:always,metadata_thp:always";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!("cowstore v={} (Redis {} compatible)", env!("CARGO_PKG_VERSION"), cowstore::REDIS_VERSION);
        return;
    }
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("\n*** {e}");
            std::process::exit(1);
        }
    };
    if config.keyspace_hugepages && !std::env::var(JEMALLOC_CONF).is_ok_and(|v| v.contains("thp:always")) {
        reexec_with_huge_pages();
    }
    // `dir` first, so a relative logfile, dump and AOF all live in it.
    if let Err(e) = std::env::set_current_dir(&config.dir) {
        eprintln!("Can't chdir to '{}': {e}", config.dir);
        std::process::exit(1);
    }
    log::set_level(&config.loglevel);
    if let Err(e) = log::set_file(&config.logfile) {
        eprintln!("Can't open the log file '{}': {e}", config.logfile);
        std::process::exit(1);
    }
    if config.disable_thp {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    if !config.pidfile.is_empty() {
        let _ = std::fs::write(&config.pidfile, format!("{}\n", std::process::id()));
    }
    notice!("cowstore version={}, pid={}, just started", env!("CARGO_PKG_VERSION"), std::process::id());
    let mut config = config;
    match fdlimit::fit_maxclients(config.maxclients) {
        Ok(n) => config.maxclients = n,
        Err(e) => {
            warning!("{e}");
            std::process::exit(1);
        }
    }
    let mut srv = Server::new(config);
    if let Err(e) = load_data(&mut srv) {
        warning!("{e}");
        eprintln!("{e}");
        std::process::exit(1);
    }
    if let Err(e) = event_loop::serve(&mut srv) {
        warning!("{e}");
        std::process::exit(1);
    }
    if !srv.config.pidfile.is_empty() {
        let _ = std::fs::remove_file(&srv.config.pidfile);
    }
}

/// Loads the data: from the AOF when it is on (as Redis 7 does, the RDB is
/// then not read), else from the dump; then opens the AOF for appending.
fn load_data(srv: &mut Server) -> Result<(), String> {
    if srv.config.appendonly {
        aof::load::load_at_startup(srv)?;
        aof::open_on_startup(srv)
    } else {
        snapshot::load_at_startup(srv)
    }
}

/// Restarts this process with jemalloc's THP option set, since jemalloc
/// reads its options only at start-up.
fn reexec_with_huge_pages() -> ! {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap_or_else(|_| "cowstore".into());
    let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env(JEMALLOC_CONF, JEMALLOC_THP).exec();
    eprintln!("keyspace-hugepages: cannot restart with huge pages: {err}");
    std::process::exit(1);
}
