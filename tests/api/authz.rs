//! Who may use which route: the one table of every route the router serves × every role
//! (`authz_table`), and API writes with real bodies.

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

/// API writes with real bodies: the allowed roles' calls succeed (2xx, or 409 where the
/// domain refuses after the check), the others are refused; and the register lists only
/// what each role may see.
#[tokio::test]
async fn api_writes_with_real_bodies_for_every_role() {
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

// ---------------------------------------------------------------------------------------
// The authorization table: every route the router serves × every role.
// ---------------------------------------------------------------------------------------

/// What one role gets on a route, on the table's deviation (see `FIXTURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// Allowed: past the check (not 401/403/404, not sent to the login page).
    Y,
    /// Refused: 403 (the API's problem answer, the staff UI's Swedish page).
    F,
    /// Hidden: 404, the deviation is not theirs to see, so its existence does not leak.
    H,
}
use Cell::{F, H, Y};

/// Who may use a route.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone, signed in or not (capabilities in the path, such as a status token or a
    /// signed link, are the fixture's valid ones).
    Anyone,
    /// Only the MTA pipe with `intake.token`; staff tokens are refused (401).
    IntakeToken,
    /// Signed-in staff, per role in the order of `ROLES`; signed out is refused (401 on
    /// the API, a redirect to `/staff/login` on pages).
    Staff([Cell; 8]),
}

/// Whether a role that must have a second factor, and has none yet, may reach the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecondFactor {
    /// Only with the second factor.
    Required,
    /// Reachable without it: signing in and out, the own-account page where it is set up,
    /// public routes and static files.
    Exempt,
}

/// How the allowed calls are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// A real call (GET, or a POST whose empty body is all it needs).
    Real,
    /// A write with an empty body: the check runs before the body is read, so an allowed
    /// role gets the validation answer (422/400) and nothing changes; a refused one 403.
    EmptyBody,
}

struct Row {
    method: &'static str,
    path: &'static str,
    access: Access,
    second_factor: SecondFactor,
    probe: Probe,
    /// The one answer every caller gets, where the route's own capability decides (a
    /// link or cookie the fixture cannot make valid), not a role.
    answer: Option<u16>,
    note: &'static str,
}

/// The columns of `Access::Staff`: the accounts of `people()`.
const ROLES: [&str; 8] = [
    "ciso",
    "kontakt_soc",
    "kontakt_bou",
    "dso",
    "systemagare",
    "ledning",
    "auditor",
    "admin",
];

/// Column headings for the documentation.
const ROLE_HEADINGS: [&str; 8] = [
    "ciso",
    "kontakt (own sector)",
    "kontakt (other sector)",
    "dso",
    "systemägare",
    "ledning",
    "auditor",
    "admin",
];

/// What the cells are relative to.
const FIXTURE: &str = "The deviation in the paths is reported in Socialtjänsten with \
personal data suspected, classified major (personal-data breach under investigation), with a \
measure owned by the system owner. So the kontakt of Socialtjänsten is in its sector and the \
kontakt of Barn och utbildning is not; the dso sees it because of the personal data, the \
systemägare because of the measure, ledning because it is major.";

const fn api(method: &'static str, path: &'static str, who: [Cell; 8]) -> Row {
    Row {
        method,
        path,
        access: Access::Staff(who),
        second_factor: SecondFactor::Required,
        probe: if matches!(method.as_bytes(), b"GET") {
            Probe::Real
        } else {
            Probe::EmptyBody
        },
        answer: None,
        note: "",
    }
}

const fn page(method: &'static str, path: &'static str, who: [Cell; 8]) -> Row {
    api(method, path, who)
}

const fn public(method: &'static str, path: &'static str) -> Row {
    Row {
        method,
        path,
        access: Access::Anyone,
        second_factor: SecondFactor::Exempt,
        probe: Probe::Real,
        answer: None,
        note: "",
    }
}

impl Row {
    const fn note(mut self, note: &'static str) -> Row {
        self.note = note;
        self
    }
    const fn exempt(mut self) -> Row {
        self.second_factor = SecondFactor::Exempt;
        self
    }
    const fn answers(mut self, status: u16) -> Row {
        self.answer = Some(status);
        self
    }
    const fn real(mut self) -> Row {
        self.probe = Probe::Real;
        self
    }
}

