//! Limits on the memory a client may make the server hold for it:
//! `client-output-buffer-limit` (hard and soft), the 1 KB output allowance of
//! a client that has not authenticated (Redis's CVE-2025-21605 fix), and
//! `maxmemory-clients`, which drops the biggest clients when all of them
//! together use too much.
//!
//! Output is counted as Redis counts it: the bytes waiting to be written
//! beyond the first 16 KiB, which Redis keeps in a fixed per-client buffer
//! and leaves out of the limits. All cowstore clients are of the `normal`
//! class (it has no replicas and no pub/sub).

use crate::client::Client;
use crate::config::ClientsMemory;
use crate::server::Server;
use crate::warning;
use std::time::Instant;

/// Reply bytes Redis holds in each client's fixed buffer, outside the limits (PROTO_REPLY_CHUNK_BYTES).
const FIXED_REPLY_BUF: usize = 16 * 1024;
/// Output an unauthenticated client may have waiting before it is dropped.
const UNAUTH_OUTPUT: usize = 1024;

/// Reply bytes the client has not read yet.
pub fn pending_output(c: &Client) -> usize {
    c.reply.buf.len() - c.conn.as_ref().map_or(0, |c| c.written)
}

/// Checks the client's pending output after a command; true when it must be
/// disconnected at once (its pending replies are then dropped, as Redis does).
pub fn output_exceeded(srv: &Server, c: &mut Client) -> bool {
    if c.conn.is_none() {
        return false;
    }
    let used = pending_output(c).saturating_sub(FIXED_REPLY_BUF);
    let unauth = !c.authenticated && srv.auth_required() && used > UNAUTH_OUTPUT;
    let l = srv.config.obuf_limits[0];
    let hard = l.hard > 0 && used as u64 >= l.hard;
    let soft = l.soft > 0 && used as u64 >= l.soft;
    if !soft {
        c.obuf_soft_since = None;
    }
    let soft_expired = soft && c.obuf_soft_since.get_or_insert_with(Instant::now).elapsed().as_secs() >= l.soft_secs;
    if unauth || hard || soft_expired {
        warning!(
            "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
            c.info_line(srv.ks.now)
        );
        return true;
    }
    false
}

/// Memory a client's buffers hold (query buffer, replies, queued MULTI commands).
pub fn client_memory(c: &Client) -> usize {
    let q = c.conn.as_ref().map_or(0, |c| c.qbuf.capacity() + c.parser.memory());
    let m = c.multi.as_ref().map_or(0, |m| m.queued.iter().map(|q| q.buf.capacity() + q.ranges.len() * 16).sum());
    q + c.reply.buf.capacity() + m
}

/// The `maxmemory-clients` limit in bytes (a percentage of `maxmemory`,
/// which cowstore leaves at 0, means no limit).
fn clients_limit(srv: &Server) -> usize {
    match srv.config.maxmemory_clients {
        ClientsMemory::Bytes(b) => b as usize,
        ClientsMemory::Percent(_) => 0,
    }
}

/// Marks the biggest clients for closing until the rest fit in
/// `maxmemory-clients` (called from the cron). Returns the tokens marked.
pub fn evict_over_limit(srv: &mut Server) -> Vec<usize> {
    let limit = clients_limit(srv);
    if limit == 0 {
        return Vec::new();
    }
    let mut sizes: Vec<(usize, usize)> =
        srv.clients.iter().filter(|(_, c)| !c.close_after_reply).map(|(t, c)| (client_memory(c), t)).collect();
    let mut total: usize = sizes.iter().map(|s| s.0).sum();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut evicted = Vec::new();
    for (mem, token) in sizes {
        if total <= limit {
            break;
        }
        evicted.push(token);
        total -= mem;
    }
    srv.stats.evicted_clients += evicted.len() as u64;
    let now = srv.ks.now;
    for (_, c) in srv.clients.iter_mut().filter(|(t, _)| evicted.contains(t)) {
        warning!("Evicting client: {}", c.info_line(now));
        c.close_after_reply = true;
        c.reply.buf = Vec::new();
        if let Some(conn) = c.conn.as_mut() {
            conn.written = 0;
        }
    }
    evicted
}
