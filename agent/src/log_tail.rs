//! Where the last N entries of a CRI log file start, found by reading the
//! file backwards in bounded chunks (so `kubectl logs --tail=1` on a huge
//! file reads a few KiB, not the file).
//!
//! An entry ends with an `F` line (a `P` line continues on the next one),
//! so the last N entries start right after the (N+1)-th `F` line counted
//! from the end; lines after the last `F` line (an entry still being
//! written) belong to the tail too.
//!
//! Pure: the caller reads the chunks and feeds them, last chunk first.

/// A line longer than this without a newline is not a CRI line (containerd
/// splits lines at 16 KiB); the scan stops there instead of buffering more.
pub const MAX_LINE: usize = 1 << 20;

/// Backward scan for the start of the last `wanted` entries.
#[derive(Debug)]
pub struct TailFinder {
    wanted: usize,
    full_lines_seen: usize,
    /// Bytes at the start of what was fed whose line begins earlier.
    head: Vec<u8>,
}

fn is_full_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.splitn(4, |b| *b == b' ').nth(2) == Some(b"F".as_slice())
}

impl TailFinder {
    /// A scan for the last `wanted` entries.
    pub fn new(wanted: usize) -> Self {
        TailFinder { wanted, full_lines_seen: 0, head: Vec::new() }
    }

    /// Feeds `chunk`, the bytes at file offset `start` directly before all
    /// bytes fed so far (the first chunk must end with a newline: scan only
    /// up to the last complete line). Returns the offset where the tail
    /// starts, or `None` if an earlier chunk is needed.
    pub fn feed(&mut self, chunk: &[u8], start: u64) -> Option<u64> {
        let mut data = Vec::with_capacity(chunk.len() + self.head.len());
        data.extend_from_slice(chunk);
        data.extend_from_slice(&self.head);
        let mut end = data.len();
        while end > 0 {
            match data[..end - 1].iter().rposition(|b| *b == b'\n') {
                Some(newline) => {
                    if self.ends_tail(&data[newline + 1..end]) {
                        return Some(start + end as u64);
                    }
                    end = newline + 1;
                }
                None if start == 0 => return Some(if self.ends_tail(&data[..end]) { end as u64 } else { 0 }),
                None if end > MAX_LINE => return Some(start + end as u64),
                None => break,
            }
        }
        if start == 0 {
            return Some(0);
        }
        data.truncate(end);
        self.head = data;
        None
    }

    /// Counts `line`; true if the tail starts after it.
    fn ends_tail(&mut self, line: &[u8]) -> bool {
        if !is_full_line(line) {
            return false;
        }
        if self.full_lines_seen == self.wanted {
            return true;
        }
        self.full_lines_seen += 1;
        false
    }
}

/// Offset where the complete lines of `bytes` end (after the last newline).
pub fn complete_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] = b"\
2026-11-21T11:00:00Z stdout F one
2026-11-21T11:00:01Z stderr P two-a 
2026-11-21T11:00:01Z stderr F two-b
garbage
2026-11-21T11:00:03Z stdout F 
2026-11-21T11:00:04Z stdout F four
2026-11-21T11:00:05Z stdout P unfinished
";

    /// Runs the finder over `bytes` in chunks of `size`, from the end.
    fn tail_start(bytes: &[u8], wanted: usize, size: usize) -> u64 {
        let mut finder = TailFinder::new(wanted);
        let mut pos = complete_end(bytes);
        loop {
            let start = pos.saturating_sub(size);
            if let Some(found) = finder.feed(&bytes[start..pos], start as u64) {
                return found;
            }
            pos = start;
        }
    }

    fn rest(bytes: &[u8], at: u64) -> &str {
        std::str::from_utf8(&bytes[usize::try_from(at).expect("offset")..]).expect("utf8")
    }

    #[test]
    fn finds_the_start_of_the_last_entries_for_every_chunk_size() {
        let line = |i: usize| FILE.split_inclusive(|b| *b == b'\n').take(i).map(<[u8]>::len).sum::<usize>() as u64;
        // (wanted, offset): the tail keeps the unfinished entry after the last F line.
        let cases = [(0, line(6)), (1, line(5)), (2, line(3)), (3, line(1)), (4, 0), (100, 0)];
        for size in [1, 2, 7, 40, 4096] {
            for (wanted, want) in cases {
                assert_eq!(tail_start(FILE, wanted, size), want, "wanted {wanted} chunk {size}: {}", rest(FILE, want));
            }
        }
    }

    #[test]
    fn empty_and_unterminated_files_start_at_zero() {
        assert_eq!(tail_start(b"", 1, 8), 0);
        assert_eq!(tail_start(b"2026-11-21T11:00:00Z stdout F no newline", 1, 8), 0);
    }

    #[test]
    fn a_giant_line_stops_the_scan() {
        let mut bytes = b"2026-11-21T11:00:00Z stdout F before\n".to_vec();
        let giant_end = bytes.len() + MAX_LINE + 10_000;
        bytes.resize(giant_end - 1, b'x');
        bytes.extend_from_slice(b"\n2026-11-21T11:00:00Z stdout F a\n");
        assert_eq!(tail_start(&bytes, 5, 4096), giant_end as u64);
    }

    #[test]
    fn recognises_full_lines() {
        assert!(is_full_line(b"t stdout F x y\n"));
        assert!(is_full_line(b"t stdout F\n"));
        assert!(!is_full_line(b"t stdout P x\n"));
        assert!(!is_full_line(b"garbage\n"));
    }
}
