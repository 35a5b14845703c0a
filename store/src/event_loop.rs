//! The event loop: one thread accepts connections, reads requests, runs
//! commands and writes replies, like Redis's `ae` loop.
//!
//! Each pass: wait for readiness (at most until the next cron tick), read and
//! execute whatever requests arrived, then in [`before_sleep`] write the
//! replies produced during the pass. Replies are only ever written there, so
//! anything that must happen before a reply leaves (the AOF write and, with
//! `appendfsync always`, its fsync) has exactly one place to go.
//!
//! **Fork safety.** This thread is the only one that touches the keyspace and
//! the clients, and it forks only between commands, so a child sees every data
//! structure at rest and needs no lock held by anyone.

use crate::client::Client;
use crate::cmd::{Args, dispatch};
use crate::protocol::request::{ArgSource, Limits};
use crate::query_buffer::{self, READ_CHUNK};
use crate::server::Server;
use crate::{cron, notice, verbose, warning};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Tokens at and above this value are listeners.
const LISTENER_BASE: usize = usize::MAX - 64;
/// Reads per client per pass before others get a turn.
const MAX_READS_PER_PASS: usize = 16;
/// Bytes written per client per pass before others get a turn.
const MAX_WRITE_PER_PASS: usize = 1 << 20;
/// Output buffers larger than this are freed once written.
const REPLY_KEEP_CAPACITY: usize = 64 * 1024;

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// The loop's own state besides the server.
struct Loop {
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// Clients with replies to write in `before_sleep`.
    pending_write: Vec<usize>,
    /// Clients that still had input when their read budget ran out.
    pending_read: Vec<usize>,
    /// A descriptor kept back to refuse connections when none are left.
    spare: crate::fdlimit::Spare,
}

/// Binds the configured addresses and serves until shutdown.
pub fn serve(srv: &mut Server) -> io::Result<()> {
    let poll = Poll::new()?;
    let mut listeners = Vec::new();
    for (i, host) in srv.config.bind.iter().enumerate() {
        let ip: std::net::IpAddr = host
            .trim_start_matches('-')
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bind: '{host}' is not an IP address")))?;
        let mut l = TcpListener::bind(SocketAddr::new(ip, srv.config.port)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("Could not create server TCP listening socket {host}:{}: {e}", srv.config.port),
            )
        })?;
        set_backlog(&l, srv.config.tcp_backlog);
        poll.registry().register(&mut l, Token(LISTENER_BASE + i), Interest::READABLE)?;
        srv.tcp_port = l.local_addr()?.port();
        srv.listener_fds.push(std::os::fd::AsRawFd::as_raw_fd(&l));
        listeners.push(l);
    }
    install_signal_handlers();
    notice!("Ready to accept connections tcp on port {}", srv.tcp_port);
    let spare = crate::fdlimit::Spare::new();
    let mut lp = Loop { poll, listeners, pending_write: Vec::new(), pending_read: Vec::new(), spare };
    let mut events = Events::with_capacity(1024);
    let period = Duration::from_millis(1000 / srv.config.hz.max(1) as u64);
    let mut next_cron = Instant::now() + period;
    let mut last_event = Instant::now();
    loop {
        let busy = !lp.pending_read.is_empty() || !lp.pending_write.is_empty();
        // Busy polling: right after events, more usually follow within
        // microseconds (the next request of a client just answered). Polling
        // on for `busy-poll-usec` instead of blocking saves the sleep and
        // wake-up, which costs more than the poll on a VM; a quiet server
        // blocks as before.
        let spin = last_event.elapsed() < Duration::from_micros(srv.config.busy_poll_usec as u64);
        let timeout = if busy || spin { Duration::ZERO } else { next_cron.saturating_duration_since(Instant::now()) };
        if let Err(e) = lp.poll.poll(&mut events, Some(timeout))
            && e.kind() != io::ErrorKind::Interrupted
        {
            return Err(e);
        }
        if !events.is_empty() {
            last_event = Instant::now();
        }
        for ev in events.iter() {
            let t = ev.token().0;
            if t >= LISTENER_BASE {
                accept(srv, &mut lp, t - LISTENER_BASE);
                continue;
            }
            if ev.is_writable() {
                lp.pending_write.push(t);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                read_client(srv, &mut lp, t);
            }
        }
        for t in std::mem::take(&mut lp.pending_read) {
            read_client(srv, &mut lp, t);
        }
        before_sleep(srv, &mut lp);
        if Instant::now() >= next_cron {
            cron::run(srv);
            crate::client_limits::evict_over_limit(srv);
            // Clients the cron marked for closing (idle `timeout`) get no more
            // reads; the next write pass frees them once their replies are out.
            lp.pending_write.extend(srv.clients.iter().filter(|(_, c)| c.close_after_reply).map(|(t, _)| t));
            let period = Duration::from_millis(1000 / srv.config.hz.max(1) as u64);
            next_cron = Instant::now() + period;
        }
        if SIGNALLED.swap(false, Ordering::Relaxed) {
            warning!("Received SIGTERM scheduling shutdown...");
            if crate::snapshot::prepare_shutdown(srv, crate::server::ShutdownSave::Default).is_ok() {
                srv.shutdown = Some(crate::server::ShutdownSave::Default);
            }
        }
        if srv.shutdown.is_some() {
            return Ok(());
        }
    }
}

