//! Property tests: any command sequence is handled without panic, and folding the stored
//! (JSON round-tripped) events reproduces the state the decider worked on.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::deviation::*;
use super::types::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-29T00:30:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn report(n: u64) -> Command {
    Command::Report(Reported {
        reference: Reference::new(2026, n.max(1)),
        title: "Felskickad e-post".into(),
        description: "Ett mejl med personuppgifter skickades till fel mottagare.".into(),
        occurred_at: None,
        discovered_at: t0(),
        sector: Some("Socialtjänst".into()),
        asset: None,
        personal_data: true,
        reporter: None,
        channel: Channel::Web,
        status_token_hash: "00".repeat(32),
        reported_at: t0(),
    })
}

fn level() -> impl Strategy<Value = Option<Level>> {
    prop::option::of((1u8..=4).prop_map(|v| Level::new(v).unwrap_or(Level::new(1).unwrap())))
}

fn command() -> impl Strategy<Value = Command> {
    let measure_ids = prop::sample::select(vec![
        Uuid::from_u128(1),
        Uuid::from_u128(2),
        Uuid::from_u128(3),
    ]);
    let kinds = prop::sample::select(FilingKind::ALL.to_vec());
    prop_oneof![
        (0u64..3).prop_map(report),
        (
            any::<bool>(),
            level(),
            level(),
            level(),
            level(),
            any::<bool>(),
            0u8..3
        )
            .prop_map(
                |(major, c, i, a, t, nis2, pdb)| Command::Classify(Classification {
                    severity: if major {
                        Severity::Major
                    } else {
                        Severity::Minor
                    },
                    aspects: Aspects {
                        confidentiality: c,
                        integrity: i,
                        availability: a,
                        traceability: t
                    },
                    category: "nätfiske".into(),
                    personal_data_breach: [
                        PersonalDataBreach::Yes,
                        PersonalDataBreach::No,
                        PersonalDataBreach::Investigating
                    ][pdb as usize],
                    nis2_significant: nis2,
                    rationale: "bedömning".into(),
                    role: "ciso".into(),
                })
            ),
        ".{0,20}".prop_map(|text| Command::RecordDecision {
            text,
            role: "ciso".into()
        }),
        measure_ids
            .clone()
            .prop_map(|id| Command::AddMeasure(MeasureAdded {
                measure_id: id,
                description: "Byt lösenord".into(),
                owner: "it@kommunen.example".into(),
                due: NaiveDate::from_ymd_opt(2026, 4, 30).unwrap_or_default(),
            })),
        measure_ids.prop_map(|id| Command::CompleteMeasure {
            measure_id: id,
            note: "klart".into()
        }),
        (any::<bool>(), any::<bool>()).prop_map(|(to_reporter, from_reporter)| Command::Comment(
            CommentAdded {
                text: "<b>hej</b>".into(),
                to_reporter,
                from_reporter,
                unverified_email: false,
            }
        )),
        Just(Command::Close {
            resolution: "åtgärdat".into()
        }),
        Just(Command::Reopen {
            reason: "nytt underlag".into()
        }),
        (kinds.clone(), 0i64..200).prop_map(|(kind, h)| Command::RecordFiling(FilingRecorded {
            kind,
            authority: "IMY".into(),
            filed_at: t0() + Duration::hours(h),
            their_reference: Some("IMY-1".into()),
            content_sha256: (h % 2 == 0).then(|| "ab".repeat(32)),
        })),
        kinds.prop_map(|kind| Command::DeclineFiling(FilingDeclined {
            kind,
            rationale: "ingen risk för de registrerade".into()
        })),
        (any::<bool>(), 0i64..200).prop_map(|(gdpr, h)| Command::RecordAwareness(
            AwarenessRecorded {
                regime: if gdpr { Regime::Gdpr } else { Regime::Nis2 },
                aware_at: t0() + Duration::hours(h),
                reason: Some("systemägaren bekräftade".into()),
            }
        )),
        (0i64..2000).prop_map(|h| Command::EndIncidentHandling(IncidentHandlingEnded {
            ended_at: t0() + Duration::hours(h),
        })),
        (any::<bool>(), any::<bool>(), 0i64..200).prop_map(|(pdb, nis2, h)| {
            Command::ClassifyAsController {
                classification: Classification {
                    severity: Severity::Major,
                    aspects: Aspects::default(),
                    category: "nätfiske".into(),
                    personal_data_breach: if pdb {
                        PersonalDataBreach::Investigating
                    } else {
                        PersonalDataBreach::No
                    },
                    nis2_significant: nis2,
                    rationale: "bedömning".into(),
                    role: "dso".into(),
                },
                now: t0() + Duration::hours(h),
            }
        }),
    ]
}

