//! Case work: an owner (handläggare) and a deputy (ersättare) per deviation, "Mina
//! ärenden", and the triage deadline in working days with its reminders, against a real
//! SMTP server on loopback and an injected clock over Easter 2026.

use std::sync::Arc;

use avvik::clock::ManualClock;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::notify::smtp::{Mode, SmtpSink};
use crate::notify::{app_at, deliver, t, to, CISO, KONTAKT};

async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let url = format!("{}{path}", app.base);
    let req = match method {
        "GET" => app.client.get(url),
        _ => app.client.post(url).json(&body),
    };
    let r = req.bearer_auth(token).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn owner_and_deputy_are_assigned_and_the_triage_clock_counts_working_days() {
    let sink = SmtpSink::start(Mode::Normal).await;
    // Maundy Thursday 2026: Good Friday and Easter Monday are not working days.
    let clock = Arc::new(ManualClock::new(t("2026-04-02T10:00:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let tok = crate::authz::tokens(&app).await;
    let r: Value = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Delat lösenord", "description": "x", "sector": "Socialtjänsten"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = r["reference"].as_str().unwrap().to_string();
    let base = format!("/api/v1/deviations/{r}");

    // Due at the end of Wednesday 8 April (the second working day after the report).
    let (_, d) = call(&app, &tok["ciso"], "GET", &base, Value::Null).await;
    assert_eq!(d["triage"]["due"], "2026-04-08T22:00:00Z", "{d}");
    assert_eq!(d["triage"]["overdue"], false);

    // Owner and deputy: people who may see the deviation, not the same one.
    for (body, field) in [
        (json!({"owner": KONTAKT, "deputy": KONTAKT}), "deputy"),
        (json!({"owner": "nobody@kommunen.example"}), "owner"),
        // A kontakt of another sector may not see it.
        (json!({"owner": "kontakt.bou@kommunen.example"}), "owner"),
        (json!({"owner": "inte en adress"}), "owner"),
    ] {
        let (s, v) = call(
            &app,
            &tok["ciso"],
            "POST",
            &format!("{base}/handlers"),
            body,
        )
        .await;
        assert_eq!(s, 422, "{v}");
        assert!(v.to_string().contains(&format!("\"{field}\"")), "{v}");
    }
    // Someone who may not assign on this deviation does not even see it.
    let (s, _) = call(
        &app,
        &tok["kontakt_bou"],
        "POST",
        &format!("{base}/handlers"),
        json!({"owner": KONTAKT}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, d) = call(
        &app,
        &tok["ciso"],
        "POST",
        &format!("{base}/handlers"),
        json!({"owner": KONTAKT, "deputy": "CISO@kommunen.example"}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (d["owner"].as_str(), d["deputy"].as_str()),
        (Some(KONTAKT), Some(CISO))
    );
    let (s, _) = call(
        &app,
        &tok["ciso"],
        "POST",
        &format!("{base}/handlers"),
        json!({"owner": KONTAKT, "deputy": CISO}),
    )
    .await;
    assert_eq!(s, 409, "unchanged");

    // Both are told; "Mina ärenden" lists it for them and not for others.
    deliver(&app, &clock).await;
    let ms = sink.messages();
    assert_eq!(to(&ms, "Du är handläggare"), vec![KONTAKT.to_string()]);
    assert_eq!(to(&ms, "Du är ersättare"), vec![CISO.to_string()]);
    for (who, n) in [("kontakt_soc", 1), ("ciso", 1), ("dso", 0)] {
        let (s, v) = call(
            &app,
            &tok[who],
            "GET",
            "/api/v1/deviations?mine=1",
            Value::Null,
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(v["total"], n, "{who}: {v}");
    }

    // Not classified by Wednesday's end: overdue, the handlers are reminded, once a day.
    clock.set(t("2026-04-08T21:59:00Z"));
    deliver(&app, &clock).await;
    assert!(to(&sink.messages(), "Försenad bedömning").is_empty());
    clock.set(t("2026-04-08T22:00:00Z"));
    let (_, d) = call(&app, &tok["ciso"], "GET", &base, Value::Null).await;
    assert_eq!(d["triage"]["overdue"], true);
    deliver(&app, &clock).await;
    deliver(&app, &clock).await;
    let mut both = vec![CISO.to_string(), KONTAKT.to_string()];
    both.sort();
    assert_eq!(to(&sink.messages(), "Försenad bedömning"), both);
    clock.set(t("2026-04-09T22:00:00Z"));
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), "Försenad bedömning").len(), 4);

    // Classified: done, no more reminders.
    let (s, d) = call(
        &app,
        &tok["kontakt_soc"],
        "POST",
        &format!("{base}/classification"),
        json!({"severity": "minor", "category": "annat", "personal_data_breach": "no", "nis2_significant": false}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["triage"]["done"], true);
    assert_eq!(d["triage"]["overdue"], false);
    clock.set(t("2026-04-12T22:00:00Z"));
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), "Försenad bedömning").len(), 4);

    // The register page marks its owner; an unowned, unclassified one goes to the CISO
    // and the sector's kontakt.
    let (_, d2) = (
        0,
        app.post_json(
            "/api/v1/deviations",
            json!({"title": "Olåst dörr", "description": "y", "sector": "Socialtjänsten"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap(),
    );
    let r2 = d2["reference"].as_str().unwrap().to_string();
    clock.set(t("2026-04-20T08:00:00Z"));
    deliver(&app, &clock).await;
    let late: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| m.subject().contains(&r2) && m.subject().contains("Försenad bedömning"))
        .map(|m| m.rcpt())
        .collect();
    let mut want = vec![CISO.to_string(), KONTAKT.to_string()];
    want.sort();
    let mut late = late;
    late.sort();
    assert_eq!(late, want);
    let ciso = crate::staff_ui::login(&app, CISO).await;
    let html = ciso
        .get(format!("{}/staff?mine=1", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<h1>Mina ärenden</h1>"), "{html}");
    assert!(html.contains(&r) && !html.contains(&r2), "{html}");
    let html = ciso
        .get(format!("{}/staff", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Försenad: bedömning"), "{html}");
    assert!(html.contains(&format!("Handläggare {KONTAKT}")), "{html}");
}

#[tokio::test]
async fn twelve_reports_of_one_supplier_breach_are_one_incident_escalated_once() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-05-04T08:00:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let tok = crate::authz::tokens(&app).await;
    let mut refs = Vec::new();
    for i in 0..12 {
        let r: Value = app
            .post_json(
                "/api/v1/deviations",
                json!({"title": format!("Konstigt mejl från Skolplattformen {i}"),
                       "description": "Leverantören har haft ett intrång", "sector": "Socialtjänsten",
                       "reporter": {"name": format!("Anställd {i}"), "email": format!("anstalld{i}@kommunen.example")}}),
            )
            .await
            .json()
            .await
            .unwrap();
        refs.push(r["reference"].as_str().unwrap().to_string());
    }
    let (incident, reports) = (refs[0].clone(), refs[1..].to_vec());
    let link = |r: &str| format!("/api/v1/deviations/{r}/incident");
    for (i, r) in reports.iter().enumerate() {
        let relation = if i == 10 { "duplicate" } else { "report" };
        let (s, d) = call(
            &app,
            &tok["ciso"],
            "POST",
            &link(r),
            json!({"incident": incident, "relation": relation}),
        )
        .await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(d["incident"]["reference"], incident.as_str());
    }
    // No chains, no loops: not to a report, not the incident itself, not to itself.
    for (from, to, why) in [
        (&refs[1], &refs[2], "itself linked"),
        (&refs[0], &refs[3], "itself linked"),
        (&refs[1], &refs[1], "its own incident"),
    ] {
        let (s, v) = call(
            &app,
            &tok["ciso"],
            "POST",
            &link(from),
            json!({"incident": to}),
        )
        .await;
        assert_eq!(s, 422, "{v}");
        assert!(v.to_string().contains(why), "{why}: {v}");
    }
    // A report is not classified on its own: the incident is.
    let major = json!({"severity": "major", "category": "obehörig åtkomst", "personal_data_breach": "yes",
                       "nis2_significant": false, "aspects": {"confidentiality": 3}});
    let (s, v) = call(
        &app,
        &tok["ciso"],
        "POST",
        &format!("/api/v1/deviations/{}/classification", refs[5]),
        major.clone(),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains(&incident), "{v}");
    let (s, _) = call(
        &app,
        &tok["ciso"],
        "POST",
        &format!("/api/v1/deviations/{incident}/classification"),
        major,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        &tok["ciso"],
        "POST",
        &format!("/api/v1/deviations/{incident}/supplier"),
        json!({"supplier": "Skolplattformen AB", "reported_by_supplier": false}),
    )
    .await;
    assert_eq!(s, 200);
    deliver(&app, &clock).await;
    let escalations = to(&sink.messages(), "Större avvikelse");
    let mut board: Vec<String> = crate::notify::LG
        .iter()
        .chain(crate::notify::KS.iter())
        .map(|s| s.to_string())
        .collect();
    board.sort();
    assert_eq!(escalations, board, "one escalation to each board member");
    // The GDPR clock runs on the incident only.
    let (_, d) = call(
        &app,
        &tok["ciso"],
        "GET",
        &format!("/api/v1/deviations/{}", refs[5]),
        Value::Null,
    )
    .await;
    assert_eq!(d["deadlines"], json!([]), "{d}");
    let (_, list) = call(
        &app,
        &tok["ciso"],
        "GET",
        &format!("/api/v1/deviations?incident={incident}"),
        Value::Null,
    )
    .await;
    assert_eq!(list["total"], 11);

    // The incident's page lists its reports and reporters.
    let ciso = crate::staff_ui::login(&app, CISO).await;
    let html = ciso
        .get(format!("{}/staff/deviations/{incident}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Rapporter om samma incident (11)"), "{html}");
    assert!(html.contains("anstalld7@kommunen.example") && html.contains("dubblett"));

    // The annual report counts the incident once.
    let (s, rep) = call(
        &app,
        &tok["ciso"],
        "GET",
        "/api/v1/reports/annual/2026",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{rep}");
    assert_eq!(rep["totals"]["deviations"], 1, "{}", rep["totals"]);
    assert_eq!(rep["totals"]["linked_reports"], 11);
    assert_eq!(rep["totals"]["major"], 1);

    // Unlinked, a report is its own deviation again.
    let (s, d) = call(&app, &tok["ciso"], "POST", &link(&refs[11]), json!({})).await;
    assert_eq!(s, 200, "{d}");
    assert!(d["incident"].is_null());
    let (s, _) = call(&app, &tok["ciso"], "POST", &link(&refs[11]), json!({})).await;
    assert_eq!(s, 409);
    let (_, rep) = call(
        &app,
        &tok["ciso"],
        "GET",
        "/api/v1/reports/annual/2026",
        Value::Null,
    )
    .await;
    assert_eq!(rep["totals"]["deviations"], 2);
}
