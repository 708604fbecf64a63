//! Which SPDY streams an exec or attach opens toward the runtime and how
//! frames map between them and kubectl's channel WebSocket (pure).
//!
//! The runtime's streaming server (the kubelet's remotecommand protocol
//! `v4.channel.k8s.io` over SPDY) expects one stream per requested stdio
//! stream plus `error` (the exit `Status`) and, with a terminal, `resize`
//! (`{"Width":..,"Height":..}` objects), each named by a `streamType` header.
//! Unlike the v4 WebSocket, a SPDY stream can be half-closed: kubectl's v5
//! stdin close becomes a FIN on the stdin stream, so the command sees EOF.

use super::frame::Frame;
use crate::streaming::options::{channel, StreamOptions};

/// The `streamType` header name.
pub const STREAM_TYPE: &str = "streamType";
/// kubectl's channel for the runtime's stdout.
pub const STDOUT_CHANNEL: u8 = 1;
/// kubectl's channel for the runtime's stderr.
pub const STDERR_CHANNEL: u8 = 2;
/// kubectl's channel for the exit `Status`.
pub const ERROR_CHANNEL: u8 = 3;

/// The client's stream ids (odd, in the order kubectl opens them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamIds {
    /// The exit `Status` (always opened).
    pub error: u32,
    /// Standard input.
    pub stdin: Option<u32>,
    /// Standard output.
    pub stdout: Option<u32>,
    /// Standard error.
    pub stderr: Option<u32>,
    /// Terminal size changes (with a terminal only).
    pub resize: Option<u32>,
}

impl StreamIds {
    /// The streams for `opts`: error, then stdin, stdout, stderr, resize as asked.
    pub fn plan(opts: &StreamOptions) -> StreamIds {
        let mut next = 1u32;
        let mut take = |wanted: bool| {
            wanted.then(|| {
                let id = next;
                next += 2;
                id
            })
        };
        let error = take(true).unwrap_or(1);
        StreamIds {
            error,
            stdin: take(opts.stdin),
            stdout: take(opts.stdout),
            stderr: take(opts.stderr),
            resize: take(opts.tty),
        }
    }

    /// Every stream to open, with its `streamType`.
    pub fn opened(&self) -> Vec<(u32, &'static str)> {
        let named = [
            (Some(self.error), "error"),
            (self.stdin, "stdin"),
            (self.stdout, "stdout"),
            (self.stderr, "stderr"),
            (self.resize, "resize"),
        ];
        named.into_iter().filter_map(|(id, kind)| id.map(|id| (id, kind))).collect()
    }

    /// kubectl's channel for data the runtime sent on `stream`.
    pub fn channel_of(&self, stream: u32) -> Option<u8> {
        if stream == self.error {
            Some(ERROR_CHANNEL)
        } else if Some(stream) == self.stdout {
            Some(STDOUT_CHANNEL)
        } else if Some(stream) == self.stderr {
            Some(STDERR_CHANNEL)
        } else {
            None
        }
    }
}

/// The frame toward the runtime for one binary message from kubectl, if any.
pub fn client_to_runtime(message: &[u8], ids: &StreamIds) -> Option<Frame> {
    match message {
        [channel::CLOSE, channel::STDIN, ..] => ids.stdin.map(|stream| Frame::Data { stream, fin: true, data: vec![] }),
        [channel::STDIN, data @ ..] if !data.is_empty() => {
            ids.stdin.map(|stream| Frame::Data { stream, fin: false, data: data.to_vec() })
        }
        [channel::RESIZE, data @ ..] if !data.is_empty() => {
            ids.resize.map(|stream| Frame::Data { stream, fin: false, data: data.to_vec() })
        }
        _ => None,
    }
}

/// What one frame from the runtime means for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromRuntime {
    /// Bytes for kubectl: the channel byte, then the data.
    Output(Vec<u8>),
    /// Send this frame back (a PING from the server).
    Reply(Frame),
    /// The runtime ends the session.
    End,
    /// Nothing to do (replies, window updates, stream ends, resets).
    Ignore,
}

