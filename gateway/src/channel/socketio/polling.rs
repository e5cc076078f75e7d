//! The polling transport: handshake, long-poll GET and packet POST, as plain request → reply.

use std::sync::Arc;
use std::time::Instant;

use super::engine_io::{decode_payload, encode_payload, Version};
use super::session::{SocketIo, MAX_PAYLOAD};
use crate::channel::admission::EntryPermit;
use crate::session::SessionId;

/// The Engine.IO query of a request.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `EIO`.
    pub eio: Option<String>,
    /// `transport`.
    pub transport: Option<String>,
    /// `sid`.
    pub sid: Option<String>,
    /// `b64=1` (v3 clients without XHR2 binary support).
    pub b64: bool,
}

impl Query {
    /// Parses a query string.
    pub fn parse(query: Option<&str>) -> Self {
        let mut q = Query::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "EIO" => q.eio = Some(v.into_owned()),
                "transport" => q.transport = Some(v.into_owned()),
                "sid" => q.sid = Some(v.into_owned()),
                "b64" => q.b64 = v == "1" || v == "true",
                _ => {}
            }
        }
        q
    }

    /// The protocol version, when supported.
    pub fn version(&self) -> Option<Version> {
        self.eio.as_deref().and_then(Version::parse)
    }
}

/// A polling answer.
#[derive(Debug)]
pub struct PollReply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u32>,
}

fn error(status: u16, code: u8, message: &str) -> PollReply {
    let body = serde_json::json!({"code": code, "message": message}).to_string().into_bytes();
    PollReply { status, content_type: "application/json", body, retry_after: None }
}

impl SocketIo {
    /// `GET`: a handshake (holding `permit`, its place among the channel's entries) without
    /// `sid`, else a long-poll.
    pub async fn poll_get(
        self: &Arc<Self>,
        q: &Query,
        owner: Option<SessionId>,
        permit: Option<EntryPermit>,
    ) -> PollReply {
        let Some(version) = q.version() else { return error(400, 5, "Unsupported protocol version") };
        if q.transport.as_deref() != Some("polling") {
            return error(400, 0, "Transport unknown");
        }
        let Some(sid) = &q.sid else {
            let binary = version == Version::V3 && !q.b64;
            let Some(s) = self.open(version, binary, owner, permit) else {
                return PollReply { retry_after: Some(1), ..error(503, 0, "Server busy") };
            };
            let mut packets = vec![self.open_packet(&s)];
            if version == Version::V3 {
                // socket.io 1.x/2.x connect the default namespace implicitly.
                self.connect(&s);
                packets.extend(s.take_all());
            }
            let (ct, body) = encode_payload(version, s.binary, &packets);
            return PollReply { status: 200, content_type: ct, body, retry_after: None };
        };
        let Some(s) = self.find(sid, owner) else { return error(400, 1, "Session ID unknown") };
        if s.lock().upgraded {
            return error(400, 3, "Bad request");
        }
        if std::mem::replace(&mut s.lock().polling, true) {
            // Two concurrent polls on one session are a protocol violation.
            s.close();
            return error(400, 3, "Bad request");
        }
        let deadline = tokio::time::sleep(self.ping_interval);
        tokio::pin!(deadline);
        let packets = loop {
            let notified = s.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let packets = s.take_all();
            if !packets.is_empty() {
                break packets;
            }
            if s.is_closed() {
                break vec!["1".to_owned()];
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = &mut deadline => break vec!["6".to_owned()],
            }
        };
        {
            let mut st = s.lock();
            st.polling = false;
            st.last_seen = Instant::now();
        }
        let (ct, body) = encode_payload(version, s.binary, &packets);
        PollReply { status: 200, content_type: ct, body, retry_after: None }
    }

    /// `POST`: packets from the client.
    pub fn poll_post(self: &Arc<Self>, q: &Query, owner: Option<SessionId>, body: &[u8]) -> PollReply {
        let Some(version) = q.version() else { return error(400, 5, "Unsupported protocol version") };
        if body.len() > MAX_PAYLOAD {
            return error(413, 3, "Payload too large");
        }
        let Some(s) = q.sid.as_deref().and_then(|sid| self.find(sid, owner)) else {
            return error(400, 1, "Session ID unknown");
        };
        match decode_payload(version, body) {
            Ok(packets) => {
                for p in packets {
                    self.handle_packet(&s, &p);
                }
                PollReply { status: 200, content_type: "text/html", body: b"ok".to_vec(), retry_after: None }
            }
            Err(_) => {
                s.close();
                error(400, 3, "Bad request")
            }
        }
    }
}
