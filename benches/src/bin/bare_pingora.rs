//! The bare Pingora row of `benches/run`: a `ProxyHttp` with `upstream_peer` only, built with the
//! gateway's Pingora features and `ServerConf` settings, so a report splits the gateway's cost per
//! request into Pingora's and the gateway's own.
//!
//! Mirrors `gateway/src/app.rs` (copied, not linked: that code is private): `threads`,
//! `work_stealing` (Pingora's default, true), `upstream_keepalive_pool_size = 256`, grace and
//! shutdown timeouts of 1 s, the client listener without an L4 read buffer, TLS with Pingora's
//! `intermediate` settings and h2 by ALPN; the peer's connect and idle timeouts as the gateway
//! sets them. Pingora sets TCP_NODELAY on every accepted and connected socket itself.
//!
//! ```text
//! bare_pingora --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--threads N]
//!              [--work-stealing true|false] [--keepalive-pool N] [--tls-cert PEM --tls-key PEM]
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::HttpPeer;
use pingora::proxy::{http_proxy, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;

#[derive(Parser)]
#[command(about = "A Pingora proxy with upstream_peer only, configured as the gateway configures Pingora")]
struct Args {
    /// Listener, `IP:PORT`.
    #[arg(long)]
    listen: SocketAddr,
    /// The one upstream, `IP:PORT`.
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads (the gateway's `server.threads`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pingora's `work_stealing` (the gateway leaves Pingora's default, true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    work_stealing: bool,
    /// Pingora's `upstream_keepalive_pool_size` (the gateway sets 256).
    #[arg(long, default_value_t = 256)]
    keepalive_pool: usize,
    /// PEM certificate chain: with `--tls-key`, the listener speaks TLS (h2 by ALPN).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<String>,
    /// PEM private key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<String>,
}

/// The proxy: every request goes to the one upstream.
struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        // The gateway's defaults: connect_timeout 5 s, idle_timeout 60 s, no read timeout.
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.total_connection_timeout = Some(Duration::from_secs(5));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        work_stealing: args.work_stealing,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: args.keepalive_pool,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut listener = ListenerConfig::tcp(args.listen.to_string()).l4_buffer(L4BufferSettings::default().read(0));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let mut tls = match TlsSettings::intermediate(cert, key) {
            Ok(tls) => tls,
            Err(e) => {
                eprintln!("bare_pingora: TLS: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        tls.enable_h2();
        listener = listener.tls(tls);
    }
    let http = http_proxy(&server.configuration, Bare { upstream: args.upstream });
    let mut proxy = Service::new("bare".to_owned(), http);
    proxy.add_listener(listener);
    server.add_service(proxy);
    server.run(RunArgs::default());
    std::process::ExitCode::SUCCESS
}
