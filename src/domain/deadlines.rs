//! The statutory clocks of a deviation: from when they run (the controller's awareness,
//! or discovery for deviations from before awareness was recorded) and when each filing
//! phase is due.

use chrono::{DateTime, Duration, Months, Utc};
use chrono_tz::Europe::Stockholm;
use serde::{Deserialize, Serialize};

use super::deviation::{Deadline, Deviation};
use super::types::{FilingKind, Regime};

/// One recorded awareness time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Awareness {
    pub regime: Regime,
    pub aware_at: DateTime<Utc>,
    /// Why it was changed; `None` when it was set by the first marking.
    pub reason: Option<String>,
    pub by: String,
    pub recorded_at: DateTime<Utc>,
}

/// Where a clock starts, and why there.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockStart {
    /// No awareness recorded (deviations from before it was): the discovery time.
    Discovery(DateTime<Utc>),
    /// The latest recorded awareness.
    Aware(Awareness),
}

impl ClockStart {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            ClockStart::Discovery(t) => *t,
            ClockStart::Aware(a) => a.aware_at,
        }
    }
}

/// One calendar month later in Stockholm time (so 10:00 stays 10:00 across a DST change);
/// the same instant in UTC when that local time does not exist.
pub fn one_month_after(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_timezone(&Stockholm)
        .checked_add_months(Months::new(1))
        .map(|l| l.with_timezone(&Utc))
        .or_else(|| t.checked_add_months(Months::new(1)))
        .unwrap_or(t)
}

impl Deviation {
    /// The latest recorded awareness of this regime.
    pub fn awareness_of(&self, regime: Regime) -> Option<&Awareness> {
        self.awareness.iter().rev().find(|a| a.regime == regime)
    }

    pub fn aware_at(&self, regime: Regime) -> Option<DateTime<Utc>> {
        self.awareness_of(regime).map(|a| a.aware_at)
    }

    /// From when this regime's clocks run.
    pub fn clock_start(&self, regime: Regime) -> ClockStart {
        match self.awareness_of(regime) {
            Some(a) => ClockStart::Aware(a.clone()),
            None => ClockStart::Discovery(self.discovered_at),
        }
    }

    /// Is any filing (or decision not to file) of this regime recorded?
    pub fn has_filing_in(&self, regime: Regime) -> bool {
        self.filings.iter().any(|f| f.kind.regime() == regime)
    }

    /// Is the NIS2 incident on the ongoing path: still being handled when the final report
    /// would have been due, so a progress report is due then instead?
    pub fn nis2_ongoing(&self, final_due: DateTime<Utc>) -> bool {
        match self.nis2_handling_end() {
            Some(end) => end > final_due,
            None => self.filing(FilingKind::Nis2Progress).is_some(),
        }
    }

    /// When handling ended: recorded, or implied by a filed final report.
    fn nis2_handling_end(&self) -> Option<DateTime<Utc>> {
        self.incident_handling_ended_at.or_else(|| {
            self.filing(FilingKind::Nis2FinalReport)
                .and_then(|f| f.filed_at)
        })
    }
}

/// The deadlines of a deviation, each with its settlement; lateness is frozen at filing.
pub(super) fn compute(d: &Deviation) -> Vec<Deadline> {
    let mut out = Vec::new();
    // A report of an incident has its clocks on the incident.
    if d.incident.is_some() {
        return Vec::new();
    }
    let marked = |r: Regime| {
        d.classifications
            .last()
            .is_some_and(|c| c.classification.marks(r))
            || d.has_filing_in(r)
    };
    if marked(Regime::Gdpr) {
        let from = d.clock_start(Regime::Gdpr).at();
        out.push((FilingKind::Gdpr, from + Duration::hours(72)));
    }
    if marked(Regime::Nis2) {
        let from = d.clock_start(Regime::Nis2).at();
        out.push((FilingKind::Nis2EarlyWarning, from + Duration::hours(24)));
        let notification_due = from + Duration::hours(72);
        out.push((FilingKind::Nis2Notification, notification_due));
        let notified = d
            .filing(FilingKind::Nis2Notification)
            .and_then(|f| f.filed_at)
            .unwrap_or(notification_due);
        let final_due = one_month_after(notified);
        if d.nis2_ongoing(final_due) {
            out.push((FilingKind::Nis2Progress, final_due));
            if let Some(end) = d.nis2_handling_end() {
                out.push((FilingKind::Nis2FinalReport, one_month_after(end)));
            }
        } else {
            out.push((FilingKind::Nis2FinalReport, final_due));
        }
    }
    out.into_iter()
        .map(|(kind, due)| {
            let filing = d.filing(kind);
            Deadline {
                kind,
                due,
                settled_at: filing.map(|f| f.filed_at.unwrap_or(f.recorded_at)),
                late: filing.and_then(|f| f.filed_at).map(|filed| filed > due),
            }
        })
        .collect()
}
