//! The one place where outcomes and errors become HTTP responses the gateway writes itself.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

use crate::auth::callback::CallbackFailure;
use crate::auth::completion::{self, Outcome};
use crate::auth::error::FlowError;
use crate::auth::{self, AuthService, Reply};
use crate::metrics::Limit;
use crate::store::Opener;

/// A complete response the gateway answers locally.
#[derive(Debug)]
pub struct LocalResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Bytes,
}

impl LocalResponse {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self { status, content_type: "application/json", body: Bytes::from(value.to_string()) }
    }

    fn html(status: u16, title: &str, message: &str) -> Self {
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><p>{message}</p></body></html>\n"
        );
        Self { status, content_type: "text/html; charset=utf-8", body: Bytes::from(body) }
    }
}

/// True when the client prefers JSON (`Accept` names `application/json` or `+json`) over HTML.
pub fn wants_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        let a = a.to_ascii_lowercase();
        (a.contains("application/json") || a.contains("+json")) && !a.starts_with("text/html")
    })
}

/// 421: the `Host` is not one this gateway serves.
pub fn misdirected(json: bool) -> LocalResponse {
    let message = "This gateway does not serve the requested host.";
    if json {
        LocalResponse::json(421, &serde_json::json!({"error": "misdirected_request", "message": message}))
    } else {
        LocalResponse::html(421, "Misdirected request", message)
    }
}

/// 200: the gateway can serve.
pub fn health(healthy_upstreams: usize, total_upstreams: usize) -> LocalResponse {
    LocalResponse::json(
        200,
        &serde_json::json!({"status": "ok", "upstreams": {"healthy": healthy_upstreams, "total": total_upstreams}}),
    )
}

/// Readiness: 200 `{"ready":true,"missing":[]}`, or 503 naming what is `missing`.
pub fn readiness(missing: &[String]) -> LocalResponse {
    let status = if missing.is_empty() { 200 } else { 503 };
    LocalResponse::json(status, &serde_json::json!({"ready": missing.is_empty(), "missing": missing}))
}

