//! The keyspace: numbered databases of keys with optional expiry, lazy
//! expiration on access, and the change tracking every write goes through
//! (the change counter behind save points and AOF propagation, and WATCH
//! invalidation).
//!
//! **Every change goes through a mutator that counts it.** [`Keyspace::set`],
//! [`Keyspace::delete`], [`Keyspace::set_expire`], [`Keyspace::persist`],
//! [`Keyspace::rename`], [`Keyspace::flush_db`], [`Keyspace::swap_db`] count
//! one change each (or one per key); a value modified in place after
//! [`Keyspace::write`] is reported with [`Keyspace::changed`],
//! [`Keyspace::collection_changed`] or [`Keyspace::create`], which take the
//! number of elements changed (Redis's `server.dirty` increments). The count
//! is what `rdb_changes_since_last_save` shows and what tells the command
//! dispatcher that a write command must be logged (see `cmd`). Lazy expiry
//! signals but does not count: it is logged by its own path (`expired_log`).
//!
//! **Fork safety.** The keyspace is owned by the event-loop thread and by no
//! other thread: there is no lock around it, so a `fork()` taken on that
//! thread (between commands) sees every dict in a consistent state and the
//! child can walk it without taking any lock.

use crate::dict::Dict;
use crate::util::Rng;
use crate::value::Value;
use std::collections::{HashMap, HashSet};

/// One logical database (`SELECT n`).
#[derive(Default)]
pub struct Db {
    /// Key → value.
    pub dict: Dict<Value>,
    /// Key → absolute expiry in Unix milliseconds, for keys that have one.
    pub expires: Dict<i64>,
}

/// Counters reported in `INFO stats`.
#[derive(Default, Clone)]
pub struct KeyStats {
    /// Reads that found their key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Keys deleted because their time to live ran out.
    pub expired: u64,
}

/// All databases plus change tracking.
pub struct Keyspace {
    /// The databases, indexed by number.
    pub dbs: Vec<Db>,
    /// The command's clock (Unix ms), refreshed before each command so one
    /// command sees one instant.
    pub now: i64,
    /// Hit, miss and expiry counters.
    pub stats: KeyStats,
    /// Changes since the last successful save (`rdb_changes_since_last_save`);
    /// only the mutators below count them.
    dirty: u64,
    /// Random source for sampling (RANDOMKEY, active expiry).
    pub rng: Rng,
    /// Record keys deleted by expiry in `expired_log` (the AOF logs them as DEL).
    pub log_expired: bool,
    /// Keys deleted by expiry and not yet logged: (db, key).
    pub expired_log: Vec<(usize, Vec<u8>)>,
    watches: Watches,
}

/// WATCHed keys: which clients watch what, and which clients' transactions
/// have been invalidated by a change.
#[derive(Default)]
struct Watches {
    keys: HashMap<usize, HashMap<Box<[u8]>, Vec<u64>>>,
    by_client: HashMap<u64, Vec<WatchedKey>>,
    invalid: HashSet<u64>,
}

struct WatchedKey {
    db: usize,
    key: Box<[u8]>,
    /// Whether the key existed with a future expiry when watched; if it
    /// expires before EXEC the transaction fails, as in Redis 7.0.
    had_ttl_alive: bool,
}

impl Keyspace {
    /// An empty keyspace with `n` databases.
    pub fn new(n: usize) -> Keyspace {
        Keyspace {
            dbs: (0..n).map(|_| Db::default()).collect(),
            now: crate::util::now_ms(),
            stats: KeyStats::default(),
            dirty: 0,
            rng: Rng::from_entropy(),
            log_expired: false,
            expired_log: Vec::new(),
            watches: Watches::default(),
        }
    }

    /// Looks a key up for reading, expiring it first if due; counts a hit or miss.
    pub fn read(&mut self, db: usize, key: &[u8]) -> Option<&Value> {
        self.expire_if_needed(db, key);
        let v = self.dbs[db].dict.get(key);
        if v.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        v
    }

    /// Looks a key up for modification, expiring it first if due.
    pub fn write(&mut self, db: usize, key: &[u8]) -> Option<&mut Value> {
        self.expire_if_needed(db, key);
        self.dbs[db].dict.get_mut(key)
    }

    /// True when the key exists (after lazy expiry), without touching stats.
    pub fn exists(&mut self, db: usize, key: &[u8]) -> bool {
        self.expire_if_needed(db, key);
        self.dbs[db].dict.contains_key(key)
    }

    /// Changes since the last successful save (`rdb_changes_since_last_save`).
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// A save wrote the data as it was `changes` changes ago: those are no
    /// longer unsaved (`u64::MAX`: all of them).
    pub fn changes_saved(&mut self, changes: u64) {
        self.dirty = self.dirty.saturating_sub(changes);
    }

