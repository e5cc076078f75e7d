//! Engine.IO packets and polling payloads, protocol versions 3 and 4.
//!
//! - v4 (socket.io 3/4): text payloads are packets joined by `\x1e`.
//! - v3 (socket.io 1/2): text payloads are `<length>:<packet>` with the length in UTF-16 units;
//!   binary (XHR2) payloads are `0x00 <length digits> 0xFF <packet bytes>` per packet, used when
//!   the client did not ask for `b64=1`.

/// Engine.IO protocol version, from the `EIO` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// socket.io 1.x and 2.x clients.
    V3,
    /// socket.io 3.x and 4.x clients.
    V4,
}

impl Version {
    /// From the `EIO` query value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "3" => Some(Version::V3),
            "4" => Some(Version::V4),
            _ => None,
        }
    }
}

/// Engine.IO packet types (the first character of a packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0` handshake.
    Open,
    /// `1` close.
    Close,
    /// `2` ping.
    Ping,
    /// `3` pong.
    Pong,
    /// `4` message (carries a socket.io packet).
    Message,
    /// `5` upgrade.
    Upgrade,
    /// `6` no-op.
    Noop,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Bad framing, length or packet type.
    #[error("malformed Engine.IO payload")]
    Malformed,
}

/// Splits a packet into its type and data.
pub fn parse_packet(packet: &str) -> Result<(PacketType, &str), DecodeError> {
    let mut chars = packet.chars();
    let t = match chars.next() {
        Some('0') => PacketType::Open,
        Some('1') => PacketType::Close,
        Some('2') => PacketType::Ping,
        Some('3') => PacketType::Pong,
        Some('4') => PacketType::Message,
        Some('5') => PacketType::Upgrade,
        Some('6') => PacketType::Noop,
        _ => return Err(DecodeError::Malformed),
    };
    Ok((t, chars.as_str()))
}

/// Decodes a polling POST body into packets.
pub fn decode_payload(version: Version, body: &[u8]) -> Result<Vec<String>, DecodeError> {
    match version {
        Version::V4 => {
            let text = std::str::from_utf8(body).map_err(|_| DecodeError::Malformed)?;
            Ok(text.split('\u{1e}').filter(|p| !p.is_empty()).map(str::to_owned).collect())
        }
        Version::V3 if body.first().is_some_and(|b| *b <= 1) => decode_v3_binary(body),
        Version::V3 => decode_v3_text(std::str::from_utf8(body).map_err(|_| DecodeError::Malformed)?),
    }
}

fn decode_v3_text(mut text: &str) -> Result<Vec<String>, DecodeError> {
    let mut out = Vec::new();
    while !text.is_empty() {
        let (len, rest) = text.split_once(':').ok_or(DecodeError::Malformed)?;
        let len: usize = len.parse().map_err(|_| DecodeError::Malformed)?;
        // The length counts UTF-16 code units.
        let mut units = 0;
        let mut end = 0;
        for c in rest.chars() {
            if units == len {
                break;
            }
            units += c.len_utf16();
            end += c.len_utf8();
        }
        if units != len || len == 0 {
            return Err(DecodeError::Malformed);
        }
        out.push(rest[..end].to_owned());
        text = &rest[end..];
    }
    Ok(out)
}

fn decode_v3_binary(mut body: &[u8]) -> Result<Vec<String>, DecodeError> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = body.split_first() {
        // Every packet starts with its kind, 0 (string); 1 (binary attachment) is not used by the
        // status channel, and anything else is not a packet start at all.
        if kind != 0 {
            return Err(DecodeError::Malformed);
        }
        let sep = rest.iter().position(|b| *b == 0xFF).ok_or(DecodeError::Malformed)?;
        let digits = &rest[..sep];
        if digits.is_empty() || digits.len() > 9 || digits.iter().any(|d| *d > 9) {
            return Err(DecodeError::Malformed);
        }
        let len = digits.iter().fold(0usize, |acc, d| acc * 10 + usize::from(*d));
        if len == 0 {
            // No packet type: refused here as in the text framing.
            return Err(DecodeError::Malformed);
        }
        let start = 1 + sep + 1;
        let data = body.get(start..start + len).ok_or(DecodeError::Malformed)?;
        out.push(String::from_utf8(data.to_vec()).map_err(|_| DecodeError::Malformed)?);
        body = &body[start + len..];
    }
    Ok(out)
}

