//! Failed password logins slow down the pair that failed — account and source address —
//! with an exponential back-off, instead of locking the account for everyone: an attacker
//! guessing from one address cannot keep the owner, signing in from another, out.
//! (Guessing from many addresses is bounded by the per-IP rate limit on the login.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Failures allowed before the back-off starts.
pub const FREE_FAILURES: u32 = 3;
/// The first wait; each further failure doubles it.
pub const FIRST_WAIT_S: i64 = 2;
/// The longest wait.
pub const MAX_WAIT_S: i64 = 15 * 60;
/// A pair with no failure for this long starts afresh.
pub const FORGET_AFTER_H: i64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

/// The wait after `count` failures in a row: none up to `FREE_FAILURES`, then 2 s, 4 s,
/// 8 s … at most `MAX_WAIT_S`.
pub fn wait_after(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES)?;
    if over == 0 {
        return None;
    }
    let secs = FIRST_WAIT_S.saturating_mul(1i64 << (over - 1).min(20));
    Some(Duration::seconds(secs.min(MAX_WAIT_S)))
}

/// A pair being slowed down, for the CISO's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub account: String,
    pub address: IpAddr,
    pub failures: u32,
    pub last_failure: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Failed logins per (account, source address), in memory (a restart forgets them, which
/// only shortens a wait).
#[derive(Default)]
pub struct LoginThrottle {
    pairs: Mutex<HashMap<(String, IpAddr), Failures>>,
}

impl LoginThrottle {
    /// `Some(remaining)` while `account` may not try from `address`.
    pub fn wait(&self, account: &str, address: IpAddr, now: DateTime<Utc>) -> Option<Duration> {
        let map = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        let f = map.get(&(account.to_string(), address))?;
        f.until.filter(|u| *u > now).map(|u| u - now)
    }

    /// Records a failure; returns the wait it starts, if any.
    pub fn failed(&self, account: &str, address: IpAddr, now: DateTime<Utc>) -> Option<Duration> {
        let mut map = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, f| now - f.last < Duration::hours(FORGET_AFTER_H));
        let f = map
            .entry((account.to_string(), address))
            .or_insert(Failures {
                count: 0,
                last: now,
                until: None,
            });
        f.count = f.count.saturating_add(1);
        f.last = now;
        let wait = wait_after(f.count);
        f.until = wait.map(|w| now + w);
        wait
    }

    /// A successful login from `address` clears that pair only.
    pub fn succeeded(&self, account: &str, address: IpAddr) {
        self.pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(account.to_string(), address));
    }

    /// Pairs in back-off now, or past the free failures within the last hour, newest
    /// first.
    pub fn throttled(&self, now: DateTime<Utc>) -> Vec<Throttled> {
        let map = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Throttled> = map
            .iter()
            .filter_map(|((account, address), f)| {
                let until = f.until?;
                (until > now || now - f.last < Duration::hours(1)).then(|| Throttled {
                    account: account.clone(),
                    address: *address,
                    failures: f.count,
                    last_failure: f.last,
                    until,
                })
            })
            .collect();
        v.sort_by_key(|t| std::cmp::Reverse(t.last_failure));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn back_off_doubles_and_is_capped() {
        assert_eq!(wait_after(3), None);
        assert_eq!(wait_after(4), Some(Duration::seconds(2)));
        assert_eq!(wait_after(5), Some(Duration::seconds(4)));
        assert_eq!(wait_after(8), Some(Duration::seconds(32)));
        assert_eq!(wait_after(40), Some(Duration::seconds(MAX_WAIT_S)));
        assert_eq!(wait_after(u32::MAX), Some(Duration::seconds(MAX_WAIT_S)));
    }

    #[test]
    fn another_address_is_not_slowed_down() {
        let t = LoginThrottle::default();
        let now = Utc::now();
        for _ in 0..10 {
            t.failed("ciso@kommunen.se", ip("192.0.2.66"), now);
        }
        assert!(t.wait("ciso@kommunen.se", ip("192.0.2.66"), now).is_some());
        assert!(t
            .wait("ciso@kommunen.se", ip("198.51.100.1"), now)
            .is_none());
        let list = t.throttled(now);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].address, ip("192.0.2.66"));
        // The wait ends on its own.
        assert!(t
            .wait(
                "ciso@kommunen.se",
                ip("192.0.2.66"),
                now + Duration::seconds(MAX_WAIT_S + 1)
            )
            .is_none());
        t.succeeded("ciso@kommunen.se", ip("192.0.2.66"));
        assert!(t.throttled(now).is_empty());
    }
}
