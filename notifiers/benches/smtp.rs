//! E-mail delivery speed to an SMTP server on loopback: 2,000 messages through the mailer
//! avvik uses (sockets with TCP_NODELAY, reused, at most `pool_max` at once), through
//! lettre's own pooled transport (what avvik used before), and a raw baseline: Python's
//! `smtplib` sending the same messages over one connection. Three runs each, medians.
//!
//! `cargo bench -p avvik-notifiers --bench smtp` runs the full size; without `--bench` (e.g. `cargo test
//! --benches`) or with `AVVIK_BENCH_QUICK=1` it sends 200 messages once, to check that it
//! works. `AVVIK_BENCH_MESSAGES=N` and `AVVIK_BENCH_RUNS=N` override the sizes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik_notifiers::{
    message_id_for, render, Mailer, MailerSettings, NoticeContent, OutgoingEmail, SmtpSettings,
    SmtpTls, TransportSettings,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

/// Parallel deliveries and connections, as avvik's defaults (`notifications.concurrency`,
/// `mail.smtp.pool_max`).
const PARALLEL: usize = 4;

/// A loopback SMTP server that accepts everything and counts messages. It answers each
/// command in one write with TCP_NODELAY, so the client's behaviour is what is measured.
async fn sink() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let _ = sock.set_nodelay(true);
            let c = c.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let mut line = Vec::new();
                if w.write_all(b"220 sink ESMTP\r\n").await.is_err() {
                    return;
                }
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let cmd = String::from_utf8_lossy(&line).to_ascii_uppercase();
                    let answer: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                    } else if cmd.starts_with("HELO") {
                        b"250 sink\r\n"
                    } else if cmd.starts_with("DATA") {
                        if w.write_all(b"354 go ahead\r\n").await.is_err() {
                            return;
                        }
                        loop {
                            line.clear();
                            match r.read_until(b'\n', &mut line).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == b".\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        c.fetch_add(1, Ordering::Relaxed);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if w.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, count)
}

fn settings(port: u16) -> MailerSettings {
    MailerSettings {
        transport: TransportSettings::Smtp(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            user: String::new(),
            password: String::new(),
            timeout: Duration::from_secs(30),
            pool_max: PARALLEL as u32,
        }),
        from: "avvik@kommunen.example".into(),
        reply_to: None,
    }
}

fn emails(n: usize) -> Vec<OutgoingEmail> {
    let rendered = render(&NoticeContent::Test {
        sent_at: "2026-12-01 kl. 10:00".into(),
    })
    .expect("renders");
    (0..n)
        .map(|i| OutgoingEmail {
            to: format!("ledamot{}@kommunen.example", i % 30),
            message_id: message_id_for(Uuid::from_u128(i as u128 + 1), "avvik@kommunen.example"),
            rendered: rendered.clone(),
        })
        .collect()
}

/// Sends every e-mail, `PARALLEL` at a time (as a delivery round does); messages per second.
async fn through(mailer: Arc<Mailer>, emails: &[OutgoingEmail], count: &AtomicUsize) -> f64 {
    let before = count.load(Ordering::Relaxed);
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for e in emails {
        let e = e.clone();
        let permit = permits.clone().acquire_owned().await.expect("permit");
        let m = mailer.clone();
        tasks.spawn(async move {
            let _p = permit;
            m.send(&e).await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("sent");
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(count.load(Ordering::Relaxed) - before, emails.len());
    emails.len() as f64 / secs
}

const PYTHON: &str = r#"
import smtplib, sys, os, time
port, folder = int(sys.argv[1]), sys.argv[2]
files = sorted(os.listdir(folder))
msgs = [open(os.path.join(folder, f), 'rb').read() for f in files]
start = time.perf_counter()
s = smtplib.SMTP('127.0.0.1', port)
s.ehlo('bench')
for i, m in enumerate(msgs):
    s.sendmail('avvik@kommunen.example', ['ledamot%d@kommunen.example' % (i % 30)], m)
s.quit()
print(len(msgs) / (time.perf_counter() - start))
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() {
    let full =
        std::env::args().any(|a| a == "--bench") && std::env::var_os("AVVIK_BENCH_QUICK").is_none();
    let n = env_usize("AVVIK_BENCH_MESSAGES").unwrap_or(if full { 2000 } else { 200 });
    let runs = env_usize("AVVIK_BENCH_RUNS").unwrap_or(if full { 3 } else { 1 });
    let (port, count) = sink().await;
    let emails = emails(n);
    // The same bytes for the Python baseline.
    let dir = tempfile::tempdir().expect("tempdir");
    let builder = Mailer::new(&settings(port)).expect("mailer");
    for (i, e) in emails.iter().enumerate() {
        let raw = builder.message(e).expect("message").formatted();
        std::fs::write(dir.path().join(format!("{i:05}.eml")), raw).expect("write");
    }
    let (mut ours, mut lettre_pool, mut python) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        // A fresh mailer per run: its connections are opened within the timed part.
        let m = Arc::new(Mailer::new(&settings(port)).expect("mailer"));
        ours.push(through(m, &emails, &count).await);
        let m = Arc::new(Mailer::with_lettre_pool(&settings(port)).expect("mailer"));
        lettre_pool.push(through(m, &emails, &count).await);
        let out = std::process::Command::new("python3")
            .args(["-c", PYTHON, &port.to_string()])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let rate: f64 = String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse()
                    .expect("rate");
                python.push(rate);
            }
            Ok(o) => eprintln!("python3 failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("python3 not run: {e}"),
        }
        eprintln!(
            "run {run}: avvik {:.0} msg/s, lettre pool {:.0} msg/s, python smtplib {}",
            ours[run - 1],
            lettre_pool[run - 1],
            python
                .last()
                .map_or("–".into(), |p| format!("{p:.0} msg/s"))
        );
    }
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| figure ({n} messages, {PARALLEL} in parallel, {runs} runs) | median msg/s | runs |"
    );
    println!("|---|---|---|");
    println!(
        "| avvik mailer: TCP_NODELAY, reused connections, at most {PARALLEL} | {:.0} | {} |",
        median(ours.clone()),
        fmt(&ours)
    );
    println!(
        "| before: lettre 0.11 pooled transport (no TCP_NODELAY) | {:.0} | {} |",
        median(lettre_pool.clone()),
        fmt(&lettre_pool)
    );
    if !python.is_empty() {
        println!(
            "| baseline: Python smtplib, one connection, same messages | {:.0} | {} |",
            median(python.clone()),
            fmt(&python)
        );
    }
}
