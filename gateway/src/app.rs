//! Wiring: a validated [`Config`] becomes a Pingora server with its services and background tasks.

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use tokio::signal::unix::{signal, SignalKind};

use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use std::time::Duration;

use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::auth::AuthService;
use crate::channel::server::ChannelServer;
use crate::channel::{Hub, SignedIn};
use crate::config::{Config, ServerConfig, StoreConfig};
use crate::metrics::{AdminApp, Metrics};
use crate::providers::dev::{DevIdp, DevIdpError};
use crate::providers::http_client::{HttpClient, HttpError, NetClient, RoutedClient};
use crate::providers::ProviderRegistry;
use crate::proxy::admission::{fit_to_open_files, raise_open_files, Admission, Admitted};
use crate::proxy::ready::Readiness;
use crate::proxy::upstream::{UpstreamError, Upstreams};
use crate::proxy::{ChannelRouting, Gateway, Live};
use crate::session::Keyring;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisRelay, RedisStore};
use crate::store::TokenStore;
use crate::teams::TeamsService;
use crate::telemetry::Telemetry;

/// Why the server could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The upstream set could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The metrics registry could not be built.
    #[error("cannot build the metrics registry")]
    Metrics(#[source] prometheus::Error),
    /// The dev provider could not start.
    #[error(transparent)]
    DevIdp(#[from] DevIdpError),
    /// The provider HTTP client could not be built.
    #[error("cannot build the provider HTTP client: {0}")]
    Http(#[from] HttpError),
    /// The store could not be set up.
    #[error("cannot set up the token store")]
    Store(#[source] crate::store::StoreError),
    /// The channel server's private socket directory could not be made.
    #[error("cannot create the status channel socket directory")]
    ChannelSocket(#[source] std::io::Error),
    /// The TLS listener could not be set up.
    #[error("cannot set up TLS for {addr}: {reason}")]
    Tls {
        /// The listener.
        addr: String,
        /// Pingora's explanation.
        reason: String,
    },
}

/// Pingora's server settings, built from ours (never read from a YAML file).
fn server_conf(server: &ServerConfig) -> ServerConf {
    ServerConf {
        threads: server.threads,
        // docs/architecture.md#pingora-notes: SIGTERM otherwise waits 300 s
        grace_period_seconds: Some(server.shutdown_grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(server.shutdown_timeout.as_secs_f64().ceil() as u64),
        upstream_keepalive_pool_size: 256,
        upgrade_sock: server.upgrade_socket.as_ref().map_or_else(String::new, |p| p.to_string_lossy().into_owned()),
        ..ServerConf::default()
    }
}

/// Builds the server: the proxy service on `server.listen`, the upstream health check and,
/// when configured, the admin listener. With `reload_from`, SIGHUP re-reads that file. With
/// `take_over`, the listening sockets come from the running gateway (`server.upgrade_socket`):
/// this waits for them, and exits the process when they do not come (Pingora's bootstrap).
pub fn build_server(config: &Config, reload_from: Option<&Path>, take_over: bool) -> Result<Server, AppError> {
    let opt = take_over.then(|| Opt { upgrade: true, ..Opt::default() });
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config.server));
    server.bootstrap();
    let metrics = Metrics::new().map_err(AppError::Metrics)?;
    let (upstreams, health_check) = Upstreams::from_config(&config.upstream)?;
    let hub = Arc::new(Hub::new(config.channel.max_sockets_per_session, Some(metrics.clone())));
    // One keyring for everything that signs, seals or derives keys from `session.secret`.
    let keys = Keyring::from_secrets(&config.session.secrets);
    let store: Arc<dyn TokenStore> = match &config.store {
        StoreConfig::Memory => Arc::new(MemoryStore::new(config.session.token_ttl.get())),
        StoreConfig::Redis { url, key_prefix, timeout } => {
            let ttl = config.session.token_ttl.get();
            let redis = Arc::new(
                RedisStore::new(url.as_str(), key_prefix, &keys, timeout.get(), ttl).map_err(AppError::Store)?,
            );
            hub.set_relay(Arc::new(RedisRelay::new(Arc::clone(&redis))));
            server.add_service(background_service(
                "redis subscriber",
                RedisSubscriber { store: Arc::clone(&redis), hub: Arc::clone(&hub) },
            ));
            redis
        }
    };
    let telemetry = crate::telemetry::export::start(&config.telemetry, &mut server);
    let live = Arc::new(ArcSwap::from_pointee(build_live(config, keys, &store, &hub, &metrics, &telemetry)?));
    let socket = channel_socket_path().map_err(AppError::ChannelSocket)?;
    let channel_server = ChannelServer::new(
        Arc::clone(&hub),
        Arc::new(CurrentAuth(Arc::clone(&live))) as Arc<dyn SignedIn>,
        &config.channel,
        Some(metrics.clone()),
    );
    // Bound now, so the socket exists before the proxy accepts its first request.
    let listener = std::os::unix::net::UnixListener::bind(&socket).map_err(AppError::ChannelSocket)?;
    listener.set_nonblocking(true).map_err(AppError::ChannelSocket)?;
    server.add_service(background_service(
        "status channel",
        ChannelService {
            server: Arc::clone(&channel_server),
            socket: socket.clone(),
            listener: Mutex::new(Some(listener)),
        },
    ));
    let routing = ChannelRouting {
        socket,
        socketio_path: config.channel.socketio_path.clone(),
        own_origin: config.server.public_url.origin(),
        server: channel_server,
    };
    let readiness = Arc::new(Readiness::new(Arc::clone(&store), Arc::clone(&live), upstreams.checked()));
    server.add_service(background_service("provider warm-up", ProviderWarmUp { live: Arc::clone(&live) }));
    let admission = connection_admission(config, &live, &metrics);
    let gateway = Gateway::new(
        config,
        Arc::clone(&live),
        upstreams,
        routing,
        metrics.clone(),
        Arc::clone(&readiness),
        Arc::clone(&admission),
    );
    if let Some(path) = reload_from {
        server.add_service(background_service(
            "config reload",
            ConfigReload {
                path: path.to_owned(),
                restart_only: restart_only_settings(config),
                live,
                store: Arc::clone(&store),
                hub: Arc::clone(&hub),
                metrics: metrics.clone(),
                telemetry,
            },
        ));
    }
    server.add_service(background_service(
        "token store",
        StoreTasks {
            store,
            hub,
            metrics: metrics.clone(),
            names: config.providers.iter().map(|p| p.name.clone()).collect(),
        },
    ));

    let addr = config.server.listen.to_string();
    // The listener is plain TCP: admission counts a connection before its TLS handshake,
    // which it then runs itself within `server.header_timeout` (`proxy::admission`).
    let acceptor = match &config.server.tls {
        Some(files) => {
            let tls_err = |e: Box<pingora::Error>| AppError::Tls { addr: addr.clone(), reason: e.to_string() };
            let mut tls = TlsSettings::intermediate(&files.cert.to_string_lossy(), &files.key.to_string_lossy())
                .map_err(tls_err)?;
            tls.enable_h2();
            Some(tls.build())
        }
        None => None,
    };
    let http = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut proxy = Service::new("gateway".to_owned(), Admitted::new(http, admission, acceptor));
    proxy.add_listener(ListenerConfig::tcp(addr.clone()).l4_buffer(client_buffers()));
    server.add_service(proxy);
    server.add_service(health_check);

    if let Some(admin_addr) = config.server.admin_listen {
        let mut admin =
            pingora::services::listening::Service::new("admin".to_owned(), AdminApp::new(metrics, readiness));
        admin.add_tcp(&admin_addr.to_string());
        server.add_service(admin);
    }
    Ok(server)
}

/// The request-path services built from `config`: what a reload rebuilds. The store, the hub
/// and the metrics outlive reloads, so sessions and open sockets survive them.
fn build_live(
    config: &Config,
    keys: Keyring,
    store: &Arc<dyn TokenStore>,
    hub: &Arc<Hub>,
    metrics: &Metrics,
    telemetry: &Option<Arc<Telemetry>>,
) -> Result<Live, AppError> {
    let dev_idp = DevIdp::from_config(config)?.map(Arc::new);
    let local = dev_idp.as_ref().map(|d| (d.issuer().to_owned(), Arc::clone(d) as Arc<dyn HttpClient>));
    let http: Arc<dyn HttpClient> = Arc::new(RoutedClient::new(NetClient::new()?, local));
    let providers = ProviderRegistry::from_config(config, http);
    let teams = config.teams.as_ref().map(|t| {
        let origin = config.server.public_url.origin();
        let token_ttl = config.session.token_ttl.get();
        let http = Arc::clone(providers.http_arc());
        Arc::new(TeamsService::new(t, keys.clone(), Arc::clone(store), token_ttl, origin, http))
    });
    let auth = Arc::new(
        AuthService::new(config, keys, providers, Arc::clone(store), Arc::clone(hub), metrics.clone())
            .with_teams(teams.clone())
            .with_telemetry(telemetry.clone()),
    );
    Ok(Live::new(config, auth, dev_idp, teams))
}

/// The connection limits, kept below the open-files limit (raised to its hard limit first).
fn connection_admission(config: &Config, live: &Arc<ArcSwap<Live>>, metrics: &Metrics) -> Arc<Admission> {
    let open_files = raise_open_files();
    let limits = fit_to_open_files(config.server.limits, open_files);
    if limits.max_connections < config.server.limits.max_connections {
        tracing::warn!(
            configured = config.server.limits.max_connections,
            max_connections = limits.max_connections,
            open_files = open_files.unwrap_or(0),
            "server.max_connections lowered to fit the open-files limit"
        );
    }
    let live = Arc::clone(live);
    Admission::new(limits, metrics.clone(), move |ip| live.load().trusts(ip))
}

/// Client connections are read without a buffer below HTTP and TLS. Pingora's default, 64 KiB
/// held for the connection's whole life, was most of what an idle status socket kept resident
/// once it left Pingora's HTTP session (heaptrack, `benches/run --memory --only sockets`). HTTP
/// heads and bodies are read into Pingora's own buffers and TLS records into rustls's, which ask
/// for more than a small buffer would hold anyway (1 KiB measured the same as none); the cost is
/// more read calls for a large TLS upload.
fn client_buffers() -> L4BufferSettings {
    L4BufferSettings::default().read(0)
}

/// The settings a reload cannot change (listeners, upstreams, store, lifetimes the store and
/// channel were built with), each as `(key, its value's Debug text)`; only compared, never logged.
fn restart_only_settings(config: &Config) -> Vec<(&'static str, String)> {
    vec![
        ("server.listen", format!("{:?}", config.server.listen)),
        ("server.public_url", format!("{:?}", config.server.public_url)),
        ("server.tls_cert / tls_key", format!("{:?}", config.server.tls)),
        ("server.admin_listen", format!("{:?}", config.server.admin_listen)),
        ("server.threads", format!("{:?}", config.server.threads)),
        ("server.upgrade_socket", format!("{:?}", config.server.upgrade_socket)),
        ("[upstream]", format!("{:?}", config.upstream)),
        ("[store]", format!("{:?}", config.store)),
        ("session.token_ttl", format!("{:?}", config.session.token_ttl)),
        ("channel.socketio_path", format!("{:?}", config.channel.socketio_path)),
        ("channel.max_sockets_per_session", format!("{:?}", config.channel.max_sockets_per_session)),
        ("channel.ping_interval", format!("{:?}", config.channel.ping_interval)),
        (
            "server.max_connections / max_connections_per_client / header_timeout / body_min_rate",
            format!("{:?}", config.server.limits),
        ),
        ("channel.max_sockets_per_client", format!("{:?}", config.channel.max_sockets_per_client)),
        ("channel.max_sockets", format!("{:?}", config.channel.max_sockets)),
        ("channel.join_timeout", format!("{:?}", config.channel.join_timeout)),
        ("[telemetry]", format!("{:?}", config.telemetry)),
    ]
}

/// On SIGHUP: re-read the config file, validate it, and swap in the request-path services
/// built from it. An invalid file, or one that changes a restart-only setting, is refused with
/// an error line and the running config keeps serving. Connections are never touched.
struct ConfigReload {
    path: std::path::PathBuf,
    restart_only: Vec<(&'static str, String)>,
    live: Arc<ArcSwap<Live>>,
    store: Arc<dyn TokenStore>,
    hub: Arc<Hub>,
    metrics: Metrics,
    telemetry: Option<Arc<Telemetry>>,
}

impl ConfigReload {
    fn reload(&self) {
        let file = self.path.display().to_string();
        let config = match crate::config::load(&self.path) {
            Ok(c) => c,
            Err(errors) => {
                tracing::error!(%file, %errors, "config reload refused: the file is invalid; the running config stays");
                return;
            }
        };
        let changed: Vec<&str> = restart_only_settings(&config)
            .iter()
            .zip(&self.restart_only)
            .filter(|(new, old)| new.1 != old.1)
            .map(|(new, _)| new.0)
            .collect();
        if !changed.is_empty() {
            tracing::error!(%file, changed = %changed.join(", "), "config reload refused: these settings change only with a restart; the running config stays");
            return;
        }
        let keys = Keyring::from_secrets(&config.session.secrets);
        match build_live(&config, keys, &self.store, &self.hub, &self.metrics, &self.telemetry) {
            Ok(live) => {
                self.live.store(Arc::new(live));
                tracing::info!(%file, routes = config.routes.len(), providers = config.providers.len(), "config reloaded");
            }
            Err(e) => tracing::error!(%file, error = %e, "config reload refused; the running config stays"),
        }
    }
}

#[async_trait]
impl BackgroundService for ConfigReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; config reload is off");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hangup.recv() => self.reload(),
            }
        }
    }
}

