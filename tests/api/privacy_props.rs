//! Sealing and gallring at the command path, on a real store: ciphertext in the log, opened
//! for readers, and a property test that gallring never leaves plaintext anywhere.

use std::sync::Arc;

use avvik_events::{EventStore, SledEventStore, StoreOptions};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

use avvik::clock::ManualClock;
use avvik::command::{stateless, CommandHandler, Envelope};
use avvik::domain::deviation::{
    Closed, CommentAdded, DecisionRecorded, MeasureAdded, Reopened, Shredded,
};
use avvik::domain::{
    Aspects, Channel, Classification, DeviationEvent, EmailAddress, PersonalDataBreach, Reference,
    Reported, Reporter, Severity,
};
use avvik::privacy::*;
use avvik::register::Register;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap()
}

fn reported(n: u64, marker: &str) -> DeviationEvent {
    DeviationEvent::Reported(Reported {
        reference: Reference::new(2026, n),
        title: format!("Rubrik {marker}"),
        description: format!("Personnummer {marker} i klartext"),
        occurred_at: None,
        discovered_at: t0(),
        sector: Some("Socialförvaltningen".into()),
        asset: Some(format!("System {marker}")),
        personal_data: true,
        reporter: Some(Reporter {
            name: format!("Anna {marker}"),
            email: EmailAddress::parse(&format!("{marker}@kommunen.example")).unwrap(),
        }),
        channel: Channel::Web,
        status_token_hash: "00".repeat(32),
        reported_at: t0(),
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    keys: Arc<Keyring>,
    commands: CommandHandler,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(SledEventStore::open(&dir.path().join("db"), StoreOptions::default()).unwrap());
    let keys = Keyring::open_dir(dir.path(), &avvik::secret::Secret::from_bytes([3; 32])).unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let commands = CommandHandler::sealing(store.clone(), clock, keys.clone());
    Fixture {
        _dir: dir,
        store,
        keys,
        commands,
    }
}

async fn record(f: &Fixture, stream: uuid::Uuid, ev: DeviationEvent) {
    f.commands
        .execute::<(), _, avvik::command::CommandError>(
            &Envelope::new(stream, "user:ciso@kommunen.example").expect_any(),
            stateless(),
            move |_, _| Ok(vec![ev.clone()]),
        )
        .await
        .unwrap();
}

fn export(store: &dyn EventStore) -> String {
    let mut out = Vec::new();
    store.export(1, store.head().seq, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn sealed_fields_are_ciphertext_in_the_log_and_open_for_readers() {
    let f = fixture();
    let id = uuid::Uuid::now_v7();
    record(&f, id, reported(1, "19121212-1212")).await;
    let raw = export(f.store.as_ref());
    assert!(!raw.contains("19121212-1212"), "{raw}");
    assert!(
        raw.contains("Socialförvaltningen"),
        "clear fields stay clear"
    );
    let recs = f.store.read_stream(id, 1).unwrap();
    assert!(recs[0].data.get("blind_index").is_some());
    let opened = f.keys.opened(&recs[0]);
    assert_eq!(
        opened.data["description"],
        json!("Personnummer 19121212-1212 i klartext")
    );
    let reg = Register::fold(f.store.as_ref(), &f.keys, f.store.head().seq).unwrap();
    assert_eq!(
        reg.get(id).unwrap().reporter.as_ref().unwrap().name,
        "Anna 19121212-1212"
    );
    // The associated data binds the ciphertext to its event: moved to another id, it fails.
    let mut moved = recs[0].clone();
    moved.id = uuid::Uuid::now_v7();
    assert!(matches!(
        f.keys.open_record(&mut moved),
        Opened::KeyMissing(_)
    ));
}

#[tokio::test]
async fn a_handler_without_keys_refuses_events_with_personal_fields() {
    let f = fixture();
    let plain = CommandHandler::new(f.store.clone(), Arc::new(ManualClock::new(t0())));
    let ev = reported(1, "x");
    let r = plain
        .execute::<(), _, avvik::command::CommandError>(
            &Envelope::new(uuid::Uuid::now_v7(), "reporter").expect_any(),
            stateless(),
            move |_, _| Ok(vec![ev.clone()]),
        )
        .await;
    assert!(r.is_err());
    assert_eq!(f.store.head().seq, 0);
}

/// What a test command does to deviation `i`, with a marker in every text.
#[derive(Debug, Clone)]
enum Step {
    Classify(usize),
    Decide(usize),
    Measure(usize),
    Comment(usize),
    Close(usize),
    Reopen(usize),
    Shred(usize),
}

fn step() -> impl Strategy<Value = Step> {
    (0usize..7, 0usize..3).prop_map(|(k, i)| match k {
        0 => Step::Classify(i),
        1 => Step::Decide(i),
        2 => Step::Measure(i),
        3 => Step::Comment(i),
        4 => Step::Close(i),
        5 => Step::Reopen(i),
        _ => Step::Shred(i),
    })
}

fn marker(i: usize, n: usize) -> String {
    format!("MARK{i}x{n}Q")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any sequence of commands with gallring: no projection, as-of replay, history or
    /// export ever shows plaintext of a shredded deviation.
    #[test]
    fn gallring_never_leaves_plaintext(steps in proptest::collection::vec(step(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture();
            let ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
            let mut markers: Vec<Vec<String>> = vec![Vec::new(); 3];
            for (i, id) in ids.iter().enumerate() {
                let m = marker(i, 0);
                markers[i].push(m.clone());
                record(&f, *id, reported(i as u64 + 1, &m)).await;
            }
            let mut shredded = [false; 3];
            for (n, s) in steps.iter().enumerate() {
                let reg = Register::fold(f.store.as_ref(), &f.keys, f.store.head().seq).unwrap();
                let (i, ev) = {
                    let m = marker(0, n + 1);
                    match s {
                        Step::Classify(i) => (*i, DeviationEvent::Classified(Classification {
                            severity: Severity::Minor,
                            aspects: Aspects::default(),
                            category: "övrigt".into(),
                            personal_data_breach: PersonalDataBreach::No,
                            nis2_significant: false,
                            rationale: m.replace("MARK0", &format!("MARK{i}")),
                            role: "ciso".into(),
                        })),
                        Step::Decide(i) => (*i, DeviationEvent::DecisionRecorded(DecisionRecorded { text: m.replace("MARK0", &format!("MARK{i}")), role: "ciso".into() })),
                        Step::Measure(i) => (*i, DeviationEvent::MeasureAdded(MeasureAdded {
                            measure_id: uuid::Uuid::now_v7(),
                            description: m.replace("MARK0", &format!("MARK{i}")),
                            owner: "system@kommunen.example".into(),
                            due: t0().date_naive(),
                        })),
                        Step::Comment(i) => (*i, DeviationEvent::CommentAdded(CommentAdded { text: m.replace("MARK0", &format!("MARK{i}")), to_reporter: false, from_reporter: false, unverified_email: false })),
                        Step::Close(i) => (*i, DeviationEvent::Closed(Closed { resolution: m.replace("MARK0", &format!("MARK{i}")) })),
                        Step::Reopen(i) => (*i, DeviationEvent::Reopened(Reopened { reason: m.replace("MARK0", &format!("MARK{i}")) })),
                        Step::Shred(i) => (*i, DeviationEvent::Shredded(Shredded { decision: "KS 2026/1".into(), class: None })),
                    }
                };
                // Only what the decider allows is recorded, as the service does.
                let d = reg.get(ids[i]).cloned();
                let cmd = match &ev {
                    DeviationEvent::Shredded(s) => avvik::domain::Command::Shred(s.clone()),
                    DeviationEvent::Classified(c) => avvik::domain::Command::Classify(c.clone()),
                    DeviationEvent::DecisionRecorded(x) => avvik::domain::Command::RecordDecision { text: x.text.clone(), role: x.role.clone() },
                    DeviationEvent::MeasureAdded(m) => avvik::domain::Command::AddMeasure(m.clone()),
                    DeviationEvent::CommentAdded(c) => avvik::domain::Command::Comment(c.clone()),
                    DeviationEvent::Closed(c) => avvik::domain::Command::Close { resolution: c.resolution.clone() },
                    DeviationEvent::Reopened(r) => avvik::domain::Command::Reopen { reason: r.reason.clone() },
                    _ => unreachable!(),
                };
                let Ok(events) = avvik::domain::decide(d.as_ref(), cmd) else { continue };
                if let Some(DeviationEvent::Shredded(_)) = events.first() {
                    record(&f, ids[i], events[0].clone()).await;
                    let kid = f.keys.key_id_of(f.store.as_ref(), ids[i]);
                    let tomb = Tombstone { at: t0(), decision: "KS 2026/1".into() };
                    if let Some(kid) = kid {
                        f.keys.keys().destroy(kid, &tomb).unwrap();
                    }
                    shredded[i] = true;
                } else {
                    markers[i].push(format!("MARK{i}x{}Q", n + 1));
                    record(&f, ids[i], events[0].clone()).await;
                }
            }
            let head = f.store.head().seq;
            let gone: Vec<&String> = (0..3).filter(|i| shredded[*i]).flat_map(|i| markers[i].iter()).collect();
            let mut views = vec![export(f.store.as_ref())];
            for seq in 1..=head {
                let reg = Register::fold(f.store.as_ref(), &f.keys, seq).unwrap();
                views.push(serde_json::to_string(&reg.list()).unwrap());
            }
            for id in &ids {
                // What the history shows: every event of the stream, opened.
                let h: Vec<_> = f.store.read_stream(*id, 1).unwrap().iter().map(|r| f.keys.opened(r)).collect();
                views.push(serde_json::to_string(&h).unwrap());
            }
            for v in &views {
                for m in &gone {
                    prop_assert!(!v.contains(m.as_str()), "{m} shows after gallring: {v}");
                }
            }
            // The rest is still readable: the markers of kept deviations are in the register.
            let now = serde_json::to_string(&Register::fold(f.store.as_ref(), &f.keys, head).unwrap().list()).unwrap();
            for i in (0..3).filter(|i| !shredded[*i]) {
                prop_assert!(now.contains(&marker(i, 0)));
            }
            for i in (0..3).filter(|i| shredded[*i]) {
                prop_assert!(now.contains("gallrad 2026-03-02 enligt beslut KS 2026/1"));
                let _ = i;
            }
            Ok(())
        })?;
    }
}
