//! `RawConfig` → `Config`: checks every rule and collects every problem with its key path.

mod providers;

use providers::{check_obo_routes, providers, route, teams};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use url::Url;

use super::defaults::{DEFAULT_COOKIE_NAME, DEFAULT_SECURE_COOKIE_NAME};
use super::error::ConfigError;
use super::model::*;
use super::raw::*;
use super::secret::{self, EnvLookup};
use super::types::{AllowedHost, CookieName, ProviderName, PublicUrl, SameSite, Ttl};

/// Microsoft's public-cloud Entra authority, the default of `teams.authority`.
const DEFAULT_ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Bot Framework's OpenID metadata, the default of `teams.openid_metadata`.
const BOT_FRAMEWORK_METADATA: &str = "https://login.botframework.com/v1/.well-known/openidconfiguration";

/// What validation reads besides the file: the environment and the directory relative paths start from.
pub(super) struct Context<'a> {
    /// Environment lookup for `env:` secrets.
    pub(super) env: EnvLookup<'a>,
    /// Base of relative `file:` secrets and TLS paths.
    pub(super) base_dir: &'a Path,
}

/// Collects problems; each check records and goes on, so the user sees all of them at once.
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigError::at(key, problem));
    }

    /// Keeps the value, or records the problem under `key` and yields `None`.
    fn check<T>(&mut self, key: impl Into<String>, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.add(key, e)).ok()
    }
}

/// Validates everything, returning the config or every problem found.
pub(super) fn validate(raw: RawConfig, origin: &str, ctx: &Context<'_>) -> Result<Config, Vec<ConfigError>> {
    let mut p = Problems(Vec::new());
    let server = server(&raw.server, ctx, &mut p);
    let upstream = upstream(&raw.upstream, &mut p);
    let session = session(&raw.session, ctx, &mut p);
    let store = store(&raw.store, ctx, &mut p);
    // From the listen address alone: another [server] problem must not make `dev` look refused,
    // and an unreadable address is its own error.
    let loopback = socket_addr(&raw.server.listen).map_or(true, |a| a.ip().is_loopback());
    let public = server.as_ref().map(|s| &s.public_url);
    let providers = providers(&raw.providers, raw.server.allow_dev_provider || loopback, public, ctx, &mut p);
    // Every declared provider may be referenced, valid or not: its own errors say what is wrong.
    let names: Vec<ProviderName> = raw.providers.keys().filter_map(|n| ProviderName::parse(n).ok()).collect();
    let routes: Vec<RouteRule> =
        raw.routes.iter().enumerate().filter_map(|(i, r)| route(i, r, &names, &mut p)).collect();
    check_obo_routes(&raw.routes, &routes, &providers, &mut p);
    let teams = raw.teams.as_ref().and_then(|t| teams(t, &names, &mut p));
    if let Some(t) = raw.teams.as_ref().filter(|t| t.sso) {
        let fit = providers.iter().find(|pc| pc.name.as_str() == t.provider).is_some_and(|pc| {
            matches!(pc.kind, ProviderKind::Entra { bearer: Some(_), .. }) && pc.client_secret.is_some()
        });
        if !fit {
            p.add(
                "teams.sso",
                "needs teams.provider to be an Entra provider with accept_bearer = true and a client_secret",
            );
        }
        if t.scopes.is_empty() {
            p.add("teams.scopes", "is empty; name the scopes the single sign-on token is exchanged for");
        }
    }
    let channel = channel(&raw.channel, &mut p);
    let identity = identity(&raw.identity, &mut p);
    let endpoint = raw.telemetry.otlp_endpoint.as_deref();
    let otlp_endpoint = endpoint.and_then(|t| p.check("telemetry.otlp_endpoint", super::telemetry::endpoint(t)));
    let telemetry = TelemetryConfig { otlp_endpoint };
    match (server, upstream, session, store, channel, identity) {
        (Some(server), Some(upstream), Some(session), Some(store), Some(channel), Some(identity)) if p.0.is_empty() => {
            Ok(Config {
                origin: origin.to_owned(),
                server,
                upstream,
                session,
                store,
                providers,
                routes,
                teams,
                channel,
                identity,
                telemetry,
            })
        }
        _ => Err(p.0),
    }
}

fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| format!("\"{text}\" is not an IP:PORT address, as in \"127.0.0.1:3001\""))
}

