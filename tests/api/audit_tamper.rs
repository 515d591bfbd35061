//! Tampering with the stored log: `avvik verify --data`, the audit API's verify view and
//! the stand-alone checker (tools/verify_export.py, on an export of the tampered store)
//! all name the same first bad seq; and the stand-alone checker agrees with
//! `avvik verify --file` on clean and tampered exports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik::auth::Role;
use avvik::clock::SystemClock;
use avvik::domain::EmailAddress;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::helpers::{avvik, data_path, TestApp, BIN};

const REPORTS: usize = 10;
const AUDITOR_PASSWORD: &str = "revisorns långa lösenord 42";

/// The stand-alone checker in this repository.
fn verifier_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verify_export.py")
}

/// Runs `python3 tools/verify_export.py ARGS`: (exit code, stdout).
fn python_verify(args: &[&str]) -> (i32, String) {
    let out = Command::new("python3")
        .arg(verifier_script())
        .args(args)
        .output()
        .expect("python3 runs tools/verify_export.py (scripts/test installs python3)");
    assert!(
        out.stderr.is_empty(),
        "verify_export.py wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("UTF-8 output"),
    )
}

/// `avvik export --data DIR` as the raw bytes it writes.
fn export(data: &Path) -> Vec<u8> {
    let out = Command::new(BIN)
        .args(["export", "--data"])
        .arg(data)
        .output()
        .expect("avvik runs");
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn lines(export: &[u8]) -> Vec<Vec<u8>> {
    export
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn parse_json(what: &str, text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{what} printed {text:?}: {e}"))
}

/// The seqs of the deviation reports in an export, in order.
fn report_seqs(export: &[u8]) -> Vec<u64> {
    lines(export)
        .iter()
        .map(|l| serde_json::from_slice::<Value>(l).expect("a record"))
        .filter(|r| r["type"] == "DeviationReported")
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect()
}

/// A store with an auditor account and `REPORTS` deviations; returns its directory and
/// the auditor's API token.
async fn store_with_reports() -> (TempDir, String) {
    let app = TestApp::spawn().await;
    let svc = &app.app_state.services;
    let email = EmailAddress::parse("revisor@kommunen.example").expect("e-mail");
    let id = svc
        .create_account(
            &email,
            "Revisorn",
            &[(Role::Auditor, vec![])],
            Some(AUDITOR_PASSWORD),
            "test",
        )
        .await
        .expect("auditor account");
    let token = svc
        .create_api_token(id, "granskning", "test")
        .await
        .expect("token");
    for i in 1..=REPORTS {
        let r = app
            .post_json(
                "/api/v1/deviations",
                json!({
                    "title": format!("Avvikelse nummer {i}"),
                    "description": "Ett mejl med personuppgifter gick till fel mottagare.",
                    "sector": "Socialtjänsten",
                    "personal_data": i % 2 == 0,
                }),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    (app.stop().await, token)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn log_key(seq: u64) -> Vec<u8> {
    let mut k = vec![b'L'];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Opens the store's sled database directly (as an intruder with file access would),
/// runs `f` on the log tree, flushes and closes it.
fn with_log<T>(data: &Path, f: impl FnOnce(&sled::Tree) -> T) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    // sled's background threads let go of its file lock a moment after a stopped app
    // dropped its handle.
    let db = loop {
        match sled::open(data.join("events")) {
            Ok(db) => break db,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("opening the sled database: {e}"),
        }
    };
    let tree = db.open_tree("log").expect("log tree");
    let out = f(&tree);
    tree.flush().expect("flush");
    drop(tree);
    drop(db);
    out
}

/// Changes one byte of the sealed title inside record `seq`'s data (its ciphertext),
/// keeping it valid JSON.
fn change_data_byte(tree: &sled::Tree, seq: u64) {
    let v = tree
        .get(log_key(seq))
        .expect("get")
        .expect("record")
        .to_vec();
    let v = crate::helpers::tamper_ciphertext(std::str::from_utf8(&v).expect("utf-8")).into_bytes();
    serde_json::from_slice::<Value>(&v).expect("still valid JSON");
    tree.insert(log_key(seq), v).expect("insert");
}

/// Changes one byte of record `seq` so that it is no longer valid JSON.
fn break_json(tree: &sled::Tree, seq: u64) {
    let mut v = tree
        .get(log_key(seq))
        .expect("get")
        .expect("record")
        .to_vec();
    let at = find(&v, b"\"data\":").expect("data") + b"\"data\"".len();
    v[at] = b';';
    assert!(serde_json::from_slice::<Value>(&v).is_err());
    tree.insert(log_key(seq), v).expect("insert");
}

fn delete(tree: &sled::Tree, seq: u64) {
    tree.remove(log_key(seq))
        .expect("remove")
        .expect("was there");
}

fn swap(tree: &sled::Tree, seq: u64) {
    let a = tree.get(log_key(seq)).expect("get").expect("record");
    let b = tree.get(log_key(seq + 1)).expect("get").expect("record");
    tree.insert(log_key(seq), b).expect("insert");
    tree.insert(log_key(seq + 1), a).expect("insert");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `avvik verify --data DIR --json`.
fn verify_data(data: &Path) -> (i32, Value) {
    let (code, out, err) = avvik(&["verify", "--data", data.to_str().unwrap(), "--json"], &[]);
    assert!(code == 0 || code == 1, "verify --data: {code} {out} {err}");
    (code, parse_json("avvik verify --data", &out))
}

/// GET /api/v1/audit/verify as the auditor, on a new app over `data`.
async fn verify_api(data: &Path, token: &str) -> Value {
    let data = data.to_path_buf();
    let app = TestApp::spawn_with(move |c| c.store.data_dir = data, Arc::new(SystemClock)).await;
    let r = app
        .client
        .get(format!("{}/api/v1/audit/verify", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent");
    assert_eq!(r.status(), 200, "GET /api/v1/audit/verify");
    let mut v: Value = r.json().await.expect("JSON");
    // What the server shows besides: readiness with the count of records it could not read,
    // and the register without them.
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("JSON");
    v["readyz"] = ready;
    v["register_len"] = app.app_state.services.register.read().len().into();
    app.stop().await;
    v
}

/// Both checkers on one export file, text and JSON; asserts they agree and returns the
/// JSON report.
fn agree(file: &Path, head: Option<&str>) -> Value {
    let f = file.to_str().unwrap();
    let mut args = vec![f];
    if let Some(h) = head {
        args.extend(["--expect-head", h]);
    }
    let mut rust_args = vec!["verify", "--file"];
    rust_args.extend(&args);
    let (rust_code, rust_text, err) = avvik(&rust_args, &[]);
    assert!(rust_code == 0 || rust_code == 1, "avvik verify: {err}");
    let (py_code, py_text) = python_verify(&args);
    rust_args.push("--json");
    let (_, rust_json, _) = avvik(&rust_args, &[]);
    args.push("--json");
    let (py_json_code, py_json) = python_verify(&args);
    assert_eq!(
        py_code, rust_code,
        "exit codes differ on {f}: {rust_text} / {py_text}"
    );
    assert_eq!(py_json_code, rust_code);
    let rust_v = parse_json("avvik verify --json", &rust_json);
    let py_v = parse_json("verify_export.py --json", &py_json);
    let reason = rust_v["reason"].as_str().unwrap_or("");
    if reason.contains("is not a valid record") {
        // The JSON parsers word their complaints differently; all else is the same.
        for key in ["ok", "records", "head_seq", "head_hash", "first_bad_seq"] {
            assert_eq!(
                py_v[key], rust_v[key],
                "{key} on {f}: {rust_json} / {py_json}"
            );
        }
        let prefix = reason.split(": ").next().unwrap();
        assert!(
            py_v["reason"].as_str().unwrap().starts_with(prefix),
            "{rust_json} / {py_json}"
        );
    } else {
        assert_eq!(py_text, rust_text, "summary lines differ on {f}");
        assert_eq!(py_v, rust_v, "JSON reports differ on {f}");
    }
    rust_v
}

fn first_bad(v: &Value) -> u64 {
    assert_eq!(v["ok"], false, "expected a broken chain: {v}");
    v["first_bad_seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("first_bad_seq in {v}"))
}

#[tokio::test]
async fn tampering_with_the_store_is_named_alike_by_cli_api_and_standalone_checker() {
    let (base, token) = store_with_reports().await;
    let base_data = data_path(&base);
    let (code, clean) = verify_data(&base_data);
    assert_eq!(code, 0, "{clean}");
    let clean_export = export(&base_data);
    let reports = report_seqs(&clean_export);
    assert_eq!(reports.len(), REPORTS);
    // A report in the middle whose successor is a report too.
    let n = reports[REPORTS / 2..]
        .windows(2)
        .find(|w| w[1] == w[0] + 1)
        .map(|w| w[0])
        .expect("two reports one after the other");

    // Every case is also asked of a server started on the tampered store: it becomes
    // ready (a record it cannot read is skipped, loudly) and its verify names the record.
    type Tamper = fn(&sled::Tree, u64);
    let cases: [(&str, Tamper); 4] = [
        ("one byte of data changed", change_data_byte),
        ("one byte changed, no longer JSON", break_json),
        ("record deleted", delete),
        ("records swapped", swap),
    ];
    for (what, tamper) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        copy_dir(&base_data, &data);
        with_log(&data, |t| tamper(t, n));

        let (code, v) = verify_data(&data);
        assert_eq!(code, 1, "{what}: {v}");
        assert_eq!(first_bad(&v), n, "{what}: avvik verify --data: {v}");

        // Export just streams the stored bytes, so the tampering travels with it.
        let file = dir.path().join("tampered.ndjson");
        std::fs::write(&file, export(&data)).unwrap();
        let (code, out) = python_verify(&[file.to_str().unwrap(), "--json"]);
        assert_eq!(code, 1, "{what}: {out}");
        let py = parse_json("verify_export.py", &out);
        assert_eq!(first_bad(&py), n, "{what}: verify_export.py: {py}");
        assert_eq!(first_bad(&agree(&file, None)), n, "{what}");

        let api = verify_api(&data, &token).await;
        assert_eq!(
            first_bad(&api),
            n,
            "{what}: GET /api/v1/audit/verify: {api}"
        );
        assert!(api["reason"].is_string(), "{what}: a reason: {api}");
        assert_eq!(api["readyz"]["ready"], true, "{what}: {api}");
        let unreadable = if what.contains("no longer JSON") {
            1
        } else {
            0
        };
        assert_eq!(
            api["readyz"]["unreadable_records"], unreadable,
            "{what}: {api}"
        );
        if unreadable == 1 {
            assert_eq!(api["register_len"], REPORTS - 1, "{what}: {api}");
            // The annual report is still made, without the record, and says so.
            let year = avvik::domain::stockholm_year(chrono::Utc::now()).to_string();
            let d = data.to_str().unwrap();
            let (code, out, err) = avvik(
                &["report", "--data", d, "--year", &year, "--format", "json"],
                &[],
            );
            assert_eq!(code, 0, "{what}: {err}");
            let report = parse_json("avvik report", &out);
            assert_eq!(report["source"]["unreadable_records"], json!([n]), "{out}");
            assert_eq!(report["totals"]["deviations"], REPORTS - 1, "{out}");
            let (code, html, err) = avvik(
                &["report", "--data", d, "--year", &year, "--format", "html"],
                &[],
            );
            assert_eq!(code, 0, "{what}: {err}");
            assert!(
                html.contains(&format!("Händelse nr {n} i loggen kunde inte läsas")),
                "{what}"
            );
        }
    }

    // The untouched store still verifies, through the API too.
    let api = verify_api(&base_data, &token).await;
    assert_eq!(api["ok"], true, "{api}");
    // (A started app may append, e.g. a scheduled job's run; the log only grows.)
    assert!(
        api["head_seq"].as_u64() >= clean["head_seq"].as_u64(),
        "{api}"
    );
    if api["head_seq"] == clean["head_seq"] {
        assert_eq!(api["head_hash"], clean["head_hash"], "{api}");
    }
}

#[test]
fn standalone_checker_agrees_with_avvik_on_clean_and_tampered_exports() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (base, _) = rt.block_on(store_with_reports());
    let clean = export(&data_path(&base));
    let recs = lines(&clean);
    let last = recs.len() as u64;
    let head = format!("{last}:{}", sha256_hex(&recs[recs.len() - 1]));
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // Clean: ok, and the same head (seq and hash) as the store says, with and without it.
    let v = agree(&write("clean.ndjson", &clean), None);
    assert_eq!(v["ok"], true);
    assert_eq!(
        format!("{}:{}", v["head_seq"], v["head_hash"].as_str().unwrap()),
        head
    );
    let v = agree(&write("clean.ndjson", &clean), Some(&head));
    assert_eq!(v["ok"], true);
    let v = agree(&write("clean.ndjson", &clean), Some(&head.to_uppercase()));
    assert_eq!(v["ok"], true);
    let (code, out, _) = avvik(
        &["verify", "--data", data_path(&base).to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains(&head.replace(':', " hash ")), "{out} / {head}");

    let n = recs.len() / 2; // the index of a record in the middle
    let seq = n as u64 + 1;

    // One byte changed, still valid JSON: named by its own seq (the next prev no longer
    // matches).
    let mut l = recs.clone();
    let at = find(&l[n], b"\"actor\":\"").unwrap() + b"\"actor\":\"".len();
    l[n][at] ^= 0x01;
    assert!(serde_json::from_slice::<Value>(&l[n]).is_ok());
    assert_eq!(
        first_bad(&agree(&write("byte.ndjson", &join(&l)), None)),
        seq
    );

    // One byte changed so the line is no longer JSON.
    let mut l = recs.clone();
    let at = find(&l[n], b"\"seq\":").unwrap() + b"\"seq\"".len();
    l[n][at] = b'=';
    assert_eq!(
        first_bad(&agree(&write("json.ndjson", &join(&l)), None)),
        seq
    );

    // A deleted line: named by the seq that should be there.
    let mut l = recs.clone();
    l.remove(n);
    assert_eq!(
        first_bad(&agree(&write("deleted.ndjson", &join(&l)), None)),
        seq
    );

    // Two swapped lines: the first position that is wrong.
    let mut l = recs.clone();
    l.swap(n, n + 1);
    assert_eq!(
        first_bad(&agree(&write("swapped.ndjson", &join(&l)), None)),
        seq
    );

    // A truncated final line.
    let mut bytes = join(&recs);
    bytes.truncate(bytes.len() - 40);
    assert_eq!(first_bad(&agree(&write("cut.ndjson", &bytes), None)), last);

    // The last record altered: nothing follows it, so only the published head shows it.
    let mut l = recs.clone();
    let at = find(&l[l.len() - 1], b"\"actor\":\"").unwrap() + b"\"actor\":\"".len();
    let last_line = l.len() - 1;
    l[last_line][at] ^= 0x01;
    let altered = write("last.ndjson", &join(&l));
    let v = agree(&altered, None);
    assert_eq!(v["ok"], true, "undetectable without a head: {v}");
    assert_ne!(
        v["head_hash"].as_str().unwrap(),
        head.split(':').nth(1).unwrap()
    );
    assert_eq!(first_bad(&agree(&altered, Some(&head))), last);

    // The tail cut off at a line boundary: only the head shows it.
    let cut = write("tail.ndjson", &join(&recs[..recs.len() - 2]));
    let v = agree(&cut, None);
    assert_eq!(v["ok"], true, "undetectable without a head: {v}");
    assert_eq!(v["head_seq"], last - 2);
    assert_eq!(first_bad(&agree(&cut, Some(&head))), last - 1);

    // A record appended after the published head.
    let mut l = recs.clone();
    let mut extra: Value = serde_json::from_slice(&recs[recs.len() - 1]).unwrap();
    extra["seq"] = json!(last + 1);
    extra["prev"] = json!(sha256_hex(&recs[recs.len() - 1]));
    l.push(serde_json::to_vec(&extra).unwrap());
    let longer = write("longer.ndjson", &join(&l));
    assert_eq!(agree(&longer, None)["ok"], true);
    assert_eq!(first_bad(&agree(&longer, Some(&head))), last + 1);

    // Standard input, and an empty export.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "python3 '{}' - < '{}'",
            verifier_script().display(),
            dir.path().join("clean.ndjson").display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&head.replace(':', " hash ")));
    let v = agree(&write("empty.ndjson", b""), None);
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 0);

    // The 20-line script in docs/AUDIT.md works as the document says.
    let script = write("check.py", doc_script().as_bytes());
    let run = |args: &[&Path], head: Option<&str>| {
        let mut cmd = Command::new("python3");
        cmd.arg(&script).args(args);
        if let Some(h) = head {
            cmd.arg(h);
        }
        let out = cmd.output().expect("python3 runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let clean_file = dir.path().join("clean.ndjson");
    let (ok, out) = run(&[&clean_file], None);
    let (_, avvik_out, _) = avvik(&["verify", "--file", clean_file.to_str().unwrap()], &[]);
    assert!(ok);
    assert_eq!(
        out, avvik_out,
        "the doc script prints the same ok line as avvik verify"
    );
    assert!(run(&[&clean_file], Some(&head)).0);
    for broken in [
        "byte.ndjson",
        "json.ndjson",
        "deleted.ndjson",
        "swapped.ndjson",
        "cut.ndjson",
    ] {
        assert!(
            !run(&[&dir.path().join(broken)], None).0,
            "doc script on {broken}"
        );
    }
    assert!(!run(&[&dir.path().join("last.ndjson")], Some(&head)).0);
    assert!(!run(&[&dir.path().join("tail.ndjson")], Some(&head)).0);
}

/// The Python script under "Checking with a script of your own" in docs/AUDIT.md.
fn doc_script() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/AUDIT.md"))
        .expect("docs/AUDIT.md");
    let section = doc
        .split("## Checking with a script of your own")
        .nth(1)
        .expect("the section");
    let start = section.find("```python\n").expect("a python block") + "```python\n".len();
    let len = section[start..].find("```").expect("end of the block");
    section[start..start + len].to_string()
}

#[test]
fn standalone_checker_agrees_on_odd_but_valid_and_invalid_records() {
    // Records avvik never writes but might meet in a forged export: the two checkers
    // must still give the same verdict. Each variant is record 2 of a three-record
    // chain whose links are all correct, so only the record's own validity decides.
    let id = "01a21fa7-e32a-711a-97bf-f5874a27562a";
    let rec = move |seq: u64, prev: &str, body: &str| -> Vec<u8> {
        format!(
            r#"{{"seq":{seq},"id":"{id}","stream":"{id}","version":1,"at":"2026-03-01T10:00:00.000000Z","actor":"system","type":"X","schema":1,"data":{body},"prev":"{prev}"}}"#
        )
        .into_bytes()
    };
    type Variant = Box<dyn Fn(&str) -> Vec<u8>>;
    let variants: Vec<(&str, Variant)> = vec![
        ("plain", Box::new(move |p| rec(2, p, r#"{"a":1}"#))),
        (
            "nested data",
            Box::new(move |p| rec(2, p, &format!("{}{}", "[".repeat(126), "]".repeat(126)))),
        ),
        (
            "data nested too deep",
            Box::new(move |p| rec(2, p, &format!("{}{}", "[".repeat(127), "]".repeat(127)))),
        ),
        (
            "number out of range",
            Box::new(move |p| rec(2, p, r#"{"n":1e309}"#)),
        ),
        (
            "number at the edge",
            Box::new(move |p| rec(2, p, r#"{"n":1.7976931348623157e308}"#)),
        ),
        (
            "lone surrogate in data",
            Box::new(move |p| rec(2, p, r#"{"s":"\ud800"}"#)),
        ),
        ("NaN", Box::new(move |p| rec(2, p, r#"{"n":NaN}"#))),
        (
            "unknown field, lenient",
            Box::new(move |p| {
                let mut r = rec(2, p, "1");
                r.pop();
                r.extend_from_slice(b",\"extra\":[\"\\ud800\",1e999,\"\xff\"]}");
                r
            }),
        ),
        (
            "duplicate field",
            Box::new(move |p| {
                let mut r = rec(2, p, "1");
                r.pop();
                r.extend_from_slice(b",\"seq\":2}");
                r
            }),
        ),
        (
            "seq as float",
            Box::new(move |p| {
                String::from_utf8(rec(2, p, "1"))
                    .unwrap()
                    .replacen("\"seq\":2", "\"seq\":2.0", 1)
                    .into_bytes()
            }),
        ),
        (
            "offset time",
            Box::new(move |p| {
                String::from_utf8(rec(2, p, "1"))
                    .unwrap()
                    .replace("2026-03-01T10:00:00.000000Z", "2026-03-01t11:00:00.5+01:00")
                    .into_bytes()
            }),
        ),
        (
            "leap second",
            Box::new(move |p| {
                String::from_utf8(rec(2, p, "1"))
                    .unwrap()
                    .replace("2026-03-01T10:00:00.000000Z", "2026-03-01T10:59:60Z")
                    .into_bytes()
            }),
        ),
        (
            "dated before record 1",
            Box::new(move |p| {
                String::from_utf8(rec(2, p, "1"))
                    .unwrap()
                    .replace("2026-03-01T10:00:00.000000Z", "2026-03-01T09:59:59.999999Z")
                    .into_bytes()
            }),
        ),
        (
            "braced UUID",
            Box::new(move |p| {
                String::from_utf8(rec(2, p, "1"))
                    .unwrap()
                    .replacen(&format!("\"{id}\""), &format!("\"{{{id}}}\""), 1)
                    .into_bytes()
            }),
        ),
        (
            "array of fields",
            Box::new(move |p| {
                format!(r#"[2,"{id}","{id}",1,"2026-03-01T10:00:00Z","system","X",1,null,"{p}"]"#)
                    .into_bytes()
            }),
        ),
        (
            "trailing whitespace",
            Box::new(move |p| {
                let mut r = rec(2, p, "1");
                r.extend_from_slice(b" \t\r");
                r
            }),
        ),
        (
            "byte order mark",
            Box::new(move |p| {
                let mut r = b"\xef\xbb\xbf".to_vec();
                r.extend(rec(2, p, "1"));
                r
            }),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut verdicts = Vec::new();
    for (i, (what, variant)) in variants.iter().enumerate() {
        let r1 = rec(1, &"0".repeat(64), "null");
        let r2 = variant(&sha256_hex(&r1));
        let r3 = String::from_utf8(rec(3, &sha256_hex(&r2), "null"))
            .unwrap()
            .replace("2026-03-01T10:00:00.000000Z", "2026-03-02T00:00:00Z")
            .into_bytes();
        let p = dir.path().join(format!("v{i}.ndjson"));
        std::fs::write(&p, join(&[r1, r2, r3])).unwrap();
        let v = agree(&p, None);
        verdicts.push(format!("{what}: {}", v["ok"]));
    }
    // Some of each, so the comparison above meant something.
    let ok = verdicts.iter().filter(|v| v.ends_with("true")).count();
    assert!(ok >= 5 && ok < verdicts.len(), "{verdicts:?}");
}
