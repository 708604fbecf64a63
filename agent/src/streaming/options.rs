//! What a streaming request asks for, decided from its query and headers
//! (pure, table-tested): the streams of an exec or attach, the command, and
//! which WebSocket subprotocol to answer with.

/// kubectl 1.30+ exec/attach over WebSocket (channel byte per frame, 255 = close a stream).
pub const V5_CHANNEL: &str = "v5.channel.k8s.io";
/// The same framing without the close signal; also the remotecommand
/// protocol the runtime's streaming server speaks over SPDY.
pub const V4_CHANNEL: &str = "v4.channel.k8s.io";
/// kubectl 1.31+ port-forward: SPDY/3.1 frames tunnelled in binary WebSocket messages.
pub const SPDY_TUNNEL_PORTFORWARD: &str = "SPDY/3.1+portforward.k8s.io";
/// The SPDY protocol version header value the runtime's port-forward expects.
pub const PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";

/// Channel numbers of the channel protocols.
pub mod channel {
    /// Standard input (client to server).
    pub const STDIN: u8 = 0;
    /// Terminal size, JSON `{"Width":..,"Height":..}` (client to server).
    pub const RESIZE: u8 = 4;
    /// v5 only: the next byte names a stream the sender closes.
    pub const CLOSE: u8 = 255;
}

/// A streaming request's options that are wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// `exec` without `command`.
    #[error("you must specify at least one command for the container")]
    NoCommand,
    /// Neither stdin, stdout nor stderr.
    #[error("you must specify at least one of stdin, stdout, stderr")]
    NoStreams,
    /// `tty` together with `stderr` (a terminal merges them).
    #[error("stdin, stdout and stderr cannot all be tty: tty and stderr cannot both be true")]
    TtyWithStderr,
    /// A flag that is not a boolean.
    #[error("invalid value {value:?} for {name}")]
    BadFlag {
        /// The query key.
        name: String,
        /// The value given.
        value: String,
    },
}

/// The streams and command of an exec or attach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// The command (exec only; empty for attach).
    pub command: Vec<String>,
    /// Standard input is forwarded.
    pub stdin: bool,
    /// Standard output is forwarded.
    pub stdout: bool,
    /// Standard error is forwarded.
    pub stderr: bool,
    /// A terminal is allocated (stdout carries both output streams).
    pub tty: bool,
}

fn flag(name: &str, value: &str) -> Result<bool, OptionsError> {
    match value {
        "" | "1" | "true" | "True" => Ok(true),
        "0" | "false" | "False" => Ok(false),
        _ => Err(OptionsError::BadFlag { name: name.to_string(), value: value.to_string() }),
    }
}

impl StreamOptions {
    /// Parses the query kubectl sends (`command` repeated, `stdin`, `stdout`,
    /// `stderr`, `tty`; `container` and unknown keys are ignored here).
    /// `exec` requires a command; attach takes none.
    pub fn parse(query: Option<&str>, exec: bool) -> Result<StreamOptions, OptionsError> {
        let mut opts = StreamOptions::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "command" => opts.command.push(value.into_owned()),
                "stdin" => opts.stdin = flag("stdin", &value)?,
                "stdout" => opts.stdout = flag("stdout", &value)?,
                "stderr" => opts.stderr = flag("stderr", &value)?,
                "tty" => opts.tty = flag("tty", &value)?,
                _ => {}
            }
        }
        if exec && opts.command.is_empty() {
            return Err(OptionsError::NoCommand);
        }
        if !exec {
            opts.command.clear();
        }
        if !(opts.stdin || opts.stdout || opts.stderr) {
            return Err(OptionsError::NoStreams);
        }
        if opts.tty && opts.stderr {
            // kubectl never asks for both; upstream refuses the combination.
            return Err(OptionsError::TtyWithStderr);
        }
        Ok(opts)
    }
}

/// Picks the subprotocol to answer with: the first of `supported` that the
/// client offered in its `Sec-WebSocket-Protocol` headers (comma separated).
pub fn pick_protocol<'a>(
    offered: impl IntoIterator<Item = &'a str>,
    supported: &[&'static str],
) -> Option<&'static str> {
    let offered: Vec<&str> = offered.into_iter().flat_map(|h| h.split(',')).map(str::trim).collect();
    supported.iter().copied().find(|s| offered.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str, exec: bool) -> Result<StreamOptions, OptionsError> {
        StreamOptions::parse(Some(q), exec)
    }

    #[test]
    fn parses_the_query_kubectl_sends() {
        let opts = parse("command=sh&command=-c&command=exit+7&container=c&stderr=true&stdout=true", true);
        assert_eq!(
            opts,
            Ok(StreamOptions {
                command: vec!["sh".into(), "-c".into(), "exit 7".into()],
                stdout: true,
                stderr: true,
                ..Default::default()
            })
        );
        let tty = parse("command=sh&stdin=true&stdout=true&tty=true", true).expect("valid");
        assert!(tty.stdin && tty.stdout && tty.tty && !tty.stderr);
        let pct = parse("command=echo&command=a%26b%3Dc&stdout=1", true).expect("valid");
        assert_eq!(pct.command, vec!["echo", "a&b=c"]);
    }

    #[test]
    fn refuses_what_upstream_refuses() {
        assert_eq!(parse("stdout=true", true), Err(OptionsError::NoCommand));
        assert_eq!(parse("command=ls", true), Err(OptionsError::NoStreams));
        assert_eq!(parse("command=ls&stdout=true&stderr=true&tty=true", true), Err(OptionsError::TtyWithStderr));
        assert!(matches!(parse("command=ls&stdout=maybe", true), Err(OptionsError::BadFlag { .. })));
        assert_eq!(StreamOptions::parse(None, true), Err(OptionsError::NoCommand));
    }

    #[test]
    fn attach_takes_no_command() {
        let opts = parse("command=ignored&stdout=true&stdin=true", false).expect("valid");
        assert!(opts.command.is_empty());
        assert!(opts.stdin && opts.stdout);
    }

    #[test]
    fn picks_the_first_supported_offered_protocol() {
        assert_eq!(pick_protocol(["v5.channel.k8s.io"], &[V5_CHANNEL, V4_CHANNEL]), Some(V5_CHANNEL));
        assert_eq!(pick_protocol(["v4.channel.k8s.io, v5.channel.k8s.io"], &[V5_CHANNEL]), Some(V5_CHANNEL));
        assert_eq!(pick_protocol(["base64.channel.k8s.io"], &[V5_CHANNEL, V4_CHANNEL]), None);
        assert_eq!(pick_protocol([SPDY_TUNNEL_PORTFORWARD], &[SPDY_TUNNEL_PORTFORWARD]), Some(SPDY_TUNNEL_PORTFORWARD));
    }
}
