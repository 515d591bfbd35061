//! `avvik doctor` against a real SMTP server on loopback: it connects and says hello but
//! sends nothing, names what is missing in Swedish and English, and exits 1 when the
//! policy cannot be followed.

use crate::helpers::avvik;
use crate::notify::smtp::{Mode, SmtpSink};

fn config(dir: &std::path::Path, port: u16, recipients: bool) -> std::path::PathBuf {
    let mut text = format!(
        "[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_s = 2\n"
    );
    if recipients {
        text.push_str(
            "[recipients]\nciso = [\"ciso@kommunen.example\"]\ndataskyddsombud = [\"dso@kommunen.example\"]\n\
             ledningsgrupp = [\"lg@kommunen.example\"]\nkommunstyrelsen = [\"ks@kommunen.example\"]\n",
        );
    }
    let path = dir.join("avvik.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn doctor(dir: &std::path::Path, config: &std::path::Path) -> (i32, String) {
    let data = dir.join("data");
    let (code, out, err) = avvik(
        &["--config", config.to_str().unwrap(), "doctor"],
        &[("AVVIK_STORE__DATA_DIR", data.to_str().unwrap())],
    );
    (code, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_smtp_without_sending_and_names_what_is_missing() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let dir = tempfile::tempdir().unwrap();

    let cfg = config(dir.path(), sink.port(), true);
    let d = dir.path().to_path_buf();
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&d, &cfg))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[OK     ] smtp"), "{out}");
    assert!(
        out.contains("Inget skickades") && out.contains("Nothing was sent"),
        "{out}"
    );
    assert!(out.contains("[OK     ] recipients"), "{out}");
    assert!(out.contains("[OK     ] disk"), "{out}");
    assert!(out.contains("[OK     ] clock"), "{out}");
    assert!(sink.messages().is_empty(), "doctor sent nothing");
    assert!(
        !dir.path().join("data").exists(),
        "doctor created no data directory"
    );

    // No recipients: exit 1, in both languages, with what to do.
    let cfg = config(dir.path(), sink.port(), false);
    let d = dir.path().to_path_buf();
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&d, &cfg))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FEL    ] recipients"), "{out}");
    assert!(
        out.contains("ciso, ledningsgrupp, kommunstyrelsen"),
        "{out}"
    );
    assert!(out.contains("Åtgärd:") && out.contains("Fix:"), "{out}");
    assert!(out.contains("/staff/admin/recipients"), "{out}");

    // A mail server that is not there.
    let port = SmtpSink::closed_port().await;
    let cfg = config(dir.path(), port, true);
    let d = dir.path().to_path_buf();
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&d, &cfg))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FEL    ] smtp"), "{out}");
    assert!(
        out.contains("går inte att använda") && out.contains("cannot be used"),
        "{out}"
    );

    // The default: e-mail into files is not delivery.
    let path = dir.path().join("empty.toml");
    std::fs::write(&path, "").unwrap();
    let d = dir.path().to_path_buf();
    let (code, out) = tokio::task::spawn_blocking(move || doctor(&d, &path))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("mail.transport = \"smtp\""), "{out}");
}
