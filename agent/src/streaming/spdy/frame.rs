//! SPDY/3.1 frames as data (pure): encoding and decoding of the frames a
//! streaming client sends and receives. Header blocks are carried here as
//! bytes; [`super::headers`] compresses and builds them.
//!
//! Layout (draft-mbelshe-httpbis-spdy-00, section 2.2): a control frame is
//! `1 | version(15) | type(16) | flags(8) | length(24) | data`, a data frame
//! `0 | stream-id(31) | flags(8) | length(24) | data`.

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// Bytes of a frame header (control or data).
pub const HEADER_LEN: usize = 8;
/// Largest frame length the 24-bit field can carry.
pub const MAX_LENGTH: usize = 0x00ff_ffff;
/// `FLAG_FIN`: the sender's last frame on this stream (data and control frames).
pub const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;
const STREAM_ID_MASK: u32 = 0x7fff_ffff;

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes on a stream; `fin` half-closes the sender's side.
    Data {
        /// The stream.
        stream: u32,
        /// Last frame of the sender on this stream.
        fin: bool,
        /// The payload.
        data: Vec<u8>,
    },
    /// Opens a stream (the header block is compressed).
    SynStream {
        /// The new stream's id (odd when a client opens it).
        stream: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// Opened already half-closed by the sender.
        fin: bool,
        /// Compressed name/value block.
        headers: Vec<u8>,
    },
    /// The peer accepted a stream.
    SynReply {
        /// The stream.
        stream: u32,
        /// The peer's side is closed at once.
        fin: bool,
        /// Compressed name/value block.
        headers: Vec<u8>,
    },
    /// The peer aborted a stream.
    RstStream {
        /// The stream.
        stream: u32,
        /// Status code (1 = protocol error, 5 = cancel, ...).
        status: u32,
    },
    /// A liveness probe; answered by sending it back unchanged.
    Ping {
        /// The probe's id (odd from clients, even from servers).
        id: u32,
    },
    /// The sender closes the session after `last_stream`.
    GoAway {
        /// Highest stream id the sender handled.
        last_stream: u32,
        /// Status code (0 = OK).
        status: u32,
    },
    /// Further headers on a stream.
    Headers {
        /// The stream.
        stream: u32,
        /// Last frame of the sender on this stream.
        fin: bool,
        /// Compressed name/value block.
        headers: Vec<u8>,
    },
    /// A flow-control window grant.
    WindowUpdate {
        /// The stream (0 = the session).
        stream: u32,
        /// Bytes granted.
        delta: u32,
    },
    /// A control frame the client has no use for (SETTINGS, unknown types).
    Other {
        /// The control frame type.
        kind: u16,
    },
}

/// A frame that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A control frame of another protocol version.
    #[error("SPDY control frame of version {0}, want 3")]
    Version(u16),
    /// A control frame shorter than its fixed fields.
    #[error("SPDY frame type {kind} too short: {length} bytes")]
    Short {
        /// The control frame type.
        kind: u16,
        /// Its length field.
        length: usize,
    },
    /// A payload that does not fit the 24-bit length.
    #[error("SPDY frame payload of {0} bytes exceeds the 24-bit length")]
    TooLong(usize),
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Length of the frame whose 8-byte header is `header` (payload bytes that follow it).
pub fn payload_len(header: &[u8; HEADER_LEN]) -> usize {
    usize::from(header[5]) << 16 | usize::from(header[6]) << 8 | usize::from(header[7])
}

/// Decodes one frame from its header and payload.
pub fn decode(header: &[u8; HEADER_LEN], payload: &[u8]) -> Result<Frame, FrameError> {
    let flags = header[4];
    let fin = flags & FLAG_FIN != 0;
    if header[0] & 0x80 == 0 {
        let stream = be32(&header[..4]) & STREAM_ID_MASK;
        return Ok(Frame::Data { stream, fin, data: payload.to_vec() });
    }
    let version = u16::from_be_bytes([header[0], header[1]]) & 0x7fff;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let kind = u16::from_be_bytes([header[2], header[3]]);
    let need = match kind {
        SYN_STREAM => 10,
        SYN_REPLY | HEADERS | PING => 4,
        RST_STREAM | GOAWAY | WINDOW_UPDATE => 8,
        _ => 0,
    };
    if payload.len() < need {
        return Err(FrameError::Short { kind, length: payload.len() });
    }
    let id = || be32(payload) & STREAM_ID_MASK;
    Ok(match kind {
        SYN_STREAM => {
            Frame::SynStream { stream: id(), priority: payload[8] >> 5, fin, headers: payload[10..].to_vec() }
        }
        SYN_REPLY => Frame::SynReply { stream: id(), fin, headers: payload[4..].to_vec() },
        RST_STREAM => Frame::RstStream { stream: id(), status: be32(&payload[4..]) },
        PING => Frame::Ping { id: be32(payload) },
        GOAWAY => Frame::GoAway { last_stream: id(), status: be32(&payload[4..]) },
        HEADERS => Frame::Headers { stream: id(), fin, headers: payload[4..].to_vec() },
        WINDOW_UPDATE => Frame::WindowUpdate { stream: id(), delta: be32(&payload[4..]) & STREAM_ID_MASK },
        _ => Frame::Other { kind },
    })
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    push_flags_len(&mut out, flags, payload.len())?;
    out.extend_from_slice(payload);
    Ok(out)
}