/// Decides [`FromRuntime`] for one frame.
pub fn runtime_to_client(frame: Frame, ids: &StreamIds) -> FromRuntime {
    match frame {
        Frame::Data { stream, data, .. } if !data.is_empty() => match ids.channel_of(stream) {
            Some(channel) => {
                let mut message = Vec::with_capacity(data.len() + 1);
                message.push(channel);
                message.extend_from_slice(&data);
                FromRuntime::Output(message)
            }
            None => FromRuntime::Ignore,
        },
        // Servers number their pings even; an odd id would be an answer to us.
        Frame::Ping { id } if id % 2 == 0 => FromRuntime::Reply(Frame::Ping { id }),
        Frame::GoAway { .. } => FromRuntime::End,
        _ => FromRuntime::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> StreamOptions {
        StreamOptions { command: vec!["sh".into()], stdin, stdout, stderr, tty }
    }

    #[test]
    fn plans_the_streams_kubectl_would_open() {
        let cases = [
            (
                opts(false, true, true, false),
                StreamIds { error: 1, stdin: None, stdout: Some(3), stderr: Some(5), resize: None },
            ),
            (
                opts(true, true, false, true),
                StreamIds { error: 1, stdin: Some(3), stdout: Some(5), stderr: None, resize: Some(7) },
            ),
            (
                opts(true, true, true, false),
                StreamIds { error: 1, stdin: Some(3), stdout: Some(5), stderr: Some(7), resize: None },
            ),
        ];
        for (o, want) in cases {
            assert_eq!(StreamIds::plan(&o), want, "{o:?}");
        }
        let tty = StreamIds::plan(&opts(true, true, false, true));
        assert_eq!(tty.opened(), vec![(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")]);
    }

    #[test]
    fn kubectl_messages_become_stream_frames() {
        let ids = StreamIds::plan(&opts(true, true, false, true));
        let data = |stream: u32, fin: bool, d: &[u8]| Some(Frame::Data { stream, fin, data: d.to_vec() });
        assert_eq!(client_to_runtime(&[0, b'h', b'i'], &ids), data(3, false, b"hi"));
        assert_eq!(client_to_runtime(&[255, 0], &ids), data(3, true, b""));
        assert_eq!(
            client_to_runtime(b"\x04{\"Width\":80,\"Height\":24}", &ids),
            data(7, false, b"{\"Width\":80,\"Height\":24}")
        );
        assert_eq!(client_to_runtime(&[0], &ids), None);
        assert_eq!(client_to_runtime(&[255, 4], &ids), None);
        assert_eq!(client_to_runtime(&[1, b'x'], &ids), None);
        let no_stdin = StreamIds::plan(&opts(false, true, true, false));
        assert_eq!(client_to_runtime(&[0, b'x'], &no_stdin), None);
        assert_eq!(client_to_runtime(&[255, 0], &no_stdin), None);
        assert_eq!(client_to_runtime(&[4, b'{'], &no_stdin), None);
    }

    #[test]
    fn runtime_frames_become_channel_messages() {
        let ids = StreamIds::plan(&opts(false, true, true, false));
        let data = |stream: u32, d: &[u8]| Frame::Data { stream, fin: false, data: d.to_vec() };
        assert_eq!(runtime_to_client(data(3, b"out"), &ids), FromRuntime::Output(b"\x01out".to_vec()));
        assert_eq!(runtime_to_client(data(5, b"err"), &ids), FromRuntime::Output(b"\x02err".to_vec()));
        assert_eq!(runtime_to_client(data(1, b"{}"), &ids), FromRuntime::Output(b"\x03{}".to_vec()));
        assert_eq!(runtime_to_client(data(9, b"?"), &ids), FromRuntime::Ignore);
        assert_eq!(runtime_to_client(Frame::Data { stream: 3, fin: true, data: vec![] }, &ids), FromRuntime::Ignore);
        assert_eq!(runtime_to_client(Frame::Ping { id: 2 }, &ids), FromRuntime::Reply(Frame::Ping { id: 2 }));
        assert_eq!(runtime_to_client(Frame::Ping { id: 1 }, &ids), FromRuntime::Ignore);
        assert_eq!(runtime_to_client(Frame::GoAway { last_stream: 0, status: 0 }, &ids), FromRuntime::End);
        assert_eq!(runtime_to_client(Frame::RstStream { stream: 3, status: 5 }, &ids), FromRuntime::Ignore);
    }
}
