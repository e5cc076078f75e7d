//! The polling transport: handshake, long-poll GET and packet POST, as plain request → reply.

use std::sync::Arc;
use std::time::Instant;

use super::engine_io::{decode_payload, encode_payload, Version};
use super::session::{SocketIo, MAX_PAYLOAD};
use crate::channel::admission::EntryPermit;
use crate::channel::EngineIoError;
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

/// Encoded packets for a poll's answer.
#[derive(Debug)]
pub struct Payload {
    /// `Content-Type` of the encoding (text, or binary for Engine.IO 3's binary clients).
    pub content_type: &'static str,
    /// The encoded packets.
    pub body: Vec<u8>,
}

impl SocketIo {
    /// `GET`: a handshake (holding `permit`, its place among the channel's entries) without
    /// `sid`, else a long-poll.
    pub async fn poll_get(
        self: &Arc<Self>,
        q: &Query,
        owner: Option<SessionId>,
        permit: Option<EntryPermit>,
    ) -> Result<Payload, EngineIoError> {
        let version = q.version().ok_or(EngineIoError::UnsupportedVersion)?;
        if q.transport.as_deref() != Some("polling") {
            return Err(EngineIoError::TransportUnknown);
        }
        let Some(sid) = &q.sid else {
            let binary = version == Version::V3 && !q.b64;
            let s = self.open(version, binary, owner, permit).ok_or(EngineIoError::ServerBusy)?;
            let mut packets = vec![self.open_packet(&s)];
            if version == Version::V3 {
                // socket.io 1.x/2.x connect the default namespace implicitly.
                self.connect(&s);
                packets.extend(s.take_all());
            }
            let (content_type, body) = encode_payload(version, s.binary, &packets);
            return Ok(Payload { content_type, body });
        };
        let s = self.find(sid, owner).ok_or(EngineIoError::SessionIdUnknown)?;
        if s.lock().upgraded {
            return Err(EngineIoError::BadRequest);
        }
        if std::mem::replace(&mut s.lock().polling, true) {
            // Two concurrent polls on one session are a protocol violation.
            s.close();
            return Err(EngineIoError::BadRequest);
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
        let (content_type, body) = encode_payload(version, s.binary, &packets);
        Ok(Payload { content_type, body })
    }

    /// `POST`: packets from the client.
    pub fn poll_post(self: &Arc<Self>, q: &Query, owner: Option<SessionId>, body: &[u8]) -> Result<(), EngineIoError> {
        let version = q.version().ok_or(EngineIoError::UnsupportedVersion)?;
        if body.len() > MAX_PAYLOAD {
            return Err(EngineIoError::PayloadTooLarge);
        }
        let s = q.sid.as_deref().and_then(|sid| self.find(sid, owner)).ok_or(EngineIoError::SessionIdUnknown)?;
        match decode_payload(version, body) {
            Ok(packets) => {
                for p in packets {
                    self.handle_packet(&s, &p);
                }
                Ok(())
            }
            Err(_) => {
                s.close();
                Err(EngineIoError::BadRequest)
            }
        }
    }
}
