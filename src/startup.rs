//! Builds the running service: store, projections, HTTP listener.

use std::sync::Arc;

use anyhow::Context;
use avvik_events::{EventStore, PostgresEventStore, PostgresOptions, SledEventStore, StoreOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StoreBackend};
use crate::intake::projection::{IntakeProjection, IntakeView};
use crate::notify::outbox::{Outbox, OutboxProjection};
use crate::notify::rules::Rules;
use crate::projection::Projection;
use crate::register::Register;
use crate::register::RegisterProjection;
use crate::scheduler::{Scheduler, Schedules};
use crate::service::Services;
use crate::web::{self, AppState};
use crate::webhooks::outbox::{Subscription, WebhookOutbox, WebhookOutboxProjection};

/// Opens the configured store: sled in the data directory, or the PostgreSQL database of
/// `store.postgres.url` (a wrong URL or password stops start-up naming the key, never
/// showing the password).
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    match config.store.backend {
        StoreBackend::Sled => {
            let store = SledEventStore::open(
                &config.store.data_dir,
                StoreOptions {
                    cache_capacity: config.store.cache_mb * 1024 * 1024,
                    ..crate::store::store_options()
                },
            )
            .with_context(|| {
                format!(
                    "opening the event store in {}",
                    config.store.data_dir.display()
                )
            })?;
            Ok(Arc::new(store))
        }
        StoreBackend::Postgres => {
            let store =
                PostgresEventStore::connect(&config.store.postgres.url, PostgresOptions::default())
                    .with_context(|| {
                        format!(
                            "opening the event store in PostgreSQL (key `store.postgres.url` = {})",
                            config.store.postgres.shown()
                        )
                    })?;
            Ok(Arc::new(store))
        }
    }
}

/// The projections the service runs on, caught up from the log together.
pub struct Projections {
    pub register: Arc<RegisterProjection>,
    pub outbox: Arc<OutboxProjection>,
    pub intake: Arc<IntakeProjection>,
    pub webhooks: Arc<WebhookOutboxProjection>,
}

impl Projections {
    /// Starts them not ready; one pass over the log (`projection::replay`) catches all
    /// four up, off the async threads, and then each follows the log on its own.
    pub fn start(
        store: Arc<dyn EventStore>,
        keys: Arc<crate::privacy::Keyring>,
        rules: Arc<Rules>,
        hooks: Arc<Vec<Subscription>>,
        shutdown: &watch::Sender<bool>,
    ) -> Self {
        let this = Self {
            register: Projection::pending(Register::new(), "register"),
            outbox: Projection::pending(Outbox::new(rules.clone()), "outbox"),
            intake: Projection::pending(IntakeView::default(), "intake view"),
            webhooks: Projection::pending(WebhookOutbox::new(hooks.clone()), "webhook outbox"),
        };
        let (register, outbox, intake, webhooks) = (
            this.register.clone(),
            this.outbox.clone(),
            this.intake.clone(),
            this.webhooks.clone(),
        );
        let shutdown = shutdown.subscribe();
        let s2 = store.clone();
        let k2 = keys.clone();
        crate::projection::catch_up(
            "register, outboxes and intake view",
            move || {
                let (mut r, mut o, mut i, mut w) = (
                    Register::new(),
                    Outbox::new(rules),
                    IntakeView::default(),
                    WebhookOutbox::new(hooks),
                );
                let head = s2.head().seq;
                crate::projection::replay_sharing(
                    s2.as_ref(),
                    &k2,
                    1,
                    head,
                    &mut r,
                    &mut [&mut o, &mut i, &mut w],
                )
                .map(|()| (r, o, i, w))
            },
            move |(r, o, i, w)| {
                register.install(r, store.clone(), keys.clone(), shutdown.clone());
                let mut o = o;
                let peer = register.clone();
                o.share_with(move |id| peer.try_read()?.shared(id).cloned());
                let lead = Some(register.subscribe());
                outbox.install_following(o, store.clone(), keys.clone(), shutdown.clone(), lead);
                webhooks.install(w, store.clone(), keys.clone(), shutdown.clone());
                intake.install(i, store, keys, shutdown);
            },
        );
        this
    }
}

