//! Depot's image inspector: what a file is, read from its bytes (never from
//! its name), and whether it is safe to hand to a hypervisor. A crate of its
//! own, with no I/O but the reader it is handed, so that it can be fuzzed
//! (`fuzz/`) and reasoned about alone. Every ingest path runs the same
//! inspector while the bytes are written ([`crate::blob::BlobStore::ingest`]):
//! it reads what it needs as the bytes stream past (a disk's header, an
//! archive's entries in order, the last bytes for a footer) and keeps a
//! bounded amount of them, so no second pass over the file is made and
//! memory does not grow with the file.
//!
//! Learnt from OpenStack Glance's format inspector (CVE-2022-47951,
//! CVE-2024-32498): the format is taken from content alone, a file that
//! parses as two formats is refused, and every reference a disk makes to
//! another file (a qcow2 backing or data file, a VMDK extent or parent, a
//! VHD parent) is refused unless it names a file of the same package.

pub mod disk;
pub mod ova;
pub mod ovf;

use std::io::Read;

pub use ovf::OvfMetadata;

/// What the bytes of a file say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub format: DiskFormat,
    /// The size of the disk the guest sees, for disks (the sum for an OVA).
    pub virtual_size: Option<i64>,
    /// A precise description: "qcow2 v3", "vmdk streamOptimized", "raw (GPT)", …
    pub detail: String,
    /// The volume label of an ISO image.
    pub volume_label: Option<String>,
    /// What the descriptor of an OVA or OVF says.
    pub ovf: Option<OvfMetadata>,
}

/// The formats the inspector tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    Raw,
    Qcow2,
    Vmdk,
    Vhd,
    Vhdx,
    Iso,
    Ova,
    Ovf,
}

/// Whether a character reorders text around it (a bidirectional control):
/// names and values holding one are refused, since they can make a file
/// name read as something it is not.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A size in bytes as the catalog stores it, or the refusal of an
/// impossible one.
fn stored_size(size: Option<u64>) -> Result<Option<i64>, String> {
    size.map(|size| {
        i64::try_from(size).map_err(|_| "the header claims an impossible disk size".to_owned())
    })
    .transpose()
}

/// Reads until `buffer` holds `limit` bytes or the input ends.
fn fill(reader: &mut dyn Read, buffer: &mut Vec<u8>, limit: usize) -> Result<(), String> {
    let mut chunk = [0u8; 64 * 1024];
    while buffer.len() < limit {
        let want = (limit - buffer.len()).min(chunk.len());
        match reader.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(format!("unreadable: {error}")),
        }
    }
    Ok(())
}

/// A reader that remembers the last bytes that passed through it (at most
/// `keep`) and how many there were in all, for footers at a file's end.
struct Tracking<'a> {
    inner: &'a mut dyn Read,
    /// The last bytes read, up to twice `keep` of them: the bytes before
    /// the last `keep` are dropped once they are as many, so that each byte
    /// is moved at most once whatever the pieces the stream comes in (a
    /// tail moved along by each read moved 64 KiB for every byte of a
    /// stream read a byte at a time).
    tail: Vec<u8>,
    size: u64,
    keep: usize,
    /// The bytes the tail has taken in or moved, to show the bound above.
    #[cfg(test)]
    copied: u64,
}

impl<'a> Tracking<'a> {
    fn after(inner: &'a mut dyn Read, head: &[u8], keep: usize) -> Self {
        Self {
            inner,
            tail: head[head.len().saturating_sub(keep)..].to_vec(),
            size: head.len() as u64,
            keep,
            #[cfg(test)]
            copied: 0,
        }
    }

    /// The last bytes read (at most `keep`), and how many there were.
    fn into_tail(mut self) -> (Vec<u8>, u64) {
        let excess = self.tail.len().saturating_sub(self.keep);
        self.tail.drain(..excess);
        (self.tail, self.size)
    }

    /// Reads and forgets up to `count` bytes (all that is left by default),
    /// in reads of [`SKIP_READ`]: each keeps the tail by copying its own last
    /// bytes, so every byte is copied about once. `io::copy` read 8 KiB at a
    /// time, and each such read moved the 64 KiB tail along: eight times the
    /// upload in copies, half of the server's `memmove` on a large upload
    /// (`perf`).
    fn skip(&mut self, count: u64) -> Result<(), String> {
        let mut buffer = vec![0; SKIP_READ];
        let mut left = count;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(SKIP_READ);
            match self.read(&mut buffer[..want]) {
                Ok(0) => break,
                Ok(read) => left -= read as u64,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(format!("unreadable: {error}")),
            }
        }
        Ok(())
    }
}

/// The most [`Tracking::skip`] reads at once: well above the tail it keeps.
const SKIP_READ: usize = 1 << 20;

