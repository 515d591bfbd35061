//! Delivery over lettre's stub transport: back-off, give-up, expiry, replay.

use std::sync::Arc;

use avvik_events::{EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};
use avvik_notifiers::Mailer;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::outbox::Outbox;
use super::rules::Rules;
use super::{DeliveryReport, DeliveryState, Notify, Rule};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::domain::{DeviationEvent, Reported};
use crate::secret::Secret;

const CISO: &str = "ciso@kommunen.example";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    clock: Arc<ManualClock>,
    config: Config,
    _shutdown: watch::Sender<bool>,
    notify: Notify,
    keys: Arc<crate::privacy::Keyring>,
}

async fn fixture(ok: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(SledEventStore::open(dir.path(), StoreOptions::default()).unwrap());
    let mut config = Config::defaults().unwrap();
    config.recipients.ciso = vec![CISO.into()];
    // These tests follow one triage e-mail over days; the daily triage-overdue reminder
    // (tested in tests/api/cases.rs) would be a second.
    config.notifications.triage_working_days = 0;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let (tx, rx) = watch::channel(false);
    let mailer = Mailer::stub(&config.mail.from, ok).unwrap();
    let keys = crate::privacy::Keyring::in_memory();
    let notify = Notify::with_mailer(
        &config,
        store.clone(),
        clock.clone(),
        Secret::from_bytes([1; 32]),
        keys.clone(),
        mailer,
        rx,
    );
    Fixture {
        _dir: dir,
        store,
        clock,
        config,
        _shutdown: tx,
        notify,
        keys,
    }
}

