//! Configuration: redis.conf-style files, `--name value` overrides, and the
//! table behind `CONFIG GET`/`CONFIG SET`.
//!
//! Every option has one entry in [`OPTIONS`]: its name, whether `CONFIG SET`
//! may change it at runtime, and how to read and parse it. Startup and
//! `CONFIG SET` go through the same parser, so a value is validated the same
//! way wherever it comes from.

use crate::protocol::request::INLINE_MAX;

/// An `appendfsync` policy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FsyncPolicy {
    /// fdatasync before replies leave (group commit per event-loop pass).
    Always,
    /// fdatasync once per second in a background thread.
    Everysec,
    /// Never fsync; the kernel writes back when it likes.
    No,
}

/// Who may run DEBUG (`enable-debug-command`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Permit {
    /// Nobody.
    No,
    /// Everybody.
    Yes,
    /// Connections from loopback only.
    Local,
}

/// One class's `client-output-buffer-limit`: a client whose pending output
/// exceeds `hard`, or stays above `soft` for `soft_secs`, is disconnected (0 = no limit).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ObufLimit {
    /// Hard limit in bytes.
    pub hard: u64,
    /// Soft limit in bytes.
    pub soft: u64,
    /// How long the soft limit may be exceeded, in seconds.
    pub soft_secs: u64,
}

/// Client classes of `client-output-buffer-limit`, in Redis's order and spelling.
pub const OBUF_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

/// `maxmemory-clients`: bytes, or a percentage of `maxmemory` (0 = no limit).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClientsMemory {
    /// An absolute number of bytes.
    Bytes(u64),
    /// A percentage of `maxmemory`.
    Percent(u64),
}

/// All settings of a running server.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP port (0 disables TCP).
    pub port: u16,
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// Password for AUTH; empty means none.
    pub requirepass: String,
    /// Number of logical databases.
    pub databases: usize,
    /// Server cron frequency (times per second).
    pub hz: u32,
    /// How long the event loop keeps polling without blocking after the last
    /// event, in microseconds (0: block at once, as Redis does).
    pub busy_poll_usec: u32,
    /// Most clients served at once.
    pub maxclients: usize,
    /// Listen queue length (`tcp-backlog`).
    pub tcp_backlog: i32,
    /// Without a password, refuse clients that are not on loopback (`protected-mode`).
    pub protected_mode: bool,
    /// `client-output-buffer-limit` of the normal, replica and pubsub classes.
    pub obuf_limits: [ObufLimit; 3],
    /// Memory all clients' buffers together may use before the biggest are dropped.
    pub maxmemory_clients: ClientsMemory,
    /// Idle seconds before a client is closed (0 = never).
    pub timeout: u64,
    /// Largest bulk argument accepted.
    pub proto_max_bulk_len: i64,
    /// Largest query buffer a client may accumulate before it is dropped.
    pub client_query_buffer_limit: usize,
    /// Log verbosity: debug, verbose, notice, warning.
    pub loglevel: String,
    /// Log file; empty means standard output.
    pub logfile: String,
    /// File to write the pid to; empty means none.
    pub pidfile: String,
    /// Who may run DEBUG.
    pub enable_debug_command: Permit,
    /// Who may change protected options ([`PROTECTED`]) with CONFIG SET.
    pub enable_protected_configs: Permit,
    /// Working directory for the dump and the AOF.
    pub dir: String,
    /// RDB file name.
    pub dbfilename: String,
    /// Snapshot points: (seconds, changes).
    pub save: Vec<(u64, u64)>,
    /// LZF-compress strings in the RDB.
    pub rdbcompression: bool,
    /// Write and verify the RDB's CRC-64.
    pub rdbchecksum: bool,
    /// Microseconds a save sleeps after each key (Redis's test-only `rdb-key-save-delay`).
    pub rdb_key_save_delay: i64,
    /// Refuse writes after a failed background save.
    pub stop_writes_on_bgsave_error: bool,
    /// Ask the kernel not to use transparent huge pages for this process.
    pub disable_thp: bool,
    /// Back the keyspace with transparent huge pages when the system's THP
    /// mode is `madvise` (jemalloc's `thp:always`, which madvises its arenas).
    pub keyspace_hugepages: bool,
    /// Whether the append-only file is on.
    pub appendonly: bool,
    /// AOF fsync policy.
    pub appendfsync: FsyncPolicy,
    /// AOF directory name (inside `dir`).
    pub appenddirname: String,
    /// AOF base file name.
    pub appendfilename: String,
    /// Rewrite when the AOF grew by this percentage over its base (0 = off).
    pub auto_aof_rewrite_percentage: u64,
    /// ...and is at least this big.
    pub auto_aof_rewrite_min_size: u64,
    /// Skip fsyncs while a child is saving.
    pub no_appendfsync_on_rewrite: bool,
    /// Load an AOF whose last command is truncated.
    pub aof_load_truncated: bool,
    /// Start rewritten AOFs with an RDB image.
    pub aof_use_rdb_preamble: bool,
    /// Hashes up to this many entries stay in the compact encoding.
    pub hash_max_listpack_entries: usize,
    /// ...with no field or value longer than this.
    pub hash_max_listpack_value: usize,
    /// Integer sets up to this many members stay an intset.
    pub set_max_intset_entries: usize,
    /// Sorted sets up to this many entries stay in the compact encoding.
    pub zset_max_listpack_entries: usize,
    /// ...with no member longer than this.
    pub zset_max_listpack_value: usize,
    /// Path of the config file the server was started with.
    pub config_file: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".into()],
            requirepass: String::new(),
            databases: 16,
            hz: 10,
            busy_poll_usec: 50,
            maxclients: 10000,
            tcp_backlog: 511,
            protected_mode: true,
            obuf_limits: [
                ObufLimit { hard: 0, soft: 0, soft_secs: 0 },
                ObufLimit { hard: 256 << 20, soft: 64 << 20, soft_secs: 60 },
                ObufLimit { hard: 32 << 20, soft: 8 << 20, soft_secs: 60 },
            ],
            maxmemory_clients: ClientsMemory::Bytes(0),
            timeout: 0,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            loglevel: "notice".into(),
            logfile: String::new(),
            pidfile: String::new(),
            enable_debug_command: Permit::No,
            enable_protected_configs: Permit::No,
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            save: vec![(3600, 1), (300, 100), (60, 10000)],
            rdbcompression: true,
            rdbchecksum: true,
            rdb_key_save_delay: 0,
            stop_writes_on_bgsave_error: true,
            disable_thp: true,
            keyspace_hugepages: false,
            appendonly: false,
            appendfsync: FsyncPolicy::Everysec,
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            no_appendfsync_on_rewrite: false,
            aof_load_truncated: true,
            aof_use_rdb_preamble: true,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            config_file: String::new(),
        }
    }
}

