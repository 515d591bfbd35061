//! Exports: a case as a PDF (facts, decisions, filings, comments and the timeline under the
//! configured secrecy marking) and the register as XLSX (read back with calamine) and CSV,
//! with the register's filters, only what the caller may see, formula-like texts kept as
//! text, and every export in the läslogg before it is sent.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::TestApp;

const SOC: &str = "Socialtjänsten";
const BOU: &str = "Barn och utbildning";
const HEADER: &str = "Kan omfattas av sekretess enligt 18 kap. 8 § OSL";

/// Titles a spreadsheet would run as formulas.
const FORMULA_TITLE: &str = "=HYPERLINK(\"https://evil.example\",\"Klicka\")";
const AT_TITLE: &str = "@SUM(A1:A9) i elevregistret";
const MINUS_TITLE: &str = "-2+3 felaktiga behörigheter";
const PLUS_TITLE: &str = "+46 8 123 45 fick fel utskick";

struct Answer {
    status: u16,
    content_type: String,
    disposition: String,
    cache: String,
    body: Vec<u8>,
}

async fn get(app: &TestApp, token: &str, path: &str) -> Answer {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    Answer {
        status: r.status().as_u16(),
        content_type: h("content-type"),
        disposition: h("content-disposition"),
        cache: h("cache-control"),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    assert!((200..300).contains(&s), "POST {path}: {s} {v}");
    v
}

pub async fn report(app: &TestApp, title: &str, sector: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": title, "description": format!("Beskrivning av {title}"), "sector": sector}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    v["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

/// A moment a minute ago as RFC 3339, and as the exports show it (Stockholm time).
fn a_minute_ago() -> (String, String) {
    let t = chrono::Utc::now() - chrono::Duration::minutes(1);
    let local = t.with_timezone(&chrono_tz::Europe::Stockholm);
    (t.to_rfc3339(), local.format("%Y-%m-%d %H:%M").to_string())
}

/// The XLSX's one sheet: every row as the cells' display text (times as Excel serials).
fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<Data>> {
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("an XLSX file");
    let sheet = book.sheet_names()[0].clone();
    assert_eq!(sheet, "Avvikelser");
    let formulas = book.worksheet_formula(&sheet).unwrap();
    assert!(
        formulas.used_cells().all(|(_, _, f)| f.is_empty()),
        "no cell is a formula"
    );
    let range = book.worksheet_range(&sheet).unwrap();
    range.rows().map(<[Data]>::to_vec).collect()
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

/// The references in an export's rows (the heading row left out).
fn references(rows: &[Vec<Data>]) -> Vec<String> {
    rows.iter().skip(1).map(|r| cell_text(&r[0])).collect()
}

/// The text of each page of a PDF, whitespace collapsed.
pub fn pdf_pages(pdf: &[u8]) -> Vec<String> {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    String::from_utf8_lossy(&out.stdout)
        .split('\u{c}')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}

#[tokio::test]
async fn exports_the_register_with_the_filters_to_those_who_may_see_it() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = tok["ciso"].as_str();
    let d1 = report(&app, FORMULA_TITLE, SOC).await;
    let d2 = report(&app, AT_TITLE, BOU).await;
    let d3 = report(&app, MINUS_TITLE, SOC).await;
    let d4 = report(&app, PLUS_TITLE, SOC).await;
    let (filed_at, filed_shown) = a_minute_ago();
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/classification"),
        json!({"severity": "major", "aspects": {"confidentiality": 3, "traceability": 2}, "category": "felskickad e-post", "personal_data_breach": "yes", "nis2_significant": false, "rationale": "Journaldata"}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/filings"),
        json!({"kind": "gdpr", "authority": "IMY", "filed_at": filed_at, "their_reference": "IMY-2026-1"}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/measures"),
        json!({"description": "Spärra kontot", "owner": "system@kommunen.example", "due": "2030-12-31"}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d3}/close"),
        json!({"resolution": "Behörigheterna rättade"}),
    )
    .await;

    // The CISO, Socialtjänsten's deviations: the register's order (newest first), every
    // formula-like title a plain string cell.
    let a = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/export?format=xlsx&sector={SOC}"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        a.disposition
            .starts_with("attachment; filename=\"avvikelser-"),
        "{}",
        a.disposition
    );
    assert!(a.disposition.ends_with(".xlsx\""), "{}", a.disposition);
    assert_eq!(a.cache, "no-store");
    let rows = xlsx_rows(&a.body);
    let heading: Vec<String> = rows[0].iter().map(cell_text).collect();
    assert_eq!(
        &heading[..6],
        [
            "Referens",
            "Rubrik",
            "Status",
            "Allvarlighet",
            "Kategori",
            "Sektor"
        ]
    );
    assert_eq!(references(&rows), [d4.as_str(), d3.as_str(), d1.as_str()]);
    let (_, list) =
        crate::helpers::bearer_get(&app, ciso, &format!("/api/v1/deviations?sector={SOC}")).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let mut listed: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reference"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    listed.reverse();
    assert_eq!(
        references(&rows),
        listed,
        "the same deviations as the API's list"
    );
    let col = |name: &str| heading.iter().position(|h| h == name).unwrap();
    let by_ref = |r: &str| {
        rows.iter()
            .find(|row| cell_text(&row[0]) == r)
            .unwrap()
            .clone()
    };
    let r1 = by_ref(&d1);
    assert_eq!(r1[1], Data::String(FORMULA_TITLE.into()));
    assert_eq!(cell_text(&r1[col("Status")]), "under utredning");
    assert_eq!(cell_text(&r1[col("Allvarlighet")]), "större");
    assert_eq!(cell_text(&r1[col("Kategori")]), "felskickad e-post");
    assert_eq!(r1[col("Konfidentialitet")], Data::Float(3.0));
    assert_eq!(r1[col("Spårbarhet")], Data::Float(2.0));
    assert_eq!(r1[col("Riktighet")], Data::Empty);
    assert_eq!(cell_text(&r1[col("Personuppgiftsincident")]), "ja");
    assert_eq!(cell_text(&r1[col("Betydande incident (NIS2)")]), "nej");
    assert_eq!(r1[col("Öppna åtgärder")], Data::Float(1.0));
    assert!(
        cell_text(&r1[col("Anmälningar")]).starts_with(&format!("GDPR 72 h: anmäld {filed_shown}")),
        "{:?}",
        r1[col("Anmälningar")]
    );
    assert!(
        matches!(r1[col("Rapporterad")], Data::DateTime(_)),
        "{:?}",
        r1[col("Rapporterad")]
    );
    assert_eq!(by_ref(&d3)[1], Data::String(MINUS_TITLE.into()));
    assert_eq!(cell_text(&by_ref(&d3)[col("Status")]), "avslutad");
    assert!(matches!(by_ref(&d3)[col("Avslutad")], Data::DateTime(_)));
    assert_eq!(by_ref(&d4)[1], Data::String(PLUS_TITLE.into()));
    assert_eq!(cell_text(&by_ref(&d4)[col("Allvarlighet")]), "ej klassad");

    // More filters, and the sort: closed ones only; major ones only; by title.
    let a = get(&app, ciso, "/api/v1/deviations/export?status=closed").await;
    assert_eq!(references(&xlsx_rows(&a.body)), [d3.as_str()]);
    let a = get(&app, ciso, "/api/v1/deviations/export?severity=major").await;
    assert_eq!(references(&xlsx_rows(&a.body)), [d1.as_str()]);
    let a = get(&app, ciso, "/api/v1/deviations/export?sort=title").await;
    assert_eq!(
        references(&xlsx_rows(&a.body)),
        [d4.as_str(), d3.as_str(), d1.as_str(), d2.as_str()],
        "+, -, =, @ in code-point order"
    );

    // CSV: the same rows, every field quoted, formula-like texts with a leading '.
    let a = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/export?format=csv&sector={SOC}"),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "text/csv; charset=utf-8");
    assert!(a.disposition.ends_with(".csv\""), "{}", a.disposition);
    assert_eq!(a.cache, "no-store");
    let csv_text = String::from_utf8(a.body.clone()).unwrap();
    assert!(csv_text.lines().all(|l| l.starts_with('"')), "{csv_text}");
    let mut reader = csv::Reader::from_reader(a.body.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let csv_refs: Vec<&str> = records.iter().map(|r| &r[0]).collect();
    assert_eq!(csv_refs, [d4.as_str(), d3.as_str(), d1.as_str()]);
    let titles: Vec<&str> = records.iter().map(|r| &r[1]).collect();
    assert_eq!(
        titles,
        [
            format!("'{PLUS_TITLE}"),
            format!("'{MINUS_TITLE}"),
            format!("'{FORMULA_TITLE}")
        ]
    );
    assert!(
        csv_text.contains("\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"Klicka\"\")\""),
        "quotes inside a field are doubled: {csv_text}"
    );
    assert_eq!(&records[2][5], SOC);
    assert_eq!(&records[2][7], "3");
    // Times as Stockholm local time, `YYYY-MM-DD HH:MM`.
    let reported = &records[2][13];
    assert_eq!(reported.len(), 16, "{reported}");
    assert_eq!(&reported[4..5], "-");
    assert_eq!(&reported[10..11], " ");

    // A kontakt in Barn och utbildning: only that sector's deviation, whatever is asked.
    let bou = tok["kontakt_bou"].as_str();
    let a = get(&app, bou, "/api/v1/deviations/export").await;
    assert_eq!(a.status, 200);
    let rows = xlsx_rows(&a.body);
    assert_eq!(references(&rows), [d2.as_str()]);
    assert_eq!(rows[1][1], Data::String(AT_TITLE.into()));
    let a = get(
        &app,
        bou,
        &format!("/api/v1/deviations/export?format=csv&sector={SOC}"),
    )
    .await;
    assert_eq!(a.status, 200);
    let csv_text = String::from_utf8(a.body).unwrap();
    assert_eq!(csv_text.lines().count(), 1, "the heading only: {csv_text}");
    for r in [&d1, &d3, &d4] {
        assert!(!csv_text.contains(r.as_str()));
    }
    // …and not another sector's case.
    let a = get(&app, bou, &format!("/api/v1/deviations/{d1}/export")).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.content_type, "application/problem+json");
    // The admin sees no deviations at all.
    let a = get(&app, &tok["admin"], "/api/v1/deviations/export").await;
    assert_eq!(a.status, 403);
    // Unknown formats.
    let a = get(&app, ciso, "/api/v1/deviations/export?format=pdf").await;
    assert_eq!(a.status, 422);
    let a = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/{d1}/export?format=docx"),
    )
    .await;
    assert_eq!(a.status, 422);

    // The läslogg: each export with its format, filters and number of rows; a free-text
    // search only as having been made.
    let a = get(
        &app,
        ciso,
        "/api/v1/deviations/export?format=csv&q=HYPERLINK&year=2099",
    )
    .await;
    assert_eq!(a.status, 200);
    let log = &app.app_state.access_log;
    let ciso_entries: Vec<Value> = log
        .for_actor("user:ciso@kommunen.example")
        .iter()
        .map(|e| serde_json::to_value(&e.what).unwrap())
        .collect();
    assert_eq!(
        ciso_entries[0],
        json!({"kind": "register_export", "format": "csv", "filters": {"year": 2099, "free_text": true}, "rows": 0})
    );
    assert!(ciso_entries.contains(
        &json!({"kind": "register_export", "format": "xlsx", "filters": {"sector": SOC}, "rows": 3})
    ));
    assert!(ciso_entries.contains(
        &json!({"kind": "register_export", "format": "csv", "filters": {"sector": SOC}, "rows": 3})
    ));
    assert!(ciso_entries.contains(
        &json!({"kind": "register_export", "format": "xlsx", "filters": {"status": "closed"}, "rows": 1})
    ));
    let bou_entries = log.for_actor("user:kontakt.bou@kommunen.example");
    assert_eq!(
        serde_json::to_value(&bou_entries[0].what).unwrap(),
        json!({"kind": "register_export", "format": "csv", "filters": {"sector": SOC}, "rows": 0})
    );
    // The refused case export is not in the log: nothing was handed out.
    assert_eq!(bou_entries.len(), 2, "{bou_entries:?}");
    let (s, body) = crate::helpers::bearer_get(
        &app,
        &tok["auditor"],
        "/api/v1/audit/access?user=ciso@kommunen.example",
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        !body.contains("HYPERLINK"),
        "the searched-for text is not in the läslogg: {body}"
    );

    // The auditor sees the exports on the läslogg page, in Swedish.
    let web = crate::staff_ui::login(&app, "revisor@kommunen.example").await;
    let html = web
        .get(format!(
            "{}/audit/access?user=ciso@kommunen.example",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Exporterade registret"), "{html}");
    assert!(
        html.contains("XLSX, 3 avvikelser; sektor Socialtjänsten"),
        "{html}"
    );
    assert!(
        html.contains("XLSX, 1 avvikelse; status avslutad"),
        "{html}"
    );
    assert!(
        html.contains("CSV, 0 avvikelser; år 2099, fritextsökning"),
        "{html}"
    );
}

#[tokio::test]
async fn the_case_pdf_has_the_case_and_its_timeline_under_the_secrecy_marking() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = tok["ciso"].as_str();
    let r = report(&app, "Journalutdrag till fel mottagare", SOC).await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/classification"),
        json!({"severity": "major", "aspects": {"confidentiality": 4}, "category": "felskickad e-post", "personal_data_breach": "yes", "nis2_significant": false, "rationale": "Känsliga personuppgifter"}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/decisions"),
        json!({"text": "Anmäl till IMY och informera de berörda."}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/measures"),
        json!({"description": "Inför dubbelkontroll av mottagare", "owner": "system@kommunen.example", "due": "2030-12-31"}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/filings"),
        json!({"kind": "gdpr", "authority": "IMY", "filed_at": a_minute_ago().0, "their_reference": "IMY-2026-77"}),
    )
    .await;
    // Enough comments for several pages.
    for i in 1..=25 {
        post(
            &app,
            ciso,
            &format!("/api/v1/deviations/{r}/comments"),
            json!({"text": format!("Kommentar {i}: mottagaren har kontaktats och bekräftat att utdraget raderats, \
                    men vi följer upp med ett skriftligt intyg innan ärendet kan avslutas."), "to_reporter": false}),
        )
        .await;
    }

    let kontakt = tok["kontakt_soc"].as_str();
    let a = get(
        &app,
        kontakt,
        &format!("/api/v1/deviations/{r}/export?format=pdf"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.content_type, "application/pdf");
    assert_eq!(a.disposition, format!("attachment; filename=\"{r}.pdf\""));
    assert_eq!(a.cache, "no-store");
    let pages = pdf_pages(&a.body);
    assert!(pages.len() >= 3, "{} pages", pages.len());
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.starts_with(HEADER),
            "page {} lacks the marking: {page}",
            i + 1
        );
    }
    let text = crate::filing_records::pdf_text(&a.body);
    for needle in [
        format!("{r} Journalutdrag till fel mottagare"),
        "Beskrivning av Journalutdrag till fel mottagare".to_string(),
        "större avvikelse".to_string(),
        "Kategori: felskickad e-post".to_string(),
        "Konfidentialitet 4 (synnerligen allvarlig)".to_string(),
        "Motivering: Känsliga personuppgifter".to_string(),
        "Lagstadgade frister".to_string(),
        "Anmäl till IMY och informera de berörda.".to_string(),
        "Inför dubbelkontroll av mottagare".to_string(),
        "Ansvarig: system@kommunen.example".to_string(),
        "Myndighetens diarienummer: IMY-2026-77".to_string(),
        "Kommentar 25: mottagaren har kontaktats".to_string(),
        // The timeline, oldest first.
        "Händelser".to_string(),
        "Rapporterad".to_string(),
        "Klassad som större avvikelse".to_string(),
        "Beslut (ciso)".to_string(),
        "Åtgärd tillagd".to_string(),
        "Anmälan registrerad".to_string(),
        "Intern kommentar".to_string(),
        format!("{r} · exporterad"),
        "av kontakt.soc@kommunen.example".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle} not in the PDF: {text}");
    }
    let timeline = &text[text.rfind("Händelser").unwrap()..];
    let reported = timeline.find("Rapporterad").unwrap();
    let classified = timeline.find("Klassad som större avvikelse").unwrap();
    let filed = timeline.find("Anmälan registrerad").unwrap();
    assert!(reported < classified && classified < filed, "{timeline}");

    // In the läslogg with the SHA-256 of exactly the bytes handed out.
    let d_id = app
        .app_state
        .services
        .register
        .read()
        .by_reference(avvik::domain::Reference::parse(&r).unwrap())
        .unwrap()
        .id;
    let entries = app.app_state.access_log.for_deviation(d_id);
    assert_eq!(entries[0].actor, "user:kontakt.soc@kommunen.example");
    assert_eq!(
        serde_json::to_value(&entries[0].what).unwrap(),
        json!({"kind": "case_export", "format": "pdf", "sha256": hex::encode(Sha256::digest(&a.body))})
    );
    assert_eq!(entries[0].reference.as_deref(), Some(r.as_str()));

    // The staff route, with the session; a kontakt of another sector gets the "not found"
    // page, and an empty register export.
    let web = crate::staff_ui::login(&app, "kontakt.soc@kommunen.example").await;
    let page = web
        .get(format!("{}/staff/deviations/{r}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("href=\"/staff/deviations/{r}/export.pdf\"")),
        "{page}"
    );
    let resp = web
        .get(format!("{}/staff/deviations/{r}/export.pdf", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let staff_pdf = resp.bytes().await.unwrap();
    // The register's filter form sends every field, the empty year too.
    let year = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .format("%Y")
        .to_string();
    for y in ["", year.as_str()] {
        let html = web
            .get(format!(
                "{}/staff?status=&severity=&sector={SOC}&category=&year={y}&q=&sort=-reference",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(html.status(), 200, "year={y}");
        let html = html.text().await.unwrap();
        assert!(
            html.contains(&format!("href=\"/staff/deviations/{r}\"")),
            "{html}"
        );
        assert!(html.contains("id=\"export-xlsx\""), "{html}");
    }
    assert!(crate::filing_records::pdf_text(&staff_pdf).contains("Klassad som större avvikelse"));
    let other = crate::staff_ui::login(&app, "kontakt.bou@kommunen.example").await;
    let resp = other
        .get(format!("{}/staff/deviations/{r}/export.pdf", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let resp = other
        .get(format!(
            "{}/staff/export?format=xlsx&sector={SOC}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        references(&xlsx_rows(&resp.bytes().await.unwrap())),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn no_marking_when_none_is_configured_and_a_gallrad_case_exports_only_gallrad() {
    let app = TestApp::spawn_with(
        |c| c.export.secrecy_header = String::new(),
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = tok["ciso"].as_str();
    const SECRET: &str = "Nils Nilsson 19121212-1212";
    let r = report(&app, &format!("Utdrag om {SECRET}"), SOC).await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/comments"),
        json!({"text": format!("Gäller {SECRET}"), "to_reporter": false}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/decisions"),
        json!({"text": format!("Beslut om {SECRET}")}),
    )
    .await;
    let a = get(&app, ciso, &format!("/api/v1/deviations/{r}/export")).await;
    assert_eq!(a.status, 200);
    let text = crate::filing_records::pdf_text(&a.body);
    assert!(!text.contains("sekretess"), "no marking: {text}");
    assert!(
        text.contains(SECRET),
        "before gallring the case is all there: {text}"
    );

    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/close"),
        json!({"resolution": format!("Klart för {SECRET}")}),
    )
    .await;
    post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{r}/shred"),
        json!({"decision": "KS 2026/9"}),
    )
    .await;
    let a = get(&app, ciso, &format!("/api/v1/deviations/{r}/export")).await;
    assert_eq!(a.status, 200);
    let text = crate::filing_records::pdf_text(&a.body);
    for needle in ["Nils", "19121212"] {
        assert!(!text.contains(needle), "{needle} after gallring: {text}");
    }
    assert!(text.contains("enligt beslut KS 2026/9"), "{text}");
    assert!(text.contains("Avvikelsen är gallrad"), "{text}");
    for format in ["xlsx", "csv"] {
        let a = get(
            &app,
            ciso,
            &format!("/api/v1/deviations/export?format={format}"),
        )
        .await;
        assert_eq!(a.status, 200);
        let cells: Vec<String> = if format == "xlsx" {
            xlsx_rows(&a.body).iter().flatten().map(cell_text).collect()
        } else {
            vec![String::from_utf8(a.body).unwrap()]
        };
        let all = cells.join("|");
        assert!(
            !all.contains("Nils") && !all.contains("19121212"),
            "{format}: {all}"
        );
        assert!(all.contains("gallrad "), "{format}: {all}");
    }
}