/// The channel's view of who is signed in, through the current config snapshot.
struct CurrentAuth(Arc<ArcSwap<Live>>);

#[async_trait]
impl SignedIn for CurrentAuth {
    async fn signed_in(&self, session: &crate::session::SessionId) -> Vec<(String, String)> {
        let live = self.0.load_full();
        live.auth().signed_in(session).await
    }
}

/// A private directory (mode 0700) for the channel server's Unix socket.
fn channel_socket_path() -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let tag = crate::session::random_token(6).unwrap_or_default().replace(['-', '_'], "x");
    let dir = std::env::temp_dir().join(format!("gateway-{}-{tag}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir.join("channel.sock"))
}

/// Runs the channel server on its socket until shutdown, then removes the socket.
struct ChannelService {
    server: Arc<ChannelServer>,
    socket: std::path::PathBuf,
    listener: Mutex<Option<std::os::unix::net::UnixListener>>,
}

#[async_trait]
impl BackgroundService for ChannelService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let std_listener = self.listener.lock().unwrap_or_else(|p| p.into_inner()).take();
        match std_listener.map(tokio::net::UnixListener::from_std) {
            Some(Ok(listener)) => Arc::clone(&self.server).run(listener, shutdown).await,
            Some(Err(e)) => tracing::error!(error = %e, "status channel unavailable"),
            None => tracing::error!("status channel started twice"),
        }
    }
}

