//! Every staff route × every role, allowed and denied, from the one authorization function.

use std::collections::HashMap;

use avvik::auth::Role;
use avvik::domain::EmailAddress;
use serde_json::{json, Value};

use crate::helpers::TestApp;

const SOC: &str = "Socialtjänsten";
const BOU: &str = "Barn och utbildning";

/// The test accounts: name → (role, sectors, e-mail).
fn people() -> Vec<(&'static str, Role, Vec<String>, &'static str)> {
    vec![
        ("ciso", Role::Ciso, vec![], "ciso@kommunen.example"),
        (
            "kontakt_soc",
            Role::Kontakt,
            vec![SOC.into()],
            "kontakt.soc@kommunen.example",
        ),
        (
            "kontakt_bou",
            Role::Kontakt,
            vec![BOU.into()],
            "kontakt.bou@kommunen.example",
        ),
        ("dso", Role::Dso, vec![], "dso@kommunen.example"),
        (
            "systemagare",
            Role::Systemagare,
            vec![],
            "system@kommunen.example",
        ),
        ("ledning", Role::Ledning, vec![], "ledning@kommunen.example"),
        ("auditor", Role::Auditor, vec![], "revisor@kommunen.example"),
        ("admin", Role::Admin, vec![], "admin@kommunen.example"),
    ]
}

pub async fn tokens(app: &TestApp) -> HashMap<&'static str, String> {
    let svc = &app.app_state.services;
    let mut out = HashMap::new();
    for (who, role, sectors, email) in people() {
        let email = EmailAddress::parse(email).unwrap();
        let id = svc
            .create_account(
                &email,
                who,
                &[(role, sectors)],
                Some("ett långt lösenord 123"),
                "test",
            )
            .await
            .unwrap();
        let token = svc.create_api_token(id, "test", "test").await.unwrap();
        out.insert(who, token);
    }
    out
}

async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{}", app.base, path);
    let mut req = match method {
        "GET" => app.client.get(url),
        _ => app.client.post(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, v)
}

