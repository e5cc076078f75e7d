//! `RawConfig` → `Config`: checks every rule and collects every problem with its key path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::{HeaderName, Method};
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
    let admin_listen = match &raw.admin_listen {
        Some(a) => p.check("server.admin_listen", socket_addr(a)).map(Some),
        None => Some(None),
    };
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

fn providers(
    raw: &BTreeMap<String, RawProvider>,
    dev_allowed: bool,
    ctx_public: Option<&PublicUrl>,
    ctx: &Context<'_>,
    p: &mut Problems,
) -> Vec<ProviderConfig> {
    let mut out = Vec::new();
    for (name, rp) in raw {
        let base = format!("providers.{name}");
        let Some(pname) = p.check(base.clone(), ProviderName::parse(name)) else { continue };
        let kind = match rp.kind.as_str() {
            "entra" => entra_kind(&base, rp, ctx_public, p),
            "google" => Some(ProviderKind::Google),
            "github" => Some(ProviderKind::Github),
            "oidc" => url_field(p, format!("{base}.issuer"), &rp.issuer, true)
                .flatten()
                .map(|issuer| ProviderKind::Oidc { issuer }),
            "oauth2" => {
                let a = url_field(p, format!("{base}.authorize_url"), &rp.authorize_url, true).flatten();
                let t = url_field(p, format!("{base}.token_url"), &rp.token_url, true).flatten();
                let u = url_field(p, format!("{base}.userinfo_url"), &rp.userinfo_url, true).flatten();
                match (a, t, u) {
                    (Some(authorize_url), Some(token_url), Some(userinfo_url)) => {
                        Some(ProviderKind::OAuth2 { authorize_url, token_url, userinfo_url })
                    }
                    _ => None,
                }
            }
            "dev" => {
                if !dev_allowed {
                    p.add(
                        format!("{base}.kind"),
                        "\"dev\" is refused on a non-loopback listener; set server.allow_dev_provider = true to allow it",
                    );
                }
                Some(ProviderKind::Dev)
            }
            other => {
                p.add(
                    format!("{base}.kind"),
                    format!("\"{other}\" is not a provider kind; valid: entra, google, github, oidc, oauth2, dev"),
                );
                None
            }
        };
        if rp.kind != "entra" {
            let entra_only = [
                ("tenant", rp.tenant.is_some()),
                ("authority", rp.authority.is_some()),
                ("accept_bearer", rp.accept_bearer),
                ("api_audiences", rp.api_audiences.is_some()),
                ("bearer_scopes", rp.bearer_scopes.is_some()),
            ];
            for (key, set) in entra_only {
                if set {
                    p.add(format!("{base}.{key}"), "is only used with kind = \"entra\"");
                }
            }
        }
        let sign_in = sign_in_rules(&base, rp, p);
        let is_dev = rp.kind == "dev";
        let client_id = match &rp.client_id {
            Some(id) if !id.trim().is_empty() => Some(id.clone()),
            Some(_) => {
                p.add(format!("{base}.client_id"), "is empty");
                None
            }
            None if is_dev => Some("gateway-dev".to_owned()),
            None => {
                p.add(format!("{base}.client_id"), "is missing");
                None
            }
        };
        let client_secret = match &rp.client_secret {
            Some(r) => p.check(format!("{base}.client_secret"), secret::resolve(r, ctx.env, ctx.base_dir)).map(Some),
            None => Some(None),
        };
        let revocation_url = url_field(p, format!("{base}.revocation_url"), &rp.revocation_url, false);
        let scopes = rp.scopes.clone().unwrap_or_else(|| default_scopes(&rp.kind));
        if let (Some(kind), Some(client_id), Some(client_secret), Some(revocation_url)) =
            (kind, client_id, client_secret, revocation_url)
        {
            out.push(ProviderConfig {
                display_name: rp.display_name.clone().unwrap_or_else(|| name.clone()),
                name: pname,
                kind,
                client_id,
                client_secret,
                scopes,
                revocation_url,
                sign_in,
            });
        }
    }
    out
}

/// The Entra kind: tenant, authority, and the bearer settings of single sign-on.
fn entra_kind(base: &str, rp: &RawProvider, public: Option<&PublicUrl>, p: &mut Problems) -> Option<ProviderKind> {
    let tenant = rp.tenant.clone().unwrap_or_else(|| "common".to_owned());
    let authority = rp.authority.clone().or_else(|| Some(crate::providers::presets::ENTRA_LOGIN.to_owned()));
    let authority = url_field(p, format!("{base}.authority"), &authority, true).flatten()?;
    if authority.path() != "/" || authority.query().is_some() {
        p.add(
            format!("{base}.authority"),
            format!("\"{authority}\" must be a scheme and host only, as in \"https://login.microsoftonline.com\""),
        );
    }
    let bearer = rp.accept_bearer.then(|| {
        let client_id = rp.client_id.clone().unwrap_or_default();
        let host = public.map(PublicUrl::authority).unwrap_or_default();
        let audiences =
            rp.api_audiences.clone().unwrap_or_else(|| vec![client_id.clone(), format!("api://{host}/{client_id}")]);
        if audiences.is_empty() {
            p.add(format!("{base}.api_audiences"), "is an empty list; no token could ever be accepted");
        }
        let scopes = rp.bearer_scopes.clone().unwrap_or_else(|| vec!["access_as_user".to_owned()]);
        if scopes.is_empty() {
            p.add(
                format!("{base}.bearer_scopes"),
                "is an empty list; name the scope your API exposes, as in \"access_as_user\"",
            );
        }
        BearerConfig { audiences, scopes }
    });
    if !rp.accept_bearer && (rp.api_audiences.is_some() || rp.bearer_scopes.is_some()) {
        p.add(format!("{base}.accept_bearer"), "is false, so api_audiences and bearer_scopes are not used");
    }
    Some(ProviderKind::Entra { tenant, authority, bearer })
}

