//! Limits on what one downstream connection may cost: the size of a request head, and how long
//! a kept-alive connection may sit idle between two requests.
//!
//! Pingora reads request heads of up to 1 MiB and keeps an HTTP/1.1 connection open forever
//! between requests; these bound both to what an add-in's traffic needs.

use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// Largest request head (request line and header fields) served; a larger one gets 431.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// The size of `req`'s head as sent: the request line and one `name: value` line per field.
pub fn head_len(req: &RequestHeader) -> usize {
    let line = req.method.as_str().len() + req.raw_path().len() + " HTTP/1.1\r\n".len() + 1;
    req.headers.iter().fold(line, |n, (name, value)| n + name.as_str().len() + value.len() + ": \r\n".len())
}

/// True when a request body follows `req`'s head: a `Content-Length` above zero, or a
/// `Transfer-Encoding` (chunked).
pub fn has_body(req: &RequestHeader) -> bool {
    let length = req.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || length.is_some_and(|l| l.trim().parse::<u64>().map_or(true, |n| n > 0))
}

/// Caps the idle time before the connection's next request at `idle_secs` (at least 1), unless
/// the connection closes after this request anyway.
pub fn bound_keepalive(session: &mut Session, idle_secs: u64) {
    // `Some(0)` is Pingora's "forever", the default of every HTTP/1.1 connection.
    if session.get_keepalive().is_some_and(|t| t == 0 || t > idle_secs) {
        session.set_keepalive(Some(idle_secs.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_len_counts_the_request_line_and_every_field() {
        let mut req = RequestHeader::build("GET", b"/a?b", None).unwrap();
        req.append_header("x-one", "12345").unwrap();
        req.append_header("x-one", "6").unwrap();
        assert_eq!(head_len(&req), "GET /a?b HTTP/1.1\r\n".len() + "x-one: 12345\r\n".len() + "x-one: 6\r\n".len());
    }

    #[test]
    fn has_body_reads_the_framing_headers() {
        let mut req = RequestHeader::build("POST", b"/", None).unwrap();
        assert!(!has_body(&req));
        req.insert_header("content-length", "0").unwrap();
        assert!(!has_body(&req));
        req.insert_header("content-length", "12").unwrap();
        assert!(has_body(&req));
        req.remove_header("content-length");
        req.insert_header("transfer-encoding", "chunked").unwrap();
        assert!(has_body(&req));
    }
}
