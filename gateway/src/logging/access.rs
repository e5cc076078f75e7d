//! The access line: one per request, in the shape of the gateway's other log lines (text or
//! JSON, the same fields as a tracing record of target `gateway::proxy`), formatted straight
//! into bytes. Going through tracing's field machinery cost more than a whole request's header
//! handling; this writes the same line for a fraction of it.

use std::cell::RefCell;
use std::fmt::Display;
use std::io::Write;
use std::time::{Duration, SystemTime};

use super::{sink::SINK, LogFormat, STYLE};

/// One request, as its access line names it. `path` must already be safe to log (no ticket).
pub struct AccessLine<'a> {
    /// The request method.
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The status answered (0: none).
    pub status: u16,
    /// The route class label.
    pub route: &'static str,
    /// Where it was proxied, if anywhere.
    pub upstream: Option<&'a dyn Display>,
    /// The trace id, if any.
    pub trace_id: Option<&'a dyn Display>,
    /// Time from the complete head to the end of the answer.
    pub duration: Duration,
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

/// Writes `line` to the log. The caller decides whether the access line is enabled (its
/// level and target, as `RUST_LOG` says).
pub fn write(line: &AccessLine<'_>) {
    let (format, ansi) = STYLE.get().copied().unwrap_or((LogFormat::Text, false));
    LINE.with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else { return };
        buf.clear();
        match format {
            LogFormat::Text => text(&mut buf, line, ansi, SystemTime::now()),
            LogFormat::Json => json(&mut buf, line, SystemTime::now()),
        }
        SINK.append(&buf, false);
    });
}

fn text(buf: &mut Vec<u8>, line: &AccessLine<'_>, ansi: bool, now: SystemTime) {
    timestamp(buf, now);
    buf.extend_from_slice(if ansi { b" \x1b[32m INFO\x1b[0m access method=" } else { b"  INFO access method=" });
    buf.extend_from_slice(line.method.as_bytes());
    buf.extend_from_slice(b" path=");
    quoted(buf, line.path);
    let _ = write!(buf, " status={} route=", line.status);
    quoted(buf, line.route);
    buf.extend_from_slice(b" upstream=");
    display_or_dash(buf, line.upstream);
    buf.extend_from_slice(b" trace_id=");
    display_or_dash(buf, line.trace_id);
    buf.extend_from_slice(b" duration_ms=");
    millis(buf, line.duration);
    buf.push(b'\n');
}

fn json(buf: &mut Vec<u8>, line: &AccessLine<'_>, now: SystemTime) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(buf, now);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"access\",\"method\":");
    quoted(buf, line.method);
    buf.extend_from_slice(b",\"path\":");
    quoted(buf, line.path);
    let _ = write!(buf, ",\"status\":{},\"route\":", line.status);
    quoted(buf, line.route);
    buf.extend_from_slice(b",\"upstream\":\"");
    display_or_dash(buf, line.upstream);
    buf.extend_from_slice(b"\",\"trace_id\":\"");
    display_or_dash(buf, line.trace_id);
    buf.extend_from_slice(b"\",\"duration_ms\":");
    millis(buf, line.duration);
    buf.extend_from_slice(b",\"target\":\"gateway::proxy\"}\n");
}

/// `value` in double quotes; `"`, `\` and control characters escaped (valid in JSON and as
/// the text format shows strings). A request path holds no other character that needs it.
fn quoted(buf: &mut Vec<u8>, value: &str) {
    buf.push(b'"');
    for &b in value.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            0..=0x1f | 0x7f => {
                let _ = write!(buf, "\\u{b:04x}");
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

/// The value, or `-` when there is none. Values are addresses and hex ids: nothing to escape.
fn display_or_dash(buf: &mut Vec<u8>, value: Option<&dyn Display>) {
    match value {
        Some(v) => {
            let _ = write!(buf, "{v}");
        }
        None => buf.push(b'-'),
    }
}

/// Milliseconds with microsecond digits: `1.090`.
fn millis(buf: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros();
    let _ = write!(buf, "{}.{:03}", micros / 1000, micros % 1000);
}

/// RFC 3339 in UTC with microseconds, as the other log lines: `2026-12-07T08:36:52.492329Z`.
fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    let _ = write!(buf, "{}", humantime::format_rfc3339_micros(now));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn sample<'a>(upstream: Option<&'a dyn Display>, trace: Option<&'a dyn Display>) -> AccessLine<'a> {
        AccessLine {
            method: "GET",
            path: "/a \"quoted\"\\path\u{1}",
            status: 200,
            route: "upstream",
            upstream,
            trace_id: trace,
            duration: Duration::from_micros(1_090),
        }
    }

    fn at() -> SystemTime {
        // 2026-12-07T08:36:52.492329Z
        UNIX_EPOCH + Duration::from_secs(1_796_632_612) + Duration::from_micros(492_329)
    }

    #[test]
    fn the_text_line_has_the_fields_of_a_tracing_record() {
        let addr: std::net::SocketAddr = "127.0.0.1:44551".parse().unwrap();
        let mut buf = Vec::new();
        text(&mut buf, &sample(Some(&addr), Some(&"4bf92f3577b34da6a3ce929d0e0e4736")), false, at());
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2026-12-07T08:36:52.492329Z  INFO access method=GET path=\"/a \\\"quoted\\\"\\\\path\\u0001\" \
             status=200 route=\"upstream\" upstream=127.0.0.1:44551 \
             trace_id=4bf92f3577b34da6a3ce929d0e0e4736 duration_ms=1.090\n"
        );
        let mut buf = Vec::new();
        text(&mut buf, &sample(None, None), false, at());
        assert!(String::from_utf8(buf).unwrap().ends_with(" upstream=- trace_id=- duration_ms=1.090\n"));
    }

    #[test]
    fn the_json_line_is_one_valid_object_with_the_same_fields() {
        let addr: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        let mut buf = Vec::new();
        json(&mut buf, &sample(Some(&addr), None), at());
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["timestamp"], "2026-12-07T08:36:52.492329Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "access");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/a \"quoted\"\\path\u{1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["route"], "upstream");
        assert_eq!(v["upstream"], "[::1]:8080");
        assert_eq!(v["trace_id"], "-");
        assert_eq!(v["duration_ms"], 1.09);
        assert_eq!(v["target"], "gateway::proxy");
    }
}
