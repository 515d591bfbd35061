//! Walking a hash chain: the same checks for the live store, an export file and an import.

use serde::Serialize;

use crate::record::{hash_hex, RecordedEvent, GENESIS_HASH};

/// A record that breaks the chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    pub seq: u64,
    pub reason: String,
}

impl std::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq {}: {}", self.seq, self.reason)
    }
}

/// The outcome of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// Records checked and found good.
    pub records: u64,
    /// Seq and hash of the last good record (0 and 64 zeros when none).
    pub head_seq: u64,
    pub head_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Checks records one at a time, in order. An altered record N is named as N: its bytes no
/// longer hash to the `prev` that record N+1 (or the stored head) carries. A missing record
/// is named by the seq that should have been there.
#[derive(Debug)]
pub struct ChainChecker {
    next_seq: u64,
    prev_hash: String,
    last_at: Option<chrono::DateTime<chrono::Utc>>,
    bad: Option<BadRecord>,
}

impl Default for ChainChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainChecker {
    pub fn new() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            last_at: None,
            bad: None,
        }
    }

    fn fail(&mut self, seq: u64, reason: String) -> BadRecord {
        let bad = BadRecord { seq, reason };
        if self.bad.is_none() {
            self.bad = Some(bad.clone());
        }
        bad
    }

    /// Checks the next record of an export (its position gives the expected seq).
    pub fn check(&mut self, bytes: &[u8]) -> Result<RecordedEvent, BadRecord> {
        if let Some(bad) = &self.bad {
            return Err(bad.clone());
        }
        let expected = self.next_seq;
        let rec: RecordedEvent = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                return Err(self.fail(
                    expected,
                    format!("record {expected} is not a valid record: {e}"),
                ))
            }
        };
        if rec.seq != expected {
            let reason = if rec.seq > expected {
                format!(
                    "record {expected} is missing (found seq {} in its place)",
                    rec.seq
                )
            } else {
                format!(
                    "records out of order: found seq {} where {expected} belongs",
                    rec.seq
                )
            };
            return Err(self.fail(expected, reason));
        }
        if rec.prev != self.prev_hash {
            let (seq, reason) = if expected == 1 {
                (
                    1,
                    "record 1 does not start the chain (prev is not 64 zeros)".to_string(),
                )
            } else {
                (
                    expected - 1,
                    format!(
                        "the stored bytes of record {} do not match the hash in record {expected}'s prev",
                        expected - 1
                    ),
                )
            };
            return Err(self.fail(seq, reason));
        }
        if let Some(last) = self.last_at {
            if rec.at < last {
                return Err(self.fail(
                    expected,
                    format!("record {expected} is dated before record {}", expected - 1),
                ));
            }
        }
        self.prev_hash = hash_hex(bytes);
        self.last_at = Some(rec.at);
        self.next_seq += 1;
        Ok(rec)
    }

    /// Checks a record read from the store under `key_seq`.
    pub fn check_keyed(&mut self, key_seq: u64, bytes: &[u8]) -> Result<RecordedEvent, BadRecord> {
        if self.bad.is_none() && key_seq != self.next_seq {
            let expected = self.next_seq;
            return Err(self.fail(expected, format!("record {expected} is missing")));
        }
        let rec = self.check(bytes)?;
        if rec.seq != key_seq {
            return Err(self.fail(
                key_seq,
                format!(
                    "record stored under seq {key_seq} says it is seq {}",
                    rec.seq
                ),
            ));
        }
        Ok(rec)
    }

    /// Ends the walk. `head` is the (seq, hash) the store or an auditor says the log ends
    /// with; the last record must match it.
    pub fn finish(mut self, head: Option<(u64, String)>) -> VerifyReport {
        let last = self.next_seq - 1;
        if self.bad.is_none() {
            if let Some((head_seq, head_hash)) = head {
                if head_seq > last {
                    self.fail(
                        last + 1,
                        format!(
                            "record {} is missing (the head says the log ends at {head_seq})",
                            last + 1
                        ),
                    );
                } else if head_seq < last {
                    self.fail(
                        head_seq + 1,
                        format!("records after the head ({head_seq}) were added outside the store"),
                    );
                } else if head_hash != self.prev_hash {
                    self.fail(
                        last,
                        format!("the stored bytes of record {last} do not match the head hash"),
                    );
                }
            }
        }
        let (records, head_seq) = match &self.bad {
            Some(b) => (b.seq.saturating_sub(1), b.seq.saturating_sub(1)),
            None => (last, last),
        };
        VerifyReport {
            ok: self.bad.is_none(),
            records,
            head_seq,
            head_hash: if self.bad.is_none() {
                self.prev_hash
            } else {
                String::new()
            },
            first_bad_seq: self.bad.as_ref().map(|b| b.seq),
            reason: self.bad.map(|b| b.reason),
        }
    }
}

