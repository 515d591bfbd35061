//! Filings to the authorities through the API and the staff page, with an injected clock
//! across the daylight-saving change of 29 March 2026 (Europe/Stockholm).

use std::sync::Arc;

use avvik::clock::ManualClock;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::TestApp;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn deadline<'a>(d: &'a Value, kind: &str) -> Option<&'a Value> {
    d["deadlines"]
        .as_array()?
        .iter()
        .find(|x| x["kind"] == kind)
}

fn due(d: &Value, kind: &str) -> DateTime<Utc> {
    utc(
        deadline(d, kind).unwrap_or_else(|| panic!("no {kind} in {d}"))["due"]
            .as_str()
            .unwrap(),
    )
}

async fn report(app: &TestApp, discovered_at: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Felskickad e-post", "description": "Personnummer till fel mottagare",
                   "discovered_at": discovered_at, "sector": "Socialtjänsten", "personal_data": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string()
}

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[tokio::test]
async fn awareness_moves_the_gdpr_clock_and_a_late_supplement_keeps_the_initial_on_time() {
    let clock = Arc::new(ManualClock::new(utc("2026-03-27T08:00:00Z")));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    let tok = crate::authz::tokens(&app).await;
    let r = report(&app, "2026-03-27T09:00:00+01:00").await;

    // The CISO marks it a possible breach on Saturday at 21:00 (winter time).
    clock.set(utc("2026-03-28T20:00:00Z"));
    let (s, d) = post(
        &app,
        &tok["ciso"],
        &format!("/api/v1/deviations/{r}/classification"),
        json!({"severity": "major", "category": "felskickad e-post", "personal_data_breach": "investigating", "nis2_significant": false}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    // 72 hours later it is summer time: Tuesday 22:00.
    assert_eq!(due(&d, "gdpr"), utc("2026-03-31T22:00:00+02:00"));
    assert_eq!(d["awareness"][0]["aware_at"], "2026-03-28T20:00:00Z");

    // The DPO moves it, with a reason; the clock follows.
    clock.set(utc("2026-03-29T10:00:00Z"));
    let (s, d) = post(
        &app,
        &tok["dso"],
        &format!("/api/v1/deviations/{r}/awareness"),
        json!({"regime": "gdpr", "aware_at": "2026-03-29T08:00:00+02:00", "reason": "Systemägaren bekräftade att personnummer fanns i filen"}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(due(&d, "gdpr"), utc("2026-04-01T08:00:00+02:00"));
    // Without a reason it is refused, naming the field.
    let (s, v) = post(
        &app,
        &tok["dso"],
        &format!("/api/v1/deviations/{r}/awareness"),
        json!({"regime": "gdpr", "aware_at": "2026-03-29T09:00:00+02:00"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("reason"), "{v}");

    // Initial notification in time, supplements after the 72 hours.
    clock.set(utc("2026-03-31T12:00:00Z"));
    let (s, d) = post(
        &app,
        &tok["dso"],
        &format!("/api/v1/deviations/{r}/filings"),
        json!({"kind": "gdpr", "authority": "IMY", "filed_at": "2026-03-31T13:00:00+02:00", "their_reference": "IMY-2026-123", "content_sha256": SHA}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    for (day, s_expected) in [("2026-04-03T10:00:00Z", 200), ("2026-04-07T10:00:00Z", 200)] {
        clock.set(utc(day));
        let (s, d) = post(
            &app,
            &tok["dso"],
            &format!("/api/v1/deviations/{r}/filings"),
            json!({"kind": "gdpr_supplement", "authority": "IMY", "filed_at": day, "their_reference": "IMY-2026-123", "content_sha256": SHA}),
        )
        .await;
        assert_eq!(s, s_expected, "{d}");
        assert_eq!(deadline(&d, "gdpr").unwrap()["late"], false, "{d}");
    }
    let (s, v) = post(
        &app,
        &tok["dso"],
        &format!("/api/v1/deviations/{r}/filings"),
        json!({"kind": "gdpr", "authority": "IMY", "filed_at": "2026-04-07T10:00:00Z", "content_sha256": "nothex"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v.to_string().contains("content_sha256"), "{v}");

    // The staff page shows where the clock starts and why.
    let client = crate::staff_ui::login(&app, "dso@kommunen.example").await;
    let html = client
        .get(format!("{}/staff/deviations/{r}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Från när fristerna räknas"), "{html}");
    assert!(html.contains("2026-03-29 08:00"), "{html}");
    assert!(
        html.contains("Systemägaren bekräftade att personnummer fanns i filen"),
        "{html}"
    );
    assert!(html.contains("Komplettering av anmälan till IMY"));
}

#[tokio::test]
async fn the_nis2_ongoing_path_has_a_progress_report_and_a_later_final_report() {
    let clock = Arc::new(ManualClock::new(utc("2026-03-25T09:00:00Z")));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    let tok = crate::authz::tokens(&app).await;
    let r = report(&app, "2026-03-20T09:00:00+01:00").await;
    let ciso = &tok["ciso"];
    let (s, d) = post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/classification"),
        json!({"severity": "major", "category": "skadlig kod", "personal_data_breach": "no", "nis2_significant": true}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    // From awareness of significance (10:00 winter time), not discovery five days earlier.
    assert_eq!(
        due(&d, "nis2_early_warning"),
        utc("2026-03-26T10:00:00+01:00")
    );
    assert_eq!(
        due(&d, "nis2_notification"),
        utc("2026-03-28T10:00:00+01:00")
    );

    let file = |kind: &'static str, at: &'static str| json!({"kind": kind, "authority": "CERT-SE", "filed_at": at, "their_reference": "CERT-42", "content_sha256": SHA});
    for (now, kind, at) in [
        (
            "2026-03-25T12:00:00Z",
            "nis2_early_warning",
            "2026-03-25T13:00:00+01:00",
        ),
        (
            "2026-03-27T10:00:00Z",
            "nis2_notification",
            "2026-03-27T11:00:00+01:00",
        ),
    ] {
        clock.set(utc(now));
        let (s, d) = post(
            &app,
            ciso,
            &format!("/api/v1/deviations/{r}/filings"),
            file(kind, at),
        )
        .await;
        assert_eq!(s, 200, "{d}");
    }
    // One month after the notification, at the same local hour in summer time.
    clock.set(utc("2026-04-27T08:00:00Z"));
    let (_, d) = post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/filings"),
        file("nis2_progress", "2026-04-27T10:00:00+02:00"),
    )
    .await;
    assert_eq!(due(&d, "nis2_progress"), utc("2026-04-27T11:00:00+02:00"));
    assert_eq!(deadline(&d, "nis2_progress").unwrap()["late"], false);
    assert!(deadline(&d, "nis2_final_report").is_none(), "{d}");

    clock.set(utc("2026-05-12T08:00:00Z"));
    let (s, d) = post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/incident-handling-ended"),
        json!({"ended_at": "2026-05-10T14:00:00+02:00"}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(due(&d, "nis2_progress"), utc("2026-04-27T11:00:00+02:00"));
    assert_eq!(
        due(&d, "nis2_final_report"),
        utc("2026-06-10T14:00:00+02:00")
    );
    assert_eq!(
        deadline(&d, "nis2_final_report").unwrap()["settled_at"],
        Value::Null
    );
    assert_eq!(d["incident_handling_ended_at"], "2026-05-10T12:00:00Z");
}

#[tokio::test]
async fn organisation_details_are_seeded_changed_by_the_admin_and_used_in_filings() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let admin = crate::staff_ui::login(&app, "admin@kommunen.example").await;
    let url = format!("{}/staff/admin/organisation", app.base);
    let html = admin.get(&url).send().await.unwrap().text().await.unwrap();
    // Seeded from the configuration.
    assert!(html.contains("212000-0142"), "{html}");
    assert!(html.contains("CERT-SE vid Myndigheten för civilt försvar (MCF)"));
    let token = crate::staff_ui::csrf_token(&html);
    let mut fields = vec![
        ("authenticity_token", token.as_str()),
        ("controller_name", "Exempels kommun"),
        ("org_number", "212000-0143"),
        ("dpo_contact", "dso@kommunen.example"),
        ("nis2_entity_type", "väsentlig"),
        ("nis2_sector", "Offentlig förvaltning"),
        ("gdpr_authority", "IMY"),
        ("nis2_authority", "CERT-SE <MCF>"),
    ];
    let r = admin.post(&url).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Ange organisationsnumret som NNNNNN-NNNN."),
        "{html}"
    );
    assert!(html.contains("CERT-SE &#60;MCF&#62;"), "escaped: {html}");
    fields[2].1 = "212000-0142";
    let token = crate::staff_ui::csrf_token(&html);
    fields[0].1 = token.as_str();
    let r = admin.post(&url).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let html = admin.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Hämtade från konfigurationen") && html.contains("Ändrade"));
    // A kontakt may not change them.
    let kontakt = crate::staff_ui::login(&app, "kontakt.soc@kommunen.example").await;
    assert_eq!(kontakt.get(&url).send().await.unwrap().status(), 403);

    // A filing without an authority goes to the organisation's authority for its kind.
    let r = report(&app, "2026-03-27T09:00:00+01:00").await;
    let (s, _) = post(
        &app,
        &tok["ciso"],
        &format!("/api/v1/deviations/{r}/classification"),
        json!({"severity": "major", "category": "skadlig kod", "personal_data_breach": "yes", "nis2_significant": true}),
    )
    .await;
    assert_eq!(s, 200);
    for (kind, authority) in [("nis2_early_warning", "CERT-SE <MCF>"), ("gdpr", "IMY")] {
        let (s, d) = post(
            &app,
            &tok["ciso"],
            &format!("/api/v1/deviations/{r}/filings"),
            json!({"kind": kind, "filed_at": "2026-03-28T10:00:00+01:00"}),
        )
        .await;
        assert_eq!(s, 200, "{d}");
        let f = d["filings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind)
            .unwrap();
        assert_eq!(f["authority"], authority);
    }
    let ciso = crate::staff_ui::login(&app, "ciso@kommunen.example").await;
    let html = ciso
        .get(format!("{}/staff/deviations/{r}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("IMY eller MSB"));
    assert!(
        html.contains("NIS2-rapporter till CERT-SE &#60;MCF&#62;"),
        "{html}"
    );
}