fn server(raw: &RawServer, ctx: &Context<'_>, p: &mut Problems) -> Option<ServerConfig> {
    let listen = p.check("server.listen", socket_addr(&raw.listen));
    let public_url = p.check("server.public_url", PublicUrl::parse(&raw.public_url));
    let admin_listen =
        raw.admin_listen.as_ref().map_or(Some(None), |a| p.check("server.admin_listen", socket_addr(a)).map(Some));
    if let (Some(l), Some(Some(a))) = (listen, admin_listen) {
        if l == a {
            p.add("server.admin_listen", format!("\"{a}\" is also server.listen; use another port"));
        }
    }
    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => Some(None),
        (Some(cert), Some(key)) => {
            let cert = ctx.base_dir.join(cert);
            let key = ctx.base_dir.join(key);
            let r = crate::tls::check_pem_pair(&cert, &key);
            p.check("server.tls_cert", r).map(|()| Some(TlsFiles { cert, key }))
        }
        (Some(_), None) => {
            p.add("server.tls_key", "is missing; tls_cert and tls_key go together");
            None
        }
        (None, Some(_)) => {
            p.add("server.tls_cert", "is missing; tls_cert and tls_key go together");
            None
        }
    };
    let mut trusted_proxies = Vec::new();
    for (i, cidr) in raw.trusted_proxies.iter().enumerate() {
        let parsed = cidr
            .parse::<IpNet>()
            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| format!("\"{cidr}\" is not a CIDR such as \"10.0.0.0/8\" or an IP address"));
        trusted_proxies.extend(p.check(format!("server.trusted_proxies[{i}]"), parsed));
    }
    let mut allowed_hosts: Vec<AllowedHost> = public_url.iter().map(AllowedHost::from_public_url).collect();
    for (i, h) in raw.extra_hosts.iter().enumerate() {
        allowed_hosts.extend(p.check(format!("server.extra_hosts[{i}]"), AllowedHost::parse(h)));
    }
    if raw.threads == 0 || raw.threads > 256 {
        p.add("server.threads", format!("{} is out of range; use 1 to 256", raw.threads));
    }
    // Pingora counts keep-alive time in whole seconds, and 0 would mean forever.
    let idle_timeout = Duration::from_secs(raw.idle_timeout.as_secs_f64().ceil() as u64);
    if idle_timeout.is_zero() {
        p.add("server.idle_timeout", "must be at least \"1s\"");
    }
    let limits = connection_limits(raw, p);
    Some(ServerConfig {
        listen: listen?,
        public_url: public_url?,
        tls: tls?,
        admin_listen: admin_listen?,
        trusted_proxies,
        allowed_hosts,
        threads: raw.threads,
        shutdown_grace: raw.shutdown_grace,
        shutdown_timeout: raw.shutdown_timeout,
        idle_timeout,
        limits: limits?,
        upgrade_socket: p.check("server.upgrade_socket", super::upgrade::socket(raw.upgrade_socket.as_deref()))?,
    })
}

fn connection_limits(raw: &RawServer, p: &mut Problems) -> Option<ConnectionLimits> {
    for (key, value) in [
        ("server.max_connections", raw.max_connections),
        ("server.max_connections_per_client", raw.max_connections_per_client),
    ] {
        if value == 0 {
            p.add(key, "must be at least 1");
        }
    }
    if raw.max_connections_per_client > raw.max_connections {
        p.add(
            "server.max_connections_per_client",
            format!("{} is above server.max_connections ({})", raw.max_connections_per_client, raw.max_connections),
        );
    }
    let header_timeout = p.check("server.header_timeout", Ttl::new(raw.header_timeout))?;
    Some(ConnectionLimits {
        max_connections: raw.max_connections.max(1),
        max_connections_per_client: raw.max_connections_per_client.clamp(1, raw.max_connections.max(1)),
        header_timeout: header_timeout.get(),
        body_min_rate: std::num::NonZeroU64::new(raw.body_min_rate),
    })
}

fn upstream(raw: &RawUpstream, p: &mut Problems) -> Option<UpstreamConfig> {
    if raw.addrs.is_empty() {
        p.add("upstream.addrs", "is empty; list at least one \"host:port\"");
    }
    for (i, a) in raw.addrs.iter().enumerate() {
        let ok =
            a.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            p.add(format!("upstream.addrs[{i}]"), format!("\"{a}\" is not a host:port, as in \"127.0.0.1:3000\""));
        }
    }
    if let Some(path) = &raw.health_check_path {
        if !path.starts_with('/') {
            p.add("upstream.health_check_path", format!("\"{path}\" must start with '/'"));
        }
    }
    if raw.sni.is_some() && !raw.tls {
        p.add("upstream.sni", "is set but upstream.tls is false");
    }
    let tls_sni = raw.tls.then(|| raw.sni.clone().unwrap_or_default());
    Some(UpstreamConfig {
        addrs: raw.addrs.clone(),
        tls_sni,
        health_check_interval: p.check("upstream.health_check_interval", Ttl::new(raw.health_check_interval))?,
        health_check_path: raw.health_check_path.clone(),
        connect_timeout: p.check("upstream.connect_timeout", Ttl::new(raw.connect_timeout))?,
        read_timeout: raw.read_timeout,
        idle_timeout: p.check("upstream.idle_timeout", Ttl::new(raw.idle_timeout))?,
    })
}

