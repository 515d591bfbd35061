//! The personal calendar feed: made on Mitt konto, read by an independent iCalendar parser,
//! each unsettled deadline and open measure once, only what the user may see, and dead at
//! once when the link (or the role) is revoked.

use std::collections::BTreeMap;

use avvik::auth::Role;
use avvik::domain::{EmailAddress, Reference};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::staff_ui::{csrf_token, login};

const KONTAKT: &str = "kontakt.soc@kommunen.example";

async fn call(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{}", app.base, path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn report(app: &TestApp, sector: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": format!("Hemlig rubrik i {sector}"), "description": "Hemlig beskrivning", "sector": sector, "personal_data": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The feed's events by UID: (SUMMARY, DTSTART with its parameters), each UID once.
fn parse(ics: &str) -> BTreeMap<String, (String, String)> {
    let mut calendars = ical::IcalParser::new(std::io::BufReader::new(ics.as_bytes()));
    let cal = calendars
        .next()
        .expect("one calendar")
        .expect("the feed parses");
    assert!(calendars.next().is_none());
    let prop = |c: &[ical::property::Property], name: &str| {
        c.iter()
            .find(|p| p.name == name)
            .map(|p| {
                let params = p
                    .params
                    .iter()
                    .flatten()
                    .map(|(k, v)| format!(";{k}={}", v.join(",")))
                    .collect::<String>();
                format!("{params}:{}", p.value.clone().unwrap_or_default())
            })
            .unwrap_or_default()
    };
    assert_eq!(prop(&cal.properties, "VERSION"), ":2.0");
    let mut out = BTreeMap::new();
    for ev in &cal.events {
        let uid = prop(&ev.properties, "UID")
            .trim_start_matches(':')
            .to_string();
        let summary = prop(&ev.properties, "SUMMARY")
            .trim_start_matches(':')
            .to_string();
        let start = prop(&ev.properties, "DTSTART");
        assert!(
            !prop(&ev.properties, "DTSTAMP").is_empty(),
            "DTSTAMP is required"
        );
        assert!(
            out.insert(uid.clone(), (summary, start)).is_none(),
            "{uid} twice"
        );
    }
    out
}

async fn fetch(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.text().await.unwrap())
}

