//! `OidcProvider`: a real, certified OpenID provider (the npm package `oidc-provider`, run by
//! `tests/e2e/oidc/server.mjs`) as a child on a free `127.0.0.1` port, and a scripted user for its
//! development sign-in pages.
//!
//! ```text
//! OidcProvider::start("gw", "secret", &[callback]).await    node server.mjs --port 0 ..; waits for `READY <issuer>`
//!     .issuer()                     http://127.0.0.1:PORT: discovery at /.well-known/openid-configuration,
//!                                   and the `iss` it adds to every authorization response (RFC 9207)
//!     .login(authorize_url, "ada")  GET /auth?..  ─▶ 303 /interaction/UID   login form (any password)
//!                                   POST /interaction/UID  ─▶ 303 /auth/UID ─▶ 303 /interaction/UID2   consent
//!                                   POST /interaction/UID2 ─▶ 303 /auth/UID2 ─▶ 303 CALLBACK?code&state&iss
//!     .login_denied(authorize_url)  GET /interaction/UID/abort ─▶ .. ─▶ 303 CALLBACK?error=access_denied&state&iss
//! ```
//! The user `ada` gets `sub` = `ada`, `email` = `ada@example.test` (verified), `name` = `User ada`
//! and `preferred_username` = `ada`, in the ID token as well as from userinfo. Every
//! [`OidcProvider::login`] uses a fresh cookie jar, so it always signs in and consents anew.
//! The npm packages must be installed first: `npm ci --prefix tests/e2e/oidc` (tests/run does it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use url::Url;

/// How long the provider gets to print its `READY` line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest wait for one request of [`OidcProvider::login`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Most requests one sign-in makes before it is given up (it needs about 7).
const MAX_STEPS: usize = 20;

/// How much of the provider's stderr is kept for failure messages (the latest part).
const MAX_LOG_BYTES: usize = 64 * 1024;

/// The password typed into the dev login form (it accepts any).
const ANY_PASSWORD: &str = "any-password";

/// When the provider issues a refresh token with an authorization code's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshTokens {
    /// With every code exchange, whatever the scopes.
    #[default]
    Always,
    /// The library's own rule: only when `offline_access` was granted, which it keeps only in a
    /// request with `prompt=consent` (it silently drops the scope otherwise).
    OfflineAccess,
}

/// Knobs of [`OidcProvider::start_with`]; [`Default`] is what [`OidcProvider::start`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OidcOptions {
    /// Refresh token policy.
    pub refresh_tokens: RefreshTokens,
    /// Access token lifetime (whole seconds, at least 1; `expires_in` of the token response).
    pub access_token_ttl: Duration,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self { refresh_tokens: RefreshTokens::default(), access_token_ttl: Duration::from_secs(3600) }
    }
}

/// What the scripted user does on the provider's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAction {
    /// Signs in as this login (any password) and consents to everything asked.
    SignIn(String),
    /// Clicks "[ Cancel ]" on the first page: the provider answers `error=access_denied`.
    Cancel,
}

/// A running `oidc-provider` with one confidential client; killed on drop.
pub struct OidcProvider {
    issuer: Url,
    logs: Arc<Mutex<String>>,
    _child: Child,
    /// Held open: the server exits when this pipe closes, should the kill on drop not happen.
    _stdin: Option<ChildStdin>,
}

impl OidcProvider {
    /// Starts the provider with one client (`client_secret_basic`, code + refresh_token grants,
    /// PKCE S256 required) allowed to redirect to `redirect_uris`, and waits (bounded) until it
    /// listens.
    ///
    /// Fails when Node.js or the npm packages are missing (saying how to install them), or when
    /// the server exits or stays silent for 20 s (quoting its stderr).
    pub async fn start(client_id: &str, client_secret: &str, redirect_uris: &[String]) -> anyhow::Result<Self> {
        Self::start_with(client_id, client_secret, redirect_uris, OidcOptions::default()).await
    }