fn session(raw: &RawSession, ctx: &Context<'_>, p: &mut Problems) -> Option<SessionConfig> {
    let refs: Vec<(String, &String)> = match &raw.secret {
        RawSecrets::One(s) => vec![("session.secret".to_owned(), s)],
        RawSecrets::Many(list) => {
            if list.is_empty() {
                p.add("session.secret", "is an empty list; give at least one secret reference");
            }
            list.iter().enumerate().map(|(i, s)| (format!("session.secret[{i}]"), s)).collect()
        }
    };
    let mut secrets = Vec::new();
    for (key, reference) in refs {
        let resolved = secret::resolve(reference, ctx.env, ctx.base_dir).and_then(SessionSecret::parse);
        secrets.extend(p.check(key, resolved));
    }
    let default_name = if raw.cookie_secure { DEFAULT_SECURE_COOKIE_NAME } else { DEFAULT_COOKIE_NAME };
    let name_text = raw.cookie_name.as_deref().unwrap_or(default_name);
    let cookie_name = p.check("session.cookie_name", CookieName::parse(name_text));
    let lower = name_text.to_ascii_lowercase();
    if !raw.cookie_secure && (lower.starts_with("__host-") || lower.starts_with("__secure-")) {
        p.add(
            "session.cookie_name",
            format!("\"{name_text}\" needs cookie_secure = true (browsers drop a prefixed cookie without Secure)"),
        );
    }
    let popup_binding = match raw.popup_binding.as_str() {
        "handoff" => Some(PopupBinding::Handoff),
        "ticket" => Some(PopupBinding::Ticket),
        other => {
            p.add("session.popup_binding", format!("\"{other}\" is not valid; use \"handoff\" or \"ticket\""));
            None
        }
    };
    let same_site = p.check("session.cookie_same_site", SameSite::parse(&raw.cookie_same_site));
    if !raw.cookie_secure && same_site == Some(SameSite::None) {
        p.add(
            "session.cookie_secure",
            "must be true while cookie_same_site = \"none\" (browsers drop the cookie otherwise)",
        );
    } else if !raw.cookie_secure && raw.cookie_partitioned {
        p.add(
            "session.cookie_secure",
            "must be true while cookie_partitioned = true (CHIPS cookies are always Secure)",
        );
    }
    Some(SessionConfig {
        secrets,
        token_ttl: p.check("session.token_ttl", Ttl::new(raw.token_ttl))?,
        ticket_ttl: p.check("session.ticket_ttl", Ttl::new(raw.ticket_ttl))?,
        lifetime: p.check("session.lifetime", Ttl::new(raw.lifetime))?,
        handoff_ttl: p.check("session.handoff_ttl", Ttl::new(raw.handoff_ttl))?,
        popup_binding: popup_binding?,
        cookie_name: cookie_name?,
        cookie_secure: raw.cookie_secure,
        cookie_same_site: same_site?,
        cookie_partitioned: raw.cookie_partitioned,
    })
}

