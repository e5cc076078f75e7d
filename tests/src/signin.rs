//! `Browser`: one browser's view of the gateway (a client, the cookies the gateway set, and a
//! transcript of every body it received), and the built-in `dev` provider's popup sign-in,
//! driven over HTTP step by step.
//!
//! ```text
//! GET  /_gateway/session            ─▶ Set-Cookie gw_session, {"providers":{NAME:{connect_url,..}},"ticket"}
//! GET  /connect/dev/<ticket>        ─▶ 302 /_gateway/dev/authorize?state&nonce&code_challenge(S256)..
//! GET  /_gateway/dev/authorize?..   ─▶ login form with a hidden `request`
//! POST /_gateway/dev/authorize      ─▶ 302 /connect/dev/callback?code&state&iss   (deny: ?error=access_denied)
//! GET  /connect/dev/callback?..     ─▶ completion page "Signed in as Dev User ada" | 4xx "Sign-in failed"
//! ```
//! `browser.sign_in_dev("ada")` does all of it for the browser's own session.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{bail, ensure, Context};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::config::GatewayConfig;
use crate::gateway::Endpoint;
use crate::upstream::Echo;

/// The gateway's default session cookie name (docs/architecture.md#configuration: `session.cookie_name`).
pub const SESSION_COOKIE: &str = "gw_session";

/// Path of the session JSON (docs/architecture.md#routes).
pub const SESSION_PATH: &str = "/_gateway/session";

/// Path of the logout route (docs/architecture.md#routes).
pub const LOGOUT_PATH: &str = "/connect/logout";

/// Path of the handoff redemption route.
pub const HANDOFF_PATH: &str = "/_gateway/handoff";

/// Path of the `dev` provider's authorization endpoint on the gateway.
pub const DEV_AUTHORIZE_PATH: &str = "/_gateway/dev/authorize";

/// The config the sign-in and channel suites share: plain HTTP on a free port, provider `dev`
/// (built in), `/api/` requires it, socket.io at `/socket.io/`, cookies a plain-HTTP client keeps.
/// Add `[channel]` keys with `channel_keys` (raw lines) since the table is written here.
pub fn dev_config(upstream: SocketAddr, channel_keys: &[&str]) -> anyhow::Result<GatewayConfig> {
    let mut channel = String::from("[channel]\nsocketio_path = \"/socket.io/\"\n");
    for line in channel_keys {
        channel.push_str(line);
        channel.push('\n');
    }
    Ok(GatewayConfig::on_free_port(&[upstream])?
        .plain_http_cookies()
        .extra("[providers.dev]\nkind = \"dev\"\ndisplay_name = \"Dev sign-in\"\n")
        .extra("[[routes]]\nprefix = \"/api/\"\nrequire = [\"dev\"]\n")
        .extra(&channel))
}

/// The user's choice on the dev provider's login form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// "Sign in".
    Approve,
    /// "Cancel": the provider redirects back with `error=access_denied`.
    Deny,
}

/// An answer the browser received.
#[derive(Debug, Clone)]
pub struct Page {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text (lossy).
    pub body: String,
}

impl Page {
    /// The `Location` header, or an error naming the page.
    pub fn location(&self) -> anyhow::Result<&str> {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("no Location in the {} answer: {}", self.status, self.body))
    }

    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON ({}): {}", self.status, self.body))
    }

    /// The body as the echo upstream's answer; 200 required.
    pub fn echo(&self) -> anyhow::Result<Echo> {
        ensure!(self.status == 200, "expected 200 from the echo upstream, got {}: {}", self.status, self.body);
        Echo::parse(self.body.as_bytes())
    }

    /// The completion page's embedded outcome (`<script type="application/json"
    /// id="gateway-outcome">`): `{"provider", "status", "handoff", "error"}`.
    pub fn outcome(&self) -> anyhow::Result<Value> {
        let marker = "id=\"gateway-outcome\">";
        let start =
            self.body.find(marker).with_context(|| format!("no gateway-outcome in {}", self.body))? + marker.len();
        let len = self.body[start..].find("</script>").context("unterminated gateway-outcome")?;
        serde_json::from_str(&self.body[start..start + len].replace("<\\/", "</"))
            .context("gateway-outcome is not JSON")
    }

    /// The handoff code of a completion page (`None` when the sign-in was attached at once).
    pub fn handoff_code(&self) -> anyhow::Result<Option<String>> {
        Ok(self.outcome()?["handoff"].as_str().map(str::to_owned))
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect()
    }
}