async fn report(app: &TestApp, sector: &str, personal_data: bool) -> String {
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": format!("Avvikelse i {sector}"), "description": "test", "sector": sector, "personal_data": personal_data}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_route_for_every_role() {
    let app = TestApp::spawn().await;
    let tok = tokens(&app).await;
    let d1 = report(&app, SOC, true).await;
    let d2 = report(&app, BOU, false).await;
    // D1: major, with a measure owned by the system owner.
    let (s, _) = call(
        &app,
        Some(&tok["ciso"]),
        "POST",
        &format!("/api/v1/deviations/{d1}/classification"),
        Some(json!({"severity": "major", "aspects": {"confidentiality": 3}, "category": "obehörig åtkomst", "personal_data_breach": "investigating", "nis2_significant": false, "rationale": "Journaldata"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = call(
        &app,
        Some(&tok["ciso"]),
        "POST",
        &format!("/api/v1/deviations/{d1}/measures"),
        Some(json!({"description": "Spärra kontot", "owner": "system@kommunen.example", "due": "2026-12-31"})),
    )
    .await;
    assert_eq!(s, 201);
    let m = v["measure_id"].as_str().unwrap().to_string();

    let all = [
        "ciso",
        "kontakt_soc",
        "kontakt_bou",
        "dso",
        "systemagare",
        "ledning",
        "auditor",
        "admin",
    ];
    let d1_viewers = [
        "ciso",
        "kontakt_soc",
        "dso",
        "systemagare",
        "ledning",
        "auditor",
    ];
    let d2_viewers = ["ciso", "kontakt_bou", "auditor"];
    type Row = (&'static str, String, Option<Value>, Vec<&'static str>);
    let rows: Vec<Row> = vec![
        (
            "GET",
            "/api/v1/deviations".into(),
            None,
            all.iter().copied().filter(|w| *w != "admin").collect(),
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d1}"),
            None,
            d1_viewers.to_vec(),
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d1}/history"),
            None,
            d1_viewers.to_vec(),
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d2}"),
            None,
            d2_viewers.to_vec(),
        ),
        (
            "GET",
            "/api/v1/deviations/export".into(),
            None,
            all.iter().copied().filter(|w| *w != "admin").collect(),
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d1}/export"),
            None,
            d1_viewers.to_vec(),
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d2}/export?format=pdf"),
            None,
            d2_viewers.to_vec(),
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d1}/attachments"),
            None,
            d1_viewers.to_vec(),
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d2}/attachments"),
            None,
            d2_viewers.to_vec(),
        ),
        (
            "GET",
            "/api/v1/intake/quarantine".into(),
            None,
            vec!["ciso"],
        ),
        ("GET", "/api/v1/recipients".into(), None, vec!["admin"]),
        (
            "GET",
            "/api/v1/audit/recipients".into(),
            None,
            vec!["ciso", "auditor"],
        ),
        (
            "GET",
            format!("/api/v1/audit/access?reference={d1}"),
            None,
            vec!["ciso", "dso", "auditor"],
        ),
        (
            "GET",
            format!("/api/v1/deviations/{d2}/history"),
            None,
            d2_viewers.to_vec(),
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/classification"),
            Some(
                json!({"severity": "major", "aspects": {"confidentiality": 4}, "category": "obehörig åtkomst", "personal_data_breach": "yes", "nis2_significant": false, "rationale": "x"}),
            ),
            vec!["ciso", "kontakt_soc"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d2}/classification"),
            Some(
                json!({"severity": "minor", "category": "nätfiske", "personal_data_breach": "no", "nis2_significant": false}),
            ),
            vec!["ciso", "kontakt_bou"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/decisions"),
            Some(json!({"text": "Beslut"})),
            vec!["ciso", "kontakt_soc", "dso"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/measures"),
            Some(
                json!({"description": "Åtgärd", "owner": "it@kommunen.example", "due": "2026-12-31"}),
            ),
            vec!["ciso", "kontakt_soc"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/measures/{m}/complete"),
            Some(json!({"note": "Klart"})),
            vec!["ciso", "kontakt_soc", "systemagare"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/comments"),
            Some(json!({"text": "Kommentar", "to_reporter": false})),
            vec!["ciso", "kontakt_soc", "dso", "systemagare"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/filings"),
            Some(json!({"kind": "gdpr", "not_filed_rationale": "Låg risk för de registrerade"})),
            vec!["ciso", "kontakt_soc", "dso"],
        ),
        // The same time again is refused (409) after the check lets it through.
        (
            "POST",
            format!("/api/v1/deviations/{d1}/awareness"),
            Some(
                json!({"regime": "gdpr", "aware_at": "2026-01-02T10:00:00+01:00", "reason": "Bekräftat av systemägaren"}),
            ),
            vec!["ciso", "dso"],
        ),
        // Not a NIS2 incident: refused (409) after the check lets it through.
        (
            "POST",
            format!("/api/v1/deviations/{d1}/incident-handling-ended"),
            Some(json!({"ended_at": "2026-01-05T10:00:00+01:00"})),
            vec!["ciso", "kontakt_soc", "dso"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/close"),
            Some(json!({"resolution": "Åtgärdat"})),
            vec!["ciso", "kontakt_soc"],
        ),
        (
            "POST",
            format!("/api/v1/deviations/{d1}/reopen"),
            Some(json!({"reason": "Nytt underlag"})),
            vec!["ciso", "kontakt_soc"],
        ),
        (
            "GET",
            "/api/v1/privacy/retention".to_string(),
            None,
            vec!["ciso", "dso", "auditor"],
        ),
        (
            "POST",
            "/api/v1/privacy/extract".to_string(),
            Some(json!({"email": "anna@kommunen.example"})),
            vec!["ciso", "dso"],
        ),
        // Open, so the CISO's gallring is refused (409) after the check lets it through.
        (
            "POST",
            format!("/api/v1/deviations/{d2}/shred"),
            Some(json!({"decision": "KS 2026/1"})),
            vec!["ciso"],
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, allowed) in &rows {
        // Without credentials: always 401.
        let (s, _) = call(&app, None, method, path, body.clone()).await;
        if s != 401 {
            failures.push(format!("{method} {path} anonymous: {s}"));
        }
        for who in all {
            let (s, v) = call(&app, Some(&tok[who]), method, path, body.clone()).await;
            let permitted = !matches!(s, 401 | 403 | 404);
            let expected = allowed.contains(&who);
            if permitted != expected {
                failures.push(format!("{method} {path} as {who}: {s} {v}"));
            }
            if expected && !(200..300).contains(&s) && s != 409 {
                failures.push(format!("{method} {path} as {who}: allowed but {s} {v}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization table mismatches:\n{}",
        failures.join("\n")
    );

    // A kontakt never sees another sector's deviation in the register either.
    let (_, v) = call(
        &app,
        Some(&tok["kontakt_soc"]),
        "GET",
        "/api/v1/deviations",
        None,
    )
    .await;
    let refs: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, [d1.as_str()]);
    let (_, v) = call(&app, Some(&tok["ciso"]), "GET", "/api/v1/deviations", None).await;
    assert_eq!(v["total"], 2);
    // The auditor changed nothing: every event was written by someone else.
    let (_, hist) = call(
        &app,
        Some(&tok["auditor"]),
        "GET",
        &format!("/api/v1/deviations/{d1}/history"),
        None,
    )
    .await;
    assert!(hist
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] != "user:revisor@kommunen.example"));
    // A disabled account's token stops working at once.
    let svc = &app.app_state.services;
    let id =
        avvik::auth::accounts::account_id(&EmailAddress::parse("ciso@kommunen.example").unwrap());
    svc.set_disabled(id, true, "slutat", "test").await.unwrap();
    let (s, _) = call(&app, Some(&tok["ciso"]), "GET", "/api/v1/deviations", None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn staff_api_validates_bodies_and_states() {
    let app = TestApp::spawn().await;
    let tok = tokens(&app).await;
    let d = report(&app, SOC, false).await;
    let ciso = Some(tok["ciso"].as_str());
    let (s, v) = call(
        &app,
        ciso,
        "POST",
        &format!("/api/v1/deviations/{d}/classification"),
        Some(json!({"severity": "enorm", "aspects": {"confidentiality": 7}, "category": "okänd", "nis2_significant": "ja", "extra": 1})),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "severity",
        "aspects",
        "category",
        "personal_data_breach",
        "nis2_significant",
        "extra",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    // Unknown measure: 409 with a Swedish explanation.
    let (s, v) = call(
        &app,
        ciso,
        "POST",
        &format!("/api/v1/deviations/{d}/measures/01900000-0000-7000-8000-000000000000/complete"),
        Some(json!({"note": "x"})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["detail_sv"], "Åtgärden finns inte.");
    // Closing, then classifying a closed deviation: 409.
    let (s, _) = call(
        &app,
        ciso,
        "POST",
        &format!("/api/v1/deviations/{d}/close"),
        Some(json!({"resolution": "Klar"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = call(
        &app,
        ciso,
        "POST",
        &format!("/api/v1/deviations/{d}/classification"),
        Some(json!({"severity": "minor", "category": "nätfiske", "personal_data_breach": "no", "nis2_significant": false})),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    // Unknown reference: 404.
    let (s, _) = call(&app, ciso, "GET", "/api/v1/deviations/AVV-1999-0001", None).await;
    assert_eq!(s, 404);
    // Filters.
    let (_, v) = call(&app, ciso, "GET", "/api/v1/deviations?status=closed", None).await;
    assert_eq!(v["total"], 1);
    let (_, v) = call(
        &app,
        ciso,
        "GET",
        "/api/v1/deviations?status=received",
        None,
    )
    .await;
    assert_eq!(v["total"], 0);
    let (_, v) = call(&app, ciso, "GET", "/api/v1/deviations?q=SOCIALTJ", None).await;
    assert_eq!(v["total"], 1);
}

/// Account changes in the admin UI under separation of duties: nobody grants themselves
/// a role, API tokens only by their owner, and ciso/admin/auditor only with a second
/// admin's approval (a pending request, then the approval, both events).
#[tokio::test]
async fn account_duties_self_grant_foreign_token_and_four_eyes() {
    use crate::staff_ui::{csrf_token, login};
    let app = TestApp::spawn().await;
    tokens(&app).await;
    let svc = &app.app_state.services;
    let admin2_email = EmailAddress::parse("admin2@kommunen.example").unwrap();
    svc.create_account(
        &admin2_email,
        "Andra admin",
        &[(Role::Admin, vec![])],
        Some(crate::staff_ui::PASSWORD),
        "cli",
    )
    .await
    .unwrap();
    let id = |e: &str| avvik::auth::accounts::account_id(&EmailAddress::parse(e).unwrap());
    let admin_id = id("admin@kommunen.example");
    let admin2_id = id("admin2@kommunen.example");
    let kontakt_id = id("kontakt.soc@kommunen.example");
    let dso_id = id("dso@kommunen.example");
    let ciso_id = id("ciso@kommunen.example");
    let admin = login(&app, "admin@kommunen.example").await;
    let admin2 = login(&app, "admin2@kommunen.example").await;
    let ciso = login(&app, "ciso@kommunen.example").await;
    let csrf = |c: reqwest::Client, url: String| async move {
        let html = c.get(url).send().await.unwrap().text().await.unwrap();
        csrf_token(&html)
    };
    let t_admin = csrf(admin.clone(), format!("{}/staff/admin", app.base)).await;
    let t_admin2 = csrf(admin2.clone(), format!("{}/staff/admin", app.base)).await;
    let t_ciso = csrf(ciso.clone(), format!("{}/staff/logout", app.base)).await;
    let post = |c: &reqwest::Client,
                token: &str,
                account: uuid::Uuid,
                action: &str,
                form: Vec<(&str, String)>| {
        let mut fields = vec![("authenticity_token".to_string(), token.to_string())];
        fields.extend(form.into_iter().map(|(k, v)| (k.to_string(), v)));
        c.post(format!(
            "{}/staff/admin/accounts/{account}/{action}",
            app.base
        ))
        .form(&fields)
        .send()
    };
    let role = |r: &str| vec![("role", r.to_string()), ("sector", String::new())];
    let pending = |account: uuid::Uuid| {
        app.app_state
            .services
            .register
            .read()
            .accounts
            .get(account)
            .unwrap()
            .pending_grants
            .clone()
    };
    let has = |account: uuid::Uuid, r: Role| {
        app.app_state
            .services
            .register
            .read()
            .accounts
            .get(account)
            .unwrap()
            .has(r)
    };

    // (who, what, expected status)
    let mut failures = Vec::new();
    let mut check = |what: &str, got: u16, want: u16| {
        if got != want {
            failures.push(format!("{what}: {got}, expected {want}"));
        }
    };
    // Self-grant: refused, for an ordinary role and for ciso.
    let r = post(&admin, &t_admin, admin_id, "grant", role("ledning"))
        .await
        .unwrap();
    check("admin grants themselves ledning", r.status().as_u16(), 422);
    let r = post(&admin, &t_admin, admin_id, "grant", role("ciso"))
        .await
        .unwrap();
    check("admin grants themselves ciso", r.status().as_u16(), 422);
    assert!(!has(admin_id, Role::Ciso) && !has(admin_id, Role::Ledning));
    assert!(pending(admin_id).is_empty());
    // Foreign token: refused; the admin's own: made and shown once.
    let r = post(
        &admin,
        &t_admin,
        ciso_id,
        "tokens",
        vec![("label", "x".into())],
    )
    .await
    .unwrap();
    check(
        "admin creates a token for the CISO",
        r.status().as_u16(),
        422,
    );
    let html = r.text().await.unwrap();
    assert!(!html.contains("<code class=\"token\">"), "no token shown");
    assert!(
        svc.register
            .read()
            .accounts
            .get(ciso_id)
            .unwrap()
            .tokens
            .len()
            == 1
    );
    let r = post(
        &admin,
        &t_admin,
        admin_id,
        "tokens",
        vec![("label", "eget".into())],
    )
    .await
    .unwrap();
    check("admin creates their own token", r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("<code class=\"token\">"));
    // A non-privileged role to someone else: at once.
    let r = post(&admin, &t_admin, dso_id, "grant", role("ledning"))
        .await
        .unwrap();
    check("admin grants the DSO ledning", r.status().as_u16(), 303);
    assert!(has(dso_id, Role::Ledning));
    // Four eyes: ciso for the kontakt is a pending request first.
    let r = post(&admin, &t_admin, kontakt_id, "grant", role("ciso"))
        .await
        .unwrap();
    check(
        "admin asks for ciso for the kontakt",
        r.status().as_u16(),
        303,
    );
    assert!(!has(kontakt_id, Role::Ciso), "not granted before approval");
    let req = pending(kontakt_id);
    assert_eq!(req.len(), 1);
    let request_id = vec![("request_id", req[0].request_id.to_string())];
    // The requester cannot approve their own request.
    let r = post(&admin, &t_admin, kontakt_id, "approve", request_id.clone())
        .await
        .unwrap();
    check("the requester approves", r.status().as_u16(), 422);
    assert!(!has(kontakt_id, Role::Ciso));
    // A non-admin cannot approve at all.
    let r = post(&ciso, &t_ciso, kontakt_id, "approve", request_id.clone())
        .await
        .unwrap();
    check("the CISO approves", r.status().as_u16(), 403);
    // The grantee cannot approve a grant to themselves.
    let r = post(&admin2, &t_admin2, admin_id, "grant", role("auditor"))
        .await
        .unwrap();
    check(
        "admin2 asks for auditor for admin",
        r.status().as_u16(),
        303,
    );
    let own = vec![("request_id", pending(admin_id)[0].request_id.to_string())];
    let r = post(&admin, &t_admin, admin_id, "approve", own)
        .await
        .unwrap();
    check(
        "admin approves auditor for themselves",
        r.status().as_u16(),
        422,
    );
    assert!(!has(admin_id, Role::Auditor));
    // A second admin approves: granted.
    let r = post(
        &admin2,
        &t_admin2,
        kontakt_id,
        "approve",
        request_id.clone(),
    )
    .await
    .unwrap();
    check("admin2 approves", r.status().as_u16(), 303);
    assert!(has(kontakt_id, Role::Ciso));
    assert!(pending(kontakt_id).is_empty());
    // Approving again: nothing left to approve.
    let r = post(&admin2, &t_admin2, kontakt_id, "approve", request_id)
        .await
        .unwrap();
    check("approving twice", r.status().as_u16(), 422);
    assert!(
        failures.is_empty(),
        "account duty mismatches:\n{}",
        failures.join("\n")
    );

    // Both steps are events, by the admin who took them.
    let records = svc.store.read_stream(kontakt_id, 1).unwrap();
    let steps: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r.event_type.starts_with("RoleGrant") || r.event_type == "RoleGranted")
        .map(|r| (r.event_type.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("RoleGranted", "test"),
            ("RoleGrantRequested", "user:admin@kommunen.example"),
            ("RoleGrantApproved", "user:admin2@kommunen.example"),
            ("RoleGranted", "user:admin2@kommunen.example"),
        ]
    );
    let requested = records
        .iter()
        .find(|r| r.event_type == "RoleGrantRequested")
        .unwrap();
    assert_eq!(requested.data["role"], "ciso");
    assert_eq!(requested.data["requested_by"], admin_id.to_string());
    let _ = admin2_id;
}
