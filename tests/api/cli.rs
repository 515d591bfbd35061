use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{avvik, data_path, Server, TestApp};

#[test]
fn no_arguments_prints_help() {
    let (code, out, err) = avvik(&[], &[]);
    assert_ne!(code, 0);
    let text = out + &err;
    for cmd in ["serve", "verify", "export", "import", "replay"] {
        assert!(text.contains(cmd), "help lists {cmd}: {text}");
    }
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (code, _, err) = avvik(
        &["serve"],
        &[
            ("AVVIK_HTTP__ADDR", "inte-en-adress"),
            ("AVVIK_STORE__DATA_DIR", d),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("http.addr"), "{err}");
    let cfg = dir.path().join("avvik.toml");
    std::fs::write(&cfg, "[mail]\ntransport = \"brevduva\"\n").unwrap();
    let (code, _, err) = avvik(&["--config", cfg.to_str().unwrap(), "serve"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("mail.transport"), "{err}");
    let (code, _, err) = avvik(&["--config", "/nonexistent/avvik.toml", "serve"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
}

async fn app_with_reports(n: usize) -> tempfile::TempDir {
    let app = TestApp::spawn().await;
    for i in 0..n {
        let r = app
            .post_json(
                "/api/v1/deviations",
                json!({"title": format!("Avvikelse nummer {i}"), "description": "Beskrivning"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    app.stop().await
}

#[tokio::test]
async fn export_verify_import_replay_round_trip() {
    let dir = app_with_reports(5).await;
    let data = data_path(&dir);
    let data_s = data.to_str().unwrap();
    let (code, out, err) = avvik(&["verify", "--data", data_s], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 5 records"), "{out}");
    let head_hash = out.split_whitespace().last().unwrap().to_string();

    let (code, export, _) = avvik(&["export", "--data", data_s], &[]);
    assert_eq!(code, 0);
    assert_eq!(export.lines().count(), 5);
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &export).unwrap();
    let (code, out, _) = avvik(&["verify", "--file", file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with(&format!("{head_hash}\n")), "{out}");
    // The expected head must match when given.
    let (code, _, _) = avvik(
        &[
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--expect-head",
            &format!("5:{head_hash}"),
        ],
        &[],
    );
    assert_eq!(code, 0);
    let (code, _, _) = avvik(
        &[
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--expect-head",
            &format!("4:{head_hash}"),
        ],
        &[],
    );
    assert_eq!(code, 1);

    let restored = dir.path().join("restored");
    let (code, out, err) = avvik(
        &[
            "import",
            "--data",
            restored.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&head_hash), "{out}");
    let (code, out, _) = avvik(&["verify", "--data", restored.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    assert!(out.contains(&head_hash));
    // Importing again into a non-empty store is refused.
    let (code, _, err) = avvik(
        &[
            "import",
            "--data",
            restored.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");

    // Replay as of seq 3: three deviations.
    let (code, out, err) = avvik(&["replay", "--data", data_s, "--as-of", "seq:3"], &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["as_of_seq"], 3);
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    let year = avvik::domain::stockholm_year(chrono::Utc::now());
    let (code, out, _) = avvik(
        &[
            "replay",
            "--data",
            data_s,
            "--as-of",
            "seq:3",
            "--reference",
            &format!("AVV-{year}-0002"),
        ],
        &[],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deviation"]["title"], "Avvikelse nummer 1");
    let (code, _, err) = avvik(
        &[
            "replay",
            "--data",
            data_s,
            "--as-of",
            "seq:3",
            "--reference",
            &format!("AVV-{year}-0005"),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("did not exist"), "{err}");
    // As of a time before anything happened: empty register.
    let (code, out, _) = avvik(
        &[
            "replay",
            "--data",
            data_s,
            "--as-of",
            "2000-01-01T00:00:00Z",
        ],
        &[],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["as_of_seq"], 0);
    // Numbering continues after import: the counter came along.
    let restored_app_counter = {
        let store = avvik_events::SledEventStore::open(&restored, Default::default()).unwrap();
        avvik_events::EventStore::counter(&store, &format!("AVV-{year}")).unwrap()
    };
    assert_eq!(restored_app_counter, 5);
}

#[tokio::test]
async fn a_corrupted_byte_in_an_export_names_that_record() {
    let dir = app_with_reports(6).await;
    let data = data_path(&dir);
    let (code, export, _) = avvik(&["export", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    let mut lines: Vec<String> = export.lines().map(String::from).collect();
    // Change one letter in record 4's sealed data; the line stays valid JSON.
    lines[3] = crate::helpers::tamper_ciphertext(&lines[3]);
    let file = dir.path().join("tampered.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (code, out, _) = avvik(&["verify", "--file", file.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("first bad seq 4"), "{out}");
    let (_, out, _) = avvik(&["verify", "--json", "--file", file.to_str().unwrap()], &[]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_seq"], 4);
}

#[test]
fn commands_refuse_a_data_directory_a_running_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    for args in [
        vec!["verify", "--data", data.to_str().unwrap()],
        vec!["export", "--data", data.to_str().unwrap()],
        vec![
            "replay",
            "--data",
            data.to_str().unwrap(),
            "--as-of",
            "seq:1",
        ],
    ] {
        let started = Instant::now();
        let (code, _, err) = avvik(&args, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("in use by another avvik process"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused at once"
        );
    }
    let (code, _, err) = avvik(
        &["import", "--data", data.to_str().unwrap(), "/dev/null"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("in use"), "{err}");
    server.kill9();
}
