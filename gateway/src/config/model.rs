//! The validated configuration the rest of the gateway reads: typed values, no raw strings with rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use secrecy::SecretString;
use url::Url;

use super::types::{AllowedHost, CookieName, ProviderName, PublicUrl, SameSite, Ttl};

/// The whole validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from, for messages.
    pub origin: String,
    /// `[server]`
    pub server: ServerConfig,
    /// `[upstream]`
    pub upstream: UpstreamConfig,
    /// `[session]`
    pub session: SessionConfig,
    /// `[store]`
    pub store: StoreConfig,
    /// `[providers.*]`, ordered by name.
    pub providers: Vec<ProviderConfig>,
    /// `[[routes]]`, in file order.
    pub routes: Vec<RouteRule>,
    /// `[teams]`
    pub teams: Option<TeamsConfig>,
    /// `[channel]`
    pub channel: ChannelConfig,
    /// `[identity]`
    pub identity: IdentityHeaderNames,
    /// `[telemetry]`
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// Where spans are sent (OTLP/HTTP, protobuf); no export when absent.
    pub otlp_endpoint: Option<Url>,
}

/// PEM files of the TLS listener, checked readable and parseable at load.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// `[server]`
#[derive(Debug)]
pub struct ServerConfig {
    /// Main listener.
    pub listen: SocketAddr,
    /// Public URL.
    pub public_url: PublicUrl,
    /// TLS listener files; plain HTTP when absent.
    pub tls: Option<TlsFiles>,
    /// Admin listener.
    pub admin_listen: Option<SocketAddr>,
    /// Peers whose forwarding headers are trusted.
    pub trusted_proxies: Vec<IpNet>,
    /// Accepted `Host` values: `public_url`'s first, then `extra_hosts`.
    pub allowed_hosts: Vec<AllowedHost>,
    /// Worker threads.
    pub threads: usize,
    /// Grace period after SIGTERM.
    pub shutdown_grace: Duration,
    /// Runtime stop timeout after the grace period.
    pub shutdown_timeout: Duration,
    /// Longest idle time between two requests on a kept-alive client connection, whole
    /// seconds, at least one.
    pub idle_timeout: Duration,
    /// Admission limits and deadlines of client connections.
    pub limits: ConnectionLimits,
    /// Where a new process waits for the listening sockets in a zero-downtime upgrade (absolute).
    pub upgrade_socket: Option<PathBuf>,
}

/// Admission limits and deadlines of client connections (`server.max_connections`,
/// `max_connections_per_client`, `header_timeout`, `body_min_rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open client connections, all clients together; at least 1.
    pub max_connections: usize,
    /// Open client connections from one client address; at least 1.
    pub max_connections_per_client: usize,
    /// Longest time from a request head's first byte to its end (and for a TLS handshake).
    pub header_timeout: Duration,
    /// Bytes per second a request body must average over the time spent waiting for it, after
    /// an allowance of `header_timeout`; `None` when off.
    pub body_min_rate: Option<std::num::NonZeroU64>,
}

/// `[upstream]`
#[derive(Debug)]
pub struct UpstreamConfig {
    /// `host:port` of each upstream.
    pub addrs: Vec<String>,
    /// TLS to upstreams, with this SNI.
    pub tls_sni: Option<String>,
    /// Probe interval.
    pub health_check_interval: Ttl,
    /// HTTP probe path; TCP probe when absent.
    pub health_check_path: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Ttl,
    /// Read timeout, none when absent.
    pub read_timeout: Option<Duration>,
    /// Pooled connection idle lifetime.
    pub idle_timeout: Ttl,
}

/// One HMAC key of `session.secret`, at least 32 bytes.
#[derive(Debug)]
pub struct SessionSecret(SecretString);