/// One configurable option.
pub struct OptionDef {
    /// Canonical name.
    pub name: &'static str,
    /// Other accepted names (Redis's old ziplist names).
    pub aliases: &'static [&'static str],
    /// Whether `CONFIG SET` may change it.
    pub mutable: bool,
    get: fn(&Config) -> String,
    set: fn(&mut Config, &[String]) -> Result<(), String>,
}

macro_rules! opt {
    ($name:literal, [$($alias:literal),*], $mutable:expr, |$c:ident| $get:expr, |$cs:ident, $v:ident| $set:expr) => {
        OptionDef {
            name: $name,
            aliases: &[$($alias),*],
            mutable: $mutable,
            get: |$c: &Config| $get,
            set: |$cs: &mut Config, $v: &[String]| -> Result<(), String> { $set; Ok(()) },
        }
    };
}

/// Every option the server understands.
pub static OPTIONS: &[OptionDef] = &[
    opt!("port", [], false, |c| c.port.to_string(), |c, v| c.port = num(one(v)?, 0, 65535)? as u16),
    opt!("bind", [], false, |c| c.bind.join(" "), |c, v| c.bind = words(v)),
    opt!("requirepass", [], true, |c| c.requirepass.clone(), |c, v| c.requirepass = one(v)?.to_string()),
    opt!("databases", [], false, |c| c.databases.to_string(), |c, v| c.databases = num(one(v)?, 1, 1 << 20)? as usize),
    // Like Redis, any int is accepted and clamped to 1..=500.
    opt!("busy-poll-usec", [], true, |c| c.busy_poll_usec.to_string(), |c, v| c.busy_poll_usec =
        num(one(v)?, 0, 1_000_000)? as u32),
    opt!("hz", [], true, |c| c.hz.to_string(), |c, v| c.hz = num(one(v)?, 0, i32::MAX as i64)?.clamp(1, 500) as u32),
    opt!("maxclients", [], true, |c| c.maxclients.to_string(), |c, v| c.maxclients =
        num(one(v)?, 1, u32::MAX as i64)? as usize),
    opt!("tcp-backlog", [], false, |c| c.tcp_backlog.to_string(), |c, v| c.tcp_backlog =
        num(one(v)?, 0, i32::MAX as i64)? as i32),
    opt!("protected-mode", [], true, |c| yn(c.protected_mode), |c, v| c.protected_mode = yesno(one(v)?)?),
    opt!("client-output-buffer-limit", [], true, |c| obuf_limits_text(&c.obuf_limits), |c, v| obuf_limits(
        &mut c.obuf_limits,
        &words(v)
    )?),
    opt!(
        "maxmemory-clients",
        [],
        true,
        |c| match c.maxmemory_clients {
            ClientsMemory::Bytes(b) => b.to_string(),
            ClientsMemory::Percent(p) => format!("{p}%"),
        },
        |c, v| c.maxmemory_clients = clients_memory(one(v)?)?
    ),
    opt!("timeout", [], true, |c| c.timeout.to_string(), |c, v| c.timeout = num(one(v)?, 0, i32::MAX as i64)? as u64),
    opt!("proto-max-bulk-len", [], true, |c| c.proto_max_bulk_len.to_string(), |c, v| c.proto_max_bulk_len =
        mem(one(v)?, 1024 * 1024, u32::MAX as i64)?),
    opt!("client-query-buffer-limit", [], true, |c| c.client_query_buffer_limit.to_string(), |c, v| c
        .client_query_buffer_limit =
        mem(one(v)?, 1024 * 1024, i64::MAX)? as usize),
    opt!("loglevel", [], true, |c| c.loglevel.clone(), |c, v| c.loglevel =
        choice(one(v)?, &["debug", "verbose", "notice", "warning"])?),
    opt!("logfile", [], false, |c| c.logfile.clone(), |c, v| c.logfile = one(v)?.to_string()),
    opt!("pidfile", [], false, |c| c.pidfile.clone(), |c, v| c.pidfile = one(v)?.to_string()),
    opt!("enable-debug-command", [], false, |c| permit_name(c.enable_debug_command), |c, v| c.enable_debug_command =
        permit(one(v)?)?),
    opt!("enable-protected-configs", [], false, |c| permit_name(c.enable_protected_configs), |c, v| c
        .enable_protected_configs =
        permit(one(v)?)?),
    opt!("daemonize", [], false, |_c| "no".into(), |_c, v| {
        if yesno(one(v)?)? {
            return Err("daemonize is not supported; run cowstore under a supervisor".into());
        }
    }),
    opt!("dir", [], true, |c| c.dir.clone(), |c, v| c.dir = one(v)?.to_string()),
    opt!("dbfilename", [], true, |c| c.dbfilename.clone(), |c, v| c.dbfilename = filename(one(v)?)?),
    opt!("save", [], true, |c| c.save.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(" "), |c, v| {
        c.save = save_points(v)?
    }),
    opt!("rdbcompression", [], true, |c| yn(c.rdbcompression), |c, v| c.rdbcompression = yesno(one(v)?)?),
    opt!("rdbchecksum", [], false, |c| yn(c.rdbchecksum), |c, v| c.rdbchecksum = yesno(one(v)?)?),
    opt!("rdb-key-save-delay", [], true, |c| c.rdb_key_save_delay.to_string(), |c, v| c.rdb_key_save_delay =
        num(one(v)?, i32::MIN as i64, i32::MAX as i64)?),
    opt!("stop-writes-on-bgsave-error", [], true, |c| yn(c.stop_writes_on_bgsave_error), |c, v| c
        .stop_writes_on_bgsave_error =
        yesno(one(v)?)?),
    opt!("disable-thp", [], false, |c| yn(c.disable_thp), |c, v| c.disable_thp = yesno(one(v)?)?),
    opt!("keyspace-hugepages", [], false, |c| yn(c.keyspace_hugepages), |c, v| c.keyspace_hugepages = yesno(one(v)?)?),
    opt!("appendonly", [], true, |c| yn(c.appendonly), |c, v| c.appendonly = yesno(one(v)?)?),
    opt!(
        "appendfsync",
        [],
        true,
        |c| match c.appendfsync {
            FsyncPolicy::Always => "always".into(),
            FsyncPolicy::Everysec => "everysec".into(),
            FsyncPolicy::No => "no".into(),
        },
        |c, v| c.appendfsync = match choice(one(v)?, &["everysec", "always", "no"])?.as_str() {
            "always" => FsyncPolicy::Always,
            "no" => FsyncPolicy::No,
            _ => FsyncPolicy::Everysec,
        }
    ),
    opt!("appenddirname", [], false, |c| c.appenddirname.clone(), |c, v| c.appenddirname = filename(one(v)?)?),
    opt!("appendfilename", [], false, |c| c.appendfilename.clone(), |c, v| c.appendfilename = filename(one(v)?)?),
    opt!("auto-aof-rewrite-percentage", [], true, |c| c.auto_aof_rewrite_percentage.to_string(), |c, v| c
        .auto_aof_rewrite_percentage =
        num(one(v)?, 0, i32::MAX as i64)? as u64),
    opt!("auto-aof-rewrite-min-size", [], true, |c| c.auto_aof_rewrite_min_size.to_string(), |c, v| c
        .auto_aof_rewrite_min_size =
        mem(one(v)?, 0, i64::MAX)? as u64),
    opt!("no-appendfsync-on-rewrite", [], true, |c| yn(c.no_appendfsync_on_rewrite), |c, v| c
        .no_appendfsync_on_rewrite =
        yesno(one(v)?)?),
    opt!("aof-load-truncated", [], true, |c| yn(c.aof_load_truncated), |c, v| c.aof_load_truncated = yesno(one(v)?)?),
    opt!("aof-use-rdb-preamble", [], true, |c| yn(c.aof_use_rdb_preamble), |c, v| c.aof_use_rdb_preamble =
        yesno(one(v)?)?),
    opt!(
        "hash-max-listpack-entries",
        ["hash-max-ziplist-entries"],
        true,
        |c| c.hash_max_listpack_entries.to_string(),
        |c, v| c.hash_max_listpack_entries = num(one(v)?, 0, i64::MAX)? as usize
    ),
    opt!(
        "hash-max-listpack-value",
        ["hash-max-ziplist-value"],
        true,
        |c| c.hash_max_listpack_value.to_string(),
        |c, v| c.hash_max_listpack_value = mem(one(v)?, 0, i64::MAX)? as usize
    ),
    opt!("set-max-intset-entries", [], true, |c| c.set_max_intset_entries.to_string(), |c, v| c
        .set_max_intset_entries =
        num(one(v)?, 0, i64::MAX)? as usize),
    opt!(
        "zset-max-listpack-entries",
        ["zset-max-ziplist-entries"],
        true,
        |c| c.zset_max_listpack_entries.to_string(),
        |c, v| c.zset_max_listpack_entries = num(one(v)?, 0, i64::MAX)? as usize
    ),
    opt!(
        "zset-max-listpack-value",
        ["zset-max-ziplist-value"],
        true,
        |c| c.zset_max_listpack_value.to_string(),
        |c, v| c.zset_max_listpack_value = mem(one(v)?, 0, i64::MAX)? as usize
    ),
];

