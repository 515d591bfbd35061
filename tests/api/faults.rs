//! Failure answers: a full disk makes writes fail with 503 and a Swedish message, shows on
//! /readyz and /metrics, corrupts nothing, and the service recovers when space is back.
//! Uses a small tmpfs (needs root, as `scripts/test` runs); skipped with a message if the
//! mount is refused.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::TestApp;

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.to_str()?,
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_and_recovers() {
    let Some(fs) = Tmpfs::mount("48m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let data = fs.0.join("data");
    let d2 = data.clone();
    let app = TestApp::spawn_with(
        move |c| {
            c.store.data_dir = d2;
            c.store.cache_mb = 8;
            c.http.rate_limit_per_minute = 0;
        },
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let ok = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Före", "description": "d"}),
        )
        .await;
    assert_eq!(ok.status(), 201);
    // Fill the disk, leaving almost nothing.
    let filler = fs.0.join("filler");
    let _ = Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=1M",
            "count=64",
        ])
        .output();
    let big = "x".repeat(15_000);
    let mut failed = None;
    for i in 0..400 {
        let r = app
            .post_json(
                "/api/v1/deviations",
                json!({"title": format!("Under {i}"), "description": big}),
            )
            .await;
        if r.status() != 201 {
            failed = Some((
                r.status().as_u16(),
                r.headers().get("content-type").cloned(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            ));
            break;
        }
    }
    let (status, ctype, body) = failed.expect("writes fail once the disk is full");
    assert_eq!(status, 503, "{body}");
    assert_eq!(ctype.unwrap(), "application/problem+json");
    assert!(
        body["detail_sv"].as_str().unwrap().contains("Försök igen"),
        "{body}"
    );
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("avvik_store_degraded 1"), "{metrics}");
    // Space is back: writes work again and the chain is intact.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let r = app
            .post_json(
                "/api/v1/deviations",
                json!({"title": "Efter", "description": "d"}),
            )
            .await;
        if r.status() == 201 {
            recovered = true;
            break;
        }
        eprintln!("still refused: {}", r.text().await.unwrap_or_default());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "writes succeed again once space is back");
    let r = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report = app.app_state.services.store.verify().unwrap();
    assert!(report.ok, "{report:?}");
    let dir = app.stop().await;
    drop(dir);
    drop(fs);
}