fn push_flags_len(out: &mut Vec<u8>, flags: u8, len: usize) -> Result<(), FrameError> {
    if len > MAX_LENGTH {
        return Err(FrameError::TooLong(len));
    }
    let len = u32::try_from(len).map_err(|_| FrameError::TooLong(len))?;
    out.extend_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    Ok(())
}

fn fin_flag(fin: bool) -> u8 {
    if fin {
        FLAG_FIN
    } else {
        0
    }
}

fn with_id(stream: u32, rest: &[u8]) -> Vec<u8> {
    let mut payload = (stream & STREAM_ID_MASK).to_be_bytes().to_vec();
    payload.extend_from_slice(rest);
    payload
}

/// Encodes one frame.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    match frame {
        Frame::Data { stream, fin, data } => {
            let mut out = Vec::with_capacity(HEADER_LEN + data.len());
            out.extend_from_slice(&(stream & STREAM_ID_MASK).to_be_bytes());
            push_flags_len(&mut out, fin_flag(*fin), data.len())?;
            out.extend_from_slice(data);
            Ok(out)
        }
        Frame::SynStream { stream, priority, fin, headers } => {
            // Associated-To-Stream-ID 0, priority in the top 3 bits, slot 0.
            let mut rest = vec![0, 0, 0, 0, (priority & 0x07) << 5, 0];
            rest.extend_from_slice(headers);
            control(SYN_STREAM, fin_flag(*fin), &with_id(*stream, &rest))
        }
        Frame::SynReply { stream, fin, headers } => control(SYN_REPLY, fin_flag(*fin), &with_id(*stream, headers)),
        Frame::RstStream { stream, status } => control(RST_STREAM, 0, &with_id(*stream, &status.to_be_bytes())),
        Frame::Ping { id } => control(PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last_stream, status } => control(GOAWAY, 0, &with_id(*last_stream, &status.to_be_bytes())),
        Frame::Headers { stream, fin, headers } => control(HEADERS, fin_flag(*fin), &with_id(*stream, headers)),
        Frame::WindowUpdate { stream, delta } => {
            control(WINDOW_UPDATE, 0, &with_id(*stream, &(delta & STREAM_ID_MASK).to_be_bytes()))
        }
        Frame::Other { kind } => control(*kind, 0, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(bytes: &[u8]) -> ([u8; HEADER_LEN], &[u8]) {
        let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("header");
        assert_eq!(payload_len(&header), bytes.len() - HEADER_LEN, "length field");
        (header, &bytes[HEADER_LEN..])
    }

    #[test]
    fn frames_encode_to_the_wire_layout() {
        let cases: Vec<(Frame, Vec<u8>)> = vec![
            (Frame::Data { stream: 3, fin: false, data: b"hi".to_vec() }, vec![0, 0, 0, 3, 0, 0, 0, 2, b'h', b'i']),
            (Frame::Data { stream: 1, fin: true, data: vec![] }, vec![0, 0, 0, 1, 1, 0, 0, 0]),
            (
                Frame::SynStream { stream: 5, priority: 0, fin: false, headers: vec![0xaa] },
                vec![0x80, 3, 0, 1, 0, 0, 0, 11, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0xaa],
            ),
            (Frame::Ping { id: 2 }, vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2]),
            (Frame::GoAway { last_stream: 7, status: 0 }, vec![0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0]),
            (Frame::RstStream { stream: 9, status: 5 }, vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 5]),
        ];
        for (frame, wire) in cases {
            assert_eq!(encode(&frame).expect("encodes"), wire, "{frame:?}");
        }
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Data { stream: 0x7fff_ffff, fin: true, data: vec![1; 300] },
            Frame::SynStream { stream: 1, priority: 7, fin: true, headers: vec![1, 2, 3] },
            Frame::SynReply { stream: 1, fin: false, headers: vec![4, 5] },
            Frame::RstStream { stream: 3, status: 1 },
            Frame::Ping { id: 4 },
            Frame::GoAway { last_stream: 1, status: 2 },
            Frame::Headers { stream: 5, fin: true, headers: vec![] },
            Frame::WindowUpdate { stream: 0, delta: 65_536 },
        ];
        for frame in frames {
            let wire = encode(&frame).expect("encodes");
            let (header, payload) = split(&wire);
            assert_eq!(decode(&header, payload), Ok(frame));
        }
    }

    #[test]
    fn settings_and_unknown_control_frames_are_other() {
        let settings = [0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 0];
        let (header, payload) = split(&settings);
        assert_eq!(decode(&header, payload), Ok(Frame::Other { kind: 4 }));
    }

    #[test]
    fn refuses_other_versions_short_frames_and_oversized_payloads() {
        let v2 = [0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        let (header, payload) = split(&v2);
        assert_eq!(decode(&header, payload), Err(FrameError::Version(2)));
        let short = [0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1];
        let (header, payload) = split(&short);
        assert_eq!(decode(&header, payload), Err(FrameError::Short { kind: 3, length: 4 }));
        let huge = Frame::Data { stream: 1, fin: false, data: vec![0; MAX_LENGTH + 1] };
        assert_eq!(encode(&huge), Err(FrameError::TooLong(MAX_LENGTH + 1)));
    }
}