/// Options CONFIG SET changes only when `enable-protected-configs` allows it
/// (as in Redis 7.0: they decide where files are written).
pub const PROTECTED: &[&str] = &["dir", "dbfilename"];

fn permit_name(p: Permit) -> String {
    match p {
        Permit::No => "no".into(),
        Permit::Yes => "yes".into(),
        Permit::Local => "local".into(),
    }
}

fn permit(s: &str) -> Result<Permit, String> {
    Ok(match choice(s, &["no", "yes", "local"])?.as_str() {
        "yes" => Permit::Yes,
        "local" => Permit::Local,
        _ => Permit::No,
    })
}

/// Finds an option by name or alias (case-insensitive).
pub fn find(name: &str) -> Option<&'static OptionDef> {
    let name = name.to_ascii_lowercase();
    OPTIONS.iter().find(|o| o.name == name || o.aliases.contains(&name.as_str()))
}

impl OptionDef {
    /// The option's current value as `CONFIG GET` shows it.
    pub fn get(&self, c: &Config) -> String {
        (self.get)(c)
    }

    /// Parses and applies `args`, leaving `c` unchanged on error.
    pub fn set(&self, c: &mut Config, args: &[String]) -> Result<(), String> {
        let mut next = c.clone();
        (self.set)(&mut next, args)?;
        *c = next;
        Ok(())
    }
}