// Who sees the deviation (D), who may act on it in its case handling (CASE), and so on.
const D: [Cell; 8] = [Y, Y, H, Y, Y, Y, Y, H];
const LIST: [Cell; 8] = [Y, Y, Y, Y, Y, Y, Y, F];
const CASE: [Cell; 8] = [Y, Y, H, F, F, F, F, H];
const FILING: [Cell; 8] = [Y, Y, H, Y, F, F, F, H];
const AWARE: [Cell; 8] = [Y, F, H, Y, F, F, F, H];
const COMMENT: [Cell; 8] = [Y, Y, H, Y, Y, F, F, H];
const MEASURE: [Cell; 8] = [Y, Y, H, F, Y, F, F, H];
const SHRED: [Cell; 8] = [Y, F, H, F, F, F, F, H];
const AUDIT: [Cell; 8] = [Y, F, F, F, F, F, Y, F];
const ACCESS_LOG: [Cell; 8] = [Y, F, F, Y, F, F, Y, F];
const RETENTION: [Cell; 8] = [Y, F, F, Y, F, F, Y, F];
const EXTRACT: [Cell; 8] = [Y, F, F, Y, F, F, F, F];
const REPORTS: [Cell; 8] = [Y, F, F, F, F, Y, Y, F];
const CISO: [Cell; 8] = [Y, F, F, F, F, F, F, F];
const ADMIN: [Cell; 8] = [F, F, F, F, F, F, F, Y];
const STAFF: [Cell; 8] = [Y; 8];

