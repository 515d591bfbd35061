//! Sealing micro-benchmark: what opening one sealed record costs, part by part.
//!
//! `cargo bench --bench seal` prints, per record or message (mean of `AVVIK_BENCH_N`
//! iterations, default 200,000):
//! - the two AEADs avvik knows (AES-256-GCM, the one it seals with, and XChaCha20-Poly1305,
//!   the one it sealed with before) on a wrapped key (32 bytes) and a report's sealed
//!   fields (350 bytes), key set-up included as in the service;
//! - decoding a report's `data` in the clear (`DeviationEvent::from_raw`), the baseline;
//! - `Keyring::open_raw` of the same report sealed, with the key batch read cold (first
//!   round, as at start-up) and cached, and open + decode together.
//!
//! The figures are quoted in BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use avvik::domain::{Channel, DeviationEvent, EmailAddress, Reference, Reported, Reporter};
use avvik::privacy::Keyring;
use avvik_events::sled::SledEventStore;
use avvik_events::StoreOptions;
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::Utc;
use uuid::Uuid;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seal bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn per(d: Duration, n: u64) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
}

fn run() -> AnyResult<()> {
    let n: u64 = std::env::var("AVVIK_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!("| figure | per record |");
    println!("|---|---|");
    aeads(n)?;
    records(n)
}

/// Each AEAD opening a message of 32 and 350 bytes, a new cipher per message.
fn aeads(n: u64) -> AnyResult<()> {
    let err = |_| "aead failed";
    let (key, aad) = ([3u8; 32], [1u8; 40]);
    for len in [32usize, 350] {
        let msg = vec![7u8; len];
        fn payload<'a>(m: &'a [u8], aad: &'a [u8]) -> Payload<'a, 'a> {
            Payload {
                msg: black_box(m),
                aad,
            }
        }
        let c = Aes256Gcm::new(&key.into())
            .encrypt(Nonce::from_slice(&[0; 12]), payload(&msg, &aad))
            .map_err(err)?;
        let t = Instant::now();
        for _ in 0..n {
            let p = Aes256Gcm::new(&key.into())
                .decrypt(Nonce::from_slice(&[0; 12]), payload(&c, &aad))
                .map_err(err)?;
            black_box(p);
        }
        println!("| AES-256-GCM open, {len} B | {} |", per(t.elapsed(), n));
        let c = XChaCha20Poly1305::new(&key.into())
            .encrypt(XNonce::from_slice(&[0; 24]), payload(&msg, &aad))
            .map_err(err)?;
        let t = Instant::now();
        for _ in 0..n {
            let p = XChaCha20Poly1305::new(&key.into())
                .decrypt(XNonce::from_slice(&[0; 24]), payload(&c, &aad))
                .map_err(err)?;
            black_box(p);
        }
        println!(
            "| XChaCha20-Poly1305 open, {len} B | {} |",
            per(t.elapsed(), n)
        );
    }
    Ok(())
}

/// `n` reports (each its own deviation and key), clear and sealed, then decoded.
fn records(n: u64) -> AnyResult<()> {
    let dir = tempfile::tempdir()?;
    let secret = avvik::secret::Secret::from_bytes([42; 32]);
    let keys = Keyring::open_dir(dir.path(), &secret)?;
    let scratch = tempfile::tempdir()?;
    let store = SledEventStore::open(scratch.path(), StoreOptions::default())?;
    let mut recs = Vec::with_capacity(n as usize);
    for i in 0..n {
        let at = Utc::now();
        let ev = DeviationEvent::Reported(Reported {
            reference: Reference::new(2026, i + 1),
            title: "Felskickad e-post med elevuppgifter".into(),
            description: "En klasslista med telefonnummer skickades till fel mottagare.".into(),
            occurred_at: Some(at),
            discovered_at: at,
            sector: Some("Utbildningsförvaltningen".into()),
            asset: Some("Outlook".into()),
            personal_data: true,
            reporter: Some(Reporter {
                name: "Anna Svensson".into(),
                email: EmailAddress::parse("anna.svensson@kommunen.se").ok_or("bad address")?,
            }),
            channel: Channel::Web,
            status_token_hash: "ab".repeat(32),
            reported_at: at,
        });
        let (stream, id) = (Uuid::now_v7(), Uuid::now_v7());
        keys.prepare_new(stream)?;
        let sealed = keys.seal(&store, stream, id, ev.type_name(), ev.to_data())?;
        recs.push((stream, id, sealed.to_string(), ev.to_data().to_string()));
    }
    let ty = "DeviationReported";
    let t = Instant::now();
    for (_, _, _, clear) in &recs {
        black_box(DeviationEvent::from_raw(ty, clear).ok_or("not a deviation event")??);
    }
    println!(
        "| decode in the clear (from_raw), baseline | {} |",
        per(t.elapsed(), n)
    );
    // A fresh keyring: the first round reads every key batch, as start-up does.
    let keys = Keyring::open_dir(dir.path(), &secret)?;
    for round in ["key batches read cold", "keys cached"] {
        let t = Instant::now();
        for (s, id, raw, _) in &recs {
            black_box(keys.open_raw(*s, *id, ty, raw));
        }
        println!("| open_raw, {round} | {} |", per(t.elapsed(), n));
    }
    let t = Instant::now();
    for (s, id, raw, _) in &recs {
        let opened = keys.open_raw(*s, *id, ty, raw);
        black_box(DeviationEvent::from_raw(ty, &opened).ok_or("not a deviation event")??);
    }
    println!(
        "| open_raw + from_raw, keys cached | {} |",
        per(t.elapsed(), n)
    );
    Ok(())
}