impl Config {
    /// Builds the configuration from `cowstore [config-file] [--name value ...]`.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut c = Config::default();
        let mut text = String::new();
        let mut rest = args;
        if let Some(first) = rest.first()
            && !first.starts_with("--")
        {
            text = std::fs::read_to_string(first)
                .map_err(|e| format!("Fatal error, can't open config file '{first}': {e}"))?;
            c.config_file = std::fs::canonicalize(first).map(|p| p.display().to_string()).unwrap_or(first.clone());
            rest = &rest[1..];
        }
        // Like redis-server, every `--name v1 v2` becomes a config line after the file's.
        let mut saw_save_override = false;
        let mut lines: Vec<String> = Vec::new();
        for a in rest {
            if let Some(name) = a.strip_prefix("--") {
                lines.push(name.to_string());
            } else if let Some(last) = lines.last_mut() {
                let quoted = if a.is_empty() { "\"\"".into() } else { quote(a) };
                last.push(' ');
                last.push_str(&quoted);
            } else {
                return Err(format!("Invalid argument '{a}': options are given as --name value"));
            }
        }
        let file_lines = text.lines().map(|l| l.to_string()).enumerate();
        let override_lines = lines.into_iter().map(|l| (usize::MAX, l));
        let mut save_from_file = false;
        for (lineno, line) in file_lines.chain(override_lines) {
            let words = split_config_line(&line).map_err(|e| config_error(lineno, &line, &e))?;
            let Some((name, values)) = words.split_first() else { continue };
            if name.starts_with('#') {
                continue;
            }
            let opt = find(name)
                .ok_or_else(|| config_error(lineno, &line, &format!("Bad directive or unknown option '{name}'")))?;
            if opt.name == "save" {
                // Repeated `save` lines accumulate; the first one replaces the defaults.
                let from_file = lineno != usize::MAX;
                let fresh = if from_file {
                    !std::mem::replace(&mut save_from_file, true)
                } else {
                    !std::mem::replace(&mut saw_save_override, true)
                };
                let points = save_points(values).map_err(|e| config_error(lineno, &line, &e))?;
                if fresh || points.is_empty() {
                    c.save = points;
                } else {
                    c.save.extend(points);
                }
                continue;
            }
            opt.set(&mut c, values).map_err(|e| config_error(lineno, &line, &e))?;
        }
        if c.keyspace_hugepages && c.disable_thp {
            return Err("FATAL CONFIG ERROR: keyspace-hugepages yes needs disable-thp no".into());
        }
        Ok(c)
    }

    /// Every option with its current value (what `CONFIG GET *` lists).
    pub fn all(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        OPTIONS.iter().map(move |o| (o.name, o.get(self)))
    }
}

