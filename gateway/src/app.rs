//! Wiring: a validated [`Config`] becomes a Pingora server with its services and background tasks.

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, ServerConfig};
use crate::metrics::{AdminApp, Metrics};
use crate::proxy::upstream::{UpstreamError, Upstreams};
use crate::proxy::Gateway;

/// Why the server could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The upstream set could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The metrics registry could not be built.
    #[error("cannot build the metrics registry")]
    Metrics(#[source] prometheus::Error),
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
        // design: Pingora facts, SIGTERM otherwise waits 300 s
        grace_period_seconds: Some(server.shutdown_grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(server.shutdown_timeout.as_secs_f64().ceil() as u64),
        upstream_keepalive_pool_size: 256,
        ..ServerConf::default()
    }
}

/// Builds the server: the proxy service on `server.listen`, the upstream health check and,
/// when configured, the admin listener.
pub fn build_server(config: &Config) -> Result<Server, AppError> {
    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config.server));
    server.bootstrap();
    let metrics = Metrics::new().map_err(AppError::Metrics)?;
    let (upstreams, health_check) = Upstreams::from_config(&config.upstream)?;
    let gateway = Gateway::new(config, upstreams, metrics.clone());

    let mut proxy = pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "gateway");
    let addr = config.server.listen.to_string();
    match &config.server.tls {
        Some(files) => {
            let tls_err = |e: Box<pingora::Error>| AppError::Tls { addr: addr.clone(), reason: e.to_string() };
            let mut tls = TlsSettings::intermediate(&files.cert.to_string_lossy(), &files.key.to_string_lossy())
                .map_err(tls_err)?;
            tls.enable_h2();
            proxy.add_tls_with_settings(&addr, None, tls);
        }
        None => proxy.add_tcp(&addr),
    }
    server.add_service(proxy);
    server.add_service(health_check);

    if let Some(admin_addr) = config.server.admin_listen {
        let mut admin = pingora::services::listening::Service::new("admin".to_owned(), AdminApp::new(metrics));
        admin.add_tcp(&admin_addr.to_string());
        server.add_service(admin);
    }
    Ok(server)
}

/// Builds and runs the server until `args.shutdown_signal` fires, then returns.
pub fn run(config: Config, args: RunArgs) -> Result<(), AppError> {
    let server = build_server(&config)?;
    tracing::info!(listen = %config.server.listen, public_url = %config.server.public_url.origin(), "gateway started");
    server.run(args);
    Ok(())
}

/// SIGTERM and SIGINT both drain gracefully: stop accepting, let in-flight requests finish
/// within `server.shutdown_grace`, then exit.
pub struct TerminateOnSignal;

#[async_trait]
impl ShutdownSignalWatch for TerminateOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received, draining"),
                    _ = int.recv() => tracing::info!("SIGINT received, draining"),
                }
                ShutdownSignal::GracefulTerminate
            }
            _ => {
                tracing::error!("cannot install signal handlers; stopping now");
                ShutdownSignal::FastShutdown
            }
        }
    }
}

/// The run arguments of the `gateway` binary.
pub fn signal_run_args() -> RunArgs {
    RunArgs { shutdown_signal: Box::new(TerminateOnSignal) }
}