impl Read for Tracking<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        let fresh = &buffer[..read];
        self.size = self.size.saturating_add(read as u64);
        let kept = if fresh.len() >= self.keep {
            self.tail.clear();
            &fresh[fresh.len() - self.keep..]
        } else {
            if self.tail.len() + fresh.len() > 2 * self.keep {
                let excess = self.tail.len().saturating_sub(self.keep);
                self.tail.drain(..excess);
                #[cfg(test)]
                {
                    self.copied += self.tail.len() as u64;
                }
            }
            fresh
        };
        self.tail.extend_from_slice(kept);
        #[cfg(test)]
        {
            self.copied += kept.len() as u64;
        }
        Ok(read)
    }
}

/// The last bytes of a stream (at most `keep`), and its total length,
/// reading the rest after `head` without keeping it.
#[cfg(test)]
fn read_to_end_keeping_tail(
    reader: &mut dyn Read,
    head: &[u8],
    keep: usize,
) -> Result<(Vec<u8>, u64), String> {
    let mut tracking = Tracking::after(reader, head, keep);
    tracking.skip(u64::MAX)?;
    Ok(tracking.into_tail())
}

/// How far past the first MiB a VHDX's metadata region may lie and still be
/// read on the way (qemu-img and Hyper-V put it within the first few MiB).
const VHDX_METADATA_REACH: u64 = 64 << 20;

/// The most of a VHDX's metadata region that is kept to read its table.
const VHDX_METADATA_KEEP: u64 = 1 << 20;

/// Whether the first bytes are an OVF descriptor (an XML `Envelope`).
fn is_descriptor(head: &[u8]) -> bool {
    let start = &head[..head.len().min(4096)];
    let text = String::from_utf8_lossy(start);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    (text.starts_with("<?xml") || text.starts_with('<')) && text.contains("Envelope")
}