/// Encodes packets for a polling GET answer: `(content_type, body)`.
pub fn encode_payload(version: Version, binary: bool, packets: &[String]) -> (&'static str, Vec<u8>) {
    match version {
        Version::V4 => ("text/plain; charset=UTF-8", packets.join("\u{1e}").into_bytes()),
        Version::V3 if binary => {
            let mut out = Vec::new();
            for p in packets {
                out.push(0u8);
                let len = p.len().to_string();
                out.extend(len.bytes().map(|d| d - b'0'));
                out.push(0xFF);
                out.extend_from_slice(p.as_bytes());
            }
            ("application/octet-stream", out)
        }
        Version::V3 => {
            let mut out = String::new();
            for p in packets {
                let units: usize = p.chars().map(char::len_utf16).sum();
                out.push_str(&units.to_string());
                out.push(':');
                out.push_str(p);
            }
            ("text/plain; charset=UTF-8", out.into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_payloads_split_on_record_separator() {
        assert_eq!(decode_payload(Version::V4, b"40\x1e3").unwrap(), ["40", "3"]);
        let (_, body) = encode_payload(Version::V4, false, &["2".into(), "42[\"a\"]".into()]);
        assert_eq!(body, b"2\x1e42[\"a\"]");
    }

    #[test]
    fn v3_text_lengths_count_utf16_units() {
        let (_, body) = encode_payload(Version::V3, false, &["42[\"é😀\"]".into()]);
        assert_eq!(String::from_utf8(body.clone()).unwrap(), "9:42[\"é😀\"]");
        assert_eq!(decode_payload(Version::V3, &body).unwrap(), ["42[\"é😀\"]"]);
        assert_eq!(decode_payload(Version::V3, b"1:22:40").unwrap(), ["2", "40"]);
        assert_eq!(decode_payload(Version::V3, b"5:2"), Err(DecodeError::Malformed));
        assert_eq!(decode_payload(Version::V3, b"x:2"), Err(DecodeError::Malformed));
    }

    #[test]
    fn v3_binary_framing_round_trips() {
        let packets = vec!["0{\"sid\":\"x\"}".to_owned(), "40".to_owned()];
        let (ct, body) = encode_payload(Version::V3, true, &packets);
        assert_eq!(ct, "application/octet-stream");
        assert_eq!(&body[..4], &[0, 1, 2, 0xFF]);
        assert_eq!(decode_payload(Version::V3, &body).unwrap(), packets);
        assert_eq!(decode_payload(Version::V3, &[0, 9, 9, 0xFF, b'2']), Err(DecodeError::Malformed));
    }

    #[test]
    fn v3_binary_packet_after_the_first_must_start_with_a_kind() {
        // Found by tests/fuzz (engine_io): a second packet starting with the 0xFF separator
        // sliced `body[1..0]` and panicked the polling POST handler.
        let body = [0, 2, 0xFF, b't', b'h', 0xFF, 0xFF, 0xFF, 2, 0xFF, b'4', b'2'];
        assert_eq!(decode_payload(Version::V3, &body), Err(DecodeError::Malformed));
        assert_eq!(decode_payload(Version::V3, &[0, 1, 0xFF, b'2', 0xFF]), Err(DecodeError::Malformed));
        assert_eq!(decode_payload(Version::V3, &[1, 1, 0xFF, 0x00]), Err(DecodeError::Malformed));
    }

    #[test]
    fn empty_packets_are_refused_in_both_v3_framings() {
        // Found by tests/fuzz (engine_io): the binary framing accepted a zero-length packet
        // that the text framing (`0:`) refuses, so the two answered one payload differently.
        assert_eq!(decode_payload(Version::V3, &[0, 0, 0xFF]), Err(DecodeError::Malformed));
        assert_eq!(decode_payload(Version::V3, b"0:"), Err(DecodeError::Malformed));
    }
}
