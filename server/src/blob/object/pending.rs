//! The bytes of an upload's next part, as they arrive.

use bytes::{Bytes, BytesMut};
use object_store::PutPayload;

/// Chunks shorter than this are copied together rather than kept one by
/// one: a chunked body sent a byte a chunk arrives a frame a byte, and a
/// frame kept alone cost 32 bytes of list and held on to the whole read
/// buffer it was cut from (a part of 8 MiB so held hundreds of MiB).
const SMALL: usize = 64 << 10;

/// The next part's bytes: large chunks as they came, small ones copied
/// into buffers of at least [`SMALL`] bytes.
#[derive(Default)]
pub(super) struct Pending {
    chunks: Vec<Bytes>,
    small: BytesMut,
    len: usize,
}

impl Pending {
    /// Bytes pending.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        if chunk.len() >= SMALL {
            self.seal();
            self.chunks.push(chunk);
        } else {
            self.small.extend_from_slice(&chunk);
            if self.small.len() >= SMALL {
                self.seal();
            }
        }
    }

    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.chunks.push(self.small.split().freeze());
        }
    }

    /// Everything pending, as one payload; nothing is left pending.
    pub(super) fn take(&mut self) -> PutPayload {
        self.seal();
        self.len = 0;
        std::mem::take(&mut self.chunks).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_chunks_are_kept_together_and_large_ones_as_they_came() {
        let mut pending = Pending::default();
        for byte in 0..200_000_u32 {
            pending.push(Bytes::from(vec![byte as u8]));
        }
        let large = Bytes::from(vec![9; 1 << 20]);
        pending.push(large.clone());
        pending.push(Bytes::from_static(b"end"));
        assert_eq!(pending.len(), 200_000 + (1 << 20) + 3);
        // Three buffers of 64 KiB, the rest of the small bytes, the large
        // chunk: not 200,000 of a byte.
        assert!(
            pending.chunks.len() <= 5,
            "{} chunks kept",
            pending.chunks.len()
        );
        let payload = pending.take();
        assert_eq!(pending.len(), 0);
        let bytes: Vec<u8> = payload.iter().flat_map(|chunk| chunk.to_vec()).collect();
        assert_eq!(bytes.len(), 200_000 + (1 << 20) + 3);
        assert!((0..200_000).all(|at| bytes[at] == at as u8));
        assert_eq!(&bytes[200_000..200_000 + (1 << 20)], &large[..]);
        assert_eq!(&bytes[bytes.len() - 3..], b"end");
    }
}