/// Entra tenants that admit users of many organisations (or personal accounts).
const MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

/// `allowed_*` of a provider. A multi-tenant Entra provider must say which tenants it admits:
/// without that, any Microsoft account anywhere could sign in.
fn sign_in_rules(base: &str, rp: &RawProvider, p: &mut Problems) -> SignInRules {
    let multi_tenant = rp.kind == "entra"
        && MULTI_TENANT.contains(&rp.tenant.as_deref().unwrap_or("common").to_ascii_lowercase().as_str());
    let tenants = match &rp.allowed_tenants {
        None if multi_tenant => {
            p.add(
                format!("{base}.allowed_tenants"),
                format!(
                    "is required while tenant = \"{}\" (any Microsoft account could sign in); list tenant ids, or [\"*\"] to admit any tenant on purpose",
                    rp.tenant.as_deref().unwrap_or("common")
                ),
            );
            None
        }
        None => None,
        Some(list) if list.is_empty() => {
            p.add(format!("{base}.allowed_tenants"), "is an empty list; list tenant ids, or [\"*\"] for any tenant");
            None
        }
        Some(list) if list.iter().any(|t| t == "*") => {
            if list.len() > 1 {
                p.add(
                    format!("{base}.allowed_tenants"),
                    "\"*\" admits every tenant; it cannot be combined with tenant ids",
                );
            }
            None
        }
        Some(list) => Some(list.iter().map(|t| t.trim().to_ascii_lowercase()).collect()),
    };
    if rp.allowed_tenants.is_some() && !matches!(rp.kind.as_str(), "entra" | "oidc") {
        p.add(format!("{base}.allowed_tenants"), "is only used with kind = \"entra\" or \"oidc\" (the `tid` claim)");
    }
    if !rp.allowed_groups.is_empty() && !matches!(rp.kind.as_str(), "entra" | "oidc" | "dev") {
        p.add(format!("{base}.allowed_groups"), "needs an ID token with `groups` or `roles` (kind entra, oidc or dev)");
    }
    SignInRules {
        tenants,
        domains: lower_domains(&format!("{base}.allowed_domains"), &rp.allowed_domains, p),
        emails: lower_emails(&format!("{base}.allowed_emails"), &rp.allowed_emails, p),
        groups: rp.allowed_groups.clone(),
    }
}

fn lower_domains(key: &str, list: &[String], p: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for d in list {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || d.contains('@') || d.contains('/') || d.contains(' ') {
            p.add(key, format!("\"{d}\" is not a domain, as in \"contoso.com\""));
        } else {
            out.push(d);
        }
    }
    out
}

fn lower_emails(key: &str, list: &[String], p: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for e in list {
        let e = e.trim().to_ascii_lowercase();
        if e.split('@').count() != 2 || e.starts_with('@') || e.ends_with('@') {
            p.add(key, format!("\"{e}\" is not an email address"));
        } else {
            out.push(e);
        }
    }
    out
}

fn allow_rule(base: &str, raw: &RawAllow, p: &mut Problems) -> AllowRule {
    let rule = AllowRule {
        emails: lower_emails(&format!("{base}.allow.emails"), &raw.emails, p),
        domains: lower_domains(&format!("{base}.allow.domains"), &raw.domains, p),
        groups: raw.groups.clone(),
        roles: raw.roles.clone(),
    };
    if raw.emails.is_empty() && raw.domains.is_empty() && raw.groups.is_empty() && raw.roles.is_empty() {
        p.add(
            format!("{base}.allow"),
            "lists nobody, so nobody would pass; remove it or name emails, domains, groups or roles",
        );
    }
    rule
}