/// Whether the first bytes are a tar archive (an OVA).
fn is_archive(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// Inspects a whole file as it streams past.
pub fn inspect(reader: &mut dyn Read) -> Result<Inspection, String> {
    let mut head = Vec::new();
    fill(reader, &mut head, disk::HEAD_LEN)?;
    let package = if is_archive(&head) {
        Some("an OVA (tar) archive")
    } else {
        is_descriptor(&head).then_some("an OVF descriptor")
    };
    if let Some((package, disk)) = package.zip(disk::disk_signature(&head)) {
        return Err(disk::two_formats(package, disk));
    }
    if is_archive(&head) {
        return ova::inspect(std::io::Cursor::new(head).chain(reader));
    }
    if is_descriptor(&head) {
        let mut descriptor = head;
        fill(reader, &mut descriptor, ovf::MAX_DESCRIPTOR + 1)?;
        if descriptor.len() > ovf::MAX_DESCRIPTOR {
            return Err("the descriptor is larger than 4 MiB".into());
        }
        let metadata = ovf::parse(&descriptor)?;
        return Ok(Inspection {
            format: DiskFormat::Ovf,
            virtual_size: stored_size(ova::total_capacity(&metadata))?,
            detail: "ovf descriptor".into(),
            volume_label: None,
            ovf: Some(metadata),
        });
    }
    let (info, size) = inspect_disk(reader, &head, &|_| false)?;
    Ok(Inspection {
        format: info.format,
        // A raw disk is as large as its file; other formats say, or not.
        virtual_size: stored_size(
            info.virtual_size
                .or((info.format == DiskFormat::Raw).then_some(size)),
        )?,
        detail: info.detail,
        volume_label: info.volume_label,
        ovf: None,
    })
}

/// A VHDX whose metadata region lies too far in to be read on the way.
const VHDX_OUT_OF_REACH: &str = "a VHDX image whose metadata region lies past its first 65 MiB, \
    where Depot cannot check it for a parent disk";

/// Inspects a disk image as it streams past, its first bytes `head` read
/// already: its format from those and its last bytes, and a VHDX's
/// metadata region read on the way. `beside` is [`disk::detect`]'s. Answers
/// what it is and the file's length.
fn inspect_disk(
    reader: &mut dyn Read,
    head: &[u8],
    beside: &dyn Fn(&str) -> bool,
) -> Result<(disk::DiskInfo, u64), String> {
    let mut tracking = Tracking::after(reader, head, disk::TAIL_LEN);
    // A VHDX says its size, and whether it has a parent, in a metadata
    // region past the first MiB: it is read on the way, and one out of
    // reach is refused, as it could name a parent no one checked.
    let mut vhdx_size = None;
    if let Some((offset, length)) = disk::vhdx_metadata_span(head) {
        let here = head.len() as u64;
        if offset >= here {
            if offset - here > VHDX_METADATA_REACH {
                return Err(VHDX_OUT_OF_REACH.into());
            }
            tracking.skip(offset - here)?;
            let mut region = Vec::new();
            (&mut tracking)
                .take(length.min(VHDX_METADATA_KEEP))
                .read_to_end(&mut region)
                .map_err(|error| format!("unreadable: {error}"))?;
            vhdx_size = disk::vhdx_metadata(&region)?;
        }
    }
    tracking.skip(u64::MAX)?;
    let (tail, size) = tracking.into_tail();
    let mut info = disk::detect(head, &tail, size, beside)?;
    if info.format == DiskFormat::Vhdx {
        info.virtual_size = info.virtual_size.or(vhdx_size);
    }
    Ok((info, size))
}

/// Inspects bytes held in memory.
pub fn inspect_bytes(bytes: &[u8]) -> Result<Inspection, String> {
    inspect(&mut std::io::Cursor::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_last_bytes_whatever_the_chunking() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let head = &bytes[..1000];
        let mut rest = std::io::Cursor::new(&bytes[1000..]);
        let (tail, size) = read_to_end_keeping_tail(&mut rest, head, 4096).unwrap();
        assert_eq!(size, 300_000);
        assert_eq!(tail, &bytes[bytes.len() - 4096..]);
        let (short, size) =
            read_to_end_keeping_tail(&mut std::io::Cursor::new(&[][..]), &bytes[..10], 4096)
                .unwrap();
        assert_eq!((short.as_slice(), size), (&bytes[..10], 10));
    }

    /// Hands out its bytes in the uneven pieces an upload arrives in, and
    /// notes how much each read asked for.
    struct Pieces {
        bytes: Vec<u8>,
        at: usize,
        sizes: std::iter::Cycle<std::vec::IntoIter<usize>>,
        asked: Vec<usize>,
    }

    impl Read for Pieces {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            self.asked.push(buffer.len());
            let piece = self.sizes.next().unwrap();
            let take = piece.min(buffer.len()).min(self.bytes.len() - self.at);
            buffer[..take].copy_from_slice(&self.bytes[self.at..self.at + take]);
            self.at += take;
            Ok(take)
        }
    }

    #[test]
    fn skipping_keeps_the_tail_in_large_reads_whatever_the_pieces() {
        let bytes: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
        for pieces in [
            vec![1 << 20],
            vec![417_792, 7, 65_535, 65_536, 65_537, 1, 300_000],
            vec![3],
        ] {
            let head = &bytes[..1000];
            let mut rest = Pieces {
                bytes: bytes[1000..].to_vec(),
                at: 0,
                sizes: pieces.clone().into_iter().cycle(),
                asked: Vec::new(),
            };
            let (tail, size) = read_to_end_keeping_tail(&mut rest, head, disk::TAIL_LEN).unwrap();
            assert_eq!(size, bytes.len() as u64, "{pieces:?}");
            assert_eq!(tail, &bytes[bytes.len() - disk::TAIL_LEN..], "{pieces:?}");
            // Each read asks for far more than the tail it keeps.
            assert!(
                rest.asked.iter().all(|&asked| asked >= 4 * disk::TAIL_LEN),
                "{pieces:?}: reads of {:?}",
                rest.asked.iter().min()
            );
        }
    }

    /// A stream that comes a few bytes at a time (an upload's chunks, each
    /// handed to the inspector as it came) costs no more copies than one
    /// that comes in large pieces.
    #[test]
    fn a_stream_in_tiny_pieces_moves_each_byte_of_its_tail_about_once() {
        let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
        for pieces in [vec![1], vec![2, 1, 5], vec![70_000, 1]] {
            let mut rest = Pieces {
                bytes: bytes.clone(),
                at: 0,
                sizes: pieces.clone().into_iter().cycle(),
                asked: Vec::new(),
            };
            let mut tracking = Tracking::after(&mut rest, &[], disk::TAIL_LEN);
            tracking.skip(u64::MAX).unwrap();
            let copied = tracking.copied;
            let (tail, size) = tracking.into_tail();
            assert_eq!(size, bytes.len() as u64, "{pieces:?}");
            assert_eq!(tail, &bytes[bytes.len() - disk::TAIL_LEN..], "{pieces:?}");
            assert!(
                copied <= 3 * size,
                "{pieces:?}: {copied} bytes copied for {size}"
            );
        }
    }

    #[test]
    fn formats_are_told_by_content() {
        let mut iso = vec![0u8; 0x9000];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(inspect_bytes(&iso).unwrap().format, DiskFormat::Iso);
        let raw = inspect_bytes(b"just some bytes").unwrap();
        assert_eq!(raw.format, DiskFormat::Raw);
        assert_eq!(raw.virtual_size, Some(15));
        assert!(inspect_bytes(b"QFI\xfb\0\0\0\x03\0\0\0\0\0\0\x02\0").is_err());
    }
}