/// The status a proxying error maps to (0: the client is gone, nothing to write).
pub fn status_for(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// The body for a proxying failure: short, and naming no internal address.
pub fn proxy_failure(status: u16, json: bool) -> LocalResponse {
    let (code, title, message) = match status {
        502 => ("bad_gateway", "Bad gateway", "The application server could not be reached. Try again shortly."),
        504 => ("gateway_timeout", "Gateway timeout", "The application server did not answer in time."),
        400 => ("bad_request", "Bad request", "The request could not be read."),
        431 => ("request_header_fields_too_large", "Request headers too large", "The request headers are too large."),
        _ if status >= 500 => ("internal_error", "Gateway error", "The gateway could not complete the request."),
        _ => ("request_failed", "Request failed", "The request could not be completed."),
    };
    if json {
        LocalResponse::json(status, &serde_json::json!({"error": code, "message": message}))
    } else {
        LocalResponse::html(status, title, message)
    }
}

/// 413 for a gateway route body over its limit.
pub fn too_large() -> LocalResponse {
    LocalResponse::json(413, &serde_json::json!({"error": "payload_too_large"}))
}

/// 400 for a path that cannot be normalised.
pub fn bad_path() -> LocalResponse {
    LocalResponse::json(400, &serde_json::json!({"error": "bad_request", "message": "the request path is malformed"}))
}

/// 403 for a request from an origin that is not allowed: the status channel, or a protected
/// route asked by a foreign page.
pub fn forbidden_origin() -> LocalResponse {
    LocalResponse::json(403, &serde_json::json!({"error": "forbidden_origin"}))
}

/// An answer to a connection or request refused by an admission limit or cut by a deadline.
#[derive(Debug)]
pub struct Refusal {
    /// The response.
    pub response: LocalResponse,
    /// `Retry-After`, in seconds, when waiting helps.
    pub retry_after: Option<u32>,
}

/// 503 for a gateway-wide limit, 429 for one client's, 408 for a deadline; `Retry-After` on
/// 429 and 503 (a client at its own limit waits longer than one meeting a full gateway).
pub fn over_limit(limit: Limit) -> Refusal {
    let (status, code, message, retry_after) = match limit {
        Limit::Connections | Limit::ChannelTotal => {
            (503, "server_busy", "the gateway is busy; try again shortly", Some(1))
        }
        Limit::ConnectionsPerClient | Limit::ChannelPerClient | Limit::ChannelPerSession | Limit::JoinTimeout => {
            (429, "too_many_requests", "too many open connections from this client", Some(5))
        }
        Limit::HeaderTimeout | Limit::BodyRate => (408, "request_timeout", "the request was too slow", None),
    };
    let response = LocalResponse::json(status, &serde_json::json!({"error": code, "message": message}));
    Refusal { response, retry_after }
}

/// `refusal` as the bytes of a whole HTTP/1.1 answer that closes the connection, for answers
/// written before any HTTP session exists.
pub fn http1_bytes(refusal: &Refusal) -> Vec<u8> {
    let r = &refusal.response;
    let reason = http::StatusCode::from_u16(r.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    if let Some(secs) = refusal.retry_after {
        head.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&r.body);
    out
}

/// The client script (`gateway.signIn(provider)`).
pub fn client_js() -> Reply {
    let mut r = auth::reply(200, "application/javascript; charset=utf-8", CLIENT_JS);
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=300"));
    r
}

const CLIENT_JS: &str = include_str!("../../assets/client.js");

/// 404 for a gateway path that serves nothing.
pub fn not_found() -> Reply {
    auth::json_reply(404, &serde_json::json!({"error": "not_found"}))
}

/// 405 naming the allowed method.
pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut r = auth::json_reply(405, &serde_json::json!({"error": "method_not_allowed"}));
    r.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

/// A failed popup start: the completion page with the OAuth error code (the popup closes).
pub fn flow_error(e: &FlowError, provider: &str, auth: &AuthService) -> Reply {
    let description = e.to_string();
    let outcome = Outcome::Failure { error: e.oauth_code(), description: &description };
    completion::page(e.status(), provider, &auth.public_origin(), Opener::Window, outcome)
}

/// A failed callback: the completion page with the OAuth error code.
pub fn callback_failure(f: &CallbackFailure, auth: &AuthService) -> Reply {
    let description = match &f.error {
        FlowError::Denied { description, .. } if !description.is_empty() => description.clone(),
        other => other.to_string(),
    };
    let outcome = Outcome::Failure { error: f.error.oauth_code(), description: &description };
    completion::page(f.error.status(), &f.provider, &auth.public_origin(), f.opener, outcome)
}

/// Writes a concern module's reply as the whole answer.
pub async fn write_reply(session: &mut Session, reply: Reply) -> pingora::Result<()> {
    let (parts, body) = reply.into_parts();
    let mut header = ResponseHeader::build(parts.status, Some(parts.headers.len() + 1))?;
    for (name, value) in &parts.headers {
        header.append_header(name.clone(), value.clone())?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    session.write_response_header(Box::new(header), body.is_empty()).await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Writes `refusal` as the whole answer, with its `Retry-After`.
pub async fn write_refusal(session: &mut Session, refusal: Refusal) -> pingora::Result<()> {
    let resp = refusal.response;
    let mut header = ResponseHeader::build(resp.status, Some(5))?;
    header.insert_header(http::header::CONTENT_TYPE, resp.content_type)?;
    header.insert_header(http::header::CONTENT_LENGTH, resp.body.len().to_string())?;
    header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    if let Some(secs) = refusal.retry_after {
        header.insert_header(http::header::RETRY_AFTER, secs.to_string())?;
    }
    session.write_response_header(Box::new(header), false).await?;
    session.write_response_body(Some(resp.body), true).await
}

/// Writes `resp` as the whole answer to the downstream.
pub async fn write(session: &mut Session, resp: LocalResponse) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(resp.status, Some(4))?;
    header.insert_header(http::header::CONTENT_TYPE, resp.content_type)?;
    header.insert_header(http::header::CONTENT_LENGTH, resp.body.len().to_string())?;
    header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    header.insert_header("x-content-type-options", "nosniff")?;
    session.write_response_header(Box::new(header), false).await?;
    session.write_response_body(Some(resp.body), true).await
}