/// Every route the service serves: who may use it. `docs/AUTHORIZATION.md` is made from
/// this table (`AVVIK_WRITE_DOCS=1 cargo test --test api authz_table` writes it).
#[rustfmt::skip]
const TABLE: &[Row] = &[
    // Operations, static files, the fallback.
    public("GET",  "/healthz"),
    public("GET",  "/readyz"),
    public("GET",  "/metrics").note("only to the addresses in http.metrics_allow (loopback here), whoever asks"),
    public("GET",  "/static/avvik.css"),
    public("GET",  "/static/passkeys.js"),
    public("GET",  "*").answers(404).note("any path no route matches: the 404 page"),
    // The public form, receipt and status page; links that carry their own capability.
    public("GET",  "/"),
    public("POST", "/").note("an empty report: 422"),
    public("GET",  "/receipt").answers(404).note("shown only to the browser that just reported (a cookie), 404 to any other"),
    public("GET",  "/status/{token}").note("the reporter's status token"),
    public("POST", "/status/{token}").note("the reporter's status token; an empty addition: 422"),
    public("GET",  "/ack/{notification_id}/{signature}").answers(404).note("the signed link in an escalation mail; here signed, for no notice"),
    public("POST", "/ack/{notification_id}/{signature}").answers(404).note("the signed link in an escalation mail; here signed, for no notice"),
    public("GET",  "/calendar/{file}").note("the feed's secret token"),
    public("GET",  "/setup/{token}").note("the one-time link for the first account"),
    public("POST", "/setup/{token}").note("the one-time link for the first account"),
    // Signing in and out.
    public("GET",  "/staff/login"),
    public("POST", "/staff/login").answers(401).note("wrong credentials: the form again, 401"),
    public("GET",  "/staff/login/second-factor").answers(303).note("the second step after the password; without a password step before it, to the login page"),
    public("POST", "/staff/login/second-factor").answers(303).note("the second step after the password; without a password step before it, to the login page"),
    public("POST", "/staff/login/second-factor/passkey/options").answers(401).note("the second step after the password; without a password step before it, 401"),
    public("POST", "/staff/login/second-factor/passkey").answers(303).note("the second step after the password; without a password step before it, to the login page"),
    public("POST", "/staff/login/oidc/{provider}").answers(404).note("starts a sign-in at an identity provider; the table's configuration has none: 404"),
    public("GET",  "/staff/login/oidc/callback").answers(400).note("an identity provider's answer; without a sign-in started in this browser, refused: 400"),
        // The JSON API.
    public("GET",  "/api/v1/openapi.json"),
    public("POST", "/api/v1/deviations").note("the public report; an empty body: 422"),
    Row { access: Access::IntakeToken, ..public("POST", "/api/v1/intake/email") }.note("the MTA pipe's intake token, no role"),
    //   method  path                                                          ciso kS   kB   dso  sys  led  aud  adm
    api("GET",  "/api/v1/deviations",                                          LIST),
    api("GET",  "/api/v1/deviations/export",                                   LIST),
    api("GET",  "/api/v1/deviations/{reference}",                              D),
    api("GET",  "/api/v1/deviations/{reference}/history",                      D),
    api("GET",  "/api/v1/deviations/{reference}/export",                       D),
    api("GET",  "/api/v1/deviations/{reference}/attachments",                  D),
    api("GET",  "/api/v1/deviations/{reference}/attachments/{sha256}",         D),
    api("POST", "/api/v1/deviations/{reference}/classification",               CASE),
    api("POST", "/api/v1/deviations/{reference}/decisions",                    FILING),
    api("POST", "/api/v1/deviations/{reference}/measures",                     CASE),
    api("POST", "/api/v1/deviations/{reference}/measures/{measure_id}/complete", MEASURE),
    api("POST", "/api/v1/deviations/{reference}/comments",                     COMMENT),
    api("POST", "/api/v1/deviations/{reference}/close",                        CASE),
    api("POST", "/api/v1/deviations/{reference}/reopen",                       CASE),
    api("POST", "/api/v1/deviations/{reference}/handlers",                     CASE),
    api("POST", "/api/v1/deviations/{reference}/supplier",                     CASE),
    api("POST", "/api/v1/deviations/{reference}/incident",                     CASE),
    api("POST", "/api/v1/deviations/{reference}/filings",                      FILING),
    api("POST", "/api/v1/deviations/{reference}/awareness",                    AWARE),
    api("POST", "/api/v1/deviations/{reference}/incident-handling-ended",      FILING),
    api("POST", "/api/v1/deviations/{reference}/breach-record",                FILING),
    api("POST", "/api/v1/deviations/{reference}/nis2-record",                  FILING),
    api("POST", "/api/v1/deviations/{reference}/affected-notice",              FILING),
    api("POST", "/api/v1/deviations/{reference}/affected-notice/sent",         FILING),
    api("GET",  "/api/v1/deviations/{reference}/filing-documents/{kind}",      FILING),
    api("POST", "/api/v1/deviations/{reference}/shred",                        SHRED),
    api("GET",  "/api/v1/intake/quarantine",                                   CISO),
    api("GET",  "/api/v1/intake/quarantine/{id}/raw",                          CISO),
    api("POST", "/api/v1/intake/quarantine/{id}/resolve",                      CISO),
    api("POST", "/api/v1/intake/quarantine/{id}/release",                      CISO),
    api("GET",  "/api/v1/audit/events",                                        AUDIT),
    api("GET",  "/api/v1/audit/verify",                                        AUDIT),
    api("GET",  "/api/v1/audit/register",                                      AUDIT),
    api("GET",  "/api/v1/audit/deviations/{reference}/history",                AUDIT),
    api("GET",  "/api/v1/audit/changes",                                       AUDIT),
    api("GET",  "/api/v1/audit/accounts",                                      AUDIT),
    api("GET",  "/api/v1/audit/recipients",                                    AUDIT),
    api("GET",  "/api/v1/audit/access",                                        ACCESS_LOG),
    api("GET",  "/api/v1/privacy/retention",                                   RETENTION),
    api("POST", "/api/v1/privacy/extract",                                     EXTRACT),
    api("GET",  "/api/v1/reports/annual/{year}",                               REPORTS),
    api("POST", "/api/v1/reports/annual/{year}/issue",                         CISO),
    api("GET",  "/api/v1/recipients",                                          ADMIN),
    api("PUT",  "/api/v1/recipients",                                          ADMIN),
    // The staff pages.
    page("GET",  "/staff",                                                     LIST),
    page("POST", "/staff/merge",                                               LIST).note("no deviations chosen: the register again"),
    page("GET",  "/staff/export",                                              LIST),
    page("GET",  "/staff/deviations/{reference}",                              D),
    page("GET",  "/staff/deviations/{reference}/export.pdf",                   D),
    page("POST", "/staff/deviations/{reference}/{action}",                     CASE).note("{action} = classify; each action asks for its own right, as the API rows show"),
    page("POST", "/staff/deviations/{reference}/measures/{measure_id}/complete", MEASURE),
    page("GET",  "/staff/deviations/{reference}/anmalan",                      FILING),
    page("GET",  "/staff/deviations/{reference}/anmalan/{part}",               FILING),
    page("POST", "/staff/deviations/{reference}/anmalan/{part}",               FILING),
    page("GET",  "/staff/deviations/{reference}/anmalan/{kind}/{format}",      FILING),
    page("GET",  "/staff/intake/quarantine",                                   CISO),
    page("POST", "/staff/intake/quarantine/{id}/release",                      CISO).real(),
    page("GET",  "/staff/privacy/retention",                                   RETENTION),
    page("POST", "/staff/privacy/retention/{reference}",                       CISO).note("the retention area's right is asked first, before the deviation is looked up"),
    page("GET",  "/staff/privacy/extract",                                     EXTRACT),
    page("POST", "/staff/privacy/extract",                                     EXTRACT),
    page("GET",  "/staff/reports",                                             REPORTS),
    page("GET",  "/staff/reports/{year}",                                      REPORTS),
    page("GET",  "/staff/security/logins",                                     CISO),
    page("GET",  "/audit",                                                     AUDIT),
    page("GET",  "/audit/register",                                            AUDIT),
    page("GET",  "/audit/deviations/{reference}",                              AUDIT),
    page("GET",  "/audit/changes",                                             AUDIT),
    page("GET",  "/audit/accounts",                                            AUDIT),
    page("GET",  "/audit/recipients",                                          AUDIT),
    page("GET",  "/audit/access",                                              ACCESS_LOG),
    page("GET",  "/staff/admin",                                               ADMIN),
    page("POST", "/staff/admin/accounts",                                      ADMIN),
    page("GET",  "/staff/admin/accounts/{id}",                                 ADMIN),
    page("POST", "/staff/admin/accounts/{id}/{action}",                        ADMIN).note("{action} = grant, on another account"),
    page("POST", "/staff/admin/accounts/{id}/tokens/{token_id}/revoke",        ADMIN).real(),
    page("GET",  "/staff/admin/organisation",                                  ADMIN),
    page("POST", "/staff/admin/organisation",                                  ADMIN),
    page("GET",  "/staff/admin/recipients",                                    ADMIN),
    page("POST", "/staff/admin/recipients",                                    ADMIN),
    // The own account: every signed-in user, on their own tokens and feed.
    page("GET",  "/staff/account",                                             STAFF).exempt(),
    page("GET",  "/staff/logout",                                              STAFF).exempt(),
    page("POST", "/staff/account/tokens/{token_id}/revoke",                    STAFF).real().note("their own token"),
    page("POST", "/staff/account/calendar/{feed_id}/revoke",                   STAFF).real().note("their own feed"),
    page("POST", "/staff/account/tokens",                                      STAFF),
    page("POST", "/staff/account/calendar",                                    STAFF).real(),
    // Setting up a second factor: reachable before it is done.
    page("POST", "/staff/account/totp/new",                                    STAFF).exempt().real().note("starts setting up an authenticator app"),
    page("POST", "/staff/account/totp",                                        STAFF).exempt().note("an empty code: the form again"),
    page("POST", "/staff/account/totp/remove",                                 STAFF).exempt().note("needs the password again"),
    page("POST", "/staff/account/recovery-codes",                              STAFF).exempt().note("needs the password again"),
    page("POST", "/staff/account/passkeys/options",                            STAFF).exempt().note("at an IP address passkeys are unavailable"),
    page("POST", "/staff/account/passkeys",                                    STAFF).exempt(),
    page("POST", "/staff/account/passkeys/{passkey_id}/remove",                STAFF).exempt().note("a passkey of their own"),
    // Last: signing out ends each session the rows above used.
    public("POST", "/staff/logout").answers(303).note("signs out; then the login page, also when already signed out"),
];

