//! The corpora of the fuzz targets `report_form`, `api_bodies` and `import`
//! (`fuzz/corpus/<target>/`) replayed through the very functions the targets call
//! (`avvik::web::report_input::fuzz_report_form`, `avvik::web::commands::fuzz_api_body`,
//! `avvik::cli::fuzz_import`), which panic when an outcome breaks a promise; plus a check
//! that the hand-written seeds still mean what they were written to mean. See
//! RELIABILITY.md, "Fuzzing". (The intake corpus is replayed by `intake_corpus.rs`.)

use std::collections::BTreeMap;
use std::path::Path;

use avvik::web::commands::fuzz_api_body;
use avvik::web::report_input::fuzz_report_form;
use avvik_events::{SledEventStore, StoreOptions};

/// Every file of `fuzz/corpus/<target>/`, by name.
fn corpus(target: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    assert!(
        files.keys().filter(|n| n.starts_with("seed-")).count() >= 5,
        "{target}: the seeds are missing"
    );
    files
}

fn seed<'a>(files: &'a BTreeMap<String, Vec<u8>>, name: &str) -> &'a [u8] {
    files
        .get(name)
        .unwrap_or_else(|| panic!("seed {name} is missing"))
}

/// Every input of the corpus; for the hand-written seeds also every prefix (cut every
/// `step` bytes), a cheap stand-in for a truncated upload.
fn inputs(files: &BTreeMap<String, Vec<u8>>, step: usize) -> impl Iterator<Item = &[u8]> {
    files.iter().flat_map(move |(name, input)| {
        let cuts = if name.starts_with("seed-") {
            input.len()
        } else {
            0
        };
        (0..cuts)
            .step_by(step)
            .map(move |cut| &input[..cut])
            .chain(std::iter::once(input.as_slice()))
    })
}

fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

#[test]
fn report_form_corpus_replays() {
    let files = corpus("report_form");
    for input in inputs(&files, 13) {
        let _ = fuzz_report_form(input);
    }
    let named = fuzz_report_form(seed(&files, "seed-valid-named"))
        .expect("a form")
        .expect("a valid report");
    assert_eq!(named.title, "Förlorad mobiltelefon");
    assert!(named.description.contains("BankID"));
    // Stockholm summer time: UTC+2.
    assert_eq!(named.occurred_at, Some(utc("2026-05-28T05:45:00Z")));
    assert_eq!(named.discovered_at, Some(utc("2026-05-28T06:30:00Z")));
    assert_eq!(named.sector.as_deref(), Some("Socialtjänsten"));
    assert!(named.personal_data);
    let reporter = named.reporter.expect("named");
    assert_eq!(reporter.name, "Åsa Öberg");
    assert_eq!(reporter.email.as_str(), "asa.oberg@kommunen.example");

    let anonymous = fuzz_report_form(seed(&files, "seed-valid-anonymous"))
        .unwrap()
        .unwrap();
    assert!(anonymous.reporter.is_none());

    let fold = fuzz_report_form(seed(&files, "seed-dst-fold"))
        .unwrap()
        .unwrap();
    assert_eq!(fold.occurred_at, Some(utc("2025-10-26T00:30:00Z")));

    let fields = |name: &str| -> Vec<String> {
        fuzz_report_form(seed(&files, name))
            .expect("a form")
            .expect_err("refused")
            .into_iter()
            .map(|e| e.field)
            .collect()
    };
    assert_eq!(fields("seed-dst-gap"), ["discovered_time"]);
    let bad = fields("seed-future-and-bad");
    for f in [
        "title",
        "occurred_time",
        "discovered_date",
        "sector",
        "reporter_name",
        "reporter_email",
    ] {
        assert!(bad.iter().any(|x| x == f), "{f} missing in {bad:?}");
    }
    assert_eq!(fields("seed-control-chars"), ["title", "description"]);
}

