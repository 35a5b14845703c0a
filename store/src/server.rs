//! `Server`: everything the event loop and the commands share: configuration,
//! the keyspace, the other clients and the counters INFO reports.

use crate::client::Client;
use crate::config::Config;
use crate::keyspace::Keyspace;
use std::time::Instant;

/// Counters for `INFO stats` (names follow Redis).
#[derive(Default)]
pub struct Stats {
    /// `total_connections_received`
    pub connections_received: u64,
    /// `total_commands_processed`
    pub commands_processed: u64,
    /// `rejected_connections`
    pub rejected_connections: u64,
    /// `total_net_input_bytes`
    pub net_input_bytes: u64,
    /// `total_net_output_bytes`
    pub net_output_bytes: u64,
    /// `total_error_replies`
    pub error_replies: u64,
    /// `evicted_clients`: clients dropped by `maxmemory-clients`.
    pub evicted_clients: u64,
    /// `latest_fork_usec`: how long the last fork() took in the parent.
    pub latest_fork_usec: u64,
    /// `total_forks`
    pub total_forks: u64,
    /// Highest `used_memory` seen by the cron (`used_memory_peak`).
    pub peak_memory: u64,
    /// Ring of (time ms, commands) samples for `instantaneous_ops_per_sec`.
    pub ops_samples: Vec<(i64, u64)>,
}

impl Stats {
    /// Records a sample of the command counter (called from the cron).
    pub fn sample_ops(&mut self, now_ms: i64) {
        if self.ops_samples.len() >= 16 {
            self.ops_samples.remove(0);
        }
        self.ops_samples.push((now_ms, self.commands_processed));
    }

    /// Commands per second over the recent samples.
    pub fn instantaneous_ops(&self) -> u64 {
        match (self.ops_samples.first(), self.ops_samples.last()) {
            (Some(&(t0, c0)), Some(&(t1, c1))) if t1 > t0 => (c1 - c0) * 1000 / (t1 - t0) as u64,
            _ => 0,
        }
    }
}

/// Clients indexed by their event-loop token. The client whose command is
/// running is taken out of the table for the duration of the command.
#[derive(Default)]
pub struct ClientTable {
    slots: Vec<Option<Box<Client>>>,
    free: Vec<usize>,
    count: usize,
}

impl ClientTable {
    /// Stores a client, returning its token.
    pub fn insert(&mut self, c: Client) -> usize {
        self.count += 1;
        match self.free.pop() {
            Some(t) => {
                self.slots[t] = Some(Box::new(c));
                t
            }
            None => {
                self.slots.push(Some(Box::new(c)));
                self.slots.len() - 1
            }
        }
    }

    /// Takes a client out to run its commands; [`put_back`](Self::put_back) returns it.
    pub fn take(&mut self, token: usize) -> Option<Box<Client>> {
        self.slots.get_mut(token)?.take()
    }

    /// Returns a client taken with [`take`](Self::take).
    pub fn put_back(&mut self, token: usize, c: Box<Client>) {
        self.slots[token] = Some(c);
    }

    /// Forgets a taken client's slot (the client was closed).
    pub fn release(&mut self, token: usize) {
        self.count -= 1;
        self.free.push(token);
    }

    /// Number of connected clients (including one currently taken out).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no client is connected.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Clients currently in the table, with their tokens.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Client)> {
        self.slots.iter().enumerate().filter_map(|(t, c)| c.as_deref().map(|c| (t, c)))
    }

    /// Mutable access to the clients in the table, with their tokens.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Client)> {
        self.slots.iter_mut().enumerate().filter_map(|(t, c)| c.as_deref_mut().map(|c| (t, c)))
    }
}

/// How SHUTDOWN or a signal asked the server to stop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownSave {
    /// Save if save points are configured.
    Default,
    /// Always save.
    Save,
    /// Never save.
    NoSave,
}

/// Shared server state.
pub struct Server {
    /// Current configuration.
    pub config: Config,
    /// The data.
    pub ks: Keyspace,
    /// Connected clients (except the one whose command is running).
    pub clients: ClientTable,
    /// Counters for INFO.
    pub stats: Stats,
    /// Process start.
    pub started: Instant,
    /// Random 40-hex-digit id of this run (`run_id`).
    pub run_id: String,
    /// Port actually bound (differs from config when `port 0` picks one).
    pub tcp_port: u16,
    /// Next client id to hand out.
    pub next_client_id: u64,
    /// Set when SHUTDOWN or SIGTERM asked the server to stop.
    pub shutdown: Option<ShutdownSave>,
    /// The running fork child, if any (at most one at a time, as in Redis).
    pub child: Option<crate::fork::Child>,
    /// RDB persistence state.
    pub rdb: crate::snapshot::RdbState,
    /// Listening sockets (a fork child closes its copies).
    pub listener_fds: Vec<std::os::fd::RawFd>,
    /// The append-only file.
    pub aof: crate::aof::Aof,
}

impl Server {
    /// A server with an empty keyspace.
    pub fn new(config: Config) -> Server {
        let mut rng = crate::util::Rng::from_entropy();
        let run_id = (0..40).map(|_| char::from_digit(rng.below(16) as u32, 16).expect("hex")).collect();
        Server {
            ks: Keyspace::new(config.databases),
            tcp_port: config.port,
            aof: crate::aof::Aof::new(&config),
            config,
            clients: ClientTable::default(),
            stats: Stats::default(),
            started: Instant::now(),
            run_id,
            next_client_id: 1,
            shutdown: None,
            child: None,
            rdb: Default::default(),
            listener_fds: Vec::new(),
        }
    }

    /// Hands out the next client id.
    pub fn new_client_id(&mut self) -> u64 {
        let id = self.next_client_id;
        self.next_client_id += 1;
        id
    }

    /// The MISCONF error writes must get, if the last save or AOF write failed.
    pub fn write_error(&self) -> Option<String> {
        if crate::snapshot::writes_denied(self) {
            return Some(crate::cmd::MISCONF_RDB.to_string());
        }
        self.aof.error().map(|errno| {
            format!("MISCONF Errors writing to the AOF file: {}", std::io::Error::from_raw_os_error(errno))
        })
    }

    /// True when clients must AUTH before other commands.
    pub fn auth_required(&self) -> bool {
        !self.config.requirepass.is_empty()
    }
}

/// Installs a configuration validated by CONFIG SET and applies the runtime
/// effects of the options in `changed`.
pub fn apply_config(srv: &mut Server, next: Config, changed: &[&str]) -> Result<(), String> {
    if changed.contains(&"dir") {
        std::env::set_current_dir(&next.dir).map_err(|e| format!("Changing directory: {e}"))?;
    }
    if changed.contains(&"maxclients") && next.maxclients > srv.config.maxclients {
        let fits = crate::fdlimit::fit_maxclients(next.maxclients)?;
        if fits != next.maxclients {
            crate::warning!(
                "Failed applying new configuration. Possibly related to new maxclients setting. Restoring previous settings."
            );
            return Err(format!(
                "The operating system is not able to handle the specified number of clients, try with {fits}"
            ));
        }
    }
    if changed.contains(&"loglevel") {
        crate::log::set_level(&next.loglevel);
    }
    let aof_toggle = changed.contains(&"appendonly").then_some(next.appendonly);
    srv.config = next;
    match aof_toggle {
        Some(true) => crate::aof::turn_on(srv),
        Some(false) => {
            crate::aof::turn_off(srv);
            Ok(())
        }
        None => Ok(()),
    }
}