    /// [`OidcProvider::start`] with other [`OidcOptions`].
    pub async fn start_with(
        client_id: &str,
        client_secret: &str,
        redirect_uris: &[String],
        options: OidcOptions,
    ) -> anyhow::Result<Self> {
        ensure!(!redirect_uris.is_empty(), "the client needs at least one redirect URI");
        ensure!(options.access_token_ttl.as_secs() >= 1, "the access token ttl must be at least 1 s");
        let dir = server_dir();
        ensure!(
            dir.join("node_modules").join("oidc-provider").is_dir(),
            "{} has no node_modules/oidc-provider: run `npm ci --prefix tests/e2e/oidc` first",
            dir.display()
        );
        let mut cmd = Command::new("node");
        // Port 0: the server binds a free port itself and names it in its READY line, so no
        // other process can take it between a probe and the bind.
        cmd.arg("server.mjs")
            .args(["--port", "0", "--client-id", client_id, "--redirect-uris", &redirect_uris.join(",")])
            .args(["--refresh-tokens", options.refresh_tokens.as_arg()])
            .args(["--access-token-ttl", &options.access_token_ttl.as_secs().to_string()])
            // In the environment of the child only, not on its command line (visible to `ps`).
            .env("OIDC_CLIENT_SECRET", client_secret)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("`node` is not on PATH: the OIDC tests need Node.js 20.18 or later")
            }
            Err(e) => return Err(e).context("cannot start node tests/e2e/oidc/server.mjs"),
        };
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect_logs(stderr, Arc::clone(&logs)));
        }
        let stdout = child.stdout.take().context("the server's stdout is not piped")?;
        let issuer = match tokio::time::timeout(READY_TIMEOUT, read_ready_line(stdout)).await {
            Ok(Ok(issuer)) => issuer,
            Ok(Err(e)) => {
                // The server closed stdout: it exited; give stderr a moment to be collected.
                let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
                let status = status.map_or_else(|_| "still running".to_owned(), |s| format!("{s:?}"));
                bail!("{e:#} (exit status: {status})\n--- oidc server stderr ---\n{}", read_logs(&logs))
            }
            Err(_) => bail!(
                "oidc server printed no READY line within {READY_TIMEOUT:?}\n--- oidc server stderr ---\n{}",
                read_logs(&logs)
            ),
        };
        if let Some(port) = issuer.port() {
            // Bound by the server itself (port 0): the registry must not hand it out again.
            crate::ports::reserve(port);
        }
        let stdin = child.stdin.take();
        Ok(Self { issuer, logs, _child: child, _stdin: stdin })
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash): the `iss` of its ID tokens and of
    /// its authorization responses, and the base of `/.well-known/openid-configuration`.
    pub fn issuer(&self) -> String {
        self.issuer.as_str().trim_end_matches('/').to_owned()
    }

    /// What the server wrote to stderr so far (its latest 64 KiB), for failure messages.
    pub fn logs(&self) -> String {
        read_logs(&self.logs)
    }

    /// Signs in as `login` on the provider's pages and consents, starting from `authorize_url`
    /// (the provider's authorization URL with its query: the `Location` of the gateway's
    /// `/connect/{provider}/{ticket}` answer), and returns the URL the provider finally
    /// redirects to outside its own origin: the relying party's callback with `code`, `state`
    /// and `iss`.
    ///
    /// Fails if that URL carries no `code` (then the error names the provider's `error` and
    /// `error_description`), or as [`OidcProvider::authorize`] does.
    pub async fn login(&self, authorize_url: &str, login: &str) -> anyhow::Result<Url> {
        let callback = self.authorize(authorize_url, &UserAction::SignIn(login.to_owned())).await?;
        ensure!(query(&callback, "code").is_some(), "the provider signed nobody in: {}", describe_error(&callback));
        Ok(callback)
    }

    /// Cancels the sign-in on the provider's first page and returns the callback URL it
    /// redirects to, with `error=access_denied`, `state` and `iss`.
    ///
    /// Fails if that URL has another `error` (or none), or as [`OidcProvider::authorize`] does.
    pub async fn login_denied(&self, authorize_url: &str) -> anyhow::Result<Url> {
        let callback = self.authorize(authorize_url, &UserAction::Cancel).await?;
        let error = query(&callback, "error");
        ensure!(
            error.as_deref() == Some("access_denied"),
            "expected error=access_denied: {}",
            describe_error(&callback)
        );
        Ok(callback)
    }

    /// Drives the provider's pages from `authorize_url` with a fresh cookie jar, following
    /// redirects by hand while they stay on the provider's origin and answering each page as
    /// `action` says, and returns the first redirect that leaves the origin, whatever it carries.
    ///
    /// Fails on a page it does not know (its status and start quoted), a request that fails or
    /// takes over 10 s, or after 20 requests without leaving.
    pub async fn authorize(&self, authorize_url: &str, action: &UserAction) -> anyhow::Result<Url> {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the sign-in client")?;
        let origin = self.issuer.origin();
        let mut next = Step::Get(Url::parse(authorize_url).with_context(|| format!("bad URL {authorize_url:?}"))?);
        let mut trail = Vec::new();
        for _ in 0..MAX_STEPS {
            trail.push(next.to_string());
            let url = next.url().clone();
            let response = next.send(&client).await.with_context(|| format!("{trail:?}"))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .with_context(|| format!("{status} without a Location header after {trail:?}"))?;
                let target = url.join(location).with_context(|| format!("bad Location {location:?}"))?;
                if target.origin() != origin {
                    return Ok(target);
                }
                next = Step::Get(target);
                continue;
            }
            let body = response.text().await.with_context(|| format!("reading the page of {url}"))?;
            ensure!(
                status.is_success(),
                "{} answered {status} after {trail:?}:\n{}\n--- oidc server stderr ---\n{}",
                url.path(),
                excerpt(&body),
                self.logs()
            );
            next = answer_page(&url, &body, action).with_context(|| format!("after {trail:?}"))?;
        }
        bail!("no redirect left {} within {MAX_STEPS} requests: {trail:?}", self.issuer())
    }
}