/// Stores a report the way the service does and returns the deviation id.
async fn reported(f: &Fixture) -> Uuid {
    let id = Uuid::now_v7();
    let now = f.clock.now();
    let ev = DeviationEvent::Reported(Reported::example(1, now));
    f.store
        .append(
            id,
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                ev.type_name(),
                ev.to_data(),
                "reporter:anonymous",
                now,
            )],
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_failing_delivery_backs_off_to_the_cap_and_is_abandoned_at_the_give_up_time() {
    let f = fixture(false).await;
    let id = reported(&f).await;
    let due = f.clock.now();
    let mut attempts_at = Vec::new();
    let mut last = DeliveryReport::default();
    for _ in 0..100 {
        last = f.notify.deliver_pending_once(f.clock.now()).await;
        if last.failed + last.abandoned > 0 {
            attempts_at.push(f.clock.now());
        }
        if last.abandoned > 0 {
            break;
        }
        let notices = f.notify.notices_for(id);
        let Some(DeliveryState::Pending {
            next_retry_at: Some(next),
            ..
        }) = notices.first().map(|n| n.state.clone())
        else {
            panic!("a scheduled retry: {notices:?}");
        };
        // One second early: nothing happens.
        f.clock.set(next - chrono::Duration::seconds(1));
        assert_eq!(
            f.notify.deliver_pending_once(f.clock.now()).await,
            DeliveryReport::default()
        );
        f.clock.set(next);
    }
    assert_eq!(last.abandoned, 1);
    let waits: Vec<i64> = attempts_at
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect();
    assert_eq!(&waits[..8], &[60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert!(waits.iter().all(|w| *w <= 3600));
    let abandoned_at = *attempts_at.last().unwrap();
    assert!(abandoned_at - due >= chrono::Duration::hours(48));
    assert!(abandoned_at - due < chrono::Duration::hours(49));
    let notices = f.notify.notices_for(id);
    assert_eq!(notices.len(), 1);
    match &notices[0].state {
        DeliveryState::Abandoned(a) => {
            assert_eq!(a.attempts as usize, attempts_at.len());
            assert!(!a.last_error.is_empty());
        }
        other => panic!("abandoned expected, got {other:?}"),
    }
    let timeline = f.notify.timeline_for(id).unwrap();
    assert_eq!(
        timeline.last().map(|r| r.event_type.as_str()),
        Some("NotificationAbandoned")
    );
    assert_eq!(timeline.len(), attempts_at.len());
    // Settled: later rounds leave it alone.
    f.clock.advance(chrono::Duration::days(3));
    assert_eq!(
        f.notify.deliver_pending_once(f.clock.now()).await,
        DeliveryReport::default()
    );
}

#[tokio::test]
async fn a_notice_never_tried_before_the_give_up_time_is_not_sent() {
    let f = fixture(true).await;
    let id = reported(&f).await;
    f.clock.advance(chrono::Duration::hours(49));
    let r = f.notify.deliver_pending_once(f.clock.now()).await;
    assert_eq!((r.sent, r.expired), (0, 1));
    assert!(f.notify.mailer().stub_messages().await.is_empty());
    assert_eq!(f.notify.notices_for(id)[0].state, DeliveryState::Expired);
    let r = f.notify.deliver_pending_once(f.clock.now()).await;
    assert_eq!(r, DeliveryReport::default(), "logged once, not again");
}

#[tokio::test]
async fn a_rebuilt_outbox_knows_what_was_sent() {
    let f = fixture(true).await;
    let id = reported(&f).await;
    let r = f.notify.deliver_pending_once(f.clock.now()).await;
    assert_eq!(r.sent, 1);
    let sent = f.notify.mailer().stub_messages().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, vec![CISO.to_string()]);
    // A fresh fold of the log (as at start-up) has nothing pending and shows the same.
    let rules = Arc::new(Rules::from_config(&f.config));
    let head = f.store.head().seq;
    let outbox = Outbox::fold(f.store.as_ref(), &f.keys, rules, head).unwrap();
    let (due, expired) = outbox.due(f.clock.now());
    assert!(due.is_empty() && expired.is_empty());
    assert_eq!(
        outbox.notices_for(id, f.clock.now()),
        f.notify.notices_for(id)
    );
    let n = &outbox.notices_for(id, f.clock.now())[0];
    assert_eq!(n.rule, Rule::Triage);
    assert!(matches!(&n.state, DeliveryState::Sent(s) if s.attempt == 1));
}

/// Start-up reads the log once for every projection and decodes deviation events straight
/// into their types; the live path folds whole records one by one. Both must give the same
/// register, outbox and intake view, whatever the log holds: several deviations, a major
/// classification, sent notices, an account, a deviation event whose payload
/// does not decode, and a type no fold knows.
#[tokio::test]
async fn start_up_replay_folds_as_the_live_path_does() {
    use crate::domain::{Aspects, Classification, PersonalDataBreach, Severity};
    use crate::intake::projection::IntakeView;
    use crate::projection::{replay, replay_sharing};
    use crate::register::Register;

    let f = fixture(true).await;
    let ids = [reported(&f).await, reported(&f).await, reported(&f).await];
    let classified = DeviationEvent::Classified(Classification {
        severity: Severity::Major,
        aspects: Aspects::default(),
        category: "Obehörig åtkomst".into(),
        personal_data_breach: PersonalDataBreach::Investigating,
        nis2_significant: true,
        rationale: "Känsliga uppgifter \"röjda\"\n".into(),
        role: "ciso".into(),
    });
    let odd = [
        (ids[0], classified.type_name(), classified.to_data()),
        (
            ids[1],
            "DeviationClassified",
            serde_json::json!({"severity": "enorm"}),
        ),
        (
            Uuid::now_v7(),
            "SomethingElse",
            serde_json::json!({"x": [1, 2, 3]}),
        ),
        (
            Uuid::now_v7(),
            "AccountCreated",
            serde_json::json!({"account_id": Uuid::now_v7(), "email": "a@kommunen.example", "name": "Å"}),
        ),
    ];
    for (stream, ty, data) in odd {
        f.store
            .append(
                stream,
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    ty,
                    data,
                    "user:ciso@kommunen.example",
                    f.clock.now(),
                )],
            )
            .await
            .unwrap();
    }
    assert!(f.notify.deliver_pending_once(f.clock.now()).await.sent > 0);
    let head = f.store.head().seq;

    let rules = Arc::new(Rules::from_config(&f.config));
    // Each fold on its own (as `Register::fold` and `Outbox::fold` replay) ...
    let (mut reg, mut outbox, mut intake) = (
        Register::new(),
        Outbox::new(rules.clone()),
        IntakeView::default(),
    );
    replay(
        f.store.as_ref(),
        &f.keys,
        1,
        head,
        &mut [&mut reg, &mut outbox, &mut intake],
    )
    .unwrap();
    // ... and with the register first, sharing its states (as the service starts).
    let (mut shared_reg, mut shared_outbox, mut shared_intake) = (
        Register::new(),
        Outbox::new(rules.clone()),
        IntakeView::default(),
    );
    replay_sharing(
        f.store.as_ref(),
        &f.keys,
        1,
        head,
        &mut shared_reg,
        &mut [&mut shared_outbox, &mut shared_intake],
    )
    .unwrap();

    let (mut live_reg, mut live_outbox, mut live_intake) =
        (Register::new(), Outbox::new(rules), IntakeView::default());
    for rec in avvik_events::read_all(f.store.as_ref(), 1) {
        // As `follow_log` hands them over: opened.
        let rec = f.keys.opened(&rec.unwrap());
        live_reg.apply(&rec);
        live_outbox.apply(&rec);
        live_intake.apply(&rec);
    }
    let now = f.clock.now();
    let due = |o: &Outbox| {
        let (due, expired) = o.due(now);
        let mut due: Vec<String> = due.iter().map(|d| format!("{d:?}")).collect();
        due.sort();
        (due, format!("{expired:?}"))
    };
    for (reg, outbox, intake) in [
        (&reg, &outbox, &intake),
        (&shared_reg, &shared_outbox, &shared_intake),
    ] {
        assert_eq!(reg, &live_reg);
        assert_eq!((reg.len(), reg.undecodable, reg.seq()), (3, 1, head));
        assert_eq!(reg.accounts.list().len(), 1);
        assert_eq!(outbox.seq(), live_outbox.seq());
        for id in ids {
            assert_eq!(
                outbox.notices_for(id, now),
                live_outbox.notices_for(id, now)
            );
            assert_eq!(
                outbox.timeline_streams(id),
                live_outbox.timeline_streams(id)
            );
            assert_eq!(
                outbox.deviation(id).map(|d| &**d),
                live_outbox.deviation(id).map(|d| &**d)
            );
        }
        assert!(!outbox.notices_for(ids[0], now).is_empty());
        assert_eq!(due(outbox), due(&live_outbox));
        assert_eq!(intake.seq(), live_intake.seq());
    }
    // Sharing: the outbox holds the register's states, not copies of its own.
    for id in ids {
        let (theirs, ours) = (shared_reg.shared(id), shared_outbox.deviation(id));
        assert!(
            theirs.zip(ours).is_some_and(|(a, b)| Arc::ptr_eq(a, b)),
            "the outbox keeps its own copy of {id}"
        );
    }
}
