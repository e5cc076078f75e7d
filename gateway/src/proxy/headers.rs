//! Headers of the request path: what is stripped from a client's request, what the upstream
//! request gets (forwarding, trace context, identity), and what is read from the request head.

use pingora::proxy::Session;
use pingora::Result;

use super::{forwarded, trace, Gateway, Live, RequestCtx};
use crate::respond;

impl Gateway {
    /// Step 1 of the request path (`docs/architecture.md#request-path`): remove every header a client may not set.
    pub(super) fn strip_headers(live: &Live, session: &mut Session, ctx: &mut RequestCtx) {
        ctx.client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        ctx.trusted_peer = forwarded::is_trusted(ctx.client_ip, &live.trusted_proxies);
        let req = session.req_header_mut();
        for name in live.headers.headers_to_strip(req.headers.keys(), ctx.trusted_peer) {
            req.remove_header(&name);
        }
        let xff = req.headers.get_all(forwarded::X_FORWARDED_FOR);
        ctx.client = forwarded::client_address(ctx.client_ip, xff.iter(), &live.trusted_proxies);
    }

    /// docs/architecture.md#operations: continue the client's valid `traceparent`, else start a
    /// trace; a `tracestate` without its valid `traceparent` is dropped.
    pub(super) fn trace_context(session: &mut Session) -> Option<trace::TraceContext> {
        let req = session.req_header();
        let sent = req.headers.get(trace::TRACEPARENT).map(http::HeaderValue::as_bytes);
        let single = req.headers.get_all(trace::TRACEPARENT).iter().count() <= 1;
        let context = trace::TraceContext::from_client(sent.filter(|_| single));
        if !context.is_some_and(|c| c.is_continued()) {
            session.req_header_mut().remove_header(trace::TRACESTATE);
        }
        context
    }

    /// The `Host` (HTTP/1.1, shared with the request, not copied) or `:authority` (HTTP/2) the
    /// client used.
    pub(super) fn request_host(session: &Session) -> Option<http::HeaderValue> {
        let req = session.req_header();
        match req.headers.get(http::header::HOST) {
            Some(h) => Some(h.clone()),
            None => req.uri.authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()),
        }
    }

    pub(super) fn wants_json(session: &Session) -> bool {
        let accept = session.req_header().headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
        respond::wants_json(accept)
    }

    /// The forwarding headers and, when signed in, the identity headers of an upstream request.
    pub(super) fn add_upstream_headers(
        &self,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let header = |name: &str| upstream_request.headers.get(name).and_then(|v| v.to_str().ok());
        let trusted = ctx.trusted_peer.then(|| forwarded::TrustedValues {
            xff: header(forwarded::X_FORWARDED_FOR),
            proto: header(forwarded::X_FORWARDED_PROTO),
            host: header(forwarded::X_FORWARDED_HOST),
        });
        // The request's own `Host` (HTTP/1.1), or the `:authority` kept when the request came (HTTP/2).
        let host = match upstream_request.headers.get(http::header::HOST) {
            Some(h) => Some(h.clone()),
            None => ctx.host.clone(),
        };
        let values = forwarded::forwarding_values(ctx.client_ip, self.https, host.as_ref(), trusted);
        for (name, value) in values {
            if let Some(value) = value {
                upstream_request.insert_header(name, value)?;
            }
        }
        match &ctx.trace {
            Some(trace) => upstream_request.insert_header(trace::TRACEPARENT, trace.header_value())?,
            None => {
                upstream_request.remove_header(trace::TRACEPARENT);
            }
        }
        if let (Some(tokens), Some(live)) = (&ctx.tokens, &ctx.live) {
            for (name, value) in live.identity_names.headers(tokens, ctx.forward_token) {
                upstream_request.insert_header(name, value)?;
            }
        }
        Ok(())
    }

    /// Whether the request asks for a WebSocket (not another protocol).
    pub(super) fn is_websocket(session: &Session) -> bool {
        let upgrade = session.req_header().headers.get(http::header::UPGRADE);
        upgrade.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    }
}
