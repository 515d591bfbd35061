//! The continuous archive and the restore drill: archive → import → verify → same head.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{avvik, TestApp};

fn archived_lines(dir: &std::path::Path) -> usize {
    avvik::archive::segments(dir)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum()
}

#[tokio::test]
async fn archive_follows_the_log_and_restores_to_the_same_head() {
    let archive = tempfile::tempdir().unwrap();
    let adir = archive.path().to_path_buf();
    let a2 = adir.clone();
    let app = TestApp::spawn_with(
        move |c| c.store.archive_dir = a2,
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    for i in 0..20 {
        let r = app
            .post_json(
                "/api/v1/deviations",
                json!({"title": format!("Rapport {i}"), "description": "d"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let head = app.app_state.services.store.head();
    // The archive follows within about a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while archived_lines(&adir) < head.seq as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        archived_lines(&adir),
        head.seq as usize,
        "archive caught up"
    );
    let dir = app.stop().await;

    // A crash may leave half a line: it is dropped and written again on the next start.
    let segs = avvik::archive::segments(&adir).unwrap();
    let last = segs.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let cut = bytes.len() - 40;
    bytes.truncate(cut);
    std::fs::write(last, &bytes).unwrap();
    let seq = avvik::archive::repair_and_head(&adir).unwrap();
    assert_eq!(seq, head.seq - 1);
    let store =
        avvik_events::SledEventStore::open(&dir.path().join("data"), Default::default()).unwrap();
    let seq = avvik::archive::catch_up(&store, &adir, seq).unwrap();
    assert_eq!(seq, head.seq);
    drop(store);

    // Restore drill.
    let restored = dir.path().join("restored");
    let (code, out, err) = avvik(
        &[
            "import",
            "--data",
            restored.to_str().unwrap(),
            adir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = avvik(&["verify", "--data", restored.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&head.hash), "same head hash: {out}");
    assert!(out.contains(&format!("head seq {}", head.seq)));
    // The stand-alone verifier agrees on the concatenated archive.
    let mut all = Vec::new();
    for s in avvik::archive::segments(&adir).unwrap() {
        all.extend(std::fs::read(s).unwrap());
    }
    let report =
        avvik_events::verify_export(&mut all.as_slice(), Some((head.seq, head.hash.clone())))
            .unwrap();
    assert!(report.ok, "{report:?}");
}
