//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` every request
//! forwarded upstream carries. A valid one from the client keeps its trace id (and flags); the
//! gateway is a new span in it. A missing or invalid one is replaced by a new trace, and the
//! client's `tracestate` is then dropped with it (§3.3: it means nothing without its parent).

use rand::RngCore;

/// The header name (§3.2).
pub const TRACEPARENT: &str = "traceparent";
/// The vendor state header that travels with it (§3.3).
pub const TRACESTATE: &str = "tracestate";

/// One request's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    /// The client's span (the `parent-id` of its `traceparent`), when the trace was continued.
    parent: Option<[u8; 8]>,
    flags: u8,
    /// True when the trace id came from the client's `traceparent`.
    continued: bool,
}

impl TraceContext {
    /// Continues the client's `traceparent` when it is valid, else starts a new trace; `None`
    /// only when the system's random source fails.
    pub fn from_client(header: Option<&[u8]>) -> Option<Self> {
        let span_id = random_nonzero::<8>()?;
        if let Some((trace_id, parent, flags)) = header.and_then(parse) {
            return Some(Self { trace_id, span_id, parent: Some(parent), flags, continued: true });
        }
        Some(Self { trace_id: random_nonzero::<16>()?, span_id, parent: None, flags: 0, continued: false })
    }

    /// True when the client's trace was continued (its `tracestate` may travel on).
    pub fn is_continued(&self) -> bool {
        self.continued
    }

    /// The trace id, 32 lower-case hex digits when displayed (what the access line names).
    pub fn trace_id(&self) -> TraceId {
        TraceId(self.trace_id)
    }

    /// The `traceparent` value for the upstream: this trace, the gateway's span as parent.
    pub fn header_value(&self) -> http::HeaderValue {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut out[3..35]);
        out[35] = b'-';
        hex_into(&self.span_id, &mut out[36..52]);
        out[52] = b'-';
        hex_into(&[self.flags], &mut out[53..55]);
        // Hex digits and dashes only: always a valid header value.
        http::HeaderValue::from_bytes(&out).unwrap_or_else(|_| http::HeaderValue::from_static("-"))
    }
}

/// A trace id; shown as 32 lower-case hex digits without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId([u8; 16]);

impl std::fmt::Display for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = [0u8; 32];
        hex_into(&self.0, &mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| std::fmt::Error)?)
    }
}

/// The trace id, parent id and flags of a valid `traceparent` (§3.2.2): version `00` with
/// exactly four fields, or a later version (not `ff`) with at least them; lower-case hex; ids not
/// all zero.
fn parse(value: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let mut parts = text.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version = decode::<1>(version)?[0];
    if version == 0xff || (version == 0 && parts.next().is_some()) {
        return None;
    }
    let trace_id = decode::<16>(trace)?;
    let parent_id = decode::<8>(parent)?;
    let flags = decode::<1>(flags)?[0];
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some((trace_id, parent_id, flags))
}

/// With `[telemetry] otlp_endpoint`: the request's span (the gateway's span of its trace, the
/// client's span as parent) and, as its children, the sign-in steps this task noted while serving
/// it. Without it: one check, nothing built. Names and attributes carry no path, query, header,
/// cookie, token, code or state.
pub(super) fn export(req: &pingora::http::RequestHeader, ctx: &super::ctx::RequestCtx, status: u16) {
    let Some(telemetry) = ctx.live.as_ref().and_then(|l| l.auth.telemetry()) else { return };
    let steps = telemetry.take_steps();
    let Some(trace) = ctx.trace else { return };
    use crate::telemetry::{Kind, Span, Value};
    let end = std::time::SystemTime::now();
    let start = end.checked_sub(ctx.started.elapsed()).unwrap_or(end);
    let mut attributes = vec![
        ("http.request.method", Value::Str(req.method.as_str().to_owned())),
        ("http.response.status_code", Value::Int(i64::from(status))),
        ("http.route", Value::Str(ctx.route.to_owned())),
    ];
    if let Some(upstream) = &ctx.upstream {
        attributes.push(("gateway.upstream", Value::Str(upstream.to_string())));
    }
    telemetry.record(Span {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent: trace.parent,
        name: format!("{} {}", req.method, ctx.route),
        kind: Kind::Server,
        start,
        end,
        attributes,
        error: status >= 500 || status == 0,
    });
    for step in steps {
        let Some(span_id) = random_nonzero::<8>() else { continue };
        telemetry.record(Span {
            trace_id: trace.trace_id,
            span_id,
            parent: Some(trace.span_id),
            name: step.name.to_owned(),
            kind: Kind::Internal,
            start: step.start,
            end: step.end,
            attributes: vec![
                ("gateway.provider", Value::Str(step.provider)),
                ("gateway.outcome", Value::Str(step.outcome.to_owned())),
            ],
            error: step.outcome != "ok",
        });
    }
}

fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 || !digits.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Writes `bytes` as lower-case hex into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// Random ids from the thread's generator (ChaCha, seeded and reseeded from the OS): trace and
/// span ids must be unique and unguessable enough to not collide, not secret, and a system
/// call per request for them would be most of the cost of tracing.
fn random_nonzero<const N: usize>() -> Option<[u8; N]> {
    let mut rng = rand::thread_rng();
    let mut out = [0u8; N];
    // All zeros is invalid (§3.2.2.3); with 64 or 128 random bits a second draw is all it takes.
    for _ in 0..4 {
        rng.try_fill_bytes(&mut out).ok()?;
        if out != [0; N] {
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_keeps_its_trace_id_and_flags_with_a_new_parent() {
        let t = TraceContext::from_client(Some(CLIENT.as_bytes())).unwrap();
        assert!(t.is_continued());
        assert_eq!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let value = t.header_value().to_str().unwrap().to_owned();
        assert!(value.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && value.ends_with("-01"), "{value}");
        assert_ne!(value, CLIENT, "the gateway's span is the new parent");
        // A later version with more fields is read as version 00 (§3.2.4).
        assert!(TraceContext::from_client(Some(format!("cc{}-extra", &CLIENT[2..]).as_bytes()))
            .unwrap()
            .is_continued());
    }

    #[test]
    fn an_invalid_or_missing_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "not a traceparent",
        ] {
            let t = TraceContext::from_client(Some(bad.as_bytes())).unwrap();
            assert!(!t.is_continued(), "{bad:?} was accepted");
            assert_ne!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(parse(t.header_value().as_bytes()).is_some(), "the new value is valid: {:?}", t.header_value());
        }
        let fresh = TraceContext::from_client(None).unwrap();
        assert_eq!(fresh.trace_id().to_string().len(), 32);
        assert!(fresh.header_value().as_bytes().ends_with(b"-00"));
    }
}