    /// Sets a key's value (Redis's `setKey`): replaces any old value and, unless
    /// `keep_ttl`, drops its expiry. One change.
    pub fn set(&mut self, db: usize, key: &[u8], val: Value, keep_ttl: bool) {
        self.expire_if_needed(db, key);
        let d = &mut self.dbs[db];
        if d.dict.insert(key, val).is_some() && !keep_ttl {
            d.expires.remove(key);
        }
        self.changed(db, key, 1);
    }

    /// Sets a key's value and its expiry (`None`: no expiry). One change.
    pub fn set_expiring(&mut self, db: usize, key: &[u8], val: Value, when_ms: Option<i64>) {
        self.expire_if_needed(db, key);
        let d = &mut self.dbs[db];
        d.dict.insert(key, val);
        match when_ms {
            Some(w) => match d.expires.get_mut(key) {
                Some(e) => *e = w,
                None => {
                    let k = d.dict.get_node(key).expect("just inserted").key.clone();
                    d.expires.insert_new(k, w);
                }
            },
            None => {
                if !d.expires.is_empty() {
                    d.expires.remove(key);
                }
            }
        }
        self.changed(db, key, 1);
    }

    /// Stores a collection of `n` elements at `key`, which does not exist
    /// (a push or add that creates its key). `n` changes.
    pub fn create(&mut self, db: usize, key: &[u8], val: Value, n: u64) {
        self.dbs[db].dict.insert(key, val);
        self.changed(db, key, n);
    }

    /// Removes a key and its expiry; returns whether it existed. One change if it did.
    pub fn delete(&mut self, db: usize, key: &[u8]) -> bool {
        self.expire_if_needed(db, key);
        let removed = self.remove_quietly(db, key);
        if removed {
            self.changed(db, key, 1);
        }
        removed
    }

    /// Moves a live key, with its expiry, to `dst` in `dst_db`, replacing
    /// what is there (RENAME, MOVE). One change.
    pub fn rename(&mut self, db: usize, key: &[u8], dst_db: usize, dst: &[u8]) {
        let when = self.dbs[db].expires.get(key).copied();
        let Some((_, val)) = self.dbs[db].dict.remove(key) else { return };
        self.dbs[db].expires.remove(key);
        self.touch(db, key);
        self.set_expiring(dst_db, dst, val, when);
    }

    /// The key's absolute expiry (Unix ms), if it has one.
    pub fn expire_at(&self, db: usize, key: &[u8]) -> Option<i64> {
        self.dbs[db].expires.get(key).copied()
    }

    /// Sets the expiry of an existing key. One change.
    pub fn set_expire(&mut self, db: usize, key: &[u8], when_ms: i64) {
        let d = &mut self.dbs[db];
        if let Some(node) = d.dict.get_node(key) {
            let k = node.key.clone();
            match d.expires.get_mut(key) {
                Some(w) => *w = when_ms,
                None => d.expires.insert_new(k, when_ms),
            }
            self.changed(db, key, 1);
        }
    }

    /// Removes a key's expiry; returns whether it had one. One change if it had.
    pub fn persist(&mut self, db: usize, key: &[u8]) -> bool {
        let had = self.dbs[db].expires.remove(key).is_some();
        if had {
            self.changed(db, key, 1);
        }
        had
    }

    /// Deletes the key if its expiry has passed; returns true if it did.
    pub fn expire_if_needed(&mut self, db: usize, key: &[u8]) -> bool {
        let d = &self.dbs[db];
        if d.expires.is_empty() {
            return false;
        }
        match d.expires.get(key) {
            Some(&when) if when <= self.now => {
                self.remove_quietly(db, key);
                self.stats.expired += 1;
                if self.log_expired {
                    self.expired_log.push((db, key.to_vec()));
                }
                self.touch(db, key);
                true
            }
            _ => false,
        }
    }

    fn remove_quietly(&mut self, db: usize, key: &[u8]) -> bool {
        let d = &mut self.dbs[db];
        if d.dict.remove(key).is_some() {
            if !d.expires.is_empty() {
                d.expires.remove(key);
            }
            true
        } else {
            false
        }
    }

    /// Empties one database: one change per key removed, which it returns.
    pub fn flush_db(&mut self, db: usize) -> usize {
        let n = self.dbs[db].dict.len();
        self.touch_db(db, None);
        self.dbs[db] = Db::default();
        self.dirty += n as u64;
        n
    }