fn install_signal_handlers() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let _ = sigaction(Signal::SIGTERM, &act);
        let _ = sigaction(Signal::SIGINT, &act);
        let _ = sigaction(Signal::SIGPIPE, &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()));
    }
}

/// Listens with `tcp-backlog` (mio binds with 128), warning as Redis does
/// when the kernel caps it lower.
fn set_backlog(l: &TcpListener, backlog: i32) {
    let max = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|s| s.trim().parse::<i32>().ok());
    if let Some(max) = max.filter(|&m| m < backlog) {
        warning!(
            "WARNING: The TCP backlog setting of {backlog} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {max}."
        );
    }
    // SAFETY: listen(2) again on our listening socket only changes its backlog.
    unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(l), backlog) };
}

fn accept(srv: &mut Server, lp: &mut Loop, idx: usize) {
    loop {
        let (mut stream, addr) = match lp.listeners[idx].accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                // Out of descriptors: drain the queue, refusing each
                // connection, so the edge-triggered listener never wedges.
                warning!("Accepting client connection: {e}");
                let refused = lp.spare.refuse_all(&lp.listeners[idx]);
                srv.stats.connections_received += refused;
                srv.stats.rejected_connections += refused;
                return;
            }
            Err(e) => {
                warning!("Accepting client connection: {e}");
                return;
            }
        };
        srv.stats.connections_received += 1;
        if srv.clients.len() >= srv.config.maxclients {
            let _ = stream.write(crate::fdlimit::FULL);
            srv.stats.rejected_connections += 1;
            continue;
        }
        if crate::admission::protected_denied(srv.config.protected_mode, srv.auth_required(), &addr) {
            let _ = stream.write(crate::admission::DENIED);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let id = srv.new_client_id();
        let authed = !srv.auth_required();
        let token = srv.clients.insert(Client::connected(id, stream, authed));
        let mut c = srv.clients.take(token).expect("just inserted");
        let conn = c.conn.as_mut().expect("network client");
        if let Err(e) = lp.poll.registry().register(&mut conn.stream, Token(token), Interest::READABLE) {
            warning!("Registering client: {e}");
            srv.clients.release(token);
            continue;
        }
        srv.clients.put_back(token, c);
        verbose!("Accepted {addr}");
    }
}

/// Reads what a client sent and runs every complete request in it.
fn read_client(srv: &mut Server, lp: &mut Loop, token: usize) {
    let Some(mut c) = srv.clients.take(token) else { return };
    let mut closed = false;
    let mut reads = 0;
    while !c.close_after_reply {
        let conn = c.conn.as_mut().expect("network client");
        let Ok(room) = query_buffer::make_room(conn) else {
            warning!("Closing client: no memory for its query buffer: {}", c.info_line(srv.ks.now));
            closed = true;
            break;
        };
        match query_buffer::read_into(conn, room) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                srv.stats.net_input_bytes += n as u64;
                if process_input(srv, &mut c) {
                    closed = true;
                    break;
                }
                let conn = c.conn.as_ref().expect("network client");
                if conn.qlen - conn.qpos > srv.config.client_query_buffer_limit {
                    warning!("Closing client that reached max query buffer length: {}", c.info_line(srv.ks.now));
                    closed = true;
                    break;
                }
                if n < room {
                    // A short read emptied the socket: the next arrival is a new
                    // edge, so skip the read that would only say EAGAIN.
                    break;
                }
                reads += 1;
                if reads >= MAX_READS_PER_PASS {
                    lp.pending_read.push(token);
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                verbose!("Reading from client: {e}");
                closed = true;
                break;
            }
        }
    }
    if closed {
        free_client(srv, lp, token, c);
        return;
    }
    if !c.reply.buf.is_empty() {
        lp.pending_write.push(token);
    }
    srv.clients.put_back(token, c);
}

