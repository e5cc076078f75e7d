//! A browser's side of the gateway's popup sign-in with the built-in `dev` provider, over HTTP,
//! one shared keep-alive client for every simulated browser (cookies are carried by hand).
//!
//! ```text
//! GET  /_gateway/session          ─▶ Set-Cookie gw_session, {"providers":{"dev":{connect_url}},"ticket"}
//! GET  /connect/dev/<ticket>      ─▶ 302 /_gateway/dev/authorize?state&nonce&code_challenge..
//! GET  /_gateway/dev/authorize?.. ─▶ login form with a hidden `request`
//! POST /_gateway/dev/authorize    ─▶ 302 /connect/dev/callback?code&state&iss
//! GET  /connect/dev/callback?..   ─▶ 200 completion page "Signed in as Dev User NAME"
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The gateway's default session cookie name (config `session.cookie_name`).
const SESSION_COOKIE: &str = "gw_session";
/// The session JSON (docs/architecture.md#routes).
const SESSION_PATH: &str = "/_gateway/session";
/// The dev provider's authorization endpoint on the gateway.
const DEV_AUTHORIZE_PATH: &str = "/_gateway/dev/authorize";
/// Longest wait for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway at one base URL (`http://127.0.0.1:PORT`), shared by every simulated browser.
#[derive(Clone)]
pub(crate) struct Gateway {
    http: reqwest::Client,
    base: String,
}

/// One browser's session: its cookie, its channel ticket and its `dev` connect URL.
pub(crate) struct Session {
    /// `gw_session=…`, as the browser sends it back.
    pub(crate) cookie: String,
    /// The ticket for `/_gateway/events?ticket=`.
    pub(crate) ticket: String,
    connect_url: String,
}

/// A callback answer: when its head arrived, and the head and body.
pub(crate) struct Callback {
    /// The moment the response head was received.
    pub(crate) answered_at: Instant,
    status: StatusCode,
    body: String,
}

impl Gateway {
    /// A client for the gateway at `base`: no redirects followed, no proxy, `pool` idle
    /// connections kept for reuse.
    pub(crate) fn new(base: &str, pool: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned() })
    }

    /// The gateway's origin, as a page of it sends in `Origin`.
    pub(crate) fn origin(&self) -> &str {
        &self.base
    }

    /// `host:port` of the gateway.
    pub(crate) fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn absolute(&self, target: &str) -> String {
        if target.starts_with("http://") {
            target.to_owned()
        } else {
            format!("{}{target}", self.base)
        }
    }

    async fn send(
        &self,
        method: Method,
        target: &str,
        cookie: Option<&str>,
        form: Option<String>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = self.absolute(target);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(body) = form {
            req = req.header("content-type", "application/x-www-form-urlencoded").body(body);
        }
        req.send().await.with_context(|| format!("{method} {url}"))
    }

    /// `GET /_gateway/session` without a cookie: a new (signed-out) session.
    pub(crate) async fn new_session(&self) -> anyhow::Result<Session> {
        let resp = self.send(Method::GET, SESSION_PATH, None, None).await?;
        ensure!(resp.status() == StatusCode::OK, "GET {SESSION_PATH} answered {}", resp.status());
        let cookie = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.starts_with(&format!("{SESSION_COOKIE}=")))
            .map(str::to_owned)
            .with_context(|| format!("GET {SESSION_PATH} set no {SESSION_COOKIE} cookie"))?;
        let text = resp.text().await.context("the session JSON")?;
        let info: Value = serde_json::from_str(&text).with_context(|| format!("the session JSON: {text:.300}"))?;
        let ticket = info["ticket"].as_str().with_context(|| format!("no ticket in {info}"))?.to_owned();
        let connect_url = info["providers"]["dev"]["connect_url"]
            .as_str()
            .with_context(|| format!("no dev connect_url in {info}"))?;
        Ok(Session { cookie, ticket, connect_url: connect_url.to_owned() })
    }

    /// Connect, the dev login form and its submission as `username`: the callback URL the
    /// popup opens next.
    pub(crate) async fn callback_url(&self, session: &Session, username: &str) -> anyhow::Result<String> {
        let cookie = Some(session.cookie.as_str());
        let resp = self.send(Method::GET, &session.connect_url, cookie, None).await?;
        let authorize = redirect_target(&resp, "connect")?;
        let resp = self.send(Method::GET, &authorize, cookie, None).await?;
        ensure!(resp.status() == StatusCode::OK, "the dev login form answered {}", resp.status());
        let request = hidden_input(&resp.text().await?, "request")?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("request", &request)
            .append_pair("username", username)
            .append_pair("action", "approve")
            .finish();
        let resp = self.send(Method::POST, DEV_AUTHORIZE_PATH, cookie, Some(form)).await?;
        redirect_target(&resp, "the dev login POST")
    }

    /// `GET` the callback URL; the answer with the moment its head arrived.
    pub(crate) async fn callback(&self, session: &Session, callback_url: &str) -> anyhow::Result<Callback> {
        let resp = self.send(Method::GET, callback_url, Some(&session.cookie), None).await?;
        let answered_at = Instant::now();
        let status = resp.status();
        let body = resp.text().await.context("the completion page")?;
        Ok(Callback { answered_at, status, body })
    }

    /// The whole popup flow for a new session, as `username`: the session, signed in.
    pub(crate) async fn sign_in(&self, username: &str) -> anyhow::Result<Session> {
        let session = self.new_session().await?;
        let url = self.callback_url(&session, username).await?;
        self.callback(&session, &url).await?.expect_signed_in(username)?;
        Ok(session)
    }

    /// `METHOD target` with an optional cookie and `Origin`: the status and body, whatever the status.
    pub(crate) async fn request(
        &self,
        method: Method,
        target: &str,
        cookie: Option<&str>,
        origin: Option<&str>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let url = self.absolute(target);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(o) = origin {
            req = req.header(reqwest::header::ORIGIN, o);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        Ok((status, resp.text().await.with_context(|| format!("the body of {method} {url}"))?))
    }

    /// `GET url` on any listener (the admin `/metrics`): the body of a 200.
    pub(crate) async fn get_text(&self, url: &str) -> anyhow::Result<String> {
        let resp = self.http.get(url).send().await.with_context(|| format!("GET {url}"))?;
        ensure!(resp.status() == StatusCode::OK, "GET {url} answered {}", resp.status());
        Ok(resp.text().await?)
    }
}

impl Callback {
    /// Fails unless this is the completion page of a sign-in as `username`.
    pub(crate) fn expect_signed_in(&self, username: &str) -> anyhow::Result<()> {
        let expected = format!("Signed in as Dev User {username}");
        if self.status != StatusCode::OK || !self.body.contains(&expected) {
            bail!("the callback answered {} without {expected:?}: {:.300}", self.status, self.body);
        }
        Ok(())
    }
}

/// The `Location` of a 302.
fn redirect_target(resp: &reqwest::Response, step: &str) -> anyhow::Result<String> {
    ensure!(resp.status() == StatusCode::FOUND, "{step} answered {}, not 302", resp.status());
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .with_context(|| format!("{step} answered 302 without a Location"))
}

/// The `value` of `<input type="hidden" name="NAME" value="...">` in `html`.
fn hidden_input(html: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).with_context(|| format!("no hidden input {name} in {html:.300}"))? + marker.len();
    let len = html[start..].find('"').context("unterminated value attribute")?;
    Ok(html[start..start + len].replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&"))
}
