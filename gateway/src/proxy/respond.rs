//! The one place where outcomes and errors become HTTP responses the gateway writes itself.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

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