/// Makes a calendar link on Mitt konto; returns its path and the page.
async fn make_link(client: &reqwest::Client, app: &TestApp) -> (String, String) {
    let html = client
        .get(format!("{}/staff/account", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = client
        .post(format!("{}/staff/account/calendar", app.base))
        .form(&[("authenticity_token", csrf_token(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let i = page.find("/calendar/").expect("the new link is shown");
    let path = page[i..i + page[i..].find(".ics").unwrap() + 4].to_string();
    (path, page)
}

#[tokio::test]
async fn the_feed_holds_each_deadline_once_for_what_the_user_may_see_until_revoked() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = &tok["ciso"];
    let d1 = report(&app, "Socialtjänsten").await;
    let d2 = report(&app, "Barn och utbildning").await;
    for d in [&d1, &d2] {
        let (s, v) = call(
            &app,
            ciso,
            &format!("/api/v1/deviations/{d}/classification"),
            json!({"severity": "major", "aspects": {"confidentiality": 3}, "category": "obehörig åtkomst", "personal_data_breach": "yes", "nis2_significant": true, "rationale": "Hemlig motivering"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = call(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/measures"),
        json!({"description": "Hemlig åtgärd", "owner": KONTAKT, "due": "2026-12-31"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let done = call(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/measures"),
        json!({"description": "Klar åtgärd", "owner": "annan@kommunen.example", "due": "2026-12-01"}),
    )
    .await
    .1["measure_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = call(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/measures/{done}/complete"),
        json!({"note": "Klart"}),
    )
    .await;
    assert_eq!(s, 200);
    let deviation = |r: &str| {
        app.app_state
            .services
            .register
            .read()
            .by_reference(Reference::parse(r).unwrap())
            .unwrap()
            .clone()
    };
    let dev1 = deviation(&d1);
    assert_eq!(dev1.deadlines.len(), 4, "GDPR and three NIS2 deadlines");

    let kontakt = login(&app, KONTAKT).await;
    let (path, page) = make_link(&kontakt, &app).await;
    assert!(page.contains("visas bara den här gången"));
    let (status, ct, ics) = fetch(&app, &path).await;
    assert_eq!(status, 200, "{ics}");
    assert_eq!(ct, "text/calendar; charset=utf-8");
    let events = parse(&ics);
    // Each deadline of the deviation in the kontakt's sector once, at its time in UTC; the
    // open measure on its day; nothing of the other sector's deviation, and no free text.
    for dl in &dev1.deadlines {
        let uid = format!("{}-{}@avvik", dev1.id, dl.kind.as_str());
        let (summary, start) = events.get(&uid).unwrap_or_else(|| panic!("{uid} in {ics}"));
        assert_eq!(start, &format!(":{}", dl.due.format("%Y%m%dT%H%M%SZ")));
        assert_eq!(summary, &format!("{d1}: {}", dl.kind.label_sv()));
    }
    let measure = dev1
        .measures
        .iter()
        .find(|m| m.completed_at.is_none())
        .unwrap();
    let (summary, start) = &events[&format!("{}-measure@avvik", measure.id)];
    assert_eq!(start, ";VALUE=DATE:20261231");
    assert_eq!(summary, &format!("{d1}: din åtgärd ska vara slutförd"));
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(
        !ics.contains(&d2) && !ics.contains("Hemlig") && !ics.contains("Klar"),
        "{ics}"
    );
    // The fetch is in the läslogg, as the kontakt's.
    let log = app
        .app_state
        .access_log
        .for_actor(&format!("user:{KONTAKT}"));
    assert!(
        log.iter().any(|e| serde_json::to_value(&e.what).unwrap()
            == json!({"kind": "calendar_feed", "entries": 5})),
        "{log:?}"
    );

    // Filed: that deadline leaves the feed; the others stay, once each.
    let (s, v) = call(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/filings"),
        json!({"authority": "IMY", "kind": "gdpr", "filed_at": chrono::Utc::now().to_rfc3339()}),
    )
    .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let events = parse(&fetch(&app, &path).await.2);
    assert_eq!(events.len(), 4);
    assert!(!events.contains_key(&format!("{}-gdpr@avvik", dev1.id)));

    // The CISO's own feed has both deviations.
    let ciso_web = login(&app, "ciso@kommunen.example").await;
    let (ciso_path, _) = make_link(&ciso_web, &app).await;
    let ciso_events = parse(&fetch(&app, &ciso_path).await.2);
    assert_eq!(ciso_events.len(), 4 + 4, "{ciso_events:?}");

    // A revoked role empties the feed at the next fetch.
    let svc = &app.app_state.services;
    let kontakt_id = avvik::auth::accounts::account_id(&EmailAddress::parse(KONTAKT).unwrap());
    svc.revoke_role(kontakt_id, Role::Kontakt, "user:admin@kommunen.example")
        .await
        .unwrap();
    let (status, _, ics) = fetch(&app, &path).await;
    assert_eq!(status, 200);
    assert!(parse(&ics).is_empty(), "{ics}");

    // A new link replaces the old one; a revoked link, like a made-up one, is 404.
    let (new_path, page) = make_link(&kontakt, &app).await;
    assert_ne!(new_path, path);
    let (status, _, gone) = fetch(&app, &path).await;
    assert_eq!(status, 404);
    assert_eq!(fetch(&app, &new_path).await.0, 200);
    let made_up = format!("/calendar/{}.ics", "ab".repeat(32));
    let (status, _, unknown) = fetch(&app, &made_up).await;
    assert_eq!(status, 404);
    assert_eq!(
        gone, unknown,
        "a revoked link says no more than a made-up one"
    );
    assert_eq!(fetch(&app, "/calendar/kort.ics").await.0, 404);
    // A disabled account's link is dead until it is enabled again.
    svc.set_disabled(kontakt_id, true, "slutat", "user:admin@kommunen.example")
        .await
        .unwrap();
    assert_eq!(fetch(&app, &new_path).await.0, 404);
    svc.set_disabled(kontakt_id, false, "", "user:admin@kommunen.example")
        .await
        .unwrap();
    assert_eq!(fetch(&app, &new_path).await.0, 200);
    let i = page
        .find("/staff/account/calendar/")
        .expect("a revoke form");
    let action = &page[i..i + page[i..].find('"').unwrap()];
    let r = kontakt
        .post(format!("{}{action}", app.base))
        .form(&[("authenticity_token", csrf_token(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(fetch(&app, &new_path).await.0, 404);
    let html = kontakt
        .get(format!("{}/staff/account", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Du har ingen kalenderlänk."));
    // Both are events in the account stream; the token itself is in none of them.
    let token = new_path
        .trim_start_matches("/calendar/")
        .trim_end_matches(".ics");
    let stream = svc.store.read_stream(kontakt_id, 1).unwrap();
    let types: Vec<&str> = stream
        .iter()
        .map(|r| r.event_type.as_str())
        .filter(|t| t.starts_with("CalendarFeed"))
        .collect();
    assert_eq!(
        types,
        [
            "CalendarFeedCreated",
            "CalendarFeedRevoked",
            "CalendarFeedCreated",
            "CalendarFeedRevoked"
        ]
    );
    assert!(stream.iter().all(|r| !r.data.to_string().contains(token)));
    app.stop().await;
}

/// Mitt konto with and without a calendar link, checked by axe-core in a real browser.
#[tokio::test]
async fn the_calendar_section_of_mitt_konto_is_accessible() {
    use crate::browser::{sign_in, Browser};
    let app = TestApp::spawn().await;
    crate::authz::tokens(&app).await;
    let b = Browser::start(&app.base).await;
    sign_in(&b, "ciso@kommunen.example", "/staff").await;
    b.goto("/staff/account").await;
    assert!(b.text("main").await.contains("Du har ingen kalenderlänk."));
    b.assert_accessible("Mitt konto without a calendar link")
        .await;
    b.click("form[action='/staff/account/calendar'] button")
        .await;
    b.wait_for("code.token").await;
    let url = b.text("code.token").await;
    assert!(url.contains("/calendar/") && url.ends_with(".ics"), "{url}");
    b.assert_accessible("Mitt konto with a new calendar link")
        .await;
    b.assert_unique_ids("Mitt konto with a new calendar link")
        .await;
    let path = &url[url.find("/calendar/").unwrap()..];
    assert_eq!(fetch(&app, path).await.0, 200);
    b.close().await;
}

/// A feed URL is a secret in the path alone, so fetches count against the per-IP limit.
#[tokio::test]
async fn calendar_fetches_are_rate_limited_per_ip() {
    let app = TestApp::spawn_with(
        |c| c.http.rate_limit_per_minute = 3,
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let guess = |i: u32| format!("/calendar/{:064x}.ics", i);
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(fetch(&app, &guess(i)).await.0);
    }
    assert_eq!(statuses, [404, 404, 404, 429]);
    // Other pages are not counted.
    assert_eq!(fetch(&app, "/healthz").await.0, 200);
    app.stop().await;
}
