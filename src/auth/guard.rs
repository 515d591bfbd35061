//! Failed staff logins: the password login of an account is throttled after repeated
//! failures (per-IP limits come from the rate limiter).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Failed logins per account: after `MAX_FAILURES` within `WINDOW_MIN`, the account's
/// password login is refused for `LOCK_MIN` (per-IP limits come from the rate limiter).
#[derive(Default)]
pub struct LoginGuard {
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

const MAX_FAILURES: u32 = 5;
const WINDOW_MIN: i64 = 15;
const LOCK_MIN: i64 = 15;

impl LoginGuard {
    pub fn locked(&self, key: &str, now: DateTime<Utc>) -> bool {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).is_some_and(|(n, first)| {
            *n >= MAX_FAILURES && now - *first < Duration::minutes(LOCK_MIN.max(WINDOW_MIN))
        })
    }

    pub fn failed(&self, key: &str, now: DateTime<Utc>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, first)| now - *first < Duration::minutes(LOCK_MIN.max(WINDOW_MIN)));
        let e = map.entry(key.to_string()).or_insert((0, now));
        e.0 += 1;
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}
