//! E-mail notices over TLS (implicit TLS and STARTTLS) to the loopback sink.
//!
//! The real binary (`avvik serve`) is pointed at the sink by the name `localhost`, with
//! `SSL_CERT_FILE` naming the throw-away CA, so the certificate is verified as it would be
//! against a real relay: the escalation of a major deviation arrives over TLS. Trusting
//! another CA instead, nothing is delivered: every attempt is refused at the handshake,
//! logged, recorded as a failed delivery and retried.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::LoggedServer;
use crate::notify::smtp::{Received, SmtpSink, TlsMode};
use crate::tls::{test_ca, TestCa};

use crate::crash_loop::{KS, LEDNING};

/// `avvik serve` mailing the sink on `localhost:port` with `tls`, trusting only `ca`.
async fn start_server(data: PathBuf, port: u16, tls: &str, ca: &Path) -> LoggedServer {
    // The name in the server certificate: the client checks it.
    let mut env = crate::crash_loop::escalation_env_at("localhost", port, tls);
    // Replaces the system CA store for rustls-native-certs (lettre's roots).
    env.push(("SSL_CERT_FILE", ca.to_str().unwrap().into()));
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        LoggedServer::start(&data, &env)
    })
    .await
    .unwrap()
}

/// Reports a deviation and classifies it major; returns its reference.
async fn report_major(base: &str, token: &str) -> String {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/api/v1/deviations"))
        .json(&json!({
            "title": "Obehörig inloggning i verksamhetssystemet",
            "description": "Inloggning från okänd adress.",
            "sector": "Socialtjänsten"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let reference = v["reference"].as_str().unwrap().to_string();
    let r = client
        .post(format!(
            "{base}/api/v1/deviations/{reference}/classification"
        ))
        .bearer_auth(token)
        .json(&json!({
            "severity": "major",
            "category": "obehörig åtkomst",
            "personal_data_breach": "no",
            "nis2_significant": false
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    reference
}

/// Recipients of the escalation of `reference` among the received messages.
fn escalated_to(m: &[Received], reference: &str) -> BTreeSet<String> {
    m.iter()
        .filter(|x| {
            let s = x.subject();
            s.starts_with(&format!("[{reference}]")) && s.contains("Större avvikelse")
        })
        .map(|x| x.rcpt())
        .collect()
}

async fn kill(server: LoggedServer) -> Vec<String> {
    let log = server.log();
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
    log
}

/// The stored records of one type, from the running server's audit export.
async fn records(base: &str, token: &str, kind: &str) -> Vec<Value> {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/audit/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == kind)
        .collect()
}

/// Waits (bounded) until `pred` holds for the stored records of type `kind`.
async fn wait_for_records(
    base: &str,
    token: &str,
    kind: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = records(base, token, kind).await;
        if pred(&r) || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The recipients named by records.
fn recipients(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| {
            r["data"]["recipients"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

async fn escalation_is_delivered_over(mode: TlsMode, setting: &str) {
    let ca: TestCa = test_ca();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = crate::helpers::cli_ciso_token(&data);
    let sink = SmtpSink::start_tls(mode, &ca.cert, &ca.key).await;
    let server = start_server(data.clone(), sink.port(), setting, &ca.ca).await;
    let reference = report_major(&server.base, &token).await;

    let want: BTreeSet<String> = [LEDNING, KS].map(String::from).into();
    let m = sink
        .wait_until(Duration::from_secs(30), |m| {
            escalated_to(m, &reference) == want
        })
        .await;
    // The sink keeps a message before it answers: wait for avvik to record the answers.
    let sent = wait_for_records(&server.base, &token, "NotificationSent", |r| {
        recipients(&crate::helpers::opened(&data, r)).len() >= 2
    })
    .await;
    let failed = records(&server.base, &token, "NotificationFailed").await;
    let log = kill(server).await;
    assert_eq!(
        escalated_to(&m, &reference),
        want,
        "{setting}: escalations not delivered; sink handshake errors {:?}; server log:\n{}",
        sink.handshake_errors(),
        log.join("\n")
    );
    for x in &m {
        assert!(
            x.tls,
            "{setting}: {} to {} came in plain text",
            x.subject(),
            x.rcpt()
        );
        assert_eq!(
            x.sni.as_deref(),
            Some("localhost"),
            "{setting}: the client asked for the configured host name"
        );
    }
    assert!(
        sink.handshake_errors().is_empty(),
        "{setting}: {:?}",
        sink.handshake_errors()
    );
    // Recorded as sent, each once, at the first attempt.
    let sent_to = recipients(&crate::helpers::opened(&data, &sent));
    assert_eq!(sent_to.len(), 2, "{sent:?}");
    assert_eq!(sent_to.into_iter().collect::<BTreeSet<_>>(), want);
    assert!(sent.iter().all(|r| r["data"]["attempt"] == 1), "{sent:?}");
    assert!(failed.is_empty(), "{failed:?}");
    eprintln!(
        "notify_tls: {setting}: escalation {reference} delivered over TLS to {:?}",
        want
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_is_delivered_over_implicit_tls() {
    escalation_is_delivered_over(TlsMode::Implicit, "tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_is_delivered_over_starttls() {
    escalation_is_delivered_over(TlsMode::StartTls, "starttls").await;
}

/// Words by which a refused certificate shows in an error text (rustls: "invalid peer
/// certificate: UnknownIssuer").
fn names_the_certificate(s: &str) -> bool {
    s.contains("invalid peer certificate") && s.contains("UnknownIssuer")
}

async fn untrusted_certificate_is_refused_over(mode: TlsMode, setting: &str) {
    let ca: TestCa = test_ca();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = crate::helpers::cli_ciso_token(&data);
    let sink = SmtpSink::start_tls(mode, &ca.cert, &ca.key).await;
    // The client trusts a CA that did not sign the sink's certificate.
    let server = start_server(data.clone(), sink.port(), setting, &ca.other_ca).await;
    let reference = report_major(&server.base, &token).await;

    let want: BTreeSet<String> = [LEDNING, KS].map(String::from).into();
    // Both escalations tried, then retried (retry after 1 s, then 2 s): at least four
    // refused handshakes.
    let refused = sink
        .wait_for_handshake_errors(Duration::from_secs(30), 4)
        .await;
    // Recorded as failed attempts (the API's audit export; the staff page shows these),
    // a second attempt for each recipient included.
    let retried = |r: &[Value]| -> BTreeSet<String> {
        let second: Vec<Value> = r
            .iter()
            .filter(|f| f["data"]["attempt"].as_u64() >= Some(2))
            .cloned()
            .collect();
        recipients(&crate::helpers::opened(&data, &second))
            .into_iter()
            .collect()
    };
    let failures = wait_for_records(&server.base, &token, "NotificationFailed", |r| {
        retried(r) == want
    })
    .await;
    let sent = records(&server.base, &token, "NotificationSent").await;
    // And the failures logged, with the reason, for both recipients and more than once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed_lines = |log: &[String]| -> Vec<String> {
        log.iter()
            .filter(|l| l.contains("e-mail delivery failed; will retry"))
            .filter(|l| l.contains(&reference) && names_the_certificate(l))
            .cloned()
            .collect()
    };
    while failed_lines(&server.log()).len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = kill(server).await;
    assert!(
        refused.len() >= 4 && refused.iter().all(|e| e.contains("UnknownCA")),
        "{setting}: the client did not try TLS as expected: {refused:?}; server log:\n{}",
        log.join("\n")
    );
    let failed = failed_lines(&log);
    assert!(
        failed.len() >= 4,
        "{setting}: no logged certificate failures; server log:\n{}",
        log.join("\n")
    );
    assert!(
        failed.iter().any(|l| l.contains("attempt=2")),
        "{setting}: not retried: {failed:?}"
    );
    assert!(
        sink.messages().is_empty(),
        "{setting}: delivered despite an untrusted certificate: {:?}",
        sink.messages()
            .iter()
            .map(|x| (x.rcpt(), x.subject()))
            .collect::<Vec<_>>()
    );

    // Failed attempts naming the certificate, retried for both recipients; nothing
    // recorded as sent.
    assert_eq!(retried(&failures), want, "{setting}: {failures:?}");
    for f in &crate::helpers::opened(&data, &failures) {
        let error = f["data"]["error"].as_str().unwrap_or_default();
        assert!(names_the_certificate(error), "{setting}: {error}");
    }
    assert!(sent.is_empty(), "{setting}: {sent:?}");
    eprintln!(
        "notify_tls: {setting} with an untrusted CA: {} refused handshakes, {} failed attempts recorded, 0 delivered; sink saw {:?}; avvik logged {:?}",
        refused.len(),
        failures.len(),
        refused.first(),
        failed.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_over_implicit_tls() {
    untrusted_certificate_is_refused_over(TlsMode::Implicit, "tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_over_starttls() {
    untrusted_certificate_is_refused_over(TlsMode::StartTls, "starttls").await;
}
