//! The server cron: periodic work run `hz` times a second from the event loop
//! (active expiry, incremental rehashing, idle-client timeouts, statistics).

use crate::server::Server;
use crate::{expire, verbose};
use std::time::Duration;

/// Runs one cron tick.
pub fn run(srv: &mut Server) {
    let now = crate::util::now_ms();
    srv.ks.now = now;
    srv.stats.sample_ops(now);
    srv.stats.peak_memory = srv.stats.peak_memory.max(crate::memory::allocated());
    let period_us = 1_000_000 / srv.config.hz.max(1) as u64;
    // Like Redis, active expiry may use up to 25% of the cron period.
    expire::active_cycle(&mut srv.ks, Duration::from_micros(period_us / 4));
    crate::aof::propagate_expired(srv);
    for db in &mut srv.ks.dbs {
        db.dict.shrink_if_needed();
        db.expires.shrink_if_needed();
        if db.dict.is_rehashing() {
            db.dict.rehash_for(Duration::from_millis(1));
        }
        if db.expires.is_rehashing() {
            db.expires.rehash_for(Duration::from_millis(1));
        }
    }
    close_idle_clients(srv, now);
    crate::snapshot::cron(srv);
    crate::aof::cron(srv);
}

/// Marks clients idle longer than `timeout` seconds for closing.
fn close_idle_clients(srv: &mut Server, now: i64) {
    let timeout = srv.config.timeout as i64 * 1000;
    if timeout == 0 {
        return;
    }
    for (_, c) in srv.clients.iter_mut() {
        if c.multi.is_none() && now - c.last_interaction_ms > timeout && !c.close_after_reply {
            verbose!("Closing idle client id={}", c.id);
            c.close_after_reply = true;
            if let Some(conn) = c.conn.as_mut() {
                let _ = conn.stream.shutdown(std::net::Shutdown::Read);
            }
        }
    }
}
