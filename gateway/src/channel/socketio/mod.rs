//! socket.io-compatible status channel (Engine.IO 3 and 4, polling and websocket), so existing
//! socket.io clients (the Office sample's 1.3.7 included) work unchanged.
//!
//! ```text
//!  GET  ?EIO=4&transport=polling          → 0{"sid",...}           (handshake)
//!  POST ?sid  40                          → ok; queue 40{"sid"}, 42["init",...] (+ auth_success)
//!  GET  ?sid                              → queued packets, or wait (≤ pingInterval) → 6
//!  WS   ?sid&transport=websocket          → 2probe/3probe, 5 → packets as frames
//!  EIO=3: the handshake also carries 40 (implicit connect); the client pings, we pong
//! ```
//! An Engine.IO session belongs to the gateway session that opened it: a request with its
//! `sid` from another (or no) session is refused.

pub mod engine_io;
pub mod packet;
mod polling;
mod session;

pub use polling::{Payload, Query};
pub use session::{EngineLimits, SocketIo};
