//! The serde schema of the TOML file, one struct per table, field names equal to the keys.
//!
//! Nothing here is checked beyond its TOML type: `validate` turns a [`RawConfig`] into a
//! [`super::Config`] of typed values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

mod serde_defaults;

use serde::Deserialize;

use super::defaults::*;
use serde_defaults::*;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`
    pub server: RawServer,
    /// `[upstream]`
    pub upstream: RawUpstream,
    /// `[session]`
    pub session: RawSession,
    /// `[store]`
    #[serde(default)]
    pub store: RawStore,
    /// `[providers.NAME]`
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    /// `[[routes]]`
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// `[teams]`
    pub teams: Option<RawTeams>,
    /// `[channel]`
    #[serde(default)]
    pub channel: RawChannel,
    /// `[identity]`
    #[serde(default)]
    pub identity: RawIdentity,
    /// `[telemetry]`
    #[serde(default)]
    pub telemetry: super::telemetry::RawTelemetry,
}

/// `[server]`: listeners and public identity of the gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Main listener address, `IP:PORT`.
    pub listen: String,
    /// The URL browsers use to reach the gateway.
    pub public_url: String,
    /// PEM certificate chain; with `tls_key`, the listener speaks TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Admin listener (health, metrics); off when absent.
    pub admin_listen: Option<String>,
    /// CIDRs whose `X-Forwarded-*` headers are trusted.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Other `Host` values accepted besides `public_url`'s.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// Worker threads of the proxy service.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Grace period for in-flight requests after SIGTERM.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Time the runtimes get to stop after the grace period.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How long a kept-alive client connection may sit idle between two requests.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest time from a request head's first byte to its end.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Bytes per second a request body must average; 0 turns the check off.
    #[serde(default = "default_body_min_rate")]
    pub body_min_rate: u64,
    /// Open client connections, all clients together.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open client connections from one client address.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Allows the built-in `dev` provider on a non-loopback listener.
    #[serde(default)]
    pub allow_dev_provider: bool,
    /// Unix socket a `gateway run --upgrade` takes the listening sockets over on; SIGQUIT hands them.
    pub upgrade_socket: Option<PathBuf>,
}

/// `[upstream]`: the add-in servers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `IP:PORT` or `host:PORT` of each upstream.
    pub addrs: Vec<String>,
    /// Speak TLS to the upstreams.
    #[serde(default)]
    pub tls: bool,
    /// SNI and certificate name for upstream TLS.
    pub sni: Option<String>,
    /// How often each upstream is probed.
    #[serde(default = "default_health_check_interval", with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// Probe with `GET` on this path (2xx = healthy) instead of a TCP connect.
    pub health_check_path: Option<String>,
    /// Connect timeout.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Upstream read timeout; none when absent.
    #[serde(default, with = "humantime_serde")]
    pub read_timeout: Option<Duration>,
    /// Idle keep-alive lifetime of pooled connections.
    #[serde(default = "default_upstream_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// `session.secret`: one reference or a list (the first signs, all verify).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSecrets {
    /// One secret reference.
    One(String),
    /// Several, newest first.
    Many(Vec<String>),
}

/// `[session]`: cookie and token lifetimes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// Signing keys as secret references.
    pub secret: RawSecrets,
    /// Absolute token lifetime after sign-in.
    #[serde(default = "default_token_ttl", with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Lifetime of connect tickets.
    #[serde(default = "default_ticket_ttl", with = "humantime_serde")]
    pub ticket_ttl: Duration,
    /// Session cookie name; `__Host-gw_session` while `cookie_secure`, else `gw_session`.
    pub cookie_name: Option<String>,
    /// Lifetime of a session cookie value (a sign-in issues a new one).
    #[serde(default = "default_session_lifetime", with = "humantime_serde")]
    pub lifetime: Duration,
    /// How long a finished sign-in waits for its task pane to redeem the handoff code.
    #[serde(default = "default_handoff_ttl", with = "humantime_serde")]
    pub handoff_ttl: Duration,
    /// `handoff` (default) or `ticket` (attach to the ticket's session: phishable, opt-in).
    #[serde(default = "default_popup_binding")]
    pub popup_binding: String,
    /// `Secure` attribute.
    #[serde(default = "default_true")]
    pub cookie_secure: bool,
    /// `SameSite` attribute: `none`, `lax` or `strict`.
    #[serde(default = "default_cookie_same_site")]
    pub cookie_same_site: String,
    /// `Partitioned` attribute (CHIPS).
    #[serde(default = "default_true")]
    pub cookie_partitioned: bool,
}

/// `[store]`: where tokens live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `memory` or `redis`.
    #[serde(default = "default_store_kind")]
    pub kind: String,
    /// Redis URL for `kind = "redis"`.
    pub url: Option<String>,
    /// Prefix of Redis keys and channels.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Longest wait for one Redis call.
    #[serde(default = "default_store_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RawStore {
    fn default() -> Self {
        Self { kind: default_store_kind(), url: None, key_prefix: default_key_prefix(), timeout: DEFAULT_STORE_TIMEOUT }
    }
}

/// `[providers.NAME]`: one identity provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// `entra`, `google`, `github`, `oidc`, `oauth2` or `dev`.
    pub kind: String,
    /// Name shown to users.
    pub display_name: Option<String>,
    /// Entra tenant (`common`, `organizations`, `consumers` or a tenant id).
    pub tenant: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// OAuth client secret, as a secret reference.
    pub client_secret: Option<String>,
    /// Scopes requested.
    pub scopes: Option<Vec<String>>,
    /// OIDC issuer (discovery) for `kind = "oidc"`.
    pub issuer: Option<String>,
    /// Authorization endpoint for `kind = "oauth2"`.
    pub authorize_url: Option<String>,
    /// Token endpoint for `kind = "oauth2"`.
    pub token_url: Option<String>,
    /// Userinfo endpoint for `kind = "oauth2"`.
    pub userinfo_url: Option<String>,
    /// Token revocation endpoint (RFC 7009).
    pub revocation_url: Option<String>,
    /// Entra: the login host (default `https://login.microsoftonline.com`; http only on loopback).
    pub authority: Option<String>,
    /// Entra: accept `Authorization: Bearer` access tokens (Office and Teams single sign-on).
    #[serde(default)]
    pub accept_bearer: bool,
    /// Accepted `aud` of bearer tokens (default: the client id and `api://{host}/{client_id}`).
    pub api_audiences: Option<Vec<String>>,
    /// `scp` of a bearer token must hold one of these (default `access_as_user`).
    pub bearer_scopes: Option<Vec<String>>,
    /// Tenants (`tid`) whose users may sign in; `["*"]` for any.
    pub allowed_tenants: Option<Vec<String>>,
    /// Verified email domains whose users may sign in.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Email addresses that may sign in.
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    /// Values of the `groups` or `roles` claim, one of which a user must have to sign in.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
}

