//! The scheduler: jobs on cron expressions in Stockholm time, each run recorded as an
//! event so a run is never repeated after a restart and a run missed while avvik was down
//! happens at the next start.
//!
//! A job's run and its effect are appended together, atomically, to the job's own stream:
//! `ScheduledJobRan` plus `AnnualReportIssued` to the annual-report stream, or plus
//! `PolicyReviewReminderDue` to the policy-review stream. The notification outbox turns
//! those effects into e-mail (the annual report to kommunstyrelsen and the CISO, the
//! reminder to the CISO).
//!
//! Which slots are due: the slots after the start of the history (the first record in
//! the log, or this process's start if that is earlier) up to now, that no
//! `ScheduledJobRan` records. So installing avvik does not fire last January's report,
//! and a slot missed during downtime fires at the next start-up.

pub use crate::clock::cron;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use chrono::{DateTime, Months, NaiveDate, Utc};
use chrono_tz::Europe::Stockholm;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use self::cron::StockholmSchedule;
use crate::clock::Clock;
use crate::command::{CommandError, CommandHandler, Current, Envelope, Executed, Load};
use crate::config::Config;
use crate::domain::stockholm_year;
use crate::domain::Fact;
use crate::report::issue::{
    decide_issue, issue_fact, issue_loader, IssueError, IssueState, IssueTrigger,
};
use crate::report::{annual_reports_stream, ReportError};

/// Event type of a job run.
pub const SCHEDULED_JOB_RAN: &str = "ScheduledJobRan";
/// Event type of a policy-review reminder.
pub const POLICY_REVIEW_REMINDER_DUE: &str = "PolicyReviewReminderDue";
/// The actor of everything the scheduler appends.
pub const SCHEDULER_ACTOR: &str = crate::domain::System::Scheduler.as_str();
/// At most this many missed slots of one job are caught up at once (the latest ones).
const CATCH_UP_LIMIT: usize = 5;
/// The loop re-reads the clock at least this often, so a clock change is noticed.
const MAX_SLEEP: StdDuration = StdDuration::from_secs(60);

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// The annual report on the previous year.
    AnnualReport,
    /// A reminder to the CISO that the policy must be reviewed before it expires.
    PolicyReviewReminder,
}

impl Job {
    /// The stream its runs (and their effects) are recorded in.
    pub fn stream(self) -> Uuid {
        match self {
            Job::AnnualReport => annual_reports_stream(),
            Job::PolicyReviewReminder => policy_review_stream(),
        }
    }
}

/// The stream of policy-review reminders.
pub fn policy_review_stream() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:avvik:stream:policy-review")
}

/// A job ran for a slot (a scheduled instant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledJobRan {
    pub job: Job,
    pub slot: DateTime<Utc>,
    /// The slot on the Stockholm clock, for people reading the log.
    pub slot_local: String,
    pub outcome: JobOutcome,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobOutcome {
    /// The annual report on `year` was issued (the `AnnualReportIssued` event follows).
    ReportIssued { year: i32, content_hash: String },
    /// It had already been issued (by hand, or by an earlier slot): nothing new.
    ReportAlreadyIssued { year: i32, issue_seq: u64 },
    /// A review reminder is due (the `PolicyReviewReminderDue` event follows).
    ReminderDue { months_before: u32 },
    /// Missed during downtime and covered by a later slot's run.
    Superseded { by_slot: DateTime<Utc> },
}

/// The policy must be reviewed before `valid_until`; this reminder is `months_before` it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReviewReminderDue {
    pub valid_until: NaiveDate,
    pub months_before: u32,
    /// The date the reminder was planned for (`valid_until` minus `months_before`).
    pub reminder_date: NaiveDate,
    pub slot: DateTime<Utc>,
    /// Who is to be reminded: always `ciso`.
    pub recipient_role: String,
}