fn store(raw: &RawStore, ctx: &Context<'_>, p: &mut Problems) -> Option<StoreConfig> {
    // A URL carrying a password is a secret: it may be given as "env:NAME" / "file:PATH".
    let resolved = match &raw.url {
        Some(u) if u.starts_with("env:") || u.starts_with("file:") => {
            use secrecy::ExposeSecret;
            Some(p.check("store.url", secret::resolve(u, ctx.env, ctx.base_dir))?.expose_secret().to_owned())
        }
        other => other.clone(),
    };
    match (raw.kind.as_str(), &resolved) {
        ("memory", None) => Some(StoreConfig::Memory),
        ("memory", Some(_)) => {
            p.add("store.url", "is only used with store.kind = \"redis\"");
            None
        }
        ("redis", None) => {
            p.add("store.url", "is missing; store.kind = \"redis\" needs a url such as \"redis://127.0.0.1:6379/0\"");
            None
        }
        ("redis", Some(u)) => {
            let shown = if raw.url.as_deref() == Some(u.as_str()) { u.as_str() } else { "the referenced URL" };
            let url = Url::parse(u).map_err(|e| format!("\"{shown}\" is not a URL: {e}"));
            let url = url.and_then(|url| match url.scheme() {
                "redis" | "rediss" => Ok(url),
                s => Err(format!("scheme \"{s}\" is not redis or rediss")),
            });
            let timeout = p.check("store.timeout", Ttl::new(raw.timeout));
            if raw.key_prefix.is_empty() || raw.key_prefix.contains(char::is_whitespace) {
                p.add("store.key_prefix", "must be non-empty and contain no spaces");
            }
            let url = p.check("store.url", url)?;
            Some(StoreConfig::Redis { url, key_prefix: raw.key_prefix.clone(), timeout: timeout? })
        }
        (other, _) => {
            p.add("store.kind", format!("\"{other}\" is not a store kind; valid: memory, redis"));
            None
        }
    }
}

fn url_field(p: &mut Problems, key: String, value: &Option<String>, required: bool) -> Option<Option<Url>> {
    match value {
        None if required => {
            p.add(key, "is missing");
            None
        }
        None => Some(None),
        Some(text) => {
            let parsed = Url::parse(text).map_err(|e| format!("\"{text}\" is not a URL: {e}"));
            let parsed = parsed.and_then(|u| match u.scheme() {
                "https" => Ok(u),
                "http" if is_loopback_url(&u) => Ok(u),
                "http" => Err(format!("\"{text}\" uses http; use https (http is allowed only for loopback hosts)")),
                s => Err(format!("\"{text}\" has scheme \"{s}\"; use https")),
            });
            p.check(key, parsed).map(Some)
        }
    }
}

fn is_loopback_url(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn channel(raw: &RawChannel, p: &mut Problems) -> Option<ChannelConfig> {
    let mut allowed_origins = Vec::new();
    for (i, o) in raw.allowed_origins.iter().enumerate() {
        let parsed = PublicUrl::parse(o).map(|u| u.origin()).map_err(|_| {
            format!("\"{o}\" is not an origin such as \"https://addin.example.com\" (scheme, host, optional port)")
        });
        allowed_origins.extend(p.check(format!("channel.allowed_origins[{i}]"), parsed));
    }
    if let Some(path) = &raw.socketio_path {
        if !path.starts_with('/') || path.starts_with("/_gateway/") || path.starts_with("/connect/") {
            p.add("channel.socketio_path", format!("\"{path}\" must start with '/' and not be a gateway route"));
        }
    }
    for (key, value) in [
        ("channel.max_sockets_per_session", raw.max_sockets_per_session),
        ("channel.max_sockets_per_client", raw.max_sockets_per_client),
        ("channel.max_sockets", raw.max_sockets),
    ] {
        if value == 0 {
            p.add(key, "must be at least 1");
        }
    }
    Some(ChannelConfig {
        allowed_origins,
        socketio_path: raw.socketio_path.clone(),
        max_sockets_per_session: raw.max_sockets_per_session,
        ping_interval: p.check("channel.ping_interval", Ttl::new(raw.ping_interval))?,
        max_sockets_per_client: raw.max_sockets_per_client.max(1),
        max_sockets: raw.max_sockets.max(1),
        join_timeout: p.check("channel.join_timeout", Ttl::new(raw.join_timeout))?,
    })
}

fn identity(raw: &RawIdentity, p: &mut Problems) -> Option<IdentityHeaderNames> {
    let mut header = |key: &str, value: &str| {
        let parsed =
            HeaderName::from_bytes(value.as_bytes()).map_err(|_| format!("\"{value}\" is not a valid header name"));
        p.check(format!("identity.{key}"), parsed)
    };
    let names = IdentityHeaderNames {
        user: header("user_header", &raw.user_header)?,
        email: header("email_header", &raw.email_header)?,
        preferred_username: header("preferred_username_header", &raw.preferred_username_header)?,
        name: header("name_header", &raw.name_header)?,
        provider: header("provider_header", &raw.provider_header)?,
        access_token: header("access_token_header", &raw.access_token_header)?,
    };
    let all = names.all();
    for (i, a) in all.iter().enumerate() {
        if all[..i].contains(a) {
            p.add("identity", format!("header name \"{a}\" is used twice"));
            return None;
        }
    }
    Some(names)
}
