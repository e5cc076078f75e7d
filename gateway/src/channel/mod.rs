//! The status channel: a hub of rooms by session, and (issue #4) its WebSocket, SSE and
//! socket.io transports.

pub mod event;
pub mod hub;

pub use event::StatusEvent;
pub use hub::Hub;