fn config_error(lineno: usize, line: &str, msg: &str) -> String {
    if lineno == usize::MAX {
        format!("FATAL CONFIG ERROR in argument '--{line}': {msg}")
    } else {
        format!("FATAL CONFIG FILE ERROR at line {}: '{line}': {msg}", lineno + 1)
    }
}

fn quote(s: &str) -> String {
    if s.bytes().any(|c| c.is_ascii_whitespace() || c == b'"' || c == b'\'') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

/// Splits a config line like redis.conf does (quotes allowed).
fn split_config_line(line: &str) -> Result<Vec<String>, String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(vec![]);
    }
    if t.len() > INLINE_MAX {
        return Err("line too long".into());
    }
    let mut parser = crate::protocol::request::RequestParser::default();
    let mut input = t.as_bytes().to_vec();
    input.extend_from_slice(b"\n");
    let lim = crate::protocol::request::Limits { max_bulk: 0, unauthenticated: false };
    match parser.parse(&input, &mut 0, lim) {
        Ok(true) => {
            let (ranges, _) = parser.args();
            Ok(ranges.iter().map(|&(a, b)| String::from_utf8_lossy(&parser.inline_buf()[a..b]).into_owned()).collect())
        }
        Ok(false) => Ok(vec![]),
        Err(_) => Err("Unbalanced quotes in configuration line".into()),
    }
}

fn one(v: &[String]) -> Result<&str, String> {
    match v {
        [x] => Ok(x),
        _ => Err("wrong number of arguments".into()),
    }
}

fn words(v: &[String]) -> Vec<String> {
    v.iter().flat_map(|s| s.split_whitespace().map(str::to_string)).collect()
}

fn yn(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn yesno(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

fn choice(s: &str, allowed: &[&str]) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    if allowed.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(format!("argument(s) must be one of the following: {}", allowed.join(", ")))
    }
}

fn num(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let v: i64 = s.parse().map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if v < min || v > max {
        return Err(format!("argument must be between {min} and {max} inclusive"));
    }
    Ok(v)
}