/// How often the node holding the `gallring` duty looks for gallrings other nodes left.
const GALLRING_SWEEP: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `gallring::recover_shared` at once and then every `every`, until `stop`.
fn finish_gallrings_every(
    every: std::time::Duration,
    store: Arc<dyn EventStore>,
    keys: Arc<crate::privacy::Keyring>,
    data_dir: std::path::PathBuf,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {}
            }
            if *stop.borrow() {
                break;
            }
            let (s, k, d) = (store.clone(), keys.clone(), data_dir.clone());
            let done = tokio::task::spawn_blocking(move || {
                crate::privacy::gallring::recover_shared(s.as_ref(), &k, &d)
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "finishing gallrings other nodes began failed; trying again later")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "finishing gallrings other nodes began panicked; trying again later")
                }
            }
        }
    })
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    scheduler: Arc<Scheduler>,
    scheduler_task: tokio::task::JoinHandle<()>,
    /// The IMAP collector, when `intake.imap.host` is set.
    intake_task: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Opens everything and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = open_store(&config)?;
        let access_log =
            crate::access_log::AccessLog::open_for(&config, &config.store.data_dir, clock.clone())
                .with_context(|| match config.store.backend {
                    StoreBackend::Sled => format!(
                        "opening the access log in {}",
                        config
                            .store
                            .data_dir
                            .join(crate::access_log::ACCESS_DIR)
                            .display()
                    ),
                    StoreBackend::Postgres => format!(
                "opening the access log in PostgreSQL, schema {} (key `store.postgres.url` = {})",
                crate::access_log::PG_SCHEMA,
                config.store.postgres.shown()
            ),
                })?;
        let secret =
            crate::secret::Secret::load_or_create(&config.store.data_dir).with_context(|| {
                format!(
                    "reading the secret key in {}",
                    config.store.data_dir.display()
                )
            })?;
        secret.check_shared(store.as_ref())?;
        crate::store::adopt_local_files(store.as_ref(), &config.store.data_dir)
            .context("taking over the data keys and files in the data directory")?;
        let keys =
            crate::privacy::Keyring::open_for(store.as_ref(), &config.store.data_dir, &secret)
                .with_context(|| match store.shared_files() {
                    Some(_) => "opening the data keys in the shared store".to_string(),
                    None => format!(
                        "opening the data keys in {}",
                        config.store.data_dir.join("keys").display()
                    ),
                })?;
        // A gallring cut short by a crash is finished before anything reads the log.
        crate::privacy::gallring::recover(store.as_ref(), &keys, &config.store.data_dir)
            .context("finishing an interrupted gallring")?;
        // The recipient lists are events; the configuration seeds them at the first start.
        crate::notify::recipients::seed(&store, &config, clock.now())
            .await
            .context("recording the recipient lists from [recipients]")?;
        // Install the metrics recorder before anything records.
        crate::web::metrics::handle();
        let (shutdown_tx, _) = watch::channel(false);
        if config.store.backend == StoreBackend::Postgres {
            access_log.follow(shutdown_tx.subscribe());
        }
        let projections = Projections::start(
            store.clone(),
            keys.clone(),
            Arc::new(Rules::from_config(&config)),
            crate::webhooks::Webhooks::subscriptions(&config),
            &shutdown_tx,
        );
        let register = projections.register.clone();
        if !config.store.archive_dir.as_os_str().is_empty() {
            crate::archive::spawn(
                store.clone(),
                config.store.archive_dir.clone(),
                shutdown_tx.subscribe(),
            );
        }
        let listener = TcpListener::bind(config.http.addr)
            .await
            .with_context(|| format!("binding {}", config.http.addr))?;
        let scheduler = Arc::new(Scheduler::new(
            store.clone(),
            keys.clone(),
            clock.clone(),
            Schedules::from_config(&config)?,
        ));
        // The single-runner duties: on sled this process holds them all; nodes sharing a
        // PostgreSQL store hold each on one node at a time.
        let duties = crate::duty::Duties::new(store.clone(), shutdown_tx.subscribe());
        let sched = scheduler.clone();
        let scheduler_task = duties.run(crate::duty::SCHEDULER, move |stop| {
            sched.clone().spawn(stop)
        });
        if store.shared_files().is_some() {
            let (s, k, d) = (store.clone(), keys.clone(), config.store.data_dir.clone());
            duties.run(crate::duty::GALLRING, move |stop| {
                finish_gallrings_every(GALLRING_SWEEP, s.clone(), k.clone(), d.clone(), stop)
            });
        }
        // E-mail notices: the outbox follows the log, delivery runs until shutdown.
        let notify = crate::notify::Notify::start(
            &config,
            store.clone(),
            clock.clone(),
            secret.clone(),
            keys.clone(),
            projections.outbox.clone(),
            &duties,
        )
        .context("setting up e-mail delivery ([mail])")?;
        // Webhooks: the same outbox machinery, over HTTP.
        let webhooks = crate::webhooks::Webhooks::start(
            &config,
            store.clone(),
            clock.clone(),
            projections.webhooks.clone(),
            &duties,
        )
        .context("setting up webhooks ([[webhooks]])")?;
        // Identity providers: their client secrets read now, discovery at the first sign-in.
        let oidc = Arc::new(
            crate::auth::oidc::Providers::from_config(&config.auth)
                .context("setting up sign-in with identity providers ([[auth.oidc]])")?,
        );
        let services = Services {
            store,
            register,
            clock,
            secret: secret.clone(),
            keys,
        };
        // E-mail intake: one pipeline for the upload endpoint and the IMAP collector.
        let intake_view = projections.intake;
        let intake = Arc::new(crate::intake::Intake::new(
            services.clone(),
            &config,
            intake_view,
        ));
        let intake_task = (!config.intake.imap.host.is_empty()).then(|| {
            let collector =
                crate::intake::imap::ImapCollector::new(intake.clone(), config.intake.imap.clone());
            duties.run(crate::duty::IMAP, move |stop| collector.clone().spawn(stop))
        });
        let state = AppState {
            services,
            config: Arc::new(config),
            session_key: crate::auth::session::session_key(&secret),
            login_guard: Default::default(),
            passkeys: Default::default(),
            oidc,
            notify,
            webhooks,
            intake,
            secret,
            access_log,
            duties,
        };
        Ok(Self {
            listener,
            state,
            shutdown_tx,
            scheduler,
            scheduler_task,
            intake_task,
        })
    }

    /// `avvik serve` on a new installation: once the register is rebuilt and there is no
    /// staff account, a one-time setup link is issued and logged once at warn. The
    /// receiver gets the link too.
    pub fn offer_setup_link(&self) -> watch::Receiver<Option<String>> {
        spawn_setup_link(
            self.state.services.clone(),
            self.state.config.http.base_url.clone(),
        )
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The scheduler, so tests can run due jobs at a chosen time.
    pub fn scheduler(&self) -> Arc<Scheduler> {
        self.scheduler.clone()
    }

    /// Serves until `stop` resolves, then stops the background work.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = web::router(self.state.clone());
        tracing::info!(addr = %self.listener.local_addr()?, "avvik is listening");
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop)
        .await?;
        let _ = self.shutdown_tx.send(true);
        // The scheduler holds the store; wait for it so the data directory is free after.
        let _ = self.scheduler_task.await;
        // The collector finishes the message in hand (or drops the connection) and stops.
        if let Some(t) = self.intake_task {
            let _ = t.await;
        }
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Once the register is rebuilt: with no staff account, a one-time setup link is issued
/// and logged once, so a new installation can be set up in the browser.
pub fn spawn_setup_link(services: Services, base_url: String) -> watch::Receiver<Option<String>> {
    let (tx, rx) = watch::channel(None);
    let head = services.store.head().seq;
    tokio::spawn(async move {
        if !services
            .register
            .wait_for(head, std::time::Duration::from_secs(600))
            .await
        {
            return;
        }
        match crate::auth::setup::issue_if_needed(&services).await {
            Ok(Some(token)) => {
                let url = format!(
                    "{}{}",
                    base_url.trim_end_matches('/'),
                    crate::auth::setup::link_path(&token)
                );
                tracing::warn!(
                    setup_url = %url,
                    "no staff account yet: open the setup link to create the first admin and CISO (valid one hour, shown only now; `avvik user add` works too)"
                );
                let _ = tx.send(Some(url));
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "could not issue the first-run setup link"),
        }
    });
    rx
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// The projections as the service starts them.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use avvik_events::{EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};
    use chrono::Utc;
    use tokio::sync::watch;
    use uuid::Uuid;

    use super::Projections;
    use crate::config::Config;
    use crate::domain::{
        Aspects, Classification, DeviationEvent, PersonalDataBreach, Reported, Severity,
    };
    use crate::notify::rules::Rules;

    async fn append(store: &dyn EventStore, stream: Uuid, ev: &DeviationEvent) {
        store
            .append(
                stream,
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    ev.type_name(),
                    ev.to_data(),
                    "user:ciso@kommunen.example",
                    Utc::now(),
                )],
            )
            .await
            .unwrap();
    }

    async fn reported(store: &dyn EventStore, number: u64) -> Uuid {
        let id = Uuid::now_v7();
        let ev = DeviationEvent::Reported(Reported::example(number, Utc::now()));
        append(store, id, &ev).await;
        id
    }

    /// After start-up the register and the outbox follow the log each on its own; the
    /// outbox still takes the register's state after each deviation event rather than
    /// evolving a copy (a long-running service would otherwise come to hold every changed
    /// deviation twice).
    #[tokio::test]
    async fn the_live_outbox_shares_the_registers_states() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> =
            Arc::new(SledEventStore::open(dir.path(), StoreOptions::default()).unwrap());
        let config = Config::defaults().unwrap();
        let before_start = reported(store.as_ref(), 1).await;
        let (stop, _) = watch::channel(false);
        let p = Projections::start(
            store.clone(),
            crate::privacy::Keyring::in_memory(),
            Arc::new(Rules::from_config(&config)),
            Default::default(),
            &stop,
        );
        let caught_up = || async {
            let head = store.head().seq;
            let wait = Duration::from_secs(10);
            assert!(p.register.wait_for(head, wait).await && p.outbox.wait_for(head, wait).await);
        };
        caught_up().await;
        let live = [
            reported(store.as_ref(), 2).await,
            reported(store.as_ref(), 3).await,
        ];
        caught_up().await;
        let classified = DeviationEvent::Classified(Classification {
            severity: Severity::Major,
            aspects: Aspects::default(),
            category: "Obehörig åtkomst".into(),
            personal_data_breach: PersonalDataBreach::No,
            nis2_significant: false,
            rationale: "Röjt".into(),
            role: "ciso".into(),
        });
        for stream in [before_start, live[0]] {
            append(store.as_ref(), stream, &classified).await;
            caught_up().await;
        }
        let (register, outbox) = (p.register.read(), p.outbox.read());
        for id in [before_start, live[0], live[1]] {
            let (theirs, ours) = (register.shared(id), outbox.deviation(id));
            assert!(
                theirs.zip(ours).is_some_and(|(a, b)| Arc::ptr_eq(a, b)),
                "the outbox keeps its own copy of {id}"
            );
        }
        assert_eq!(
            register.get(before_start).and_then(|d| d.severity),
            Some(Severity::Major)
        );
    }
}
