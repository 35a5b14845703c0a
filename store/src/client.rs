//! A client: its session state (database, name, transaction, reply buffer)
//! and, for network clients, its connection buffers.

use crate::protocol::reply::Reply;
use crate::protocol::request::RequestParser;
use mio::net::TcpStream;

/// A command queued by MULTI, with its own copy of the arguments.
pub struct QueuedCommand {
    /// Argument bytes, back to back.
    pub buf: Vec<u8>,
    /// Ranges of each argument in `buf`.
    pub ranges: Vec<(usize, usize)>,
}

/// The state of an open MULTI.
#[derive(Default)]
pub struct Multi {
    /// Commands to run at EXEC.
    pub queued: Vec<QueuedCommand>,
    /// A command was rejected while queueing: EXEC must abort.
    pub failed: bool,
}

/// A connection's socket and input buffers.
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Query buffer: the received bytes (see [`crate::query_buffer`]).
    pub qbuf: Vec<u8>,
    /// Received bytes in `qbuf` (its length).
    pub qlen: usize,
    /// Start of bytes not yet parsed.
    pub qpos: usize,
    /// Resumable request parser.
    pub parser: RequestParser,
    /// Bytes of the command in progress set aside so a big bulk could start
    /// its own allocation (see [`crate::query_buffer`]).
    pub prefix: Vec<u8>,
    /// Bytes of `reply.buf` already written to the socket.
    pub written: usize,
    /// True while WRITABLE interest is registered.
    pub want_write: bool,
    /// Remote address, `ip:port`.
    pub addr: String,
    /// Local address, `ip:port`.
    pub laddr: String,
}

/// Session state of one client.
pub struct Client {
    /// Unique, increasing id (`CLIENT ID`).
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// Encoded replies waiting to be written.
    pub reply: Reply,
    /// `CLIENT SETNAME` name.
    pub name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Vec<u8>>,
    /// True once AUTH succeeded (or when no password is set).
    pub authenticated: bool,
    /// Open transaction, if any.
    pub multi: Option<Multi>,
    /// Close once the pending replies are written (QUIT, protocol error).
    pub close_after_reply: bool,
    /// Creation time (Unix ms).
    pub created_ms: i64,
    /// Last command time (Unix ms), for `timeout` and CLIENT LIST's idle.
    pub last_interaction_ms: i64,
    /// Name of the last command run.
    pub last_cmd: &'static str,
    /// The network connection; `None` for internal clients (AOF loading).
    pub conn: Option<Conn>,
    /// Since when the output has been over the soft `client-output-buffer-limit`.
    pub obuf_soft_since: Option<std::time::Instant>,
    /// While a command from the network runs: the address range of the query
    /// buffer its arguments lie in (a big one may be adopted, not copied).
    pub qbuf_window: Option<(usize, usize)>,
    /// Set by a command that adopts a big argument as a value.
    pub adoption: Option<crate::query_buffer::Adoption>,
}

impl Client {
    /// A client with no connection (used to replay commands).
    pub fn internal(id: u64) -> Client {
        let now = crate::util::now_ms();
        Client {
            id,
            db: 0,
            reply: Reply::default(),
            name: None,
            lib_name: None,
            lib_ver: None,
            authenticated: true,
            multi: None,
            close_after_reply: false,
            created_ms: now,
            last_interaction_ms: now,
            last_cmd: "NULL",
            conn: None,
            obuf_soft_since: None,
            qbuf_window: None,
            adoption: None,
        }
    }

    /// A client for an accepted connection.
    pub fn connected(id: u64, stream: TcpStream, authenticated: bool) -> Client {
        let addr = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let laddr = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut c = Client::internal(id);
        c.authenticated = authenticated;
        c.conn = Some(Conn {
            stream,
            qbuf: Vec::new(),
            qlen: 0,
            qpos: 0,
            parser: RequestParser::default(),
            prefix: Vec::new(),
            written: 0,
            want_write: false,
            addr,
            laddr,
        });
        c
    }

    /// One `CLIENT LIST` line (without the trailing newline).
    pub fn info_line(&self, now_ms: i64) -> String {
        let (addr, laddr, fd, qbuf, qfree, obl) = match &self.conn {
            Some(c) => {
                use std::os::fd::AsRawFd;
                // Saturating: while the client's own command runs, the event
                // loop has taken its query buffer out (`qbuf` is empty then).
                (
                    c.addr.as_str(),
                    c.laddr.as_str(),
                    c.stream.as_raw_fd(),
                    c.qlen.saturating_sub(c.qpos),
                    c.qbuf.capacity().saturating_sub(c.qlen),
                    self.reply.buf.len().saturating_sub(c.written),
                )
            }
            None => ("", "", -1, 0, 0, 0),
        };
        let flags = if self.multi.is_some() { "x" } else { "N" };
        let multi = self.multi.as_ref().map_or(-1, |m| m.queued.len() as i64);
        format!(
            "id={} addr={addr} laddr={laddr} fd={fd} name={} age={} idle={} flags={flags} db={} sub=0 psub=0 ssub=0 multi={multi} qbuf={qbuf} qbuf-free={qfree} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl={obl} oll=0 omem=0 tot-mem={} events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            lossy(&self.name),
            (now_ms - self.created_ms) / 1000,
            (now_ms - self.last_interaction_ms) / 1000,
            self.db,
            qbuf + qfree,
            qbuf + qfree + self.reply.buf.capacity(),
            self.last_cmd,
            if self.reply.resp3 { 3 } else { 2 },
            lossy(&self.lib_name),
            lossy(&self.lib_ver),
        )
    }
}

fn lossy(b: &Option<Vec<u8>>) -> String {
    b.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
}
