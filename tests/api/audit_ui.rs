//! The auditor's pages: verify view (intact and tampered), register as of a typed
//! Stockholm time, history, changes and accounts.

use std::sync::Arc;

use avvik::clock::ManualClock;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::helpers::TestApp;
use crate::staff_ui::login;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn audit_pages_show_history_and_detect_tampering() {
    let clock = Arc::new(ManualClock::new(t("2026-06-01T06:00:00Z")));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    crate::authz::tokens(&app).await;
    for (i, at) in [
        "2026-06-01T07:00:00Z",
        "2026-06-01T08:00:00Z",
        "2026-06-01T09:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        clock.set(t(at));
        let r = app
            .post_json(
                "/api/v1/deviations",
                json!({"title": format!("Händelse {i}"), "description": "d"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let auditor = login(&app, "revisor@kommunen.example").await;
    let html = auditor
        .get(format!("{}/audit", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Kedjan är obruten"), "{html}");
    let head = app.app_state.services.store.head();
    assert!(html.contains(&head.hash));
    // 08:30 UTC is 10:30 in Stockholm (summer time): the first two reports existed.
    let html = auditor
        .get(format!(
            "{}/audit/register?as_of=2026-06-01T10:30",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Händelse 0") && html.contains("Händelse 1") && !html.contains("Händelse 2"),
        "{html}"
    );
    let r = auditor
        .get(format!("{}/audit/register?as_of=igår", app.base))
        .send()
        .await
        .unwrap();
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Tidpunkten kunde inte tolkas"));
    let year = 2026;
    let html = auditor
        .get(format!("{}/audit/deviations/AVV-{year}-0002", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("DeviationReported") && html.contains("Kontrollsumma"));
    let html = auditor
        .get(format!(
            "{}/audit/changes?from=2026-06-01T09:30&to=2026-06-01T11:30",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("AVV-2026-0002")
            && html.contains("AVV-2026-0003")
            && !html.contains("AVV-2026-0001<"),
        "{html}"
    );
    let html = auditor
        .get(format!("{}/audit/accounts", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("revisor@kommunen.example") && html.contains("Revisor"));
    // Staff without the audit right: 403.
    let kontakt = login(&app, "kontakt.soc@kommunen.example").await;
    assert_eq!(
        kontakt
            .get(format!("{}/audit", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // Change one byte of the record of report 2 with the server stopped: the verify view
    // names that record.
    let dir = app.stop().await;
    let data = dir.path().join("data");
    let tampered: u64;
    {
        let db = loop {
            match sled::open(data.join("events")) {
                Ok(db) => break db,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        let tree = db.open_tree("log").unwrap();
        let (key, v) = tree
            .scan_prefix([b'L'])
            .map(|kv| kv.unwrap())
            .filter(|(_, v)| String::from_utf8_lossy(v).contains("\"type\":\"DeviationReported\""))
            .nth(1)
            .unwrap();
        tampered = u64::from_be_bytes(key[1..9].try_into().unwrap());
        let s = crate::helpers::tamper_ciphertext(std::str::from_utf8(&v).unwrap());
        tree.insert(&key, s.as_bytes()).unwrap();
        tree.flush().unwrap();
    }
    let data2 = data.clone();
    let app = TestApp::spawn_with(move |c| c.store.data_dir = data2, clock.clone()).await;
    let auditor = login(&app, "revisor@kommunen.example").await;
    let html = auditor
        .get(format!("{}/audit", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Kedjan är bruten"), "{html}");
    assert!(
        html.contains(&format!("Första felaktiga händelse: nr {tampered}.")),
        "{html}"
    );
    drop(dir);
}