impl SessionSecret {
    /// Refuses secrets shorter than [`super::defaults::MIN_SECRET_LEN`] bytes.
    pub fn parse(secret: SecretString) -> Result<Self, String> {
        use secrecy::ExposeSecret;
        let len = secret.expose_secret().len();
        if len < super::defaults::MIN_SECRET_LEN {
            return Err(format!(
                "secret is {len} bytes; at least {} are needed (e.g. `openssl rand -base64 48`)",
                super::defaults::MIN_SECRET_LEN
            ));
        }
        Ok(Self(secret))
    }

    /// The key bytes, for the signing keyring only.
    pub fn expose(&self) -> &[u8] {
        use secrecy::ExposeSecret;
        self.0.expose_secret().as_bytes()
    }
}

/// `[session]`
#[derive(Debug)]
pub struct SessionConfig {
    /// Signing keys, newest first: the first signs, all verify.
    pub secrets: Vec<SessionSecret>,
    /// Absolute token lifetime.
    pub token_ttl: Ttl,
    /// Connect and channel ticket lifetime.
    pub ticket_ttl: Ttl,
    /// Lifetime of one session cookie value.
    pub lifetime: Ttl,
    /// Lifetime of a parked sign-in waiting for its handoff code.
    pub handoff_ttl: Ttl,
    /// How a popup's sign-in reaches its task pane.
    pub popup_binding: PopupBinding,
    /// Cookie name.
    pub cookie_name: CookieName,
    /// `Secure`.
    pub cookie_secure: bool,
    /// `SameSite`.
    pub cookie_same_site: SameSite,
    /// `Partitioned`.
    pub cookie_partitioned: bool,
}

/// `session.popup_binding`: how a popup's sign-in is attached to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopupBinding {
    /// Only to the session whose cookie the callback carries, or whose task pane redeems the
    /// handoff code the completion page gave its opener.
    Handoff,
    /// To whatever session the connect ticket names (phishable: a link signs its owner's
    /// session in as whoever opens it). Explicit opt-in only.
    Ticket,
}

/// `[store]`
#[derive(Debug)]
pub enum StoreConfig {
    /// In-process moka cache.
    Memory,
    /// Shared Redis.
    Redis {
        /// `redis://` or `rediss://` URL.
        url: Url,
        /// Prefix of keys and channels.
        key_prefix: String,
        /// Longest wait for one call.
        timeout: Ttl,
    },
}

/// What a provider is and where its endpoints are.
#[derive(Debug)]
pub enum ProviderKind {
    /// Microsoft identity platform v2.0 for `tenant`.
    Entra {
        /// `common`, `organizations`, `consumers` or a tenant id.
        tenant: String,
        /// The cloud's login host (`https://login.microsoftonline.com`, a sovereign cloud, or a
        /// local stand-in on loopback).
        authority: Url,
        /// Bearer tokens from Office and Teams single sign-on, when accepted.
        bearer: Option<BearerConfig>,
    },
    /// Google (OIDC).
    Google,
    /// GitHub (OAuth2 + user API).
    Github,
    /// Any OIDC issuer, by discovery.
    Oidc {
        /// Issuer URL.
        issuer: Url,
    },
    /// Plain OAuth2 with explicit endpoints.
    OAuth2 {
        /// Authorization endpoint.
        authorize_url: Url,
        /// Token endpoint.
        token_url: Url,
        /// Userinfo endpoint (who the user is).
        userinfo_url: Url,
    },
    /// The built-in development provider.
    Dev,
}

/// `accept_bearer = true`: what an `Authorization: Bearer` access token must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerConfig {
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// `scp` must hold one of these.
    pub scopes: Vec<String>,
}

/// `[providers.NAME]`
#[derive(Debug)]
pub struct ProviderConfig {
    /// Name.
    pub name: ProviderName,
    /// Kind and endpoints.
    pub kind: ProviderKind,
    /// Name shown to users.
    pub display_name: String,
    /// Client id (`dev`: the gateway's own).
    pub client_id: String,
    /// Client secret; public client with PKCE when absent.
    pub client_secret: Option<SecretString>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// RFC 7009 revocation endpoint.
    pub revocation_url: Option<Url>,
    /// Who may sign in.
    pub sign_in: SignInRules,
}