proptest! {
    #[test]
    fn decider_never_panics_and_fold_reproduces_state(cmds in prop::collection::vec(command(), 0..40)) {
        let stream = Uuid::from_u128(42);
        let mut state: Option<Deviation> = None;
        let mut stored: Vec<(String, serde_json::Value, EventMeta)> = Vec::new();
        for (i, cmd) in cmds.into_iter().enumerate() {
            let before = state.clone();
            match decide(state.as_ref(), cmd) {
                Ok(events) => {
                    for ev in events {
                        let meta = EventMeta { seq: stored.len() as u64 + 1, at: t0() + Duration::minutes(i as i64), actor: "user:ciso@kommunen.example".into() };
                        stored.push((ev.type_name().to_string(), ev.to_data(), meta.clone()));
                        state = evolve(state, stream, &ev, &meta);
                        prop_assert!(state.is_some());
                    }
                }
                Err(_) => prop_assert_eq!(&state, &before),
            }
        }
        // Replay from what the store would hold.
        let mut replayed: Option<Deviation> = None;
        for (ty, data, meta) in &stored {
            let ev = DeviationEvent::from_parts(ty, data).expect("a deviation event").expect("decodes");
            // Start-up decodes the stored text directly: the same event.
            let raw = serde_json::to_string(data).expect("serialises");
            let direct = DeviationEvent::from_raw(ty, &raw).expect("a deviation event").expect("decodes");
            prop_assert_eq!(&direct, &ev);
            replayed = evolve(replayed, stream, &ev, meta);
        }
        prop_assert_eq!(&replayed, &state);
        if let Some(d) = &state {
            prop_assert_eq!(d.version as usize, stored.len());
            prop_assert_eq!(d.status == Status::Closed, d.closed_at.is_some());
            // A filed deadline's lateness is frozen and consistent with its due time.
            for dl in &d.deadlines {
                if let Some(f) = d.filing(dl.kind).and_then(|f| f.filed_at) {
                    prop_assert_eq!(dl.late, Some(f > dl.due));
                }
            }
        }
    }
}

#[test]
fn invalid_transitions_are_typed_errors() {
    let stream = Uuid::from_u128(7);
    let meta = EventMeta {
        seq: 1,
        at: t0(),
        actor: "reporter".into(),
    };
    assert_eq!(
        decide(
            None,
            Command::Close {
                resolution: "x".into()
            }
        ),
        Err(DomainError::NotFound)
    );
    let ev = decide(None, report(1)).unwrap().remove(0);
    let d = evolve(None, stream, &ev, &meta).unwrap();
    assert_eq!(d.reference.to_string(), "AVV-2026-0001");
    assert_eq!(
        decide(Some(&d), report(1)),
        Err(DomainError::AlreadyReported)
    );
    assert_eq!(
        decide(Some(&d), Command::Reopen { reason: "x".into() }),
        Err(DomainError::NotClosed)
    );
    let unknown = Uuid::from_u128(99);
    assert_eq!(
        decide(
            Some(&d),
            Command::CompleteMeasure {
                measure_id: unknown,
                note: "x".into()
            }
        ),
        Err(DomainError::UnknownMeasure(unknown))
    );
    let ev = decide(
        Some(&d),
        Command::Close {
            resolution: "klart".into(),
        },
    )
    .unwrap()
    .remove(0);
    let closed = evolve(Some(d), stream, &ev, &meta).unwrap();
    let classify = Command::Classify(Classification {
        severity: Severity::Major,
        aspects: Aspects::default(),
        category: "skadlig kod".into(),
        personal_data_breach: PersonalDataBreach::No,
        nis2_significant: false,
        rationale: "x".into(),
        role: "ciso".into(),
    });
    assert_eq!(decide(Some(&closed), classify), Err(DomainError::Closed));
}

#[test]
fn statutory_clocks_follow_classification_and_filings() {
    let stream = Uuid::from_u128(8);
    let mut at = t0();
    let mut seq = 0;
    let mut apply = |d: Option<Deviation>, cmd: Command| {
        seq += 1;
        at += Duration::hours(1);
        let ev = decide(d.as_ref(), cmd).unwrap().remove(0);
        evolve(
            d,
            stream,
            &ev,
            &EventMeta {
                seq,
                at,
                actor: "user:dso@kommunen.example".into(),
            },
        )
    };
    let d = apply(None, report(1));
    assert!(d.as_ref().unwrap().deadlines.is_empty());
    let d = apply(
        d,
        Command::Classify(Classification {
            severity: Severity::Major,
            aspects: Aspects::default(),
            category: "obehörig åtkomst".into(),
            personal_data_breach: PersonalDataBreach::Yes,
            nis2_significant: true,
            rationale: "x".into(),
            role: "ciso".into(),
        }),
    );
    let dl = &d.as_ref().unwrap().deadlines;
    assert_eq!(dl.len(), 4);
    assert_eq!(dl[0].kind, FilingKind::Gdpr);
    assert_eq!(dl[0].due, t0() + Duration::hours(72));
    assert_eq!(dl[1].due, t0() + Duration::hours(24));
    // Notification filed late (73 h): lateness frozen, final report due one month later.
    let filed = t0() + Duration::hours(73);
    let d = apply(
        d,
        Command::RecordFiling(FilingRecorded {
            kind: FilingKind::Nis2Notification,
            authority: "MSB".into(),
            filed_at: filed,
            their_reference: None,
            content_sha256: None,
        }),
    )
    .unwrap();
    let n = d
        .deadlines
        .iter()
        .find(|x| x.kind == FilingKind::Nis2Notification)
        .unwrap();
    assert_eq!(n.late, Some(true));
    let f = d
        .deadlines
        .iter()
        .find(|x| x.kind == FilingKind::Nis2FinalReport)
        .unwrap();
    assert_eq!(
        f.due,
        DateTime::parse_from_rfc3339("2026-05-01T01:30:00Z")
            .unwrap()
            .with_timezone(&Utc)
    );
    assert_eq!(f.settled_at, None);
}
