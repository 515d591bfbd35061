//! Backpressure: past `http.max_in_flight` requests at once, avvik answers 503 at once.

use std::io::Write;
use std::time::Duration;

use crate::helpers::TestApp;

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_shed_with_503() {
    let app = TestApp::spawn_with(
        |c| c.http.max_in_flight = 2,
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // Two requests whose bodies never finish hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "POST /api/v1/deviations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":").unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.headers().contains_key("retry-after"));
    // Once they go away, requests are served again.
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        if app
            .client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok);
}