/// What the table's paths are filled with, and the sessions that call them.
struct Fixtures {
    reference: String,
    measure: String,
    attachment: String,
    status_token: String,
    /// Two quarantined messages: one for the API's rows, one for the page's.
    quarantine: [String; 2],
    other_account: uuid::Uuid,
    other_token: uuid::Uuid,
    /// Each person's own second token and calendar feed, to revoke.
    own_tokens: HashMap<&'static str, uuid::Uuid>,
    own_feeds: HashMap<&'static str, uuid::Uuid>,
    feed_file: String,
    ack: (uuid::Uuid, String),
    year: i32,
    /// API tokens and signed-in browsers, by person.
    tokens: HashMap<&'static str, String>,
    browsers: HashMap<&'static str, (reqwest::Client, String)>,
    /// A browser that is not signed in, with a CSRF token.
    signed_out: (reqwest::Client, String),
}

const INTAKE_TOKEN: &str = "intake-token-for-the-table-0123";

fn account_of(email: &str) -> uuid::Uuid {
    avvik::auth::accounts::account_id(&EmailAddress::parse(email).unwrap())
}

fn quarantined_message(n: u32) -> String {
    // No From: held in the quarantine.
    format!(
        "To: avvikelse@kommunen.example\r\nSubject: Utan avsändare {n}\r\nMessage-ID: <q{n}@kommunen.example>\r\n\r\nText\r\n"
    )
}

