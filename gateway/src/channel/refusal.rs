//! Why the status channel refused a request; `respond` chooses each one's answer.

use crate::metrics::Limit;

/// A refused status-channel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRefusal {
    /// An upgrade that is not a WebSocket version 13 handshake.
    NotWebSocket13,
    /// An Engine.IO request the protocol refuses (answered with Engine.IO's own error body).
    EngineIo(EngineIoError),
    /// A connection or entry limit.
    OverLimit(Limit),
    /// An SSE stream without a session.
    NoSession,
    /// An SSE stream past the session's socket limit.
    SessionFull,
    /// A path the channel server does not serve.
    NotFound,
}

/// Engine.IO's error codes (engine.io `Server.errors`), as its clients read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineIoError {
    /// 0: a transport other than polling (or websocket, for an upgrade).
    TransportUnknown,
    /// 1: no Engine.IO session has this `sid` (or it belongs to another gateway session).
    SessionIdUnknown,
    /// 3: a request the session's state does not allow (a second poll, a bad payload).
    BadRequest,
    /// 3: a posted payload over the limit.
    PayloadTooLarge,
    /// 5: an `EIO` other than 3 or 4.
    UnsupportedVersion,
    /// 0: the gateway holds as many Engine.IO sessions as it may.
    ServerBusy,
}

impl EngineIoError {
    /// The protocol's code and message.
    pub fn code_and_message(self) -> (u8, &'static str) {
        match self {
            EngineIoError::TransportUnknown => (0, "Transport unknown"),
            EngineIoError::SessionIdUnknown => (1, "Session ID unknown"),
            EngineIoError::BadRequest => (3, "Bad request"),
            EngineIoError::PayloadTooLarge => (3, "Payload too large"),
            EngineIoError::UnsupportedVersion => (5, "Unsupported protocol version"),
            EngineIoError::ServerBusy => (0, "Server busy"),
        }
    }
}