#[test]
fn api_bodies_corpus_replays() {
    let files = corpus("api_bodies");
    for input in inputs(&files, 11) {
        let _ = fuzz_api_body(input);
    }
    let accepted = |name: &str| {
        let out = fuzz_api_body(seed(&files, name));
        assert!(out.json, "{name} is not JSON");
        out.accepted
    };
    assert_eq!(accepted("seed-report-valid"), ["report"]);
    assert_eq!(accepted("seed-report-minimal"), ["report"]);
    assert!(accepted("seed-report-bad").is_empty());
    assert_eq!(accepted("seed-classification"), ["classification"]);
    assert!(accepted("seed-classification-bad").is_empty());
    assert_eq!(accepted("seed-measure"), ["measure"]);
    assert!(accepted("seed-measure-bad-date").is_empty());
    assert_eq!(accepted("seed-comment"), ["comment"]);
    assert_eq!(accepted("seed-filing"), ["filing"]);
    assert_eq!(accepted("seed-filing-declined"), ["filing"]);
    assert!(accepted("seed-not-object").is_empty());
    assert!(!fuzz_api_body(seed(&files, "seed-truncated")).json);
    // One key each of decision, close, reopen and complete_measure: none accepts the mix.
    assert!(accepted("seed-decision-close-reopen").is_empty());
    assert_eq!(
        fuzz_api_body(br#"{"text":"Beslut: ingen anm\u00e4lan."}"#).accepted,
        ["decision", "comment"]
    );
}

#[test]
fn import_corpus_replays_and_imports_agree_with_verify() {
    let files = corpus("import");
    for input in inputs(&files, 7) {
        avvik::cli::fuzz_import(input);
    }
    let report = |name: &str| avvik::cli::fuzz_import(seed(&files, name));
    let valid = report("seed-valid-3");
    assert!(valid.ok, "{valid:?}");
    assert_eq!(valid.records, 3);
    assert_eq!(report("seed-valid-3-no-final-newline"), valid);
    assert_eq!(report("seed-empty").records, 0);
    assert_eq!(report("seed-tampered-record-1").first_bad_seq, Some(1));
    assert_eq!(report("seed-bad-genesis").first_bad_seq, Some(1));
    assert_eq!(report("seed-missing-record-2").first_bad_seq, Some(2));
    assert_eq!(report("seed-swapped").first_bad_seq, Some(1));
    let truncated = report("seed-truncated-last-line");
    assert_eq!((truncated.first_bad_seq, truncated.records), (Some(3), 2));
    assert_eq!(report("seed-valid-crlf-blank-lines").first_bad_seq, Some(1));
    let backwards = report("seed-dated-backwards");
    assert_eq!((backwards.first_bad_seq, backwards.records), (Some(4), 3));
    let odd = report("seed-odd-payloads");
    assert!(odd.ok && odd.records == 5, "{odd:?}");
    assert!(!report("seed-not-json").ok);

    // A real import into an empty store takes exactly what verify accepts, with the same
    // head. Sled is slow to open, so only the seeds and a sample of the rest.
    let sample = files
        .iter()
        .filter(|(name, _)| name.starts_with("seed-"))
        .chain(
            files
                .iter()
                .filter(|(name, _)| !name.starts_with("seed-"))
                .step_by(8)
                .take(24),
        );
    for (name, input) in sample {
        let verified = avvik::cli::fuzz_import(input);
        let dir = tempfile::tempdir().unwrap();
        let imported = SledEventStore::import(
            dir.path(),
            StoreOptions::default(),
            &mut input.as_slice(),
            &avvik::cli::counter_of,
        );
        match imported {
            Ok(head) => {
                assert!(verified.ok, "{name}: imported what verify refuses");
                assert_eq!(
                    (head.seq, head.hash),
                    (verified.head_seq, verified.head_hash),
                    "{name}"
                );
            }
            Err(e) => assert!(
                !verified.ok || verified.records == 0,
                "{name}: verify accepts what import refuses: {e}"
            ),
        }
    }
}
