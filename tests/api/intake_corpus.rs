//! The e-mail corpus (`tests/api/mail/`, real-world shapes with their expected outcome in
//! `expected.json`) against the pure intake parser, and the fuzz target's corpus
//! (`fuzz/corpus/intake/`) replayed through the same function the fuzz target calls.

use std::path::{Path, PathBuf};

use avvik::intake::parse::{analyze, Limits, Verdict};
use proptest::prelude::*;
use serde_json::Value;

/// The limits the corpus expectations are written for.
pub const CORPUS_LIMITS: Limits = Limits {
    max_message_bytes: 16384,
    max_attachment_bytes: 4096,
};

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/mail")
}

pub fn expectations() -> Vec<Value> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["messages"].as_array().unwrap().clone()
}

pub fn corpus_message(file: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn own() -> Vec<String> {
    vec!["avvik@kommunen.example".to_string()]
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn every_corpus_message_has_an_expectation_and_there_are_enough() {
    let expected: Vec<String> = expectations()
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, expected, "corpus files and expected.json differ");
    assert!(
        expected.len() >= 25,
        "the corpus has {} messages",
        expected.len()
    );
}

#[test]
fn corpus_verdicts_match_expectations() {
    let mut failures = Vec::new();
    let keys: std::collections::HashMap<String, String> = expectations()
        .iter()
        .map(|e| {
            let f = e["file"].as_str().unwrap();
            (
                f.to_string(),
                analyze(&corpus_message(f), &CORPUS_LIMITS, &own()).key,
            )
        })
        .collect();
    for e in expectations() {
        let file = e["file"].as_str().unwrap();
        let a = analyze(&corpus_message(file), &CORPUS_LIMITS, &own());
        let mut fail = |what: String| failures.push(format!("{file}: {what}"));
        match (e["outcome"].as_str().unwrap(), &a.verdict) {
            ("created" | "comment", Verdict::Accept(acc)) => {
                if let Some(t) = e["title"].as_str() {
                    if acc.title != t {
                        fail(format!("title {:?}, expected {t:?}", acc.title));
                    }
                }
                if let Some(r) = e["reporter"].as_str() {
                    if !acc.reporter.email.as_str().eq_ignore_ascii_case(r) {
                        fail(format!("reporter {}", acc.reporter.email));
                    }
                }
                if let Some(n) = e["reporter_name"].as_str() {
                    if acc.reporter.name != n {
                        fail(format!("reporter name {:?}", acc.reporter.name));
                    }
                }
                for s in strs(&e["description_contains"]) {
                    if !acc.description.contains(s) {
                        fail(format!("description lacks {s:?}: {:?}", acc.description));
                    }
                }
                for s in strs(&e["description_excludes"]) {
                    if acc.description.contains(s) {
                        fail(format!("description has {s:?}: {:?}", acc.description));
                    }
                }
                for s in strs(&e["comment_contains"]) {
                    if !acc.reply_text.contains(s) {
                        fail(format!("reply text lacks {s:?}: {:?}", acc.reply_text));
                    }
                }
                for s in strs(&e["comment_excludes"]) {
                    if acc.reply_text.contains(s) {
                        fail(format!("reply text has {s:?}: {:?}", acc.reply_text));
                    }
                }
                if let Some(list) = e["attachments"].as_array() {
                    let got: Vec<(String, String, bool)> = acc
                        .attachments
                        .iter()
                        .map(|x| (x.filename.clone(), x.content_type.clone(), x.inline))
                        .collect();
                    let want: Vec<(String, String, bool)> = list
                        .iter()
                        .map(|x| {
                            (
                                x["filename"].as_str().unwrap().to_string(),
                                x["content_type"].as_str().unwrap().to_string(),
                                x["inline"].as_bool().unwrap(),
                            )
                        })
                        .collect();
                    if got != want {
                        fail(format!("attachments {got:?}, expected {want:?}"));
                    }
                }
                if e["key_is_hash"].as_bool() == Some(true) && !a.key.starts_with("sha256:") {
                    fail(format!("key {}", a.key));
                }
            }
            ("ignored", Verdict::Ignore(reason)) => {
                if Some(reason.as_str()) != e["reason"].as_str() {
                    fail(format!("ignored for {}", reason.as_str()));
                }
            }
            ("quarantined", Verdict::Quarantine(reason)) => {
                if Some(reason.as_str()) != e["reason"].as_str() {
                    fail(format!("quarantined for {}", reason.as_str()));
                }
            }
            ("duplicate", _) => {
                let original = e["same_key_as"].as_str().unwrap();
                if keys.get(original) != Some(&a.key) {
                    fail(format!("key {} is not {original}'s", a.key));
                }
            }
            (outcome, verdict) => fail(format!("expected {outcome}, got {verdict:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn fuzz_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/intake")
}

/// Replays the fuzz corpus (and every prefix of the mail corpus) through the fuzz
/// target's function: no input may panic, and every verdict keeps its invariants.
#[test]
fn fuzz_corpus_replays_without_panics() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let fuzz = fuzz_corpus_dir();
    for entry in std::fs::read_dir(&fuzz).unwrap_or_else(|e| panic!("{}: {e}", fuzz.display())) {
        inputs.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        inputs.len() >= 10,
        "the fuzz corpus has {} inputs",
        inputs.len()
    );
    for e in expectations() {
        let m = corpus_message(e["file"].as_str().unwrap());
        for cut in (0..m.len()).step_by(97) {
            inputs.push(m[..cut].to_vec());
        }
        inputs.push(m);
    }
    for input in &inputs {
        check_invariants(input);
    }
}

fn check_invariants(input: &[u8]) {
    for limits in [CORPUS_LIMITS, Limits::default()] {
        let a = avvik::intake::fuzz_target(input, &limits);
        assert!(a.key.starts_with("mid:") || a.key.starts_with("sha256:"));
        if let Verdict::Accept(acc) = &a.verdict {
            assert!(!acc.title.is_empty() && acc.title.chars().count() <= 200);
            assert!(!acc.title.contains('\n'));
            assert!(!acc.description.is_empty());
            assert!(acc.description.chars().count() <= 20_000);
            for x in &acc.attachments {
                // The whole text of a long body (avvik's own attachment) is bounded by the
                // message size instead.
                assert!(
                    x.bytes.len() <= limits.max_attachment_bytes
                        || x.filename == avvik::intake::parse::FULL_TEXT_NAME
                );
                assert!(!x.filename.contains('/') && !x.filename.contains('\\'));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random bytes, and corpus messages with random bytes spliced in, never panic.
    #[test]
    fn mutated_messages_never_panic(
        pick in 0usize..32,
        at in any::<prop::sample::Index>(),
        junk in prop::collection::vec(any::<u8>(), 0..64),
        raw in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        check_invariants(&raw);
        let list = expectations();
        let file = list[pick % list.len()]["file"].as_str().unwrap().to_string();
        let mut m = corpus_message(&file);
        let i = at.index(m.len() + 1);
        m.splice(i..i, junk);
        check_invariants(&m);
    }
}

/// Found by the fuzzer: odd multipart nesting reaches a `debug_assert!` inside
/// mail-parser 0.11. The message is quarantined as unparseable, never a panic.
#[test]
fn a_panic_inside_the_mime_parser_quarantines_the_message() {
    let input =
        std::fs::read(fuzz_corpus_dir().join("crash-7272ff329da4840ea81f72e4af49372860df47a3"))
            .unwrap();
    let a = analyze(&input, &CORPUS_LIMITS, &own());
    if cfg!(debug_assertions) {
        assert_eq!(
            a.verdict,
            Verdict::Quarantine(avvik::intake::parse::QuarantineReason::Unparseable)
        );
        assert!(a.key.starts_with("sha256:"));
    }
}
