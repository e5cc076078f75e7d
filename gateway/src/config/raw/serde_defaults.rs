//! The defaults serde fills in for keys a file leaves out (`#[serde(default = "…")]`).

use std::time::Duration;

use super::super::defaults::*;

pub(super) fn default_true() -> bool {
    true
}
pub(super) fn default_threads() -> usize {
    DEFAULT_THREADS
}
pub(super) fn default_shutdown_grace() -> Duration {
    DEFAULT_SHUTDOWN_GRACE
}
pub(super) fn default_shutdown_timeout() -> Duration {
    DEFAULT_SHUTDOWN_TIMEOUT
}
pub(super) fn default_idle_timeout() -> Duration {
    DEFAULT_IDLE_TIMEOUT
}
pub(super) fn default_header_timeout() -> Duration {
    DEFAULT_HEADER_TIMEOUT
}
pub(super) fn default_body_min_rate() -> u64 {
    DEFAULT_BODY_MIN_RATE
}
pub(super) fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
pub(super) fn default_max_connections_per_client() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT
}
pub(super) fn default_max_sockets_per_client() -> usize {
    DEFAULT_MAX_SOCKETS_PER_CLIENT
}
pub(super) fn default_max_sockets() -> usize {
    DEFAULT_MAX_SOCKETS
}
pub(super) fn default_join_timeout() -> Duration {
    DEFAULT_JOIN_TIMEOUT
}
pub(super) fn default_health_check_interval() -> Duration {
    DEFAULT_HEALTH_CHECK_INTERVAL
}
pub(super) fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
pub(super) fn default_upstream_idle_timeout() -> Duration {
    DEFAULT_UPSTREAM_IDLE_TIMEOUT
}
pub(super) fn default_token_ttl() -> Duration {
    DEFAULT_TOKEN_TTL
}
pub(super) fn default_ticket_ttl() -> Duration {
    DEFAULT_TICKET_TTL
}
pub(super) fn default_session_lifetime() -> Duration {
    DEFAULT_SESSION_LIFETIME
}

pub(super) fn default_handoff_ttl() -> Duration {
    DEFAULT_HANDOFF_TTL
}

pub(super) fn default_popup_binding() -> String {
    DEFAULT_POPUP_BINDING.to_owned()
}

pub(super) fn default_cookie_same_site() -> String {
    DEFAULT_COOKIE_SAME_SITE.to_owned()
}
pub(super) fn default_store_kind() -> String {
    DEFAULT_STORE_KIND.to_owned()
}
pub(super) fn default_key_prefix() -> String {
    DEFAULT_KEY_PREFIX.to_owned()
}
pub(super) fn default_store_timeout() -> Duration {
    DEFAULT_STORE_TIMEOUT
}
pub(super) fn default_verify_bot_token() -> bool {
    DEFAULT_VERIFY_BOT_TOKEN
}
pub(super) fn default_code_ttl() -> Duration {
    DEFAULT_CODE_TTL
}
pub(super) fn default_max_sockets_per_session() -> usize {
    DEFAULT_MAX_SOCKETS_PER_SESSION
}
pub(super) fn default_ping_interval() -> Duration {
    DEFAULT_PING_INTERVAL
}
pub(super) fn default_user_header() -> String {
    DEFAULT_USER_HEADER.to_owned()
}
pub(super) fn default_email_header() -> String {
    DEFAULT_EMAIL_HEADER.to_owned()
}
pub(super) fn default_preferred_username_header() -> String {
    DEFAULT_PREFERRED_USERNAME_HEADER.to_owned()
}
pub(super) fn default_name_header() -> String {
    DEFAULT_NAME_HEADER.to_owned()
}
pub(super) fn default_provider_header() -> String {
    DEFAULT_PROVIDER_HEADER.to_owned()
}
pub(super) fn default_access_token_header() -> String {
    DEFAULT_ACCESS_TOKEN_HEADER.to_owned()
}