fn default_scopes(kind: &str) -> Vec<String> {
    let scopes: &[&str] = match kind {
        "github" => &["read:user", "user:email"],
        "oauth2" => &[],
        "entra" => &["openid", "profile", "email", "offline_access"],
        _ => &["openid", "profile", "email"],
    };
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

fn route(i: usize, raw: &RawRoute, names: &[ProviderName], p: &mut Problems) -> Option<RouteRule> {
    let base = format!("routes[{i}]");
    if !raw.prefix.starts_with('/') {
        p.add(format!("{base}.prefix"), format!("\"{}\" must start with '/'", raw.prefix));
    }
    let methods = raw.methods.as_ref().map(|ms| {
        ms.iter()
            .filter_map(|m| {
                let parsed = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("\"{m}\" is not an HTTP method"));
                p.check(format!("{base}.methods"), parsed)
            })
            .collect::<Vec<_>>()
    });
    let require = match &raw.require {
        RawRequire::Word(w) if w == "any" => Require::Any,
        RawRequire::Word(w) => {
            p.add(format!("{base}.require"), format!("\"{w}\" is not valid; use \"any\" or a list of provider names"));
            return None;
        }
        RawRequire::List(list) => {
            if list.is_empty() {
                p.add(format!("{base}.require"), "is an empty list; name at least one provider or use \"any\"");
            }
            let mut out = Vec::new();
            for n in list {
                match names.iter().find(|k| k.as_str() == n) {
                    Some(k) => out.push(k.clone()),
                    None => p.add(format!("{base}.require"), unknown_provider(n, names)),
                }
            }
            Require::Providers(out)
        }
    };
    let allow = raw.allow.as_ref().map(|a| allow_rule(&base, a, p));
    if raw.obo_scopes.iter().any(|s| s.trim().is_empty()) {
        p.add(format!("{base}.obo_scopes"), "holds an empty scope");
    }
    Some(RouteRule {
        prefix: raw.prefix.clone(),
        methods,
        require,
        forward_access_token: raw.forward_access_token,
        allow,
        obo_scopes: raw.obo_scopes.clone(),
    })
}

/// A route with `obo_scopes` exchanges Entra tokens with the provider's client secret: every
/// provider that can sign a request in there must be an Entra provider with one.
fn check_obo_routes(raw: &[RawRoute], routes: &[RouteRule], providers: &[ProviderConfig], p: &mut Problems) {
    for rule in routes.iter().filter(|r| !r.obo_scopes.is_empty()) {
        let Some(index) = raw.iter().position(|r| r.prefix == rule.prefix) else { continue };
        let unfit: Vec<&str> = providers
            .iter()
            .filter(|pc| match &rule.require {
                Require::Any => true,
                Require::Providers(list) => list.contains(&pc.name),
            })
            .filter(|pc| !matches!(pc.kind, ProviderKind::Entra { .. }) || pc.client_secret.is_none())
            .map(|pc| pc.name.as_str())
            .collect();
        if !unfit.is_empty() {
            p.add(
                format!("routes[{index}].obo_scopes"),
                format!("needs Entra providers with a client_secret; not: {}", unfit.join(", ")),
            );
        }
    }
}

fn unknown_provider(name: &str, names: &[ProviderName]) -> String {
    let known: Vec<&str> = names.iter().map(ProviderName::as_str).collect();
    if known.is_empty() {
        format!("provider \"{name}\" is not defined; no [providers.*] table exists")
    } else {
        format!("provider \"{name}\" is not defined; defined: {}", known.join(", "))
    }
}

fn teams(raw: &RawTeams, names: &[ProviderName], p: &mut Problems) -> Option<TeamsConfig> {
    if !raw.bot_path.starts_with('/') {
        p.add("teams.bot_path", format!("\"{}\" must start with '/'", raw.bot_path));
    }
    if raw.app_id.trim().is_empty() {
        p.add("teams.app_id", "is empty");
    }
    let provider = names.iter().find(|k| k.as_str() == raw.provider).cloned();
    if provider.is_none() {
        p.add("teams.provider", unknown_provider(&raw.provider, names));
    }
    let metadata = raw.openid_metadata.clone().or_else(|| Some(BOT_FRAMEWORK_METADATA.to_owned()));
    let openid_metadata = url_field(p, "teams.openid_metadata".to_owned(), &metadata, true).flatten();
    let authority = raw.authority.clone().or_else(|| Some(DEFAULT_ENTRA_AUTHORITY.to_owned()));
    let authority = url_field(p, "teams.authority".to_owned(), &authority, true).flatten();
    let tenant = match (&raw.tenant, authority) {
        (Some(t), _) if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)) => {
            p.add("teams.tenant", format!("\"{t}\" is not a tenant id"));
            None
        }
        (Some(t), Some(a)) => Some((t.to_ascii_lowercase(), a)),
        _ => None,
    };
    if raw.authority.is_some() && raw.tenant.is_none() {
        p.add("teams.authority", "is only used with teams.tenant");
    }
    Some(TeamsConfig {
        tenant,
        bot_path: raw.bot_path.clone(),
        provider: provider?,
        app_id: raw.app_id.clone(),
        verify_bot_token: raw.verify_bot_token,
        openid_metadata: openid_metadata?,
        code_ttl: p.check("teams.code_ttl", Ttl::new(raw.code_ttl))?,
        pass_through: raw.pass_through,
        sso: raw.sso,
        scopes: raw.scopes.clone(),
    })
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
