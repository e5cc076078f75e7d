//! Engine.IO 3/4 polling payloads and the socket.io packets inside them: `decode_payload`
//! (v4 record separators, v3 text `len:packet` in UTF-16 units, v3 binary XHR2 framing),
//! `parse_packet`, `socketio::packet::parse`, and the polling query (`Query::parse`).
//!
//! Input: first byte picks the mode, the rest is the POST body (or the query string).
//! - 0: v4; 1: v3 (text or binary, by the body's first byte); 2: the query string.
//!
//! Invariants: nothing panics; every decoded payload re-encodes (text and, for v3, binary
//! framing) to a body that decodes to the same packets.
#![no_main]

use gateway::channel::socketio::engine_io::{decode_payload, encode_payload, parse_packet, PacketType, Version};
use gateway::channel::socketio::packet;
use gateway::channel::socketio::Query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let version = match mode {
        0 => Version::V4,
        1 => Version::V3,
        2 => {
            let q = Query::parse(std::str::from_utf8(body).ok());
            let _ = q.version();
            return;
        }
        _ => return,
    };
    let Ok(packets) = decode_payload(version, body) else { return };
    for p in &packets {
        if let Ok((PacketType::Message, data)) = parse_packet(p) {
            let _ = packet::parse(data);
        }
    }
    let binary: &[bool] = if version == Version::V3 { &[false, true] } else { &[false] };
    for &b in binary {
        let (_, encoded) = encode_payload(version, b, &packets);
        assert_eq!(decode_payload(version, &encoded).as_ref(), Ok(&packets), "binary={b}");
    }
});