/// Parses a memory size: `123`, `1k`/`1kb` (1000/1024), `1m`/`1mb`, `1g`/`1gb`.
pub fn parse_memory(s: &str) -> Option<i64> {
    let l = s.to_ascii_lowercase();
    let (digits, mul) = [
        ("gb", 1i64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| l.strip_suffix(suf).map(|d| (d.to_string(), *m)))
    .unwrap_or((l.clone(), 1));
    digits.parse::<i64>().ok()?.checked_mul(mul)
}

fn mem(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let v = parse_memory(s).ok_or("argument must be a memory value")?;
    if v < min || v > max {
        return Err(format!("argument must be between {min} and {max} inclusive"));
    }
    Ok(v)
}

fn obuf_limits_text(l: &[ObufLimit; 3]) -> String {
    let parts: Vec<String> =
        OBUF_CLASSES.iter().zip(l).map(|(n, l)| format!("{n} {} {} {}", l.hard, l.soft, l.soft_secs)).collect();
    parts.join(" ")
}

/// Parses `<class> <hard> <soft> <seconds>` groups; all are checked before any applies.
fn obuf_limits(l: &mut [ObufLimit; 3], w: &[String]) -> Result<(), String> {
    if !w.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut next = *l;
    for g in w.chunks(4) {
        let class = match g[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => return Err("Invalid client class specified in buffer limit configuration.".into()),
        };
        let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string();
        let hard = parse_memory(&g[1]).filter(|&v| v >= 0).ok_or_else(bad)? as u64;
        let soft = parse_memory(&g[2]).filter(|&v| v >= 0).ok_or_else(bad)? as u64;
        let soft_secs = g[3].parse::<i64>().ok().filter(|&v| v >= 0).ok_or_else(bad)? as u64;
        next[class] = ObufLimit { hard, soft, soft_secs };
    }
    *l = next;
    Ok(())
}

/// Parses `maxmemory-clients`: a memory value or a percentage up to 100.
fn clients_memory(s: &str) -> Result<ClientsMemory, String> {
    if let Some(p) = s.strip_suffix('%') {
        let p: i64 = p.parse().map_err(|_| "argument must be a memory or percent value".to_string())?;
        if p > 100 {
            return Err("percentage argument must be less or equal to 100".into());
        }
        if p < 0 {
            return Err("argument must be a memory or percent value".into());
        }
        return Ok(ClientsMemory::Percent(p as u64));
    }
    match parse_memory(s) {
        Some(b) if b >= 0 => Ok(ClientsMemory::Bytes(b as u64)),
        _ => Err("argument must be a memory or percent value".into()),
    }
}

fn filename(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains('/') {
        return Err("a file name without a directory is required".into());
    }
    Ok(s.to_string())
}

fn save_points(v: &[String]) -> Result<Vec<(u64, u64)>, String> {
    let w = words(v);
    if w.is_empty() || (w.len() == 1 && w[0].is_empty()) || v.iter().all(|s| s.is_empty()) {
        return Ok(vec![]);
    }
    if !w.len().is_multiple_of(2) {
        return Err("Invalid save parameters".into());
    }
    w.chunks(2)
        .map(|p| match (p[0].parse::<u64>(), p[1].parse::<u64>()) {
            (Ok(s), Ok(n)) => Ok((s, n)),
            _ => Err("Invalid save parameters".into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn overrides_and_errors() {
        let c = Config::from_args(&args(&["--port", "7000", "--save", "", "--hash-max-ziplist-entries", "5"])).unwrap();
        assert_eq!(c.port, 7000);
        assert!(c.save.is_empty());
        assert_eq!(c.hash_max_listpack_entries, 5);
        let e = Config::from_args(&args(&["--no-such-option", "1"])).unwrap_err();
        assert!(e.contains("no-such-option"), "{e}");
        assert!(Config::from_args(&args(&["--port", "99999"])).is_err());
    }

    #[test]
    fn file_then_overrides() {
        let dir = std::env::temp_dir().join(format!("cowstore-conf-{}", std::process::id()));
        std::fs::write(&dir, "# comment\nport 7001\nsave 900 1\nsave 300 10\nrequirepass \"a b\"\n").unwrap();
        let c = Config::from_args(&args(&[dir.to_str().unwrap(), "--port", "7002"])).unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!(c.port, 7002);
        assert_eq!(c.save, vec![(900, 1), (300, 10)]);
        assert_eq!(c.requirepass, "a b");
        assert_eq!(parse_memory("512mb"), Some(512 << 20));
    }
}