/// Parses and runs every complete request in the client's query buffer.
/// True when the client went over an output limit and must be dropped now.
fn process_input(srv: &mut Server, c: &mut Client) -> bool {
    let mut dropped = false;
    let conn = c.conn.as_mut().expect("network client");
    let qbuf = std::mem::take(&mut conn.qbuf);
    let mut parser = std::mem::take(&mut conn.parser);
    let (mut qpos, mut qlen) = (conn.qpos, conn.qlen);
    let mut qbuf = qbuf;
    while !c.close_after_reply {
        let lim = Limits {
            max_bulk: srv.config.proto_max_bulk_len,
            unauthenticated: !c.authenticated && srv.auth_required(),
        };
        match parser.parse(&qbuf[..qlen], &mut qpos, lim) {
            Ok(true) => {
                if parser.detached() > 0 {
                    // The command's first bytes waited aside: they go behind
                    // the received bytes for the time of the command.
                    let conn = c.conn.as_mut().expect("network client");
                    parser.relocate_detached(qbuf.len());
                    qbuf.extend_from_slice(&std::mem::take(&mut conn.prefix));
                }
                let (ranges, src) = parser.args();
                let end = qbuf.len();
                let buf = if src == ArgSource::Inline { parser.inline_buf() } else { &qbuf[..end] };
                c.qbuf_window = Some((qbuf.as_ptr() as usize, qbuf.as_ptr() as usize + end));
                dispatch(srv, c, &Args::new(buf, ranges));
                c.qbuf_window = None;
                if let Some(ad) = c.adoption.take() {
                    // The command took a big argument as its value: the
                    // buffer becomes that value, the rest moves to a new one.
                    let (val, rest) = query_buffer::adopt(&mut qbuf, qpos, qlen, ad.range);
                    if let Some(crate::value::Value::Raw(slot)) = srv.ks.dbs[ad.db].dict.get_mut(&ad.key) {
                        *slot = val;
                    }
                    qbuf = rest;
                    (qpos, qlen) = (0, qbuf.len());
                }
                qbuf.truncate(qlen);
                if crate::client_limits::output_exceeded(srv, c) {
                    dropped = true;
                    break;
                }
            }
            Ok(false) => break,
            Err(e) => {
                verbose!("Protocol error ({}) from client: {}", e.0.escape_ascii(), c.info_line(srv.ks.now));
                let mut msg = b"ERR Protocol error: ".to_vec();
                msg.extend_from_slice(&e.0);
                c.reply.error_bytes(&msg);
                srv.stats.error_replies += 1;
                c.close_after_reply = true;
            }
        }
    }
    let conn = c.conn.as_mut().expect("network client");
    if parser.at_boundary() && qbuf.capacity() > 4 * READ_CHUNK {
        // A large request was served: give the memory back.
        qbuf = qbuf[qpos..qlen].to_vec();
        (qpos, qlen) = (0, qbuf.len());
    } else if parser.at_boundary() && qpos == qlen {
        qbuf.clear();
        (qpos, qlen) = (0, 0);
    }
    conn.qbuf = qbuf;
    conn.qlen = qlen;
    conn.qpos = qpos;
    conn.parser = parser;
    dropped
}

/// Writes pending replies; runs once per pass, after all commands of the pass.
fn before_sleep(srv: &mut Server, lp: &mut Loop) {
    // The AOF write (and with `always` its fdatasync) precedes every reply of the pass.
    crate::aof::flush(srv, false);
    let mut pending = std::mem::take(&mut lp.pending_write);
    pending.sort_unstable();
    pending.dedup();
    for token in pending {
        let Some(mut c) = srv.clients.take(token) else { continue };
        match write_client(srv, &mut c) {
            Ok(outcome) => {
                let conn = c.conn.as_mut().expect("network client");
                if outcome == Written::All && c.close_after_reply {
                    free_client(srv, lp, token, c);
                    continue;
                }
                if outcome == Written::Budget {
                    // The socket still takes data, so no writable edge will come: continue next pass.
                    lp.pending_write.push(token);
                }
                // WRITABLE interest only while the socket is full: the next
                // edge comes when it drains.
                let want_write = outcome == Written::Blocked;
                if want_write != conn.want_write {
                    conn.want_write = want_write;
                    let interest =
                        if want_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
                    if lp.poll.registry().reregister(&mut conn.stream, Token(token), interest).is_err() {
                        free_client(srv, lp, token, c);
                        continue;
                    }
                }
                srv.clients.put_back(token, c);
            }
            Err(_) => free_client(srv, lp, token, c),
        }
    }
}

/// How far a write got.
#[derive(PartialEq, Eq)]
enum Written {
    /// The whole reply buffer.
    All,
    /// The socket is full: wait for a writable event.
    Blocked,
    /// This pass's budget is used up: more next pass.
    Budget,
}

/// Writes as much of the reply buffer as the socket and this pass's budget allow.
fn write_client(srv: &mut Server, c: &mut Client) -> io::Result<Written> {
    let conn = c.conn.as_mut().expect("network client");
    let mut budget = MAX_WRITE_PER_PASS;
    while conn.written < c.reply.buf.len() {
        let end = c.reply.buf.len().min(conn.written + budget);
        match conn.stream.write(&c.reply.buf[conn.written..end]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.written += n;
                srv.stats.net_output_bytes += n as u64;
                budget = budget.saturating_sub(n);
                if budget == 0 && conn.written < c.reply.buf.len() {
                    return Ok(Written::Budget);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if conn.written == c.reply.buf.len() {
        conn.written = 0;
        c.reply.buf.clear();
        if c.reply.buf.capacity() > REPLY_KEEP_CAPACITY {
            c.reply.buf = Vec::new();
        }
        return Ok(Written::All);
    }
    Ok(Written::Blocked)
}

fn free_client(srv: &mut Server, lp: &mut Loop, token: usize, mut c: Box<Client>) {
    if let Some(conn) = c.conn.as_mut() {
        let _ = lp.poll.registry().deregister(&mut conn.stream);
    }
    srv.ks.unwatch_all(c.id);
    srv.clients.release(token);
    verbose!("Client closed connection id={}", c.id);
}
