//! Pure handling of CRI container log files: lines of the form
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>`, where `P`
//! (partial) lines continue on the next line and `F` ends a log entry.
//! Turns raw bytes into entries and an entry into the line `kubectl logs`
//! shows; the options (`timestamps`, `tailLines`, `sinceSeconds`,
//! `limitBytes`) are applied while streaming by `log_reader`/`log_tail`.
//!
//! Must not: open files or sockets (the kubelet API server does).

use jiff::Timestamp;

/// A line that is not in CRI log format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CRI log line {line:?}")]
pub struct MalformedLine {
    /// The offending line (possibly cut).
    pub line: String,
}

/// One complete log entry (partials joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Timestamp text as written by the runtime (of the first fragment).
    pub timestamp: String,
    /// Parsed timestamp.
    pub time: Timestamp,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The content without the trailing newline.
    pub content: String,
}

/// One physical line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawLine<'a> {
    timestamp: &'a str,
    time: Timestamp,
    stream: &'a str,
    partial: bool,
    content: &'a str,
}

fn parse_line(line: &str) -> Result<RawLine<'_>, MalformedLine> {
    let bad = || MalformedLine { line: line.chars().take(120).collect() };
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next().ok_or_else(bad)?;
    let stream = parts.next().ok_or_else(bad)?;
    let tag = parts.next().ok_or_else(bad)?;
    let content = parts.next().unwrap_or_default();
    let time: Timestamp = timestamp.parse().map_err(|_| bad())?;
    if stream != "stdout" && stream != "stderr" {
        return Err(bad());
    }
    let partial = match tag {
        "P" => true,
        "F" => false,
        _ => return Err(bad()),
    };
    Ok(RawLine { timestamp, time, stream, partial, content })
}

/// Joins partial lines into entries, fed one physical line at a time.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: Option<LogEntry>,
}

impl Assembler {
    /// Feeds one physical line (without its newline). Malformed lines are
    /// returned as errors and otherwise ignored.
    pub fn push(&mut self, line: &str) -> Result<Option<LogEntry>, MalformedLine> {
        let raw = parse_line(line)?;
        let entry = match self.pending.take() {
            Some(mut entry) => {
                entry.content.push_str(raw.content);
                entry
            }
            None => LogEntry {
                timestamp: raw.timestamp.to_string(),
                time: raw.time,
                stream: raw.stream.to_string(),
                content: raw.content.to_string(),
            },
        };
        if raw.partial {
            self.pending = Some(entry);
            Ok(None)
        } else {
            Ok(Some(entry))
        }
    }
}

/// Splits a byte stream into complete lines; an unfinished tail waits for
/// more bytes (a file being written).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buffer: Vec<u8>,
}

impl LineSplitter {
    /// Appends `bytes` and returns the lines completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..pos]).into_owned());
        }
        lines
    }
}

/// Parses a whole log file's bytes into entries, skipping malformed lines
/// and an unfinished last line.
pub fn parse_entries(bytes: &[u8]) -> Vec<LogEntry> {
    let mut splitter = LineSplitter::default();
    let mut assembler = Assembler::default();
    splitter.push(bytes).iter().filter_map(|line| assembler.push(line).ok().flatten()).collect()
}

/// What to show, from the kubelet API query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Only the last N entries.
    pub tail_lines: Option<usize>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

/// One entry as shown to the client, newline-terminated.
pub fn format_entry(entry: &LogEntry, timestamps: bool) -> String {
    if timestamps {
        format!("{} {}\n", entry.timestamp, entry.content)
    } else {
        format!("{}\n", entry.content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
2026-11-21T11:00:00.000000001Z stdout F hello
2026-11-21T11:00:01.5Z stderr P part one, 
2026-11-21T11:00:01.6Z stderr P part two, 
2026-11-21T11:00:01.7Z stderr F end
garbage line
2026-11-21T11:00:03Z stdout F 
2026-11-21T11:00:04Z stdout F last
2026-11-21T11:00:05Z stdout P unfinished";

    #[test]
    fn joins_partial_lines_and_skips_garbage() {
        let entries = parse_entries(FILE.as_bytes());
        let contents: Vec<&str> = entries.iter().map(|e| e.content.as_str()).collect();
        assert_eq!(contents, vec!["hello", "part one, part two, end", "", "last"]);
        assert_eq!(entries[1].stream, "stderr");
        assert_eq!(entries[1].timestamp, "2026-11-21T11:00:01.5Z");
    }

    #[test]
    fn entries_show_with_or_without_their_timestamp() {
        let entries = parse_entries(FILE.as_bytes());
        let shown: String = entries.iter().map(|e| format_entry(e, false)).collect();
        assert_eq!(shown, "hello\npart one, part two, end\n\nlast\n");
        assert_eq!(format_entry(&entries[3], true), "2026-11-21T11:00:04Z last\n");
    }

    #[test]
    fn splitter_waits_for_complete_lines() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"2026-11-21T11:00:00Z stdout F ab").is_empty());
        assert_eq!(s.push(b"c\nx"), vec!["2026-11-21T11:00:00Z stdout F abc".to_string()]);
        assert_eq!(s.push(b"y\n"), vec!["xy".to_string()]);
    }

    #[test]
    fn rejects_malformed_lines() {
        let mut a = Assembler::default();
        for line in ["", "nots a time stdout F x", "2026-11-21T11:00:00Z stdin F x", "2026-11-21T11:00:00Z stdout X x"]
        {
            assert!(a.push(line).is_err(), "{line}");
        }
    }
}
