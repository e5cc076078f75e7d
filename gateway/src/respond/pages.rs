//! The answers of the gateway's own routes and of the request path's own failures.

use serde_json::json;

use super::Answer;

/// 421: the `Host` is not one this gateway serves.
pub fn misdirected(json: bool) -> Answer {
    let message = "This gateway does not serve the requested host.";
    if json {
        Answer::error(421, "misdirected_request", message)
    } else {
        page(421, "Misdirected request", message)
    }
}

/// 200: the gateway can serve.
pub fn health(healthy_upstreams: usize, total_upstreams: usize) -> Answer {
    Answer::json(200, &json!({"status": "ok", "upstreams": {"healthy": healthy_upstreams, "total": total_upstreams}}))
}

/// Readiness: 200 `{"ready":true,"missing":[]}`, or 503 naming what is `missing`.
pub fn readiness(missing: &[String]) -> Answer {
    let status = if missing.is_empty() { 200 } else { 503 };
    Answer::json(status, &json!({"ready": missing.is_empty(), "missing": missing}))
}

/// The answer to a proxying failure of `status` (`proxy_error_status`): short, naming no
/// internal address, JSON or a page by the client's `Accept`.
pub fn proxy_failure(status: u16, json: bool) -> Answer {
    let (code, title, message) = match status {
        502 => ("bad_gateway", "Bad gateway", "The application server could not be reached. Try again shortly."),
        504 => ("gateway_timeout", "Gateway timeout", "The application server did not answer in time."),
        400 => ("bad_request", "Bad request", "The request could not be read."),
        431 => ("request_header_fields_too_large", "Request headers too large", "The request headers are too large."),
        _ if status >= 500 => ("internal_error", "Gateway error", "The gateway could not complete the request."),
        _ => ("request_failed", "Request failed", "The request could not be completed."),
    };
    if json {
        Answer::error(status, code, message)
    } else {
        page(status, title, message)
    }
}

/// 413 for a gateway route body over its limit.
pub fn too_large() -> Answer {
    Answer::error(413, "payload_too_large", "the request body is too large")
}

/// 400 for a path that cannot be normalised.
pub fn bad_path() -> Answer {
    Answer::error(400, "bad_request", "the request path is malformed")
}

/// 404 for a gateway path that serves nothing.
pub fn not_found() -> Answer {
    Answer::json(404, &json!({"error": "not_found"}))
}

/// 405 naming the allowed method.
pub fn method_not_allowed(allow: &'static str) -> Answer {
    Answer::json(405, &json!({"error": "method_not_allowed"})).with_header(http::header::ALLOW, allow)
}

/// 204: done, nothing to say (logout, a redeemed handoff), with the rotated cookie if any.
pub fn done(set_cookie: Option<&str>) -> Answer {
    Answer::empty(204).with_cookie(set_cookie)
}

/// The client script (`gateway.signIn(provider)`), cacheable for five minutes.
pub fn client_js() -> Answer {
    Answer::new(200, "application/javascript; charset=utf-8", CLIENT_JS)
        .with_header_static("cache-control", "public, max-age=300")
}

const CLIENT_JS: &str = include_str!("../../assets/client.js");

/// A minimal HTML page: a title and one sentence.
fn page(status: u16, title: &str, message: &str) -> Answer {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>\n"
    );
    Answer::html(status, body)
}
