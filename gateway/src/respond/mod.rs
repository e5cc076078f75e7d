//! The one place where the gateway chooses a status, a content type and a body.
//!
//! Every layer says what happened in its own terms — a refusal enum (`auth::AuthRefusal`,
//! `auth::HandoffRefusal`, `auth::FlowError`, `teams::BotRefusal`, `channel::ChannelRefusal`,
//! `metrics::Limit`) or an outcome (`auth::SessionState`, `auth::Completed`, …) — and this module
//! turns it into an [`Answer`]. The request path writes an `Answer` to Pingora's session
//! ([`write`]), the status channel converts it into a hyper response ([`Answer::into_http`]), and
//! the admission layer writes it as raw HTTP/1.1 bytes before any session exists
//! ([`Answer::http1_bytes`]). See `docs/architecture.md#routes` for the shapes users rely on.

mod completion;
mod pages;
mod refusals;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

pub use completion::{completion_page, flow_failure_page};
pub use pages::*;
pub use refusals::{bot_refusal, proxy_error_status};

/// A whole answer the gateway writes itself: status, headers (content type included) and body.
/// Every answer is `Cache-Control: no-store` unless it says otherwise, and `nosniff`.
#[derive(Debug, Clone)]
pub struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// An answer with `body` of `content_type`.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        Self { status, headers, body: body.into() }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    /// `{"error": code, "message": message}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(status, &serde_json::json!({"error": code, "message": message}))
    }

    /// An HTML page.
    pub fn html(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
    }

    /// No body (204, 302).
    pub fn empty(status: u16) -> Self {
        Self::new(status, "text/plain", Bytes::new())
    }

    /// A 302 to `location` (already a valid URL), sending no `Referer` onwards.
    pub fn redirect(location: &str) -> Self {
        Self::empty(302)
            .with_header(http::header::LOCATION, location)
            .with_header_static("referrer-policy", "no-referrer")
    }

    /// Sets `name` to `value`; a value that is not a valid header value is left out.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// Sets `name` to a constant value.
    pub fn with_header_static(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        self
    }

    /// Adds the `Set-Cookie` of a created or rotated session, when there is one.
    pub fn with_cookie(mut self, set_cookie: Option<&str>) -> Self {
        if let Some(v) = set_cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
            self.headers.append(http::header::SET_COOKIE, v);
        }
        self
    }

    /// `Retry-After` in seconds.
    pub fn retry_after(self, seconds: Option<u32>) -> Self {
        match seconds {
            Some(s) => self.with_header(http::header::RETRY_AFTER, &s.to_string()),
            None => self,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// As an `http` response (the status channel's hyper server).
    pub fn into_http(self) -> http::Response<Bytes> {
        let mut r = http::Response::new(self.body);
        *r.status_mut() = http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        *r.headers_mut() = self.headers;
        r
    }

    /// The bytes of a whole HTTP/1.1 answer that closes the connection, for answers written
    /// before any HTTP session exists.
    pub fn http1_bytes(&self) -> Vec<u8> {
        let reason = http::StatusCode::from_u16(self.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// Writes `answer` as the whole answer to the downstream.
pub async fn write(session: &mut Session, answer: Answer) -> pingora::Result<()> {
    let Answer { status, headers, body } = answer;
    let mut header = ResponseHeader::build(status, Some(headers.len() + 1))?;
    for (name, value) in &headers {
        header.append_header(name.clone(), value.clone())?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    session.write_response_header(Box::new(header), body.is_empty()).await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// True when the client prefers JSON (`Accept` names `application/json` or `+json`) over HTML.
pub fn wants_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        let a = a.to_ascii_lowercase();
        (a.contains("application/json") || a.contains("+json")) && !a.starts_with("text/html")
    })
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