/// Verifies an NDJSON export read line by line (memory does not grow with the file).
pub fn verify_export(
    input: &mut dyn std::io::BufRead,
    expected_head: Option<(u64, String)>,
) -> std::io::Result<VerifyReport> {
    let mut checker = ChainChecker::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        if checker.check(&line).is_err() {
            break;
        }
    }
    Ok(checker.finish(expected_head))
}

/// The chain checks of the fuzz target `import` (`fuzz/fuzz_targets/import.rs`, through
/// `avvik::cli::fuzz_import`) and of its corpus replay: any bytes as an NDJSON export,
/// walked by `verify_export` and, line by line, by `ChainChecker::check` and
/// `check_keyed`. Panics when the walks disagree or the report breaks its own rules.
/// `each` sees every record the walk accepted, in order.
pub fn fuzz_export(bytes: &[u8], each: &mut dyn FnMut(&RecordedEvent)) -> VerifyReport {
    let verify = |head: Option<(u64, String)>| {
        let mut input = bytes;
        verify_export(&mut input, head).expect("reading from memory does not fail")
    };
    let report = verify(None);
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let (mut plain, mut keyed) = (ChainChecker::new(), ChainChecker::new());
    for (i, line) in lines.iter().enumerate() {
        let a = plain.check(line);
        let b = keyed.check_keyed(i as u64 + 1, line);
        assert_eq!(a, b, "check and check_keyed disagree on line {}", i + 1);
        match a {
            Ok(rec) => {
                assert_eq!(rec.seq, i as u64 + 1);
                each(&rec);
            }
            Err(_) => break,
        }
    }
    assert_eq!(
        plain.finish(None),
        report,
        "verify_export and ChainChecker disagree"
    );
    assert_eq!(keyed.finish(None), report);
    assert_eq!(report.head_seq, report.records);
    if report.ok {
        assert!(report.first_bad_seq.is_none() && report.reason.is_none());
        assert_eq!(report.records, lines.len() as u64);
        let last = lines
            .last()
            .map_or(GENESIS_HASH.to_string(), |l| hash_hex(l));
        assert_eq!(report.head_hash, last);
        // The head it reports is one it accepts; any other is refused.
        let head = (report.records, report.head_hash.clone());
        assert_eq!(verify(Some(head)), report);
        let longer = verify(Some((report.records + 1, report.head_hash.clone())));
        assert_eq!(longer.first_bad_seq, Some(report.records + 1));
        if report.records > 0 {
            let other = verify(Some((report.records, GENESIS_HASH.to_string())));
            assert_eq!(other.first_bad_seq, Some(report.records));
            let shorter = verify(Some((report.records - 1, report.head_hash.clone())));
            assert_eq!(shorter.first_bad_seq, Some(report.records));
        }
    } else {
        let bad = report.first_bad_seq.expect("a refused walk names a record");
        assert!(bad >= 1 && bad <= lines.len() as u64, "bad seq {bad}");
        assert_eq!(report.records, bad - 1);
        assert!(report.head_hash.is_empty());
        assert!(!report.reason.as_deref().unwrap_or_default().is_empty());
    }
    report
}
