//! A throw-away Dovecot IMAP server for the intake tests: started as root on a free
//! loopback port with its own configuration, maildir and passwd-file in a temporary
//! directory, stopped when dropped. `scripts/test` installs Debian's dovecot-imapd; the
//! binary can be pointed elsewhere with `AVVIK_DOVECOT`. Nothing is skipped silently: a
//! missing Dovecot fails the test with a message saying how to get it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use avvik::config::{ImapConfig, ImapMark, TlsMode};
use avvik::intake::imap::Conn;
use tempfile::TempDir;

pub const USER: &str = "avvikelse";
pub const PASSWORD: &str = "test-lösenord-för-imap";
/// Dovecot runs mail processes as this user (never as root).
const MAIL_UID: u32 = 65534;

pub struct Dovecot {
    child: Child,
    /// IMAP (plain, with STARTTLS when started with TLS).
    pub port: u16,
    /// IMAPS (implicit TLS); 0 when started without TLS.
    pub tls_port: u16,
    dir: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Dovecot {
    pub fn start() -> Dovecot {
        Self::start_with(None)
    }

    /// With TLS: STARTTLS on `port`, implicit TLS on `tls_port`, with this certificate and
    /// key (PEM). Plain login stays allowed so the test helpers below can fill mailboxes.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Dovecot {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> Dovecot {
        let bin = PathBuf::from(
            std::env::var("AVVIK_DOVECOT").unwrap_or_else(|_| "/usr/sbin/dovecot".into()),
        );
        assert!(
            bin.exists(),
            "{} not found: the intake tests need Dovecot (apt-get install dovecot-imapd, as \
             scripts/test does), or set AVVIK_DOVECOT",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Dovecot's unprivileged processes must reach the files below.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["run", "state", "mail"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::chown(root.join("mail"), Some(MAIL_UID), Some(MAIL_UID)).unwrap();
        std::fs::write(root.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let port = free_port();
        let tls_port = if tls.is_some() { free_port() } else { 0 };
        let ssl = match tls {
            Some((cert, key)) => format!(
                "ssl = yes\nssl_cert = <{}\nssl_key = <{}",
                cert.display(),
                key.display()
            ),
            None => "ssl = no".into(),
        };
        let r = root.display();
        let conf = format!(
            r#"base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
instance_name = avvik-test-{port}
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{r}/mail/%u
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={r}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#
        );
        let conf_path = root.join("dovecot.conf");
        std::fs::File::create(&conf_path)
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .unwrap();
        let child = Command::new(&bin)
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let d = Dovecot {
            child,
            port,
            tls_port,
            dir,
        };
        d.wait_listening();
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "Dovecot did not listen on {} (it must run as root):\n{}",
            self.port,
            self.log()
        );
    }

    /// The collector's settings for this server.
    pub fn imap_config(&self) -> ImapConfig {
        ImapConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: TlsMode::None,
            user: USER.into(),
            password: PASSWORD.into(),
            folder: "INBOX".into(),
            processed_folder: "Processed".into(),
            interval_s: 1,
            mark: ImapMark::Move,
            idle: true,
        }
    }

    /// The same settings as `AVVIK_INTAKE__IMAP__…` variables for the real binary.
    pub fn imap_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AVVIK_INTAKE__IMAP__HOST", "127.0.0.1".into()),
            ("AVVIK_INTAKE__IMAP__PORT", self.port.to_string()),
            ("AVVIK_INTAKE__IMAP__TLS", "none".into()),
            ("AVVIK_INTAKE__IMAP__USER", USER.into()),
            ("AVVIK_INTAKE__IMAP__PASSWORD", PASSWORD.into()),
            ("AVVIK_INTAKE__IMAP__INTERVAL_S", "1".into()),
        ]
    }

    pub async fn session(&self) -> async_imap::Session<Conn> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to Dovecot");
        let mut client = async_imap::Client::new(Conn::Plain(tcp));
        client.read_response().await.expect("greeting");
        client
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .expect("login")
    }

    /// Delivers messages into `folder` (IMAP APPEND), in order.
    pub async fn append_all(&self, folder: &str, messages: &[Vec<u8>]) {
        let mut s = self.session().await;
        if folder != "INBOX" {
            let _ = s.create(folder).await;
        }
        for m in messages {
            s.append(folder, None, None, m)
                .await
                .unwrap_or_else(|e| panic!("APPEND: {e}\n{}", self.log()));
        }
        s.logout().await.ok();
    }

    /// Messages in `folder` (0 when it does not exist), not counting deleted ones.
    pub async fn count(&self, folder: &str) -> usize {
        let mut s = self.session().await;
        let n = match s.select(folder).await {
            Ok(_) => s
                .uid_search("UNDELETED")
                .await
                .map(|u| u.len())
                .unwrap_or(0),
            Err(_) => 0,
        };
        s.logout().await.ok();
        n
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; then make sure it is gone.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
