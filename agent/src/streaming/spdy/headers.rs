//! SPDY/3 name/value header blocks: built from pairs (pure) and compressed
//! as one zlib stream per direction of the session, each block ending in a
//! sync flush so the peer can decode it on its own.
//!
//! Design note: SPDY/3 primes that zlib stream with a fixed dictionary. A
//! zlib stream only uses a dictionary when its header sets FDICT, and
//! flate2's pure-Rust backend cannot prime a compressor, so the blocks this
//! client sends are plain zlib (a valid SPDY/3 header stream: the peer's
//! decoder reads FDICT and needs no dictionary). The peer's own blocks are
//! not decoded: the exec client needs nothing from a SYN_REPLY but its
//! stream id.

use flate2::{Compress, Compression, FlushCompress, Status};

/// Compressing a header block failed.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// zlib refused the input.
    #[error("compressing a SPDY header block: {0}")]
    Compress(#[from] flate2::CompressError),
    /// A name or value longer than a 32-bit length.
    #[error("SPDY header {0:?} is too long")]
    TooLong(String),
}

fn push_str(out: &mut Vec<u8>, s: &str) -> Result<(), HeaderError> {
    let len = u32::try_from(s.len()).map_err(|_| HeaderError::TooLong(s.chars().take(32).collect()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The uncompressed block: a 32-bit pair count, then each name (lowercased,
/// as SPDY requires) and value with 32-bit lengths.
pub fn name_value_block(pairs: &[(&str, &str)]) -> Result<Vec<u8>, HeaderError> {
    let count = u32::try_from(pairs.len()).map_err(|_| HeaderError::TooLong("pair count".into()))?;
    let mut out = count.to_be_bytes().to_vec();
    for (name, value) in pairs {
        push_str(&mut out, &name.to_ascii_lowercase())?;
        push_str(&mut out, value)?;
    }
    Ok(out)
}

/// The sending side's header compressor (one per session).
pub struct HeaderEncoder {
    zlib: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder { zlib: Compress::new(Compression::default(), true) }
    }
}

impl HeaderEncoder {
    /// The compressed block for `pairs`, continuing the session's zlib stream.
    pub fn encode(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<u8>, HeaderError> {
        let block = name_value_block(pairs)?;
        let mut out = Vec::with_capacity(block.len() + 64);
        let start = self.zlib.total_in();
        loop {
            let consumed = usize::try_from(self.zlib.total_in() - start).unwrap_or(block.len());
            let status = self.zlib.compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)?;
            let done = usize::try_from(self.zlib.total_in() - start).unwrap_or(block.len()) == block.len();
            // A sync flush is complete once the output was not filled to capacity.
            if done && out.len() < out.capacity() || status == Status::StreamEnd {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn blocks_count_pairs_and_lowercase_names() {
        let block = name_value_block(&[("streamType", "error")]).expect("block");
        let mut want = vec![0, 0, 0, 1, 0, 0, 0, 10];
        want.extend_from_slice(b"streamtype");
        want.extend_from_slice(&[0, 0, 0, 5]);
        want.extend_from_slice(b"error");
        assert_eq!(block, want);
        assert_eq!(name_value_block(&[]).expect("empty"), vec![0, 0, 0, 0]);
    }

    #[test]
    fn each_block_decodes_on_its_own_from_one_zlib_stream() {
        let mut encoder = HeaderEncoder::default();
        let mut decoder = Decompress::new(true);
        for kind in ["error", "stdin", "stdout", "resize"] {
            let pairs = [("streamType", kind)];
            let compressed = encoder.encode(&pairs).expect("compresses");
            let mut plain = Vec::with_capacity(256);
            decoder.decompress_vec(&compressed, &mut plain, FlushDecompress::Sync).expect("decodes");
            assert_eq!(plain, name_value_block(&pairs).expect("block"), "{kind}");
        }
    }
}