    /// Empties every database (FLUSHALL): one change per key removed, and
    /// one more so that even an empty FLUSHALL counts (Redis's `dirty++`).
    pub fn flush_all(&mut self) {
        for db in 0..self.dbs.len() {
            self.flush_db(db);
        }
        self.dirty += 1;
    }

    /// Swaps two databases' contents (SWAPDB). One change.
    pub fn swap_db(&mut self, a: usize, b: usize) {
        self.touch_db(a, Some(b));
        self.touch_db(b, Some(a));
        self.dbs.swap(a, b);
        self.dirty += 1;
    }

    /// Total number of keys in all databases.
    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(|d| d.dict.len()).sum()
    }

    /// Reports `n` elements of a collection changed in place: deletes the
    /// key when it became empty (Redis never keeps an empty collection).
    /// `n` changes.
    pub fn collection_changed(&mut self, db: usize, key: &[u8], now_empty: bool, n: u64) {
        if now_empty {
            self.remove_quietly(db, key);
        }
        self.changed(db, key, n);
    }

    /// Reports that the value at `key` was modified in place (through
    /// [`Keyspace::write`]) by `n` changes: invalidates transactions
    /// watching it and counts the changes. `n = 0` only signals (a change
    /// Redis does not count, such as DEBUG POPULATE's or an LTRIM that kept
    /// everything).
    pub fn changed(&mut self, db: usize, key: &[u8], n: u64) {
        self.dirty += n;
        self.touch(db, key);
    }

    /// Signals that a key changed: invalidates transactions watching it.
    fn touch(&mut self, db: usize, key: &[u8]) {
        if self.watches.keys.is_empty() {
            return;
        }
        if let Some(clients) = self.watches.keys.get(&db).and_then(|m| m.get(key)) {
            self.watches.invalid.extend(clients.iter().copied());
        }
    }

    /// Signals that every key of a database changed (FLUSHDB, SWAPDB).
    /// `replaced_with` is the database whose contents take this one's place (SWAPDB).
    fn touch_db(&mut self, db: usize, replaced_with: Option<usize>) {
        if let Some(m) = self.watches.keys.get(&db) {
            for (key, clients) in m {
                // Like Redis, only keys that exist (or would be created) are touched.
                if self.dbs[db].dict.contains_key(key)
                    || replaced_with.is_some_and(|r| self.dbs[r].dict.contains_key(key))
                {
                    self.watches.invalid.extend(clients.iter().copied());
                }
            }
        }
    }

    /// Starts watching a key for a client.
    pub fn watch(&mut self, client: u64, db: usize, key: &[u8]) {
        let list = self.watches.by_client.entry(client).or_default();
        if list.iter().any(|w| w.db == db && &*w.key == key) {
            return;
        }
        let had_ttl_alive = self.dbs[db].expires.get(key).is_some_and(|&w| w > self.now);
        list.push(WatchedKey { db, key: key.into(), had_ttl_alive });
        self.watches.keys.entry(db).or_default().entry(key.into()).or_default().push(client);
    }

    /// Forgets every key a client watches and its invalidation (UNWATCH, EXEC, disconnect).
    pub fn unwatch_all(&mut self, client: u64) {
        self.watches.invalid.remove(&client);
        let Some(list) = self.watches.by_client.remove(&client) else { return };
        for w in list {
            if let Some(m) = self.watches.keys.get_mut(&w.db) {
                if let Some(v) = m.get_mut(&w.key) {
                    v.retain(|&c| c != client);
                    if v.is_empty() {
                        m.remove(&w.key);
                    }
                }
                if m.is_empty() {
                    self.watches.keys.remove(&w.db);
                }
            }
        }
    }

    /// True when a key the client watches changed or expired since WATCH.
    pub fn watch_invalidated(&self, client: u64) -> bool {
        if self.watches.invalid.contains(&client) {
            return true;
        }
        self.watches.by_client.get(&client).is_some_and(|list| {
            list.iter().any(|w| w.had_ttl_alive && self.dbs[w.db].expires.get(&w.key).is_some_and(|&t| t <= self.now))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_expiry_and_watch() {
        let mut ks = Keyspace::new(2);
        ks.set(0, b"a", Value::string(b"1"), false);
        ks.set_expire(0, b"a", ks.now + 1000);
        assert!(ks.read(0, b"a").is_some());
        ks.watch(7, 0, b"a");
        ks.now += 2000;
        assert!(ks.watch_invalidated(7));
        assert!(ks.read(0, b"a").is_none());
        assert_eq!(ks.stats.expired, 1);
        ks.unwatch_all(7);
        assert!(!ks.watch_invalidated(7));
        ks.watch(8, 1, b"b");
        ks.set(1, b"b", Value::string(b"x"), false);
        assert!(ks.watch_invalidated(8));
    }
}