/// One run, as `run_due_jobs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub job: Job,
    pub slot: DateTime<Utc>,
    pub outcome: JobOutcome,
    /// Seq of the `ScheduledJobRan` record.
    pub seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("key `{key}`: not a valid cron expression `{expression}`: {reason}")]
    BadCron {
        key: &'static str,
        expression: String,
        reason: String,
    },
    #[error("too many concurrent changes to the job's stream; will retry")]
    Contention,
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the scheduler is configured to do.
#[derive(Debug, Clone)]
pub struct Schedules {
    pub annual_report: StockholmSchedule,
    /// When on a reminder's date it is sent: the first slot at or after that date's start.
    pub policy_review_reminder: StockholmSchedule,
    pub policy_valid_until: NaiveDate,
    pub review_reminders_months: Vec<u32>,
}

impl Schedules {
    pub fn from_config(config: &Config) -> Result<Self, SchedulerError> {
        let parse = |key: &'static str, expression: &str| {
            StockholmSchedule::parse(expression).map_err(|e| SchedulerError::BadCron {
                key,
                expression: expression.to_string(),
                reason: e.to_string(),
            })
        };
        Ok(Self {
            annual_report: parse("schedule.annual_report", &config.schedule.annual_report)?,
            policy_review_reminder: parse(
                "schedule.policy_review_reminder",
                &config.schedule.policy_review_reminder,
            )?,
            policy_valid_until: config.policy.valid_until,
            review_reminders_months: config.policy.review_reminders_months.clone(),
        })
    }

    /// Each reminder's slot, with its lead time in months.
    pub fn reminder_slots(&self) -> Vec<(u32, NaiveDate, DateTime<Utc>)> {
        let mut out: Vec<(u32, NaiveDate, DateTime<Utc>)> = self
            .review_reminders_months
            .iter()
            .filter_map(|&m| {
                let date = self.policy_valid_until.checked_sub_months(Months::new(m))?;
                let start = cron::to_instant(date.and_hms_opt(0, 0, 0)?)?;
                let slot = self.policy_review_reminder.at_or_after(start)?;
                Some((m, date, slot))
            })
            .collect();
        out.sort_by_key(|(m, _, slot)| (*slot, *m));
        out.dedup_by_key(|(_, _, slot)| *slot);
        out
    }
}

/// Runs the jobs. `run_due_jobs` is the whole decision and can be driven by a test with a
/// manual clock; `spawn` wraps it in a loop that stops on shutdown.
pub struct Scheduler {
    store: Arc<dyn EventStore>,
    keys: Arc<crate::privacy::Keyring>,
    clock: Arc<dyn Clock>,
    schedules: Schedules,
    started_at: DateTime<Utc>,
    running: tokio::sync::Mutex<()>,
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&Stockholm).to_rfc3339()
}

fn ran_fact(job: Job, slot: DateTime<Utc>, outcome: JobOutcome) -> Fact {
    let ran = ScheduledJobRan {
        job,
        slot,
        slot_local: local(slot),
        outcome,
    };
    Fact::new(SCHEDULED_JOB_RAN, &ran)
}

/// The annual-report job's decider for one slot: the report issued, or the slot recorded
/// as finding the year already issued. Pure.
fn decide_annual_slot(
    state: &IssueState,
    job: Job,
    slot: DateTime<Utc>,
    year: i32,
) -> Result<Vec<Fact>, SchedulerError> {
    if runs_in(&state.stream)
        .iter()
        .any(|r| r.job == job && r.slot == slot)
    {
        return Ok(Vec::new());
    }
    match decide_issue(state, year, None, IssueTrigger::Scheduled) {
        Ok(event) => {
            let outcome = JobOutcome::ReportIssued {
                year,
                content_hash: event.content_hash.clone(),
            };
            Ok(vec![ran_fact(job, slot, outcome), issue_fact(&event)])
        }
        Err(IssueError::AlreadyIssued { seq, .. }) => {
            let outcome = JobOutcome::ReportAlreadyIssued {
                year,
                issue_seq: seq,
            };
            Ok(vec![ran_fact(job, slot, outcome)])
        }
        Err(e) => Err(e.into()),
    }
}

