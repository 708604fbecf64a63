//! A minimal SPDY/3.1 client for exec and attach toward the runtime's
//! streaming server: just what the kubelet's remotecommand protocol needs
//! (SYN_STREAM/SYN_REPLY, DATA with FIN, PING answered, GOAWAY and RST
//! noted; no server push, no priorities, no flow control: the server side
//! (spdystream) keeps no windows either).
//!
//! Why SPDY rather than the runtime's v4 WebSocket: kubectl 1.30+ closes
//! stdin with the v5 channel protocol's CLOSE signal, which containerd 1.6's
//! v4 WebSocket cannot carry; a SPDY stream is half-closed by a FIN, so
//! `echo hi | kubectl exec -i pod -- cat` ends.
//!
//! Modules: [`frame`] (wire format), [`headers`] (name/value blocks),
//! [`streams`] (which streams, and the mapping to kubectl's channels),
//! [`session`] (opening the streams on a connection).

pub mod frame;
pub mod headers;
pub mod session;
pub mod streams;

/// A SPDY session toward the runtime failed.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// Reading or writing the connection failed.
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
    /// The runtime sent a frame that cannot be decoded.
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    /// A header block could not be built.
    #[error(transparent)]
    Header(#[from] headers::HeaderError),
    /// A frame larger than [`session::MAX_FRAME`].
    #[error("SPDY frame of {0} bytes is larger than allowed")]
    TooLarge(usize),
    /// The runtime reset a stream while it was being opened.
    #[error("the runtime reset SPDY stream {stream} (status {status})")]
    Refused {
        /// The stream.
        stream: u32,
        /// The RST_STREAM status code.
        status: u32,
    },
    /// The runtime closed the session before accepting the streams.
    #[error("the runtime closed the SPDY session before accepting its streams")]
    Closed,
    /// The runtime did not accept the streams in time.
    #[error("the runtime did not accept the SPDY streams within {0:?}")]
    Timeout(std::time::Duration),
}
