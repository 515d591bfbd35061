//! E-mail intake from Dovecot over TLS: implicit TLS (imaps) and STARTTLS, with the
//! server's certificate checked against the trusted CAs (here a throw-away CA given to the
//! binary with `SSL_CERT_FILE`). A certificate from an unknown CA is refused, the mail
//! stays in the inbox and the log says why.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{cli_ciso_token, LoggedServer};
use crate::intake_dovecot::Dovecot;
use crate::tls::test_ca;

fn mail(subject: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Gun Ek <gun.ek@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\n\
         Subject: {subject}\r\nMessage-ID: <{id}@kommunen.example>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nSkickat över TLS.\r\n"
    )
    .into_bytes()
}

fn env(dovecot: &Dovecot, mode: &str, port: u16, ca: &std::path::Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = dovecot
        .imap_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (k, v) in [
        // The name in the certificate, not the address.
        ("AVVIK_INTAKE__IMAP__HOST", "localhost".to_string()),
        ("AVVIK_INTAKE__IMAP__PORT", port.to_string()),
        ("AVVIK_INTAKE__IMAP__TLS", mode.to_string()),
        ("SSL_CERT_FILE", ca.display().to_string()),
    ] {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v));
    }
    env
}

fn start(data: &std::path::Path, env: &[(String, String)]) -> LoggedServer {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    LoggedServer::start(data, &env)
}

async fn titles(base: &str, token: &str) -> Vec<String> {
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/deviations"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_is_collected_over_imaps_and_starttls_with_a_verified_certificate() {
    let ca = test_ca();
    let dovecot = Dovecot::start_tls(&ca.cert, &ca.key);
    for (mode, port) in [("tls", dovecot.tls_port), ("starttls", dovecot.port)] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let token = cli_ciso_token(&data);
        let subject = format!("Inkommet via {mode}");
        dovecot
            .append_all("INBOX", &[mail(&subject, &format!("via-{mode}"))])
            .await;
        let server = start(&data, &env(&dovecot, mode, port, &ca.ca));
        let deadline = Instant::now() + Duration::from_secs(20);
        while dovecot.count("INBOX").await > 0 {
            assert!(
                Instant::now() < deadline,
                "{mode}: the message was not collected:\n{}",
                server.log().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(titles(&server.base, &token).await, [subject], "{mode}");
        assert!(
            !server.log().iter().any(|l| l.contains("will reconnect")),
            "{mode}: {}",
            server.log().join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused_and_the_mail_stays() {
    let ca = test_ca();
    let dovecot = Dovecot::start_tls(&ca.cert, &ca.key);
    dovecot
        .append_all("INBOX", &[mail("Ska inte hämtas", "untrusted")])
        .await;
    for (mode, port) in [("tls", dovecot.tls_port), ("starttls", dovecot.port)] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let token = cli_ciso_token(&data);
        let server = start(&data, &env(&dovecot, mode, port, &ca.other_ca));
        let deadline = Instant::now() + Duration::from_secs(20);
        let refused = loop {
            let log = server.log();
            if let Some(l) = log
                .iter()
                .find(|l| l.contains("will reconnect") && l.contains("TLS"))
            {
                break l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{mode}: no TLS refusal logged:\n{}",
                log.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            refused.contains("invalid peer certificate: UnknownIssuer"),
            "{mode}: the reason names the certificate: {refused}"
        );
        assert_eq!(dovecot.count("INBOX").await, 1, "{mode}: the mail stays");
        assert!(titles(&server.base, &token).await.is_empty(), "{mode}");
    }
}