/// `allowed_*` of a provider: who may sign in. Every list that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInRules {
    /// Tenant ids (`tid`); `None` = any (`["*"]` or unset on a single-tenant provider).
    pub tenants: Option<Vec<String>>,
    /// Verified email domains, lower-case.
    pub domains: Vec<String>,
    /// Email addresses, lower-case.
    pub emails: Vec<String>,
    /// Values of `groups` or `roles`.
    pub groups: Vec<String>,
}

/// `allow` of a route: who may pass once signed in; any match passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowRule {
    /// Email addresses, lower-case.
    pub emails: Vec<String>,
    /// Verified email domains, lower-case.
    pub domains: Vec<String>,
    /// Values of the `groups` claim.
    pub groups: Vec<String>,
    /// Values of the `roles` claim.
    pub roles: Vec<String>,
}

/// Which sign-ins grant access to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Require {
    /// Any configured provider.
    Any,
    /// One of these.
    Providers(Vec<ProviderName>),
}

/// `[[routes]]`: a protected path prefix.
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// Normalised path prefix.
    pub prefix: String,
    /// Methods it applies to; all when absent.
    pub methods: Option<Vec<Method>>,
    /// Who may pass.
    pub require: Require,
    /// Forward the access token upstream.
    pub forward_access_token: bool,
    /// Who may pass; everyone signed in when absent.
    pub allow: Option<AllowRule>,
    /// Scopes of the on-behalf-of token forwarded as the access token (Entra); empty: none.
    pub obo_scopes: Vec<String>,
}

/// `[teams]`
#[derive(Debug, Clone)]
pub struct TeamsConfig {
    /// Bot endpoint path.
    pub bot_path: String,
    /// Provider for Teams users.
    pub provider: ProviderName,
    /// Bot app id.
    pub app_id: String,
    /// Check Bot Framework JWTs.
    pub verify_bot_token: bool,
    /// Bot Framework OpenID metadata URL.
    pub openid_metadata: Url,
    /// A single-tenant bot's tenant id and the Entra authority that issues its tokens.
    pub tenant: Option<(String, Url)>,
    /// Answer `signin/tokenExchange` and single sign-on queries.
    pub sso: bool,
    /// On-behalf-of scopes of a Teams single sign-on.
    pub scopes: Vec<String>,
    /// Security code lifetime.
    pub code_ttl: Ttl,
    /// Only JWT checks.
    pub pass_through: bool,
}

/// `[channel]`
#[derive(Debug)]
pub struct ChannelConfig {
    /// Allowed origins besides the gateway's own (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// socket.io endpoint path, when served by the gateway.
    pub socketio_path: Option<String>,
    /// Socket cap per session.
    pub max_sockets_per_session: usize,
    /// Ping interval.
    pub ping_interval: Ttl,
    /// Status-channel entries (Engine.IO sessions, SSE streams, WebSockets) one client address
    /// may hold; at least 1.
    pub max_sockets_per_client: usize,
    /// Engine.IO sessions alive at once; at least 1.
    pub max_sockets: usize,
    /// Time an Engine.IO session has to join before it is closed.
    pub join_timeout: Ttl,
}

/// `[identity]`: header names, all distinct.
#[derive(Debug, Clone)]
pub struct IdentityHeaderNames {
    /// Subject.
    pub user: HeaderName,
    /// Email.
    pub email: HeaderName,
    /// Preferred user name.
    pub preferred_username: HeaderName,
    /// Display name.
    pub name: HeaderName,
    /// Provider.
    pub provider: HeaderName,
    /// Access token.
    pub access_token: HeaderName,
}

impl IdentityHeaderNames {
    /// All six names.
    pub fn all(&self) -> [&HeaderName; 6] {
        [&self.user, &self.email, &self.preferred_username, &self.name, &self.provider, &self.access_token]
    }
}
