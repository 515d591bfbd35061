//! `avvik intake`: the MTA pipe. Reads one message on standard input and posts it to the
//! running server, like RT's mailgate. The exit code is what an MTA (Postfix pipe/local,
//! Exim pipe transport) acts on, from sysexits.h:
//!
//! | code | when | the MTA |
//! |---|---|---|
//! | 0 | recorded (created, comment, duplicate, ignored, quarantined) | done |
//! | 75 `EX_TEMPFAIL` | server unreachable, 5xx, timeout; or a configuration problem: no or wrong token (401), upload off (404), bad `--url`, unreadable configuration | keeps the message queued and retries |
//! | 65 `EX_DATAERR` | the server refuses the message itself (413, 400, 415) | bounces to the sender |
//! | 74 `EX_IOERR` | standard input cannot be read | bounces |
//!
//! Configuration problems defer rather than bounce (75 is a temporary failure for Postfix
//! and Exim alike): mail waits in the queue while the operator fixes the configuration,
//! and the MTA's queue warnings say so.
//!
//! Postfix, `/etc/aliases` (then `newaliases`):
//! ```text
//! avvikelse: "|/usr/local/bin/avvik --config /etc/avvik/intake.toml intake"
//! ```
//! local(8) runs the command with the rights of the alias database's owner, or of
//! `default_privs` (usually `nobody`) when root owns it, so `intake.toml` must be readable
//! by that user; it needs only `[http] base_url` and `[intake] token`. The mbox envelope line local(8) puts first is
//! skipped. Exim: a `pipe` transport with the same command and `temp_errors = 75`.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

pub const EX_OK: u8 = 0;
pub const EX_DATAERR: u8 = 65;
pub const EX_IOERR: u8 = 74;
pub const EX_TEMPFAIL: u8 = 75;

/// The upload URL for a server base URL (`http://host:port` or with a path prefix).
pub fn upload_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/api/v1/intake/email") {
        base.to_string()
    } else {
        format!("{base}/api/v1/intake/email")
    }
}

/// Runs `avvik intake`: standard input to the server at `url` (default `http.base_url`).
pub async fn run(config: &Config, url: Option<String>, timeout_s: u64) -> ExitCode {
    let code = run_inner(config, url, timeout_s).await;
    ExitCode::from(code)
}

async fn run_inner(config: &Config, url: Option<String>, timeout_s: u64) -> u8 {
    let token = config.intake.token.trim();
    if token.is_empty() {
        eprintln!(
            "avvik intake: no intake token: set intake.token in the configuration or AVVIK_INTAKE__TOKEN"
        );
        return EX_TEMPFAIL;
    }
    let url = upload_url(url.as_deref().unwrap_or(&config.http.base_url));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        eprintln!("avvik intake: --url must be an http:// or https:// URL");
        return EX_TEMPFAIL;
    }
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut raw) {
        eprintln!("avvik intake: cannot read the message from standard input: {e}");
        return EX_IOERR;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_s.max(1)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("avvik intake: cannot build the HTTP client: {e}");
            return EX_TEMPFAIL;
        }
    };
    let sent = client
        .post(&url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, super::RFC822)
        .body(raw)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            eprintln!("avvik intake: the server at {url} cannot be reached ({e}); try again later");
            return EX_TEMPFAIL;
        }
    };
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let (code, what) = exit_code_for(status);
    if code == EX_OK {
        eprintln!("avvik intake: {}", body.trim());
    } else {
        eprintln!("avvik intake: {what} (HTTP {status}): {}", body.trim());
    }
    code
}

/// The exit code for the server's answer, and what to tell the operator.
pub fn exit_code_for(status: u16) -> (u8, &'static str) {
    match status {
        200..=299 => (EX_OK, "recorded"),
        401 | 403 => (EX_TEMPFAIL, "the intake token was refused"),
        404 => (
            EX_TEMPFAIL,
            "the server has the upload off (intake.token is empty there)",
        ),
        400 | 413 | 415 | 422 => (EX_DATAERR, "the server refused the message"),
        _ => (EX_TEMPFAIL, "the server could not record the message now"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_codes() {
        assert_eq!(
            upload_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/api/v1/intake/email"
        );
        assert_eq!(
            upload_url("https://avvik.kommunen.se/api/v1/intake/email"),
            "https://avvik.kommunen.se/api/v1/intake/email"
        );
        assert_eq!(exit_code_for(202).0, EX_OK);
        assert_eq!(exit_code_for(503).0, EX_TEMPFAIL);
        assert_eq!(exit_code_for(401).0, EX_TEMPFAIL);
        assert_eq!(exit_code_for(413).0, EX_DATAERR);
    }
}
