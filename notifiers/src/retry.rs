//! When to try a failed delivery again, and when to stop trying.

use std::time::Duration;

/// Exponential back-off to a cap, and a give-up horizon measured from when the notice
/// first became due (not from the last attempt, so a flapping server cannot keep a notice
/// alive forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure.
    pub first: Duration,
    /// Longest wait between two attempts.
    pub max: Duration,
    /// Stop trying this long after the notice became due.
    pub give_up_after: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1 for the first attempt).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.first
            .saturating_mul(factor)
            .min(self.max)
            .max(self.first.min(self.max))
    }

    /// Has a notice that became due `age` ago run out of time?
    pub fn gives_up(&self, age: Duration) -> bool {
        age >= self.give_up_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_never_overflows() {
        let p = RetryPolicy {
            first: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(48 * 3600),
        };
        let waits: Vec<u64> = (1..=8).map(|a| p.delay(a).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(p.delay(u32::MAX).as_secs(), 3600);
        assert_eq!(p.delay(0).as_secs(), 60);
        assert!(!p.gives_up(Duration::from_secs(47 * 3600)));
        assert!(p.gives_up(Duration::from_secs(48 * 3600)));
    }
}
