//! Default values of every optional config key; `config/gateway.toml` shows each of them.

use std::time::Duration;

/// `session.token_ttl`: tokens are purged this long after sign-in.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(120);
/// `session.ticket_ttl`: lifetime of a signed connect ticket.
pub const DEFAULT_TICKET_TTL: Duration = Duration::from_secs(300);
/// `session.cookie_name` while `cookie_secure = false` (plain HTTP): the signed session cookie.
pub const DEFAULT_COOKIE_NAME: &str = "gw_session";
/// `session.cookie_name` while `cookie_secure = true`: `__Host-` makes browsers refuse it unless
/// it is `Secure`, `Path=/` and has no `Domain`, so no other host can plant or shadow it.
pub const DEFAULT_SECURE_COOKIE_NAME: &str = "__Host-gw_session";
/// `session.lifetime`: how long one session cookie value counts (each sign-in issues a new one).
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// `session.handoff_ttl`: how long a finished sign-in waits for its task pane to redeem it.
pub const DEFAULT_HANDOFF_TTL: Duration = Duration::from_secs(60);
/// `session.popup_binding`: a popup's sign-in reaches only the task pane that started it.
pub const DEFAULT_POPUP_BINDING: &str = "handoff";
/// `session.cookie_same_site`: `none` so the cookie flows inside the Office iframe.
pub const DEFAULT_COOKIE_SAME_SITE: &str = "none";
/// `server.shutdown_grace`: after SIGTERM, how long in-flight requests may run before shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// `server.shutdown_timeout`: after the grace period, how long the runtimes get to stop.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// `server.idle_timeout`: a kept-alive client connection idle this long between requests is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.header_timeout`: a whole request head must arrive within this long of its first byte.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.body_min_rate`: bytes per second a request body must average (after `header_timeout`).
pub const DEFAULT_BODY_MIN_RATE: u64 = 1024;
/// `server.max_connections`: open client connections, all clients together.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `server.max_connections_per_client`: open client connections from one client address.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 1_000;
/// `server.threads`: worker threads of the proxy service.
pub const DEFAULT_THREADS: usize = 2;
/// `upstream.health_check_interval`: how often every upstream is probed.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// `upstream.connect_timeout`: TCP (and TLS) connect timeout to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `upstream.idle_timeout`: how long an idle upstream keep-alive connection stays pooled.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `store.kind`: tokens live in this process (moka).
pub const DEFAULT_STORE_KIND: &str = "memory";
/// `store.key_prefix`: prefix of every Redis key and channel the gateway uses.
pub const DEFAULT_KEY_PREFIX: &str = "gateway:";
/// `store.timeout`: longest wait for one Redis call (then protected routes answer 503).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(500);
/// `channel.max_sockets_per_session`: status-channel sockets one session may hold.
pub const DEFAULT_MAX_SOCKETS_PER_SESSION: usize = 16;
/// `channel.max_sockets_per_client`: status-channel entries (Engine.IO sessions, SSE streams,
/// WebSockets) one client address may hold.
pub const DEFAULT_MAX_SOCKETS_PER_CLIENT: usize = 64;
/// `channel.max_sockets`: Engine.IO sessions alive at once, all clients together.
pub const DEFAULT_MAX_SOCKETS: usize = 100_000;
/// `channel.join_timeout`: an Engine.IO session whose client has not connected to the namespace
/// (or, Engine.IO 3, come back) within this long is closed.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// `channel.ping_interval`: server pings on idle status-channel sockets.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
/// `teams.code_ttl`: lifetime of a Teams security code.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(600);
/// `teams.verify_bot_token`: check the Bot Framework JWT on every bot request.
pub const DEFAULT_VERIFY_BOT_TOKEN: bool = true;
/// `identity.user_header`: carries the subject of the signed-in user.
pub const DEFAULT_USER_HEADER: &str = "X-Forwarded-User";
/// `identity.email_header`: carries the user's email.
pub const DEFAULT_EMAIL_HEADER: &str = "X-Forwarded-Email";
/// `identity.preferred_username_header`: carries the user's preferred user name.
pub const DEFAULT_PREFERRED_USERNAME_HEADER: &str = "X-Forwarded-Preferred-Username";
/// `identity.name_header`: carries the user's display name.
pub const DEFAULT_NAME_HEADER: &str = "X-Forwarded-Name";
/// `identity.provider_header`: carries the provider the user signed in with.
pub const DEFAULT_PROVIDER_HEADER: &str = "X-Forwarded-Provider";
/// `identity.access_token_header`: carries the access token on `forward_access_token` routes.
pub const DEFAULT_ACCESS_TOKEN_HEADER: &str = "X-Forwarded-Access-Token";
/// Minimum length in bytes of every `session.secret`.
pub const MIN_SECRET_LEN: usize = 32;