/// The session JSON of `GET /_gateway/session`.
#[derive(Debug, Clone)]
pub struct SessionInfo(pub Value);

impl SessionInfo {
    /// The channel/connect ticket of the session.
    pub fn ticket(&self) -> anyhow::Result<String> {
        self.0["ticket"].as_str().map(str::to_owned).with_context(|| format!("no ticket in {}", self.0))
    }

    /// `providers.NAME.connect_url`.
    pub fn connect_url(&self, provider: &str) -> anyhow::Result<String> {
        self.0["providers"][provider]["connect_url"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no connect_url for {provider} in {}", self.0))
    }

    /// `providers.NAME.signed_in`.
    pub fn signed_in(&self, provider: &str) -> bool {
        self.0["providers"][provider]["signed_in"] == Value::Bool(true)
    }
}

/// The provider's redirect the popup follows: `/_gateway/dev/authorize?..`.
#[derive(Debug, Clone)]
pub struct Authorize {
    /// The whole URL.
    pub url: Url,
    /// Its query parameters (last value wins).
    pub params: BTreeMap<String, String>,
}

/// A browser's cookies for the gateway, shared by everything that browser opens (a socket.io
/// link polls with the cookie the jar holds at each request, as a browser does after a
/// sign-in rotated the session cookie).
#[derive(Debug, Clone, Default)]
pub struct CookieJar(Arc<Mutex<BTreeMap<String, String>>>);

impl CookieJar {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut map)
    }

    /// The `Cookie` header value (`None` without cookies).
    pub fn header(&self) -> Option<String> {
        self.with(|m| (!m.is_empty()).then(|| m.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")))
    }

    /// The value of cookie `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.with(|m| m.get(name).cloned())
    }

    /// Sets cookie `name`.
    pub fn insert(&self, name: &str, value: &str) {
        self.with(|m| m.insert(name.to_owned(), value.to_owned()));
    }
}

/// One browser: a client (no redirects followed), the cookies the gateway set, and every body seen.
pub struct Browser {
    client: reqwest::Client,
    endpoint: Endpoint,
    cookies: CookieJar,
    transcript: Vec<String>,
}

impl Browser {
    /// A browser with no cookies for the gateway at `endpoint`.
    pub fn new(endpoint: &Endpoint) -> anyhow::Result<Self> {
        Ok(Self {
            client: endpoint.client()?,
            endpoint: endpoint.clone(),
            cookies: CookieJar::default(),
            transcript: Vec::new(),
        })
    }

