//! The I/O of an exec/attach SPDY session toward the runtime: read frames
//! off the upgraded connection, open the planned streams and wait until the
//! server accepted each (the server drops data on a stream it has not
//! replied to).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::frame::{self, Frame, HEADER_LEN};
use super::headers::HeaderEncoder;
use super::streams::{StreamIds, STREAM_TYPE};
use super::SpdyError;

/// Largest frame accepted from the runtime (its writers send at most 32 KiB
/// of output per frame; header blocks and status objects are small).
pub const MAX_FRAME: usize = 1024 * 1024;

/// Reads frames off a byte stream.
pub struct FrameReader<R> {
    inner: R,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps the read half of the connection.
    pub fn new(inner: R) -> Self {
        FrameReader { inner }
    }

    /// The next frame, or `None` when the peer closed the connection between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, SpdyError> {
        let mut header = [0u8; HEADER_LEN];
        match self.inner.read_exact(&mut header[..1]).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(SpdyError::Io(e)),
        }
        self.inner.read_exact(&mut header[1..]).await?;
        let len = frame::payload_len(&header);
        if len > MAX_FRAME {
            return Err(SpdyError::TooLarge(len));
        }
        let mut payload = vec![0u8; len];
        self.inner.read_exact(&mut payload).await?;
        Ok(Some(frame::decode(&header, &payload)?))
    }
}

/// An exec/attach session whose streams the runtime accepted.
pub struct ExecSession<S> {
    /// Frames from the runtime.
    pub reader: FrameReader<ReadHalf<S>>,
    /// Bytes to the runtime.
    pub writer: WriteHalf<S>,
    /// The opened streams.
    pub ids: StreamIds,
    /// Frames that arrived while waiting for the replies, in order.
    pub early: Vec<Frame>,
}

/// Opens the streams of `ids` on the upgraded connection `io` and waits
/// (at most `timeout`) until the runtime replied to every one.
pub async fn open<S>(io: S, ids: StreamIds, timeout: Duration) -> Result<ExecSession<S>, SpdyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut writer) = tokio::io::split(io);
    let mut reader = FrameReader::new(read);
    let mut encoder = HeaderEncoder::default();
    let mut waiting: Vec<u32> = Vec::new();
    for (stream, kind) in ids.opened() {
        let headers = encoder.encode(&[(STREAM_TYPE, kind)])?;
        writer.write_all(&frame::encode(&Frame::SynStream { stream, priority: 0, fin: false, headers })?).await?;
        waiting.push(stream);
    }
    writer.flush().await?;
    let mut early = Vec::new();
    let replies = async {
        while !waiting.is_empty() {
            match reader.next().await? {
                None => return Err(SpdyError::Closed),
                Some(Frame::SynReply { stream, .. }) => waiting.retain(|s| *s != stream),
                Some(Frame::RstStream { stream, status }) => return Err(SpdyError::Refused { stream, status }),
                Some(Frame::GoAway { .. }) => return Err(SpdyError::Closed),
                Some(other) => early.push(other),
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, replies).await.map_err(|_| SpdyError::Timeout(timeout))??;
    Ok(ExecSession { reader, writer, ids, early })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::options::StreamOptions;

    async fn read_frame(reader: &mut FrameReader<ReadHalf<tokio::io::DuplexStream>>) -> Frame {
        reader.next().await.expect("reads").expect("a frame")
    }

    async fn send(writer: &mut WriteHalf<tokio::io::DuplexStream>, frame: Frame) {
        writer.write_all(&frame::encode(&frame).expect("encodes")).await.expect("writes");
    }

    #[tokio::test]
    async fn opens_every_planned_stream_and_waits_for_the_replies() {
        let opts = StreamOptions { command: vec!["cat".into()], stdin: true, stdout: true, ..Default::default() };
        let ids = StreamIds::plan(&opts);
        let (client, server) = tokio::io::duplex(64 * 1024);
        let fake_server = async move {
            let (read, mut write) = tokio::io::split(server);
            let mut reader = FrameReader::new(read);
            let mut opened = Vec::new();
            for _ in 0..3 {
                match read_frame(&mut reader).await {
                    Frame::SynStream { stream, .. } => opened.push(stream),
                    other => panic!("expected SYN_STREAM, got {other:?}"),
                }
            }
            send(&mut write, Frame::SynReply { stream: 1, fin: false, headers: vec![] }).await;
            send(&mut write, Frame::SynReply { stream: 3, fin: false, headers: vec![] }).await;
            send(&mut write, Frame::Ping { id: 2 }).await;
            send(&mut write, Frame::SynReply { stream: 5, fin: false, headers: vec![] }).await;
            (opened, reader, write)
        };
        let (session, (opened, _reader, _write)) = tokio::join!(open(client, ids, Duration::from_secs(5)), fake_server);
        let session = session.expect("opens");
        assert_eq!(opened, vec![1, 3, 5]);
        assert_eq!(session.early, vec![Frame::Ping { id: 2 }]);
    }

    #[tokio::test]
    async fn a_reset_stream_refuses_the_session() {
        let ids = StreamIds::plan(&StreamOptions { command: vec!["x".into()], stdout: true, ..Default::default() });
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (_read, mut write) = tokio::io::split(server);
        send(&mut write, Frame::RstStream { stream: 1, status: 1 }).await;
        let result = open(client, ids, Duration::from_secs(5)).await;
        assert!(matches!(result, Err(SpdyError::Refused { stream: 1, status: 1 })));
    }

    #[tokio::test]
    async fn end_of_connection_between_frames_is_none() {
        let (client, server) = tokio::io::duplex(1024);
        drop(server);
        let mut reader = FrameReader::new(client);
        assert!(reader.next().await.expect("clean end").is_none());
    }
}