impl RefreshTokens {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OfflineAccess => "offline_access",
        }
    }
}

/// One request of the scripted user.
enum Step {
    Get(Url),
    /// A form submission: the URL and the already-encoded body.
    Post(Url, String),
}

impl Step {
    fn url(&self) -> &Url {
        match self {
            Self::Get(url) | Self::Post(url, _) => url,
        }
    }

    async fn send(self, client: &reqwest::Client) -> anyhow::Result<reqwest::Response> {
        let request = match self {
            Self::Get(url) => client.get(url),
            Self::Post(url, body) => {
                client.post(url).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
            }
        };
        Ok(request.send().await?)
    }
}

impl std::fmt::Display for Step {
    /// Method and path only: query strings carry state, nonce and codes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Get(url) => write!(f, "GET {}", url.path()),
            Self::Post(url, _) => write!(f, "POST {}", url.path()),
        }
    }
}

/// The next request for a dev interaction page: its hidden `prompt` input says whether it is the
/// login form or the consent form; its "[ Cancel ]" link ends in `/abort`.
fn answer_page(url: &Url, body: &str, action: &UserAction) -> anyhow::Result<Step> {
    if *action == UserAction::Cancel {
        let abort = attribute_values(body, "href").into_iter().find(|href| href.ends_with("/abort"));
        let abort = abort.with_context(|| format!("no [ Cancel ] link on {url}:\n{}", excerpt(body)))?;
        return Ok(Step::Get(url.join(&abort)?));
    }
    let form_action = attribute_values(body, "action").into_iter().next();
    let form_action = form_action.with_context(|| format!("no form on {url}:\n{}", excerpt(body)))?;
    let target = url.join(&form_action)?;
    let prompt = hidden_value(body, "prompt");
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match (prompt.as_deref(), action) {
        (Some("login"), UserAction::SignIn(login)) => {
            form.append_pair("prompt", "login").append_pair("login", login).append_pair("password", ANY_PASSWORD);
        }
        (Some("consent"), UserAction::SignIn(_)) => {
            form.append_pair("prompt", "consent");
        }
        (other, _) => bail!("{url} is neither the login nor the consent form (prompt {other:?}):\n{}", excerpt(body)),
    }
    Ok(Step::Post(target, form.finish()))
}

/// Every value of `name="…"` attributes in `html`, entity-decoded, in document order.
fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    let mut values = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&needle) {
        rest = &rest[start + needle.len()..];
        let Some(end) = rest.find('"') else { break };
        values.push(decode_entities(&rest[..end]));
        rest = &rest[end..];
    }
    values
}

/// The `value` of the `<input … name="NAME" value="…">` in `html`.
fn hidden_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')?;
    Some(decode_entities(&html[start..start + end]))
}