impl Drop for ChannelService {
    // Also on a fast shutdown, where the runtime stops the service before `start` returns.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        if let Some(dir) = self.socket.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Fetches every provider's metadata and signing keys ahead of the first sign-in (readiness
/// waits for it), retrying with a growing pause; after a reload, the new providers too.
struct ProviderWarmUp {
    live: Arc<ArcSwap<Live>>,
}

/// Longest pause between two warm-up attempts of a provider that keeps failing.
const WARM_UP_MAX_PAUSE: Duration = Duration::from_secs(30);

#[async_trait]
impl BackgroundService for ProviderWarmUp {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut pause = Duration::from_millis(250);
        loop {
            let live = self.live.load_full();
            let warm = tokio::select! {
                _ = shutdown.changed() => return,
                warm = live.auth().providers().warm_up() => warm,
            };
            // All warm: look again only for providers a reload brings.
            pause = if warm { Duration::from_secs(1) } else { (pause * 2).min(WARM_UP_MAX_PAUSE) };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Listens to Redis pub/sub for the whole life of the server.
struct RedisSubscriber {
    store: Arc<RedisStore>,
    hub: Arc<Hub>,
}

#[async_trait]
impl BackgroundService for RedisSubscriber {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.store.run_subscriber(Arc::clone(&self.hub), shutdown).await;
    }
}

/// Store housekeeping: every second, run expiry and relay removals to the channel as `auth_expired`.
struct StoreTasks {
    store: Arc<dyn TokenStore>,
    hub: Arc<Hub>,
    metrics: Metrics,
    names: Vec<crate::config::types::ProviderName>,
}

#[async_trait]
impl BackgroundService for StoreTasks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _ = &self.names;
        let mut removals = self.store.removals();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    self.store.run_maintenance().await;
                    self.metrics.set_store_entries(self.store.token_count());
                }
                removal = removals.recv() => match removal {
                    Ok(r) => self.hub.removed(&r),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "status channel missed token removals");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Builds and runs the server until `args.shutdown_signal` fires, then returns. With
/// `reload_from` (the file `config` came from), SIGHUP reloads it. With `take_over` (`gateway run
/// --upgrade`), it serves on the listening sockets the running gateway hands over on SIGQUIT.
pub fn run(config: Config, reload_from: Option<&Path>, args: RunArgs, take_over: bool) -> Result<(), AppError> {
    let server = build_server(&config, reload_from, take_over)?;
    // The listening sockets are bound or taken over: under systemd this process is the service now.
    crate::notify::ready();
    if config.session.popup_binding == crate::config::PopupBinding::Ticket {
        tracing::warn!(
            "session.popup_binding = \"ticket\": a connect link signs its owner's session in as whoever opens it \
             (phishable); use \"handoff\" unless every popup shares the task pane's cookies"
        );
    }
    tracing::info!(listen = %config.server.listen, public_url = %config.server.public_url.origin(), "gateway started");
    server.run(args);
    Ok(())
}
