//! `GatewayConfig`: builds the text of a small, valid gateway TOML file for a test.
//!
//! ```text
//! GatewayConfig::minimal(port, &[echo.addr()])   [server] listen + public_url, [upstream], [session]
//!     .tls(cert, key)                            https, public_url = https://localhost:PORT
//!     .trusted_proxies(&["127.0.0.1/32"])        .extra_hosts(&["alias.test"])
//!     .session_key("token_ttl = \"2s\"")         any `[session]` key, raw
//!     .plain_http_cookies()                      session cookie without Secure/Partitioned, SameSite=Lax
//!     .extra("[[routes]] ...")                   any other table, raw
//!     .to_toml()                                 the file text (also `Display`, `Into<String>`)
//! ```

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ports;

/// Name of the variable that [`GatewayConfig`]'s `session.secret` refers to.
pub const SECRET_ENV: &str = "GATEWAY_SECRET";

/// The session secret the harness supplies under [`SECRET_ENV`] unless a test gives another (48 bytes).
pub const TEST_SECRET: &str = "integration-tests-session-secret-0123456789abcdef";

/// A gateway config under construction; every setter returns the builder.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    listen: SocketAddr,
    public_url: String,
    upstreams: Vec<String>,
    tls: Option<(PathBuf, PathBuf)>,
    trusted_proxies: Vec<String>,
    extra_hosts: Vec<String>,
    shutdown_grace: Duration,
    shutdown_timeout: Duration,
    health_check_interval: Duration,
    server_lines: Vec<String>,
    upstream_lines: Vec<String>,
    session_lines: Vec<String>,
    extra: Vec<String>,
}

impl GatewayConfig {
    /// Plain HTTP on `127.0.0.1:gateway_port` (also the `public_url`), proxying to `upstreams`,
    /// 1 s shutdown grace and timeout, 1 s health checks, `session.secret = "env:GATEWAY_SECRET"`.
    pub fn minimal(gateway_port: u16, upstreams: &[SocketAddr]) -> Self {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, gateway_port));
        Self {
            listen,
            public_url: format!("http://{listen}"),
            upstreams: upstreams.iter().map(SocketAddr::to_string).collect(),
            tls: None,
            trusted_proxies: Vec::new(),
            extra_hosts: Vec::new(),
            shutdown_grace: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(1),
            health_check_interval: Duration::from_secs(1),
            server_lines: Vec::new(),
            upstream_lines: Vec::new(),
            session_lines: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// [`GatewayConfig::minimal`] on a fresh port from the [`ports`] registry.
    pub fn on_free_port(upstreams: &[SocketAddr]) -> anyhow::Result<Self> {
        Ok(Self::minimal(ports::free_port()?, upstreams))
    }

    /// The listen address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Serves TLS with this PEM pair; `public_url` becomes `https://localhost:PORT`.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self.public_url = format!("https://localhost:{}", self.listen.port());
        self
    }

    /// Sets `server.public_url`.
    pub fn public_url(mut self, url: &str) -> Self {
        url.clone_into(&mut self.public_url);
        self
    }

    /// Sets `server.trusted_proxies` (CIDRs or IPs).
    pub fn trusted_proxies(mut self, cidrs: &[&str]) -> Self {
        self.trusted_proxies = cidrs.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Sets `server.extra_hosts`.
    pub fn extra_hosts(mut self, hosts: &[&str]) -> Self {
        self.extra_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }

    /// Sets `server.shutdown_grace` and `server.shutdown_timeout`.
    pub fn shutdown(mut self, grace: Duration, timeout: Duration) -> Self {
        self.shutdown_grace = grace;
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets `upstream.health_check_interval`.
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// Adds a raw `key = value` line to `[server]` (for keys without a setter).
    pub fn server_key(mut self, line: &str) -> Self {
        self.server_lines.push(line.to_owned());
        self
    }

    /// Adds a raw `key = value` line to `[upstream]`.
    pub fn upstream_key(mut self, line: &str) -> Self {
        self.upstream_lines.push(line.to_owned());
        self
    }

    /// Adds a raw `key = value` line to `[session]` (e.g. `token_ttl = "2s"`).
    pub fn session_key(mut self, line: &str) -> Self {
        self.session_lines.push(line.to_owned());
        self
    }

    /// Session cookie attributes a plain-HTTP client keeps: not `Secure`, `SameSite=Lax`, not
    /// `Partitioned` (the defaults are for HTTPS in an Office iframe).
    pub fn plain_http_cookies(self) -> Self {
        self.session_key("cookie_secure = false")
            .session_key("cookie_same_site = \"lax\"")
            .session_key("cookie_partitioned = false")
    }

    /// Appends raw TOML after the generated tables (e.g. `[providers.x]`, `[[routes]]`).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push(toml.to_owned());
        self
    }

    /// The file text.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("[server]\n");
        out.push_str(&format!("listen = {}\n", quote(&self.listen.to_string())));
        out.push_str(&format!("public_url = {}\n", quote(&self.public_url)));
        if let Some((cert, key)) = &self.tls {
            out.push_str(&format!("tls_cert = {}\n", quote(&cert.to_string_lossy())));
            out.push_str(&format!("tls_key = {}\n", quote(&key.to_string_lossy())));
        }
        out.push_str(&format!("trusted_proxies = {}\n", list(&self.trusted_proxies)));
        out.push_str(&format!("extra_hosts = {}\n", list(&self.extra_hosts)));
        out.push_str(&format!("shutdown_grace = {}\n", duration(self.shutdown_grace)));
        out.push_str(&format!("shutdown_timeout = {}\n", duration(self.shutdown_timeout)));
        push_lines(&mut out, &self.server_lines);
        out.push_str("\n[upstream]\n");
        out.push_str(&format!("addrs = {}\n", list(&self.upstreams)));
        out.push_str(&format!("health_check_interval = {}\n", duration(self.health_check_interval)));
        push_lines(&mut out, &self.upstream_lines);
        out.push_str(&format!("\n[session]\nsecret = {}\n", quote(&format!("env:{SECRET_ENV}"))));
        push_lines(&mut out, &self.session_lines);
        push_lines(&mut out, &self.extra);
        out
    }
}

impl fmt::Display for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}

impl From<GatewayConfig> for String {
    fn from(config: GatewayConfig) -> Self {
        config.to_toml()
    }
}

fn push_lines(out: &mut String, lines: &[String]) {
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", "))
}

/// A humantime duration string, in milliseconds so nothing is rounded.
fn duration(d: Duration) -> String {
    quote(&format!("{}ms", d.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_names_every_required_key() {
        let text = GatewayConfig::minimal(4000, &["127.0.0.1:5000".parse().unwrap()])
            .trusted_proxies(&["127.0.0.1/32"])
            .extra("[store]\nkind = \"memory\"")
            .to_toml();
        for expected in [
            "listen = \"127.0.0.1:4000\"",
            "public_url = \"http://127.0.0.1:4000\"",
            "addrs = [\"127.0.0.1:5000\"]",
            "trusted_proxies = [\"127.0.0.1/32\"]",
            "secret = \"env:GATEWAY_SECRET\"",
            "[store]",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }

    #[test]
    fn quote_escapes_toml_specials() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