/// The policy-review reminder's decider: the most urgent reminder due between `start` and
/// `now` that has not run (earlier missed ones are recorded as superseded by it). Pure.
fn decide_reminders(
    schedules: &Schedules,
    records: &[RecordedEvent],
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Fact> {
    let job = Job::PolicyReviewReminder;
    let done: Vec<DateTime<Utc>> = runs_in(records).into_iter().map(|r| r.slot).collect();
    let due: Vec<(u32, NaiveDate, DateTime<Utc>)> = schedules
        .reminder_slots()
        .into_iter()
        .filter(|(_, _, slot)| *slot > start && *slot <= now && !done.contains(slot))
        .collect();
    let Some(&(months, date, slot)) = due.last() else {
        return Vec::new();
    };
    let mut events: Vec<Fact> = due[..due.len() - 1]
        .iter()
        .map(|(_, _, s)| ran_fact(job, *s, JobOutcome::Superseded { by_slot: slot }))
        .collect();
    let outcome = JobOutcome::ReminderDue {
        months_before: months,
    };
    events.push(ran_fact(job, slot, outcome));
    let reminder = PolicyReviewReminderDue {
        valid_until: schedules.policy_valid_until,
        months_before: months,
        reminder_date: date,
        slot,
        recipient_role: "ciso".into(),
    };
    events.push(Fact::new(POLICY_REVIEW_REMINDER_DUE, &reminder));
    events
}

impl From<IssueError> for SchedulerError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Report(e) => SchedulerError::Report(e),
            IssueError::Store(e) => SchedulerError::Store(e),
            IssueError::AlreadyIssued { .. }
            | IssueError::Contention
            | IssueError::ReasonTooLong => SchedulerError::Contention,
        }
    }
}

impl From<CommandError> for SchedulerError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Contention => SchedulerError::Contention,
            CommandError::Store(e) => SchedulerError::Store(e),
        }
    }
}

