//! SIGKILL in the middle of an IMAP batch: after restarts, every message was handled
//! exactly once — one deviation per new message, one comment per reply, one disposition
//! per message — and every delivered copy left the inbox.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{avvik, BIN};
use crate::intake_dovecot::Dovecot;

/// `avvik serve` as a child, SIGKILLed when dropped (also when the test fails).
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL on Unix
        let _ = self.0.wait();
    }
}

fn serve(data: &std::path::Path, imap: &[(&'static str, String)]) -> Serving {
    Serving(
        Command::new(BIN)
            .arg("serve")
            .env("AVVIK_HTTP__ADDR", "127.0.0.1:0")
            .env("AVVIK_STORE__DATA_DIR", data)
            .env("AVVIK_MAIL__OUTBOX_DIR", data.join("outbox"))
            .env("RUST_LOG", "warn")
            .envs(imap.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("avvik starts"),
    )
}

fn mail(from: &str, subject: &str, message_id: Option<&str>, extra: &str, body: &str) -> Vec<u8> {
    let mid = message_id
        .map(|m| format!("Message-ID: <{m}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: {from}\r\nTo: avvikelse@kommunen.example\r\nSubject: {subject}\r\n{mid}{extra}\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_restart_handles_every_message_exactly_once() {
    let dovecot = Dovecot::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let imap = dovecot.imap_env();
    let year = avvik::domain::stockholm_year(chrono::Utc::now());

    let mut delivered = 0usize;
    // New messages in delivery order (so their references are 1, 2, … in this order).
    let mut new_titles: Vec<String> = Vec::new();
    let mut replies = 0usize;
    let mut keys = 0usize;
    let mut killed_mid_batch = 0;
    for cycle in 0..6 {
        let mut batch = Vec::new();
        for i in 0..40 {
            let title = format!("Krasch {cycle}-{i}");
            let from = format!("person{cycle}x{i}@kommunen.example");
            let m = match i % 10 {
                // Without Message-ID: deduplicated by its bytes.
                3 => mail(&from, &title, None, "", "utan id"),
                // An auto-reply: ignored, never a deviation.
                7 => {
                    keys += 1;
                    batch.push(mail(
                        &from,
                        &format!("Frånvaro {cycle}-{i}"),
                        Some(&format!("oof-{cycle}-{i}@kommunen.example")),
                        "Auto-Submitted: auto-replied\r\n",
                        "borta",
                    ));
                    continue;
                }
                _ => mail(
                    &from,
                    &title,
                    Some(&format!("krasch-{cycle}-{i}@kommunen.example")),
                    "",
                    "text",
                ),
            };
            keys += 1;
            new_titles.push(title);
            // Every fifth message sits in the mailbox twice.
            if i % 5 == 0 {
                batch.push(m.clone());
            }
            batch.push(m);
        }
        // Replies from earlier reporters naming their reference become comments.
        if cycle > 0 {
            for k in [1usize, 2, 9] {
                let n = (cycle - 1) * 36 + k;
                let from = format!(
                    "person{}x{}@kommunen.example",
                    cycle - 1,
                    k - 1 + (k - 1) / 7
                );
                let reply = mail(
                    &from,
                    &format!("SV: [AVV-{year}-{n:04}] Tack"),
                    Some(&format!("reply-{cycle}-{k}@kommunen.example")),
                    "",
                    "Mer information.",
                );
                batch.push(reply.clone());
                batch.push(reply);
                replies += 1;
                keys += 1;
            }
        }
        delivered += batch.len();
        dovecot.append_all("INBOX", &batch).await;
        let waiting = dovecot.count("INBOX").await;
        let server = serve(&data, &imap);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill after a random part of the batch is done.
        let kill_at = rand::Rng::gen_range(&mut rand::thread_rng(), 1..waiting);
        let left = loop {
            let left = dovecot.count("INBOX").await;
            if left <= kill_at {
                break left;
            }
            assert!(Instant::now() < deadline, "the collector made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        drop(server); // SIGKILL
        eprintln!("cycle {cycle}: SIGKILL with {left} of {waiting} messages in the inbox");
        killed_mid_batch += usize::from(left > 0);
        if killed_mid_batch >= 3 {
            break;
        }
    }
    assert!(
        killed_mid_batch >= 1,
        "avvik was never killed in the middle of a batch"
    );
    // A last start handles what is left.
    let server = serve(&data, &imap);
    let deadline = Instant::now() + Duration::from_secs(60);
    while dovecot.count("INBOX").await > 0 {
        assert!(Instant::now() < deadline, "the inbox was not emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server); // SIGKILL
    assert_eq!(dovecot.count("Processed").await, delivered);

    let d = data.to_str().unwrap();
    let (code, out, err) = avvik(&["verify", "--data", d], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = avvik(&["export", "--data", d], &[]);
    assert_eq!(code, 0, "{err}");
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records = crate::helpers::opened(&data, &records);
    let mut reported: BTreeMap<String, u32> = BTreeMap::new();
    let mut comments: BTreeMap<String, u32> = BTreeMap::new();
    let mut dispositions: BTreeMap<String, u32> = BTreeMap::new();
    for r in &records {
        match r["type"].as_str().unwrap() {
            "DeviationReported" => {
                *reported
                    .entry(r["data"]["title"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            "CommentAdded" => {
                *comments.entry(r["stream"].to_string()).or_default() += 1;
            }
            "EmailReceived" | "EmailIgnored" | "EmailQuarantined" => {
                *dispositions
                    .entry(r["data"]["key"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    let twice: Vec<_> = reported.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "filed more than once: {twice:?}");
    let want: BTreeSet<String> = new_titles.iter().cloned().collect();
    let got: BTreeSet<String> = reported.keys().cloned().collect();
    assert_eq!(got, want);
    assert!(dispositions.values().all(|n| *n == 1), "{dispositions:?}");
    assert_eq!(dispositions.len(), keys);
    assert_eq!(comments.values().sum::<u32>() as usize, replies);
    // References are gap-free and in delivery order.
    let (code, out, _) = avvik(&["replay", "--data", d, "--as-of", "seq:999999999"], &[]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let by_ref: BTreeMap<String, String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["reference"].as_str().unwrap().to_string(),
                x["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (i, title) in new_titles.iter().enumerate() {
        assert_eq!(
            by_ref.get(&format!("AVV-{year}-{:04}", i + 1)),
            Some(title),
            "reference {} ",
            i + 1
        );
    }
}