/// `require` of a route: `"any"` or a list of provider names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRequire {
    /// `"any"`.
    Word(String),
    /// Provider names.
    List(Vec<String>),
}

/// `[[routes]]`: one protected path prefix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Path prefix, starting with `/`.
    pub prefix: String,
    /// Methods the rule applies to; all when absent.
    pub methods: Option<Vec<String>>,
    /// Providers that grant access.
    pub require: RawRequire,
    /// Forward the access token upstream.
    #[serde(default)]
    pub forward_access_token: bool,
    /// Who may pass, beyond being signed in.
    pub allow: Option<RawAllow>,
    /// Scopes of an on-behalf-of token to forward as the access token.
    #[serde(default)]
    pub obo_scopes: Vec<String>,
}

/// `allow` of a route: any match passes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    /// Email addresses.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Verified email domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Values of the `groups` claim.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Values of the `roles` claim.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `[teams]`: the messaging-extension auth loop.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeams {
    /// Path of the bot endpoint.
    pub bot_path: String,
    /// Provider used to sign Teams users in.
    pub provider: String,
    /// Bot (Microsoft app) id.
    pub app_id: String,
    /// Check the Bot Framework JWT of every request.
    #[serde(default = "default_verify_bot_token")]
    pub verify_bot_token: bool,
    /// Bot Framework OpenID metadata URL.
    pub openid_metadata: Option<String>,
    /// Tenant of a single-tenant bot: its Entra-issued tokens are accepted too.
    pub tenant: Option<String>,
    /// Entra authority of `tenant` (default `https://login.microsoftonline.com`).
    pub authority: Option<String>,
    /// Security-code lifetime.
    #[serde(default = "default_code_ttl", with = "humantime_serde")]
    pub code_ttl: Duration,
    /// Only check the JWT; pass everything else through.
    #[serde(default)]
    pub pass_through: bool,
    /// Answer `signin/tokenExchange` and single sign-on queries (Teams SSO).
    #[serde(default)]
    pub sso: bool,
    /// Scopes of the on-behalf-of token a Teams single sign-on is exchanged for.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[channel]`: the status channel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    /// Origins allowed besides `public_url`'s.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Path of the socket.io endpoint; absent: proxied to the upstream.
    pub socketio_path: Option<String>,
    /// Sockets one session may hold.
    #[serde(default = "default_max_sockets_per_session")]
    pub max_sockets_per_session: usize,
    /// Interval of server pings.
    #[serde(default = "default_ping_interval", with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Status-channel entries one client address may hold.
    #[serde(default = "default_max_sockets_per_client")]
    pub max_sockets_per_client: usize,
    /// Engine.IO sessions alive at once.
    #[serde(default = "default_max_sockets")]
    pub max_sockets: usize,
    /// Time an Engine.IO session has to join before it is closed.
    #[serde(default = "default_join_timeout", with = "humantime_serde")]
    pub join_timeout: Duration,
}

impl Default for RawChannel {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            socketio_path: None,
            max_sockets_per_session: DEFAULT_MAX_SOCKETS_PER_SESSION,
            ping_interval: DEFAULT_PING_INTERVAL,
            max_sockets_per_client: DEFAULT_MAX_SOCKETS_PER_CLIENT,
            max_sockets: DEFAULT_MAX_SOCKETS,
            join_timeout: DEFAULT_JOIN_TIMEOUT,
        }
    }
}

/// `[identity]`: names of the identity headers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// Subject header.
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// Email header.
    #[serde(default = "default_email_header")]
    pub email_header: String,
    /// Preferred user name header.
    #[serde(default = "default_preferred_username_header")]
    pub preferred_username_header: String,
    /// Display name header.
    #[serde(default = "default_name_header")]
    pub name_header: String,
    /// Provider header.
    #[serde(default = "default_provider_header")]
    pub provider_header: String,
    /// Access token header.
    #[serde(default = "default_access_token_header")]
    pub access_token_header: String,
}

impl Default for RawIdentity {
    fn default() -> Self {
        Self {
            user_header: default_user_header(),
            email_header: default_email_header(),
            preferred_username_header: default_preferred_username_header(),
            name_header: default_name_header(),
            provider_header: default_provider_header(),
            access_token_header: default_access_token_header(),
        }
    }
}