    /// Sets a cookie as if the gateway had (e.g. a forged session cookie).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name, value);
    }

    /// This browser's cookie jar.
    pub fn jar(&self) -> CookieJar {
        self.cookies.clone()
    }

    /// The session cookie's value, once the gateway has set one.
    pub fn session_cookie(&self) -> Option<String> {
        self.cookies.get(SESSION_COOKIE)
    }

    /// The `Cookie` header this browser sends (`None` without cookies).
    pub fn cookie_header(&self) -> Option<String> {
        self.cookies.header()
    }

    /// Every body received so far, in order.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    /// The gateway's public origin (what a page of it sends as `Origin`).
    pub fn origin(&self) -> String {
        self.endpoint.url("")
    }

    /// An absolute URL for a path (`/x`) or the URL itself when already absolute.
    pub fn absolute(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            self.endpoint.url(target)
        }
    }

    /// Sends a request with the browser's cookies, keeps the cookies it sets, records the body.
    pub async fn send(
        &mut self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> anyhow::Result<Page> {
        match form {
            Some(form) => {
                let body: String = Url::parse_with_params("http://x/", form)?.query().unwrap_or_default().to_owned();
                let mut all: Vec<(&str, &str)> = headers.to_vec();
                all.push(("content-type", "application/x-www-form-urlencoded"));
                self.send_body(method, target, &all, body).await
            }
            None => self.send_body(method, target, headers, String::new()).await,
        }
    }

    /// Sends `body` (empty: none) with the browser's cookies, keeps the cookies it sets, records
    /// the answer.
    pub async fn send_body(
        &mut self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> anyhow::Result<Page> {
        let url = self.absolute(target);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(cookie) = self.cookie_header() {
            request = request.header(COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let resp = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.with_context(|| format!("body of {method} {url}"))?;
        let page = Page { status, headers, body };
        for set in page.set_cookies() {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.trim(), value.trim());
            }
        }
        self.transcript.push(page.body.clone());
        Ok(page)
    }

    /// `GET target`.
    pub async fn get(&mut self, target: &str) -> anyhow::Result<Page> {
        self.send(Method::GET, target, &[], None).await
    }

    /// `GET /_gateway/session` (200 required); sets the session cookie on first use.
    pub async fn session_info(&mut self) -> anyhow::Result<SessionInfo> {
        let page = self.get(SESSION_PATH).await?;
        ensure!(page.status == 200, "GET {SESSION_PATH} answered {}: {}", page.status, page.body);
        Ok(SessionInfo(page.json()?))
    }

    /// `POST /connect/logout` with `Origin: origin` when given.
    pub async fn logout(&mut self, origin: Option<&str>) -> anyhow::Result<Page> {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        self.send(Method::POST, LOGOUT_PATH, &headers, None).await
    }

    /// `POST /_gateway/handoff {"code": code}` from the gateway's own origin, as client.js does.
    pub async fn redeem(&mut self, code: &str) -> anyhow::Result<Page> {
        let origin = self.origin();
        self.send_json(Method::POST, HANDOFF_PATH, &[("origin", &origin)], &serde_json::json!({ "code": code })).await
    }

    /// Redeems the handoff code of `completion` (a popup's completion page); 204 required.
    pub async fn redeem_from(&mut self, completion: &Page) -> anyhow::Result<()> {
        let code = completion.handoff_code()?.context("the completion page carries no handoff code")?;
        let page = self.redeem(&code).await?;
        ensure!(page.status == 204, "redeeming the handoff answered {}: {}", page.status, page.body);
        Ok(())
    }

    /// Sends a JSON body with the browser's cookies.
    pub async fn send_json(
        &mut self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> anyhow::Result<Page> {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("content-type", "application/json"));
        self.send_body(method, target, &all, body.to_string()).await
    }

    /// `GET connect_url`: must answer 302 to the dev provider with state, nonce and PKCE S256.
    pub async fn start_sign_in(&mut self, connect_url: &str) -> anyhow::Result<Authorize> {
        let page = self.get(connect_url).await?;
        ensure!(page.status == 302, "GET {connect_url} answered {}, not 302: {}", page.status, page.body);
        let url = Url::parse(&self.absolute(page.location()?))?;
        ensure!(url.path() == DEV_AUTHORIZE_PATH, "connect redirected to {url}, not the dev provider");
        let params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        for name in ["state", "nonce", "code_challenge", "client_id", "redirect_uri"] {
            ensure!(params.get(name).is_some_and(|v| !v.is_empty()), "{name} missing from {url}");
        }
        ensure!(params.get("code_challenge_method").map(String::as_str) == Some("S256"), "no PKCE S256 in {url}");
        ensure!(params.get("response_type").map(String::as_str) == Some("code"), "not a code flow: {url}");
        Ok(Authorize { url, params })
    }

    /// `GET` the authorize URL: the login form's hidden `request` value.
    pub async fn login_form(&mut self, authorize: &Authorize) -> anyhow::Result<String> {
        let page = self.get(authorize.url.as_str()).await?;
        ensure!(page.status == 200, "the dev login form answered {}: {}", page.status, page.body);
        hidden_input(&page.body, "request")
    }

    /// Submits the login form: the provider's 302 back to the gateway's callback (absolute URL).
    pub async fn submit_login(&mut self, request: &str, username: &str, decision: Decision) -> anyhow::Result<String> {
        let action = match decision {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        };
        let form = [("request", request), ("username", username), ("action", action)];
        let page = self.send(Method::POST, DEV_AUTHORIZE_PATH, &[], Some(&form)).await?;
        ensure!(page.status == 302, "the dev login POST answered {}, not 302: {}", page.status, page.body);
        Ok(self.absolute(page.location()?))
    }

    /// Connect, login form and its submission: the callback URL the popup would open next.
    pub async fn callback_url(
        &mut self,
        connect_url: &str,
        username: &str,
        decision: Decision,
    ) -> anyhow::Result<String> {
        let authorize = self.start_sign_in(connect_url).await?;
        let request = self.login_form(&authorize).await?;
        self.submit_login(&request, username, decision).await
    }

    /// The whole popup flow from `connect_url` (any session's), as `username`, ending on the
    /// completion page: 200 and "Signed in as Dev User USERNAME" required. With this browser's
    /// own session the sign-in is attached there (same cookie jar); with another session's, the
    /// page carries a handoff code for that session's pane to redeem.
    pub async fn sign_in_via(&mut self, connect_url: &str, username: &str) -> anyhow::Result<Page> {
        let callback = self.callback_url(connect_url, username, Decision::Approve).await?;
        let page = self.get(&callback).await?;
        let expected = format!("Signed in as Dev User {username}");
        if page.status != 200 || !page.body.contains(&expected) {
            bail!("the callback answered {} without {expected:?}: {}", page.status, page.body);
        }
        Ok(page)
    }

    /// Signs this browser's own session in with the `dev` provider as `username`.
    pub async fn sign_in_dev(&mut self, username: &str) -> anyhow::Result<Page> {
        let connect = self.session_info().await?.connect_url("dev")?;
        self.sign_in_via(&connect, username).await
    }

    /// Starts a `dev` sign-in of this browser's session and cancels it on the login form; the
    /// completion page (a 4xx "Sign-in failed" is required).
    pub async fn deny_dev(&mut self) -> anyhow::Result<Page> {
        let connect = self.session_info().await?.connect_url("dev")?;
        let callback = self.callback_url(&connect, "nobody", Decision::Deny).await?;
        let page = self.get(&callback).await?;
        ensure!(
            (400..500).contains(&page.status) && page.body.contains("Sign-in failed"),
            "a denied sign-in answered {}: {}",
            page.status,
            page.body
        );
        Ok(page)
    }
}

/// The `value` of `<input type="hidden" name="NAME" value="...">` in `html`.
pub fn hidden_input(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).with_context(|| format!("no hidden input {name} in {html}"))? + marker.len();
    let len = html[start..].find('"').context("unterminated value attribute")?;
    Ok(html[start..start + len].replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&"))
}

/// `text` with one character changed (in the middle, so a prefix check cannot pass it).
pub fn tamper(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() / 2;
    if let Some(c) = chars.get_mut(i) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_input_reads_the_value_and_tamper_changes_one_char() {
        let html = r#"<form><input type="hidden" name="request" value="a&amp;b"><input name="x"></form>"#;
        assert_eq!(hidden_input(html, "request").unwrap(), "a&b");
        assert!(hidden_input(html, "other").is_err());
        let t = tamper("abcdef");
        assert_eq!(t.len(), 6);
        assert_eq!(t.chars().zip("abcdef".chars()).filter(|(a, b)| a != b).count(), 1);
    }
}
