//! socket.io packets inside Engine.IO messages: `40` connect, `41` disconnect, `42[...]` events,
//! `44` connect errors; only the default namespace `/` exists.

use super::engine_io::Version;
use crate::channel::StatusEvent;

/// What a client's socket.io packet asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPacket {
    /// CONNECT to the default namespace.
    Connect,
    /// CONNECT to another namespace (refused).
    ConnectOther(String),
    /// DISCONNECT.
    Disconnect,
    /// An event or ack from the client (ignored: the channel is one-way).
    Other,
}

/// Parses the data of an Engine.IO message (after the `4`).
pub fn parse(data: &str) -> Option<ClientPacket> {
    let (kind, rest) = data.split_at_checked(1)?;
    let namespace = if rest.starts_with('/') { rest.split([',', '{']).next().unwrap_or("/") } else { "/" };
    match kind {
        "0" if namespace == "/" => Some(ClientPacket::Connect),
        "0" => Some(ClientPacket::ConnectOther(namespace.chars().take(64).collect())),
        "1" => Some(ClientPacket::Disconnect),
        "2" | "3" | "5" | "6" => Some(ClientPacket::Other),
        _ => None,
    }
}

/// `42[NAME, data]` for a status event.
pub fn event(e: &StatusEvent) -> String {
    format!("42{}", serde_json::Value::Array(vec![e.name().into(), e.data()]))
}

/// The connect acknowledgement: v4 `40{"sid":…}`, v3 `40`.
pub fn connected(version: Version, socket_id: &str) -> String {
    match version {
        Version::V4 => format!("40{}", serde_json::json!({"sid": socket_id})),
        Version::V3 => "40".to_owned(),
    }
}

/// A connect error for `namespace`: v4 `44{"message":…}`, v3 `44"…"` (an `error` event).
pub fn connect_error(version: Version, namespace: &str, message: &str) -> String {
    let ns = if namespace == "/" { String::new() } else { format!("{namespace},") };
    match version {
        Version::V4 => format!("44{ns}{}", serde_json::json!({"message": message})),
        Version::V3 => format!("44{ns}{}", serde_json::Value::String(message.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_follow_the_socketio_wire_format() {
        assert_eq!(parse("0"), Some(ClientPacket::Connect));
        assert_eq!(parse("0{\"token\":1}"), Some(ClientPacket::Connect));
        assert_eq!(parse("0/admin,"), Some(ClientPacket::ConnectOther("/admin".into())));
        assert_eq!(parse("1"), Some(ClientPacket::Disconnect));
        assert_eq!(parse(""), None);
        assert_eq!(event(&StatusEvent::Init), "42[\"init\",\"Private socket session established\"]");
        assert_eq!(connect_error(Version::V4, "/", "unauthorized"), "44{\"message\":\"unauthorized\"}");
        assert_eq!(connect_error(Version::V3, "/", "unauthorized"), "44\"unauthorized\"");
    }
}