/// Undoes the five escapes the provider's templates apply.
fn decode_entities(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// The first value of query parameter `name`.
fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// `error` and `error_description` of a callback URL, for messages (no code, no state).
fn describe_error(url: &Url) -> String {
    format!(
        "redirect to {}{} with error {:?} ({:?})",
        url.origin().ascii_serialization(),
        url.path(),
        query(url, "error"),
        query(url, "error_description")
    )
}

/// The start of a page (of its `<body>` if it has one), for messages.
fn excerpt(page: &str) -> String {
    let body = page.find("<body").map_or(page, |start| &page[start..]);
    body.chars().take(600).collect()
}

/// `tests/e2e/oidc`, where `server.mjs` and its `node_modules` are.
fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e").join("oidc")
}

/// Reads stdout until `READY <issuer>`; fails when it closes first.
async fn read_ready_line(stdout: impl AsyncRead + Unpin + Send + 'static) -> anyhow::Result<Url> {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.context("cannot read the oidc server's stdout")? {
        if let Some(issuer) = line.strip_prefix("READY ") {
            let issuer = Url::parse(issuer.trim()).with_context(|| format!("bad issuer in {line:?}"))?;
            // Keep draining stdout so that the server never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(issuer);
        }
    }
    bail!("the oidc server exited before it printed READY")
}

/// Appends everything `stderr` carries to `logs`, keeping the latest [`MAX_LOG_BYTES`].
async fn collect_logs(mut stderr: impl AsyncRead + Unpin, logs: Arc<Mutex<String>>) {
    let mut buf = vec![0; 8192];
    while let Ok(n @ 1..) = stderr.read(&mut buf).await {
        let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
        logs.push_str(&String::from_utf8_lossy(&buf[..n]));
        if logs.len() > MAX_LOG_BYTES {
            let mut cut = logs.len() - MAX_LOG_BYTES;
            while !logs.is_char_boundary(cut) {
                cut += 1;
            }
            logs.drain(..cut);
        }
    }
}

fn read_logs(logs: &Mutex<String>) -> String {
    logs.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    use super::*;

    const CALLBACK: &str = "http://127.0.0.1:9/cb";
    const VERIFIER: &str = "a-pkce-verifier-of-at-least-43-characters-0123456789";

    async fn start() -> OidcProvider {
        OidcProvider::start("harness", "harness-secret", &[CALLBACK.to_owned()]).await.unwrap()
    }

    /// An authorization request as a relying party builds it (PKCE S256, state, nonce).
    fn authorize_url(provider: &OidcProvider) -> String {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
        let mut url = Url::parse(&format!("{}/auth", provider.issuer())).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "harness")
            .append_pair("redirect_uri", CALLBACK)
            .append_pair("scope", "openid email profile")
            .append_pair("state", "the-state")
            .append_pair("nonce", "the-nonce")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    fn jwt_part(jwt: &str, index: usize) -> Value {
        let part = jwt.split('.').nth(index).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn login_returns_a_code_that_exchanges_for_an_id_token_with_email_and_name() {
        let provider = start().await;
        let callback = provider.login(&authorize_url(&provider), "ada").await.unwrap();
        assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
        assert_eq!(query(&callback, "state").as_deref(), Some("the-state"));
        assert_eq!(query(&callback, "iss"), Some(provider.issuer()));

        let discovery = reqwest::get(format!("{}/.well-known/openid-configuration", provider.issuer())).await.unwrap();
        let discovery: Value = serde_json::from_str(&discovery.text().await.unwrap()).unwrap();
        let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", &query(&callback, "code").unwrap())
            .append_pair("redirect_uri", CALLBACK)
            .append_pair("code_verifier", VERIFIER);
        let response = reqwest::Client::new()
            .post(token_endpoint)
            .basic_auth("harness", Some("harness-secret"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        let tokens: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string(), "{tokens}");
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(jwt_part(id_token, 0)["alg"], "RS256");
        let claims = jwt_part(id_token, 1);
        assert_eq!(claims["iss"], provider.issuer().as_str());
        assert_eq!(claims["aud"], "harness");
        assert_eq!(claims["nonce"], "the-nonce");
        assert_eq!(claims["sub"], "ada");
        assert_eq!(claims["email"], "ada@example.test");
        assert_eq!(claims["name"], "User ada");
    }

    #[tokio::test]
    async fn login_denied_returns_access_denied_with_state_and_iss() {
        let provider = start().await;
        let callback = provider.login_denied(&authorize_url(&provider)).await.unwrap();
        assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
        assert_eq!(query(&callback, "state").as_deref(), Some("the-state"));
        assert_eq!(query(&callback, "iss"), Some(provider.issuer()));
        assert_eq!(query(&callback, "code"), None);
    }
}