fn runs_in(records: &[RecordedEvent]) -> Vec<JobRun> {
    records
        .iter()
        .filter(|r| r.event_type == SCHEDULED_JOB_RAN)
        .filter_map(|r| {
            let ran: ScheduledJobRan = r.decode().ok()?;
            Some(JobRun {
                job: ran.job,
                slot: ran.slot,
                outcome: ran.outcome,
                seq: r.seq,
            })
        })
        .collect()
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn EventStore>,
        keys: Arc<crate::privacy::Keyring>,
        clock: Arc<dyn Clock>,
        schedules: Schedules,
    ) -> Self {
        let started_at = clock.now();
        Self {
            store,
            keys,
            clock,
            schedules,
            started_at,
            running: tokio::sync::Mutex::new(()),
        }
    }

    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }

    /// Every recorded run of `job`, oldest first.
    pub fn runs(&self, job: Job) -> Result<Vec<JobRun>, StoreError> {
        Ok(runs_in(&self.store.read_stream(job.stream(), 1)?)
            .into_iter()
            .filter(|r| r.job == job)
            .collect())
    }

    /// Where the history starts: slots before it are not caught up.
    fn history_start(&self) -> Result<DateTime<Utc>, StoreError> {
        let first = self.store.read_batch(1, 1)?;
        Ok(match first.first() {
            Some(r) if r.at < self.started_at => r.at,
            _ => self.started_at,
        })
    }

    /// The next instant a job is scheduled after `now`.
    pub fn next_slot_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let annual = self.schedules.annual_report.next_after(now);
        let reminder = self
            .schedules
            .reminder_slots()
            .into_iter()
            .map(|(_, _, s)| s)
            .find(|s| *s > now);
        [annual, reminder].into_iter().flatten().min()
    }

    /// Runs every job slot that is due at `now` and not yet recorded; returns what ran.
    /// Safe to call concurrently and repeatedly: a slot runs once.
    pub async fn run_due_jobs(&self, now: DateTime<Utc>) -> Result<Vec<JobRun>, SchedulerError> {
        let _one_at_a_time = self.running.lock().await;
        let start = self.history_start()?;
        let mut ran = self.run_annual(start, now).await?;
        ran.extend(self.run_reminders(start, now).await?);
        Ok(ran)
    }

    async fn run_annual(
        &self,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<JobRun>, SchedulerError> {
        let job = Job::AnnualReport;
        let done: Vec<DateTime<Utc>> = self.runs(job)?.into_iter().map(|r| r.slot).collect();
        let due: Vec<DateTime<Utc>> = self
            .schedules
            .annual_report
            .slots_between(start, now, CATCH_UP_LIMIT)
            .into_iter()
            .filter(|s| !done.contains(s))
            .collect();
        let mut out = Vec::new();
        for slot in due {
            // The report is on the year before the one the slot falls in.
            let year = stockholm_year(slot) - 1;
            out.push(self.run_annual_slot(slot, year).await?);
        }
        Ok(out)
    }

    async fn run_annual_slot(
        &self,
        slot: DateTime<Utc>,
        year: i32,
    ) -> Result<JobRun, SchedulerError> {
        let job = Job::AnnualReport;
        let store = self.store.clone();
        let keys = self.keys.clone();
        let load: Load<'_, IssueState, SchedulerError> = Box::new(move || {
            let load = issue_loader(store.clone(), keys.clone(), year);
            Box::pin(async move { load().await.map_err(SchedulerError::from) })
        });
        let env = Envelope::new(job.stream(), SCHEDULER_ACTOR);
        let outcome = self
            .commands()
            .execute(&env, load, |state, _ctx| {
                decide_annual_slot(state, job, slot, year)
            })
            .await?;
        let run = match &outcome {
            // Recorded meanwhile (another process ran the slot): that run.
            Executed::Unchanged(state) => runs_in(&state.stream)
                .into_iter()
                .find(|r| r.job == job && r.slot == slot),
            Executed::Committed { records, .. } => runs_in(records).into_iter().next(),
        }
        .ok_or(SchedulerError::Contention)?;
        tracing::info!(?job, %slot, year, outcome = ?run.outcome, "scheduled job ran");
        Ok(run)
    }

    async fn run_reminders(
        &self,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<JobRun>, SchedulerError> {
        let job = Job::PolicyReviewReminder;
        let commands = self.commands();
        let load: Load<'_, Vec<RecordedEvent>, SchedulerError> = Box::new(|| {
            Box::pin(async {
                let (records, version) = commands.read_stream(job.stream())?;
                Ok(Current::new(records, version))
            })
        });
        let env = Envelope::new(job.stream(), SCHEDULER_ACTOR);
        let outcome = self
            .commands()
            .execute(&env, load, |records, _ctx| {
                Ok(decide_reminders(&self.schedules, records, start, now))
            })
            .await?;
        let runs = runs_in(outcome.records());
        if let Some(run) = runs.last() {
            tracing::info!(?job, slot = %run.slot, "policy review reminder due");
        }
        Ok(runs)
    }

    fn commands(&self) -> CommandHandler {
        CommandHandler::new(self.store.clone(), self.clock.clone())
    }

    /// Runs due jobs now and then at each slot, until `shutdown` turns true (or its sender
    /// is dropped). Sleeps at most a minute at a time, so a changed clock is noticed.
    pub fn spawn(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let now = self.clock.now();
                if let Err(e) = self.run_due_jobs(now).await {
                    tracing::error!(error = %e, "scheduled jobs failed; retrying in a minute");
                }
                let now = self.clock.now();
                let wait = self
                    .next_slot_after(now)
                    .and_then(|next| (next - now).to_std().ok())
                    .map(|d| d + StdDuration::from_millis(20))
                    .unwrap_or(MAX_SLEEP)
                    .min(MAX_SLEEP);
                tokio::select! {
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            tracing::debug!("scheduler stopped");
        })
    }
}

/// The reminder e-mail's subject and text, in Swedish, for the outbox.
pub fn render_policy_reminder_email(r: &PolicyReviewReminderDue) -> (String, String) {
    let until = r.valid_until.format("%Y-%m-%d");
    let subject = format!("Påminnelse: informationssäkerhetspolicyn ska utvärderas före {until}");
    let lead = match r.months_before {
        0 => "i dag".to_string(),
        1 => "om en månad".to_string(),
        m => format!("om {m} månader"),
    };
    let text = format!(
        "Informationssäkerhetspolicyn gäller till och med {until}, alltså {lead}.\n\n\
         Enligt policyn ska den utvärderas innan den upphör att gälla, inför att en ny \
         policy antas av kommunfullmäktige. Planera utvärderingen och beslutsgången så att \
         en ny policy kan antas i tid.\n\n\
         Detta är en automatisk påminnelse från avvik ({} månader före).\n",
        r.months_before
    );
    (subject, text)
}