async fn csrf_of(client: &reqwest::Client, url: String) -> String {
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    crate::staff_ui::csrf_token(&html)
}

impl Fixtures {
    async fn make(app: &TestApp) -> Fixtures {
        let svc = &app.app_state.services;
        let tokens = tokens(app).await;
        let browser = || {
            reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
        };
        // The deviation, from the public form with a file, and its status token.
        let reporter = browser();
        let t = csrf_of(&reporter, format!("{}/", app.base)).await;
        let form = reqwest::multipart::Form::new()
            .text("authenticity_token", t)
            .text("title", "Journal utskriven till fel skrivare")
            .text("description", "Låg kvar i skrivaren")
            .text("sector", SOC)
            .text("personal_data", "ja")
            .text("anonymous", "ja")
            .part(
                "bilaga",
                reqwest::multipart::Part::bytes(crate::uploads::PDF.to_vec())
                    .file_name("utskrift.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            );
        let r = reporter
            .post(format!("{}/", app.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "the report is made");
        let receipt = reporter
            .get(format!("{}/receipt", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let i = receipt.find("href=\"/status/").expect("a status link") + "href=\"/status/".len();
        let status_token = receipt[i..][..receipt[i..].find('"').unwrap()].to_string();
        let (reference, attachment) = {
            let reg = svc.register.read();
            let d = reg.list()[0].clone();
            (d.reference.to_string(), d.attachments[0].sha256.clone())
        };
        // Major, a possible breach, with a measure owned by the system owner.
        let ciso = Some(tokens["ciso"].as_str());
        let (s, v) = call(
            app,
            ciso,
            "POST",
            &format!("/api/v1/deviations/{reference}/classification"),
            Some(json!({"severity": "major", "aspects": {"confidentiality": 3}, "category": "obehörig åtkomst", "personal_data_breach": "investigating", "nis2_significant": false, "rationale": "Journaldata"})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = call(
            app,
            ciso,
            "POST",
            &format!("/api/v1/deviations/{reference}/measures"),
            Some(json!({"description": "Spärra skrivaren", "owner": "system@kommunen.example", "due": "2026-12-31"})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        let measure = v["measure_id"].as_str().unwrap().to_string();
        // Two messages in the quarantine.
        for n in 0..2 {
            let r = app
                .client
                .post(format!("{}/api/v1/intake/email", app.base))
                .bearer_auth(INTAKE_TOKEN)
                .header("content-type", "message/rfc822")
                .body(quarantined_message(n))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
        let (_, q) = call(app, ciso, "GET", "/api/v1/intake/quarantine", None).await;
        let ids: Vec<String> = q["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 2, "{q}");
        // Another account for the admin's pages, with a token and a calendar feed.
        let other_email = EmailAddress::parse("reserv@kommunen.example").unwrap();
        let other_account = svc
            .create_account(
                &other_email,
                "Reserv",
                &[(Role::Ledning, vec![])],
                Some(crate::staff_ui::PASSWORD),
                "test",
            )
            .await
            .unwrap();
        svc.create_api_token(other_account, "reserv", "test")
            .await
            .unwrap();
        let feed = svc
            .create_calendar_feed(other_account, "test")
            .await
            .unwrap();
        let mut own_tokens = HashMap::new();
        let mut own_feeds = HashMap::new();
        for (who, _, _, email) in people() {
            let id = account_of(email);
            svc.create_api_token(id, "att återkalla", "test")
                .await
                .unwrap();
            svc.create_calendar_feed(id, "test").await.unwrap();
            let reg = svc.register.read();
            let a = reg.accounts.get(id).unwrap();
            let t = a
                .tokens
                .iter()
                .find(|t| t.label == "att återkalla")
                .unwrap();
            own_tokens.insert(who, t.id);
            own_feeds.insert(who, a.active_calendar_feed().unwrap().id);
        }
        let other_token = svc
            .register
            .read()
            .accounts
            .get(other_account)
            .unwrap()
            .tokens[0]
            .id;
        let notice = uuid::Uuid::new_v4();
        let signature = avvik::notify::links::ack_signature(app.app_state.notify.secret(), notice);
        // Everyone signed in through the form.
        let mut browsers = HashMap::new();
        for (who, _, _, email) in people() {
            let client = crate::staff_ui::login(app, email).await;
            let csrf = csrf_of(&client, format!("{}/staff/logout", app.base)).await;
            browsers.insert(who, (client, csrf));
        }
        let anonymous = browser();
        let csrf = csrf_of(&anonymous, format!("{}/staff/login", app.base)).await;
        Fixtures {
            reference,
            measure,
            attachment,
            status_token,
            quarantine: [ids[0].clone(), ids[1].clone()],
            other_account,
            other_token,
            own_tokens,
            own_feeds,
            feed_file: format!("{feed}.ics"),
            ack: (notice, signature),
            year: avvik::domain::stockholm_year(chrono::Utc::now()) - 1,
            tokens,
            browsers,
            signed_out: (anonymous, csrf),
        }
    }

    /// The row's path with its parameters filled for `who` (`None`: signed out).
    fn path(&self, row: &Row, who: Option<&'static str>) -> String {
        if row.path == avvik::web::routes::FALLBACK {
            return "/finns-inte".into();
        }
        let own = who.unwrap_or("ciso");
        let p = row.path;
        let mut out = String::new();
        let mut rest = p;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').unwrap();
            let name = &rest[open + 1..close];
            let value = match name {
                "reference" => self.reference.clone(),
                "measure_id" => self.measure.clone(),
                "sha256" => self.attachment.clone(),
                "token" if p.starts_with("/status/") => self.status_token.clone(),
                "token" => "ab".repeat(32),
                "notification_id" => self.ack.0.to_string(),
                "signature" => self.ack.1.clone(),
                "file" => self.feed_file.clone(),
                "id" if p.starts_with("/api/v1/intake/") => self.quarantine[0].clone(),
                "id" if p.starts_with("/staff/intake/") => self.quarantine[1].clone(),
                "id" => self.other_account.to_string(),
                "token_id" if p.starts_with("/staff/admin/") => self.other_token.to_string(),
                "token_id" => self.own_tokens[own].to_string(),
                "feed_id" => self.own_feeds[own].to_string(),
                "passkey_id" => uuid::Uuid::nil().to_string(),
                "provider" => "kommunen".into(),
                "year" => self.year.to_string(),
                "kind" => "gdpr".into(),
                "format" => "json".into(),
                "part" if row.method == "POST" => "breach".into(),
                "part" => "gdpr".into(),
                "action" if p.starts_with("/staff/admin/") => "grant".into(),
                "action" => "classify".into(),
                other => panic!("no fixture for {{{other}}} in {p}"),
            };
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        // Views that need to be told what to show.
        if p.ends_with("/audit/access") {
            out.push_str(&format!("?reference={}", self.reference));
        }
        out
    }

    /// Calls the row's route as `who` (`None`: signed out): the API with a bearer token,
    /// pages with the signed-in browser (and the form's CSRF token). Status and Location.
    async fn call(
        &self,
        app: &TestApp,
        row: &Row,
        who: Option<&'static str>,
        bearer: Option<&str>,
    ) -> (u16, String) {
        let url = format!("{}{}", app.base, self.path(row, who));
        let method = reqwest::Method::from_bytes(row.method.as_bytes()).unwrap();
        let req = if row.path.starts_with("/api/") {
            let mut req = app.client.request(method, url);
            if let Some(t) = bearer.or_else(|| who.map(|w| self.tokens[w].as_str())) {
                req = req.bearer_auth(t);
            }
            if matches!(row.access, Access::IntakeToken) {
                req.header("content-type", "message/rfc822")
                    .body(quarantined_message(100))
            } else if row.method == "GET" {
                req
            } else {
                req.json(&json!({}))
            }
        } else {
            let (client, csrf) = match who {
                Some(w) => &self.browsers[w],
                None => &self.signed_out,
            };
            let req = client.request(method, url);
            if row.method == "GET" {
                req
            } else {
                req.form(&[("authenticity_token", csrf.as_str())])
            }
        };
        let r = req.send().await.unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (r.status().as_u16(), location)
    }
}

/// Is this answer past the authorization check?
fn let_through(status: u16, location: &str) -> bool {
    !matches!(status, 401 | 403 | 404) && status < 500 && !location.starts_with("/staff/login")
}

/// Is this what a public route answers anyone?
fn public_answer(row: &Row, status: u16, location: &str) -> bool {
    match row.answer {
        Some(answer) => status == answer,
        None => let_through(status, location),
    }
}

fn cell_text(c: Cell) -> &'static str {
    match c {
        Y => "yes",
        F => "no (403)",
        H => "no (404)",
    }
}

/// `docs/AUTHORIZATION.md`, from the table.
fn authorization_doc() -> String {
    let mut out = String::from(
        "# Who may do what\n\n\
         Every route the service serves, and who may use it. Made from the authorization \
         table in `tests/api/authz.rs`, which calls every route as every role and fails when \
         the router serves a route without a row; do not edit by hand (`AVVIK_WRITE_DOCS=1 \
         cargo test --test api authz_table` writes it again).\n\n",
    );
    out.push_str(FIXTURE);
    out.push_str(
        "\n\n*yes*: allowed. *no (403)*: refused. *no (404)*: refused as if the deviation \
         did not exist, so its existence does not leak. *Signed out*: the API answers 401, \
         pages send the browser to `/staff/login`. *2FA*: whether a role that must have a \
         second factor reaches the route before it has one (*exempt*: signing in and out, the \
         own-account page, public routes and static files). `*` is any path no route \
         matches. Roles are checked in one place, `authorize` in `src/auth/policy.rs`.\n\n",
    );
    out.push_str("| Method | Path | Signed out | ");
    out.push_str(&ROLE_HEADINGS.join(" | "));
    out.push_str(" | 2FA | Note |\n|---|---|---|");
    out.push_str(&"---|".repeat(ROLES.len() + 2));
    out.push('\n');
    for row in TABLE {
        let (signed_out, cells): (&str, Vec<&str>) = match row.access {
            Access::Anyone => ("yes", vec!["yes"; ROLES.len()]),
            Access::IntakeToken => ("intake token", vec!["no (401)"; ROLES.len()]),
            Access::Staff(cells) => ("no", cells.iter().map(|c| cell_text(*c)).collect()),
        };
        let second_factor = match row.second_factor {
            SecondFactor::Required => "required",
            SecondFactor::Exempt => "exempt",
        };
        let mut note = row.note.to_string();
        if let Some(answer) = row.answer {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&format!("every caller gets {answer}"));
        }
        if row.probe == Probe::EmptyBody {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str("checked with an empty body");
        }
        out.push_str(&format!(
            "| {} | `{}` | {signed_out} | {} | {second_factor} | {} |\n",
            row.method,
            row.path,
            cells.join(" | "),
            note.replace('|', "\\|"),
        ));
    }
    out
}

/// Every route the router serves has exactly one row, and every row is a served route.
#[test]
fn authz_table_covers_every_served_route() {
    let served: Vec<String> = avvik::web::routes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let rows: Vec<String> = TABLE
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<&String> = rows.iter().filter(|r| !seen.insert(*r)).collect();
    let missing: Vec<&String> = served.iter().filter(|r| !rows.contains(r)).collect();
    let extra: Vec<&String> = rows.iter().filter(|r| !served.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && twice.is_empty(),
        "routes the router serves without a row in TABLE: {missing:#?}\n\
         rows for routes the router does not serve: {extra:#?}\nrows twice: {twice:#?}"
    );
    // The list is the router's: it holds routes from every area.
    for route in [
        "GET /healthz",
        "POST /api/v1/deviations",
        "GET /staff/account",
        "GET *",
    ] {
        assert!(served.iter().any(|r| r == route), "{route} in {served:#?}");
    }
}

#[test]
fn authz_table_is_the_authorization_doc() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/AUTHORIZATION.md");
    let doc = authorization_doc();
    if std::env::var_os("AVVIK_WRITE_DOCS").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == doc,
        "docs/AUTHORIZATION.md is not the table; AVVIK_WRITE_DOCS=1 cargo test --test api authz_table writes it"
    );
}

/// Every row of the table, called as every role and signed out.
#[tokio::test]
async fn authz_table_every_route_for_every_role() {
    let app = TestApp::spawn_with(
        |c| {
            // Hundreds of calls from one address.
            c.http.rate_limit_per_minute = 0;
            c.intake.token = INTAKE_TOKEN.into();
        },
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let fx = Fixtures::make(&app).await;
    let mut failures = Vec::new();
    for row in TABLE {
        let api = row.path.starts_with("/api/");
        let route = format!("{} {}", row.method, row.path);
        let (s, loc) = fx.call(&app, row, None, None).await;
        match row.access {
            Access::Anyone => {
                if !public_answer(row, s, &loc) {
                    failures.push(format!("{route} signed out: {s} {loc}"));
                }
            }
            Access::IntakeToken | Access::Staff(_) => {
                let refused = if api {
                    s == 401
                } else {
                    s == 303 && loc.starts_with("/staff/login")
                };
                if !refused {
                    failures.push(format!("{route} signed out: {s} {loc}, expected a refusal"));
                }
            }
        }
        if let Access::IntakeToken = row.access {
            let (s, _) = fx.call(&app, row, None, Some(INTAKE_TOKEN)).await;
            if !let_through(s, "") {
                failures.push(format!("{route} with the intake token: {s}"));
            }
        }
        for (i, who) in ROLES.iter().enumerate() {
            let (s, loc) = fx.call(&app, row, Some(who), None).await;
            let ok = match row.access {
                Access::Anyone => public_answer(row, s, &loc),
                Access::IntakeToken => s == 401,
                Access::Staff(cells) => match cells[i] {
                    Y => let_through(s, &loc),
                    F => s == 403,
                    H => s == 404,
                },
            };
            if !ok {
                let want = match row.access {
                    Access::Staff(cells) => cell_text(cells[i]),
                    Access::IntakeToken => "no (401)",
                    Access::Anyone => "yes",
                };
                failures.push(format!("{route} as {who}: {s} {loc}, expected {want}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the authorization table and the service disagree:\n{}",
        failures.join("\n")
    );
}

/// The same table where ciso, auditor and admin must have a second factor (the default)
/// and have none yet: on every page that is not exempt they are sent to set one up, and a
/// JSON API read with their session cookie is refused; API tokens (made by a user who was
/// signed in in full) and every other role answer as in the table.
#[tokio::test]
async fn authz_table_without_a_second_factor() {
    let app = TestApp::spawn_with(
        |c| {
            c.http.rate_limit_per_minute = 0;
            c.intake.token = INTAKE_TOKEN.into();
            c.auth.second_factor_roles = vec![Role::Ciso, Role::Auditor, Role::Admin];
        },
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let fx = Fixtures::make(&app).await;
    let needs = ["ciso", "auditor", "admin"];
    let mut failures = Vec::new();
    for row in TABLE {
        let Access::Staff(cells) = row.access else {
            continue;
        };
        let api = row.path.starts_with("/api/");
        let route = format!("{} {}", row.method, row.path);
        for (i, who) in ROLES.iter().enumerate() {
            let (s, loc) = fx.call(&app, row, Some(who), None).await;
            let held = needs.contains(who) && row.second_factor == SecondFactor::Required && !api;
            let ok = if held {
                s == 303 && loc == avvik::auth::session::ENROL_PATH
            } else {
                match cells[i] {
                    Y => let_through(s, &loc),
                    F => s == 403,
                    H => s == 404,
                }
            };
            if !ok {
                let want = if held {
                    "the enrolment page"
                } else {
                    cell_text(cells[i])
                };
                failures.push(format!(
                    "{route} as {who} without a second factor: {s} {loc}, expected {want}"
                ));
            }
        }
    }
    // The session cookie of a user held at enrolment reads no API.
    for who in needs {
        let (client, _) = &fx.browsers[who];
        let r = client
            .get(format!("{}/api/v1/deviations", app.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status != 401 || !body.contains("second-factor-required") {
            failures.push(format!(
                "GET /api/v1/deviations with {who}'s session cookie: {status} {body}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the second-factor requirement and the table disagree:\n{}",
        failures.join("\n")
    );
}
