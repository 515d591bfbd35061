//! Exports in a real headless Chromium: the CISO filters the register, downloads it as XLSX
//! with the browser's own session (read back with calamine: the rows are the rows the page
//! shows), opens a deviation and downloads its case PDF (read back with pdftotext: every
//! timeline entry the page shows is in it); axe checks both pages.

use std::io::Cursor;

use base64::Engine;
use calamine::{Data, Reader, Xlsx};
use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

use crate::browser::{sign_in, Browser};
use crate::exports::report;
use crate::helpers::TestApp;

const SOC: &str = "Socialtjänsten";
const BOU: &str = "Barn och utbildning";

/// Fetches `href` with the browser's session and gives back the bytes.
async fn download(b: &Browser, css: &str) -> Vec<u8> {
    let got = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector(arguments[0]).href, {credentials: 'same-origin'})
               .then(r => r.ok ? r.arrayBuffer() : Promise.reject(r.status))
               .then(buf => { let s = ''; new Uint8Array(buf).forEach(x => s += String.fromCharCode(x)); done(btoa(s)); })
               .catch(e => done('error: ' + e));",
            vec![json!(css)],
        )
        .await
        .expect("file fetched");
    base64::engine::general_purpose::STANDARD
        .decode(got.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {got}"))
}

/// The texts of every cell of the register table on the page, row by row.
async fn page_rows(b: &Browser) -> Vec<Vec<String>> {
    let rows = b
        .client
        .execute(
            "return [...document.querySelectorAll('main table tbody tr')]
               .map(tr => [...tr.querySelectorAll('td:not(.pick)')].map(td => td.innerText.trim()));",
            vec![],
        )
        .await
        .expect("rows read");
    serde_json::from_value(rows).expect("rows of cells")
}

/// An Excel serial date-time as `YYYY-MM-DD HH:MM`.
fn excel_time(serial: f64) -> String {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let t = epoch + Duration::seconds((serial * 86_400.0).round() as i64);
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn cell(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::DateTime(t) => excel_time(t.as_f64()),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn the_ciso_exports_the_filtered_register_and_a_case_pdf() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = tok["ciso"].as_str();
    let soc1 = report(&app, "Journalutdrag till fel mottagare", SOC).await;
    let _bou = report(&app, "Förlorad surfplatta", BOU).await;
    let soc2 = report(&app, "=SUM(A1:A3) i en rubrik", SOC).await;
    let s = app
        .client
        .post(format!("{}/api/v1/deviations/{soc1}/classification", app.base))
        .bearer_auth(ciso)
        .json(&json!({"severity": "major", "aspects": {"confidentiality": 3}, "category": "felskickad e-post", "personal_data_breach": "no", "nis2_significant": false, "rationale": "Journaldata"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);
    let s = app
        .client
        .post(format!("{}/api/v1/deviations/{soc1}/decisions", app.base))
        .bearer_auth(ciso)
        .json(&json!({"text": "Mottagaren ombeds radera utdraget."}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);

    let b = Browser::start(&app.base).await;
    sign_in(&b, "ciso@kommunen.example", "/staff").await;
    // Filter on the sector with the register's own form.
    b.client
        .execute(
            "document.querySelector('#sector').value = arguments[0];",
            vec![json!(SOC)],
        )
        .await
        .expect("sector chosen");
    b.click_and_load("form.filters button[type=submit]").await;
    b.wait_for("#export-xlsx").await;
    let shown = page_rows(&b).await;
    let refs: Vec<&str> = shown.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(refs, [soc2.as_str(), soc1.as_str()], "{shown:?}");
    b.assert_accessible("the filtered register with its export links")
        .await;
    let href = b
        .client
        .find(fantoccini::Locator::Css("#export-xlsx"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        href.contains("format=xlsx") && href.contains("sector=Socialtj%C3%A4nsten"),
        "{href}"
    );

    let xlsx = download(&b, "#export-xlsx").await;
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(xlsx)).expect("an XLSX file");
    let range = book.worksheet_range("Avvikelser").expect("the sheet");
    let rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(cell).collect()).collect();
    let col = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    // The page's columns: reference, title, sector, status, severity, reported.
    let exported: Vec<Vec<String>> = rows[1..]
        .iter()
        .map(|r| {
            [
                "Referens",
                "Rubrik",
                "Sektor",
                "Status",
                "Allvarlighet",
                "Rapporterad",
            ]
            .iter()
            .map(|c| r[col(c)].clone())
            .collect()
        })
        .collect();
    let on_page: Vec<Vec<String>> = shown.iter().map(|r| r[..6].to_vec()).collect();
    assert_eq!(exported, on_page);
    assert_eq!(rows[1][col("Rubrik")], "=SUM(A1:A3) i en rubrik");
    let formulas = book.worksheet_formula("Avvikelser").unwrap();
    assert!(formulas.used_cells().all(|(_, _, f)| f.is_empty()));

    // The case PDF from the deviation's page.
    b.click(&format!("a[href='/staff/deviations/{soc1}']"))
        .await;
    b.wait_for_path(&format!("/staff/deviations/{soc1}")).await;
    b.assert_accessible("the deviation page with its PDF link")
        .await;
    let timeline: Vec<String> = serde_json::from_value::<Vec<String>>(
        b.client
            .execute(
                "return [...document.querySelectorAll('.timeline__what')].map(e => e.innerText.trim());",
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(timeline.len() >= 3, "{timeline:?}");
    let pdf = download(&b, "#export-pdf").await;
    let text = crate::filing_records::pdf_text(&pdf);
    for what in &timeline {
        assert!(
            text.contains(what.as_str()),
            "{what} not in the PDF: {text}"
        );
    }
    for needle in [
        "Kan omfattas av sekretess enligt 18 kap. 8 § OSL",
        "Journalutdrag till fel mottagare",
        "Mottagaren ombeds radera utdraget.",
    ] {
        assert!(text.contains(needle), "{needle} not in the PDF: {text}");
    }
    b.close().await;

    // Both downloads are in the läslogg.
    let (s, body) = crate::helpers::bearer_get(
        &app,
        &tok["auditor"],
        "/api/v1/audit/access?user=ciso@kommunen.example",
    )
    .await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"]["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"register_export") && kinds.contains(&"case_export"),
        "{kinds:?}"
    );
}
