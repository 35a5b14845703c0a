//! Active expiry: besides deleting keys lazily when they are accessed, the
//! cron samples keys with a time to live and deletes the expired ones, so
//! keys nobody reads still go away (Redis's `activeExpireCycle`).

use crate::keyspace::Keyspace;
use std::time::{Duration, Instant};

/// Keys sampled per database per round.
const SAMPLE: usize = 20;
/// Another round runs while more than this percentage of a sample had expired.
const REPEAT_ABOVE_PERCENT: usize = 10;

/// Deletes expired keys by random sampling, within `budget`.
pub fn active_cycle(ks: &mut Keyspace, budget: Duration) {
    let start = Instant::now();
    for db in 0..ks.dbs.len() {
        loop {
            let volatile = ks.dbs[db].expires.len();
            if volatile == 0 {
                break;
            }
            let mut expired = 0;
            let samples = SAMPLE.min(volatile);
            for _ in 0..samples {
                let Some(node) = ks.dbs[db].expires.random(&mut ks.rng) else { break };
                if node.val <= ks.now {
                    let key = node.key.clone();
                    if ks.expire_if_needed(db, &key) {
                        expired += 1;
                    }
                }
            }
            if expired * 100 <= samples * REPEAT_ABOVE_PERCENT || start.elapsed() >= budget {
                break;
            }
        }
        if start.elapsed() >= budget {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn removes_expired_keys_without_access() {
        let mut ks = Keyspace::new(1);
        for i in 0..1000 {
            let k = format!("k{i}");
            ks.set(0, k.as_bytes(), Value::string(b"v"), false);
            if i % 2 == 0 {
                ks.set_expire(0, k.as_bytes(), ks.now - 1);
            }
        }
        for _ in 0..200 {
            active_cycle(&mut ks, Duration::from_millis(25));
        }
        assert_eq!(ks.dbs[0].dict.len(), 500);
        assert_eq!(ks.stats.expired, 500);
    }
}
