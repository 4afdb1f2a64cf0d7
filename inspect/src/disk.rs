//! What a disk image is, read from its bytes, and whether a hypervisor may be
//! handed it.
//!
//! A disk image is not only data: several formats can name other files, and
//! a hypervisor that opens the image opens those too. A qcow2 backing or data
//! file, a VMDK descriptor's extents or parent, a VHD or VHDX differencing
//! disk's parent: an image that names `/etc/shadow` or a URL makes the host
//! read that into a guest its uploader controls (OpenStack's CVE-2022-47951
//! and CVE-2024-32498). So every file is read here before it is published,
//! and refused, with a reason its owner can act on, when it could make a
//! hypervisor look anywhere but at its own bytes or the files packed beside
//! it.
//!
//! The rules, which go further than Glance's format inspector:
//!
//! - The format comes from the content, never from the name, and a file that
//!   two formats claim (an ISO whose system area holds a qcow2 header, a
//!   qcow2 with a VHD footer) is refused: tools that probe it would disagree
//!   on what it is, and one of them might follow a reference the other hid.
//!   A hybrid ISO (an MBR or GPT in its system area) is ordinary and kept.
//! - No header is trusted. Every offset and size is checked with checked
//!   arithmetic, every read is a bounds-checked `get` of the bytes the caller
//!   handed over, nothing is allocated at a header's say-so, and no input
//!   panics.
//! - Where a reader looks further than the specification says, we look there
//!   too. QEMU reads a sparse VMDK's embedded descriptor up to its first NUL
//!   (not its declared size), searches the 10 KiB after the header for
//!   `parentFileNameHint` wherever the descriptor really is, and opens the
//!   extents of the embedded descriptor of a sparse VMDK whose capacity is 0.
//! - What cannot be checked within the bytes at hand is refused rather than
//!   assumed safe (a VMDK descriptor past the first [`HEAD_LEN`] bytes, a
//!   streamOptimized footer that is not where it must be). The one exception
//!   is a VHDX metadata region, which the format places at 1 MiB or later:
//!   [`detect`] reads it when the caller's bytes reach it, and
//!   [`vhdx_metadata_span`] and [`vhdx_metadata`] let a caller fetch and
//!   check it separately.
//! - Sizes past `i64::MAX` bytes, or that overflow when scaled, are refused:
//!   the catalog stores them as `i64`, and no disk is that large.

use std::borrow::Cow;

use crate::DiskFormat;

mod iso;
mod qcow2;
#[cfg(test)]
pub(crate) use qcow2::tests::{qcow2_file, QCOW2_V3};
mod raw;
mod vhd;
mod vhdx;
mod vmdk_descriptor;
mod vmdk_sparse;

use self::iso::Optical;
use self::qcow2::qcow2;
use self::raw::raw;
use self::vhd::{vhd, VHD_COOKIE, VHD_FOOTER_LEN};
use self::vhdx::{vhdx, vhdx_metadata_in, vhdx_metadata_region};
use self::vmdk_descriptor::{looks_like_vmdk_descriptor, vmdk_text};
use self::vmdk_sparse::vmdk_sparse;

#[cfg(test)]
pub(crate) use self::vhdx::tests::vhdx_image;

/// How many leading bytes the caller hands to [`detect`] (the whole file when smaller).
pub const HEAD_LEN: usize = 1 << 20;
/// How many trailing bytes the caller hands to [`detect`] (VHD footer, VMDK stream footer).
pub const TAIL_LEN: usize = 64 * 1024;

/// What a disk image is, read from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    pub format: DiskFormat,
    /// The size of the disk the guest sees, in bytes (None where the format does not say, e.g. raw: the caller uses the file size).
    pub virtual_size: Option<u64>,
    /// A short precise description: "qcow2 v3", "vmdk monolithicSparse", "vmdk streamOptimized", "vmdk monolithicFlat descriptor", "vhd dynamic", "vhd fixed", "vhdx", "iso9660", "udf", "raw (GPT)", "raw (MBR)", "raw".
    pub detail: String,
    /// The ISO 9660 / UDF volume label, trimmed, if any.
    pub volume_label: Option<String>,
}

/// Reads a disk image's format from its first `head` bytes and its last
/// `tail` bytes (`size` is the whole file's length; for a small file head and
/// tail overlap or are the same bytes). `beside(name)` answers whether a file
/// of that name stands beside this one in the same OVA or OVF folder (the
/// only extents a VMDK descriptor may name). Err is the reason the file is
/// refused, in words a user can act on (it is shown to them), e.g. "a qcow2
/// image with a backing file".
pub fn detect(
    head: &[u8],
    tail: &[u8],
    size: u64,
    beside: &dyn Fn(&str) -> bool,
) -> Result<DiskInfo, String> {
    let file = File::new(head, tail, size);
    let start = Start::of(head);
    let optical = Optical::of(head);
    let footer = file.vhd_footer();

    if let (Some(start), Some(optical)) = (start, optical) {
        return Err(two_formats(start.name(), optical.name()));
    }
    if footer.is_some() {
        // A dynamic VHD starts with a copy of its footer; any other header at
        // the start of a file that ends in a VHD footer is a second format.
        if let Some(start) = start.filter(|start| *start != Start::Vhd) {
            return Err(two_formats(start.name(), VHD_NAME));
        }
        if let Some(optical) = optical {
            return Err(two_formats(optical.name(), VHD_NAME));
        }
    }

    match start {
        Some(Start::Qcow2) => qcow2(head),
        Some(Start::Qed) => Err(QED.to_owned()),
        Some(Start::VmdkSparse) => vmdk_sparse(&file),
        Some(Start::VmdkCowd) => Err(COWD.to_owned()),
        Some(Start::VmdkText) => vmdk_text(&file, beside),
        Some(Start::Vhd) => vhd(&file, footer),
        Some(Start::Vhdx) => vhdx(&file),
        Some(Start::Vdi) => Err(VDI.to_owned()),
        None if footer.is_some() => vhd(&file, footer),
        None => Ok(match optical {
            Some(optical) => optical.info(head),
            None => raw(head),
        }),
    }
}

/// The disk format whose signature a file's first bytes also hold, if any:
/// an OVA or a descriptor that another reader would take for a disk is
/// refused, as any file of two formats is.
pub fn disk_signature(head: &[u8]) -> Option<&'static str> {
    Start::of(head)
        .map(Start::name)
        .or_else(|| Optical::of(head).map(Optical::name))
}

/// Where a VHDX keeps its metadata region, as (offset, length) in bytes, read
/// from the region table in the first [`HEAD_LEN`] bytes; None when `head`
/// is not a VHDX with a sound region table.
///
/// The VHDX format puts that region at 1 MiB or later, past what [`detect`]
/// is handed, so a caller that wants a VHDX's virtual size (and the check for
/// a parent that only the metadata can show) reads the region's first bytes
/// (64 KiB of table and the items it points to, usually within 128 KiB) and
/// hands them to [`vhdx_metadata`].
pub fn vhdx_metadata_span(head: &[u8]) -> Option<(u64, u64)> {
    if !head.starts_with(b"vhdxfile") {
        return None;
    }
    vhdx_metadata_region(head).ok()
}

/// Checks the leading bytes of a VHDX metadata region (read at the offset
/// [`vhdx_metadata_span`] gives) and returns the virtual size when those
/// bytes hold it. Err refuses a differencing disk (one that names a parent)
/// or a damaged table, as [`detect`] would.
pub fn vhdx_metadata(region: &[u8]) -> Result<Option<u64>, String> {
    let length = len64(region.len());
    vhdx_metadata_in(&File::new(region, &[], length), 0, length)
}

const IMPOSSIBLE_SIZE: &str = "the header claims an impossible disk size";
const QED: &str = "a QED image, which Depot does not take (QED can name a backing file, \
                   and QEMU has deprecated it): convert it to qcow2 with qemu-img convert";
const COWD: &str = "a VMware ESX (COWD) sparse extent, which Depot does not take (its \
                    header can name a parent disk): convert it to qcow2 or a \
                    streamOptimized VMDK";
const VDI: &str = "a VirtualBox VDI image, which Depot does not take: convert it to qcow2 \
                   with qemu-img convert";
const VHD_NAME: &str = "a VHD image";

/// The largest disk size accepted, `i64::MAX` (the catalog stores sizes as `i64`).
const MAX_DISK_BYTES: u64 = u64::MAX >> 1;

/// The sector every sector-counting header field means.
const SECTOR: u64 = 512;

pub(crate) fn two_formats(first: &str, second: &str) -> String {
    format!("a file that is both {first} and {second}: tools would disagree on what it is")
}

fn info(format: DiskFormat, virtual_size: Option<u64>, detail: &str) -> DiskInfo {
    DiskInfo {
        format,
        virtual_size,
        detail: detail.to_owned(),
        volume_label: None,
    }
}

/// A size in bytes read from a header, refused past `i64::MAX`.
fn disk_bytes(bytes: u64) -> Result<u64, String> {
    if bytes <= MAX_DISK_BYTES {
        Ok(bytes)
    } else {
        Err(IMPOSSIBLE_SIZE.to_owned())
    }
}

/// A size in 512-byte sectors read from a header, as bytes.
fn sector_bytes(sectors: u64) -> Result<u64, String> {
    sectors
        .checked_mul(SECTOR)
        .ok_or_else(|| IMPOSSIBLE_SIZE.to_owned())
        .and_then(disk_bytes)
}

/// A length as `u64`, which every platform Rust supports can hold.
fn len64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

fn array<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn le_u16(data: &[u8], at: usize) -> Option<u16> {
    array(data, at).map(u16::from_le_bytes)
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    array(data, at).map(u32::from_le_bytes)
}

fn le_u64(data: &[u8], at: usize) -> Option<u64> {
    array(data, at).map(u64::from_le_bytes)
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    array(data, at).map(u32::from_be_bytes)
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    array(data, at).map(u64::from_be_bytes)
}

/// Whether `needle` (ASCII) occurs in `haystack`, ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    count_ignore_case(haystack, needle) > 0
}

fn count_ignore_case(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    haystack
        .windows(needle.len())
        .filter(|window| window.eq_ignore_ascii_case(needle))
        .count()
}

/// At most 60 printable characters of untrusted text, to quote in a reason.
fn excerpt(text: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// The bytes of a file the caller handed over: its first bytes, its last
/// bytes, and its length.
#[derive(Debug, Clone, Copy)]
struct File<'a> {
    head: &'a [u8],
    tail: &'a [u8],
    size: u64,
}

impl<'a> File<'a> {
    fn new(head: &'a [u8], tail: &'a [u8], size: u64) -> Self {
        // A caller that hands over more bytes than the size it claims is
        // believed on the bytes; a tail longer than the file cannot be placed
        // in it, so it is not used at all.
        let size = size.max(len64(head.len()));
        let tail = if len64(tail.len()) <= size { tail } else { &[] };
        Self { head, tail, size }
    }

    /// `len` bytes at `offset`, from the head or the tail, or None when
    /// neither holds all of them.
    fn at(&self, offset: u64, len: usize) -> Option<&'a [u8]> {
        let end = offset.checked_add(len64(len))?;
        if end > self.size {
            return None;
        }
        let from_head = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, stop)| self.head.get(start..stop));
        if from_head.is_some() {
            return from_head;
        }
        let tail_start = self.size.checked_sub(len64(self.tail.len()))?;
        let start = usize::try_from(offset.checked_sub(tail_start)?).ok()?;
        self.tail.get(start..start.checked_add(len)?)
    }

    /// Whether the head is the whole file.
    fn head_is_whole(&self) -> bool {
        len64(self.head.len()) >= self.size
    }

    /// The last 512 bytes, when they are a VHD footer.
    fn vhd_footer(&self) -> Option<&'a [u8]> {
        let at = self.size.checked_sub(VHD_FOOTER_LEN)?;
        self.at(at, 512)
            .filter(|bytes| bytes.starts_with(VHD_COOKIE))
    }
}

/// The container formats told by the first bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Qcow2,
    Qed,
    VmdkSparse,
    VmdkCowd,
    VmdkText,
    Vhd,
    Vhdx,
    Vdi,
}

/// The VirtualBox VDI signature, little-endian at 0x40.
const VDI_MAGIC: u32 = 0xbeda_107f;

impl Start {
    fn of(head: &[u8]) -> Option<Self> {
        let magic = |magic: &[u8]| head.starts_with(magic);
        if magic(b"QFI\xfb") {
            Some(Self::Qcow2)
        } else if magic(b"QED\0") {
            Some(Self::Qed)
        } else if magic(b"KDMV") {
            Some(Self::VmdkSparse)
        } else if magic(b"COWD") {
            Some(Self::VmdkCowd)
        } else if magic(b"vhdxfile") {
            Some(Self::Vhdx)
        } else if magic(VHD_COOKIE) {
            Some(Self::Vhd)
        } else if le_u32(head, 0x40) == Some(VDI_MAGIC) {
            Some(Self::Vdi)
        } else if looks_like_vmdk_descriptor(head) {
            Some(Self::VmdkText)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Qcow2 => "a qcow2 image",
            Self::Qed => "a QED image",
            Self::VmdkSparse => "a sparse VMDK",
            Self::VmdkCowd => "a COWD VMDK",
            Self::VmdkText => "a VMDK descriptor",
            Self::Vhd => VHD_NAME,
            Self::Vhdx => "a VHDX image",
            Self::Vdi => "a VDI image",
        }
    }
}

#[cfg(test)]
mod test_support {
    use super::{detect, len64, DiskInfo, HEAD_LEN, TAIL_LEN};

    pub(super) fn nothing_beside(_: &str) -> bool {
        false
    }

    /// Inspects a whole file as the caller would: its first HEAD_LEN bytes,
    /// its last TAIL_LEN.
    pub(super) fn inspect_with(
        bytes: &[u8],
        beside: &dyn Fn(&str) -> bool,
    ) -> Result<DiskInfo, String> {
        let head = &bytes[..bytes.len().min(HEAD_LEN)];
        let tail = &bytes[bytes.len() - bytes.len().min(TAIL_LEN)..];
        detect(head, tail, len64(bytes.len()), beside)
    }

    pub(super) fn inspect(bytes: &[u8]) -> Result<DiskInfo, String> {
        inspect_with(bytes, &nothing_beside)
    }

    pub(super) fn refused(bytes: &[u8], reason: &str) {
        match inspect(bytes) {
            Err(why) => assert!(why.contains(reason), "refused for {why:?}, not {reason:?}"),
            Ok(info) => panic!("accepted {info:?}, expected a refusal for {reason:?}"),
        }
    }

    pub(super) fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    pub(super) fn zeros(len: usize) -> Vec<u8> {
        vec![0; len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::iso::tests::{iso, udf};
    use crate::disk::qcow2::tests::{qcow2_file, QCOW2_V3};
    use crate::disk::test_support::*;
    use crate::disk::vhd::tests::{dynamic_vhd, fixed_vhd, vhd_footer_bytes};
    use crate::disk::vhdx::tests::{standard_items, vhdx_file, whole};
    use crate::disk::vmdk_sparse::tests::{
        monolithic_sparse, set_u64, stream_with_footer, SPARSE_HEADER,
    };

    #[test]
    fn qed_vdi_and_cowd_are_refused() {
        let mut qed = zeros(4096);
        put(&mut qed, 0, b"QED\0");
        refused(&qed, "a QED image");
        let mut vdi = zeros(4096);
        put(&mut vdi, 0, b"<<< Oracle VM VirtualBox Disk Image >>>\n");
        put(&mut vdi, 0x40, &VDI_MAGIC.to_le_bytes());
        refused(&vdi, "VirtualBox VDI");
        let mut cowd = zeros(4096);
        put(&mut cowd, 0, b"COWD");
        refused(&cowd, "COWD");
    }

    // ------------------------------------------------------------ polyglots

    #[test]
    fn files_two_formats_claim_are_refused() {
        let headers: [(&[u8], &str); 6] = [
            (&hex::decode(QCOW2_V3).unwrap(), "a qcow2 image"),
            (&hex::decode(SPARSE_HEADER).unwrap(), "a sparse VMDK"),
            (b"vhdxfile", "a VHDX image"),
            (b"QED\0", "a QED image"),
            (b"# Disk DescriptorFile\n", "a VMDK descriptor"),
            (&vhd_footer_bytes(3), "a VHD image"),
        ];
        for (header, name) in headers {
            let mut in_iso = iso(b"LIVE");
            put(&mut in_iso, 0, header);
            refused(&in_iso, &format!("both {name} and an ISO 9660 image"));
            let mut in_udf = udf(2048, b"LIVE");
            put(&mut in_udf, 0, header);
            refused(&in_udf, &format!("both {name} and a UDF image"));
        }
        // A qcow2 followed by CD001 at 0x8001.
        let mut qcow2 = qcow2_file(QCOW2_V3);
        put(&mut qcow2, 0x8000, b"\x01CD001\x01");
        refused(&qcow2, "both a qcow2 image and an ISO 9660 image");
        // A VHD footer at the end of an ISO, a qcow2, a VMDK.
        let iso_vhd = fixed_vhd(&iso(b"LIVE"));
        refused(&iso_vhd, "both an ISO 9660 image and a VHD image");
        refused(
            &fixed_vhd(&qcow2_file(QCOW2_V3)),
            "both a qcow2 image and a VHD image",
        );
        refused(
            &fixed_vhd(&monolithic_sparse()),
            "both a sparse VMDK and a VHD image",
        );
    }

    // ------------------------------------------------------------ hostile input

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn fill(&mut self, bytes: &mut [u8]) {
            for chunk in bytes.chunks_mut(8) {
                let value = self.next().to_le_bytes();
                chunk.copy_from_slice(&value[..chunk.len()]);
            }
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        let magics: [&[u8]; 11] = [
            b"QFI\xfb\0\0\0\x03",
            b"QFI\xfb\0\0\0\x02",
            b"KDMV\x01\0\0\0",
            b"KDMV\x03\0\0\0",
            b"COWD",
            b"QED\0",
            b"vhdxfile",
            b"conectix",
            b"# Disk DescriptorFile\nRW 1 FLAT \"",
            b"version=1\n",
            b"",
        ];
        let lengths = [
            0, 3, 8, 64, 100, 511, 512, 513, 1536, 2048, 0x8010, 70_000, 330_000,
        ];
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        for magic in magics {
            for len in lengths {
                for round in 0..3 {
                    let mut file = zeros(len.max(magic.len()));
                    noise.fill(&mut file);
                    put(&mut file, 0, magic);
                    if round == 1 && file.len() > 0x8006 {
                        put(&mut file, 0x8000, b"\x01CD001");
                    }
                    if round == 2 && file.len() > 1024 {
                        let at = file.len() - 512;
                        put(&mut file, at, b"conectix");
                    }
                    let _ = inspect(&file);
                    let _ = detect(&file, &file, len64(file.len()), &|_| true);
                    let _ = detect(&file, &[], u64::MAX, &|_| true);
                    let _ = detect(&file, &file, 0, &|_| true);
                    let _ = detect(&[], &file, len64(file.len()), &|_| true);
                }
            }
        }
    }

    #[test]
    fn hostile_fields_in_real_headers_never_panic() {
        // Every 8-byte field of the real headers set to extreme values.
        let mut noise = Noise(42);
        let bases = [
            qcow2_file(QCOW2_V3),
            monolithic_sparse(),
            stream_with_footer(204_800),
            dynamic_vhd(),
            udf(2048, b"L"),
        ];
        for base in &bases {
            for at in (0..120).step_by(4) {
                for value in [0, 1, u64::MAX, u64::MAX / 512 + 1, 1 << 63, noise.next()] {
                    let mut file = base.clone();
                    set_u64(&mut file, at, value);
                    let _ = inspect(&file);
                }
            }
        }
        for offset in [0, 1, 255, 256, 257, 4095, u64::from(u32::MAX)] {
            let mut file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1 << 30));
            put(
                &mut file,
                (1 << 20) + 32 + 32 + 16,
                &offset.to_le_bytes()[..4],
            );
            let _ = whole(&file);
            let _ = vhdx_metadata(&file[1 << 20..]);
            let _ = vhdx_metadata(&file[(1 << 20) + 8..]);
        }
    }

    #[test]
    fn file_reads_stay_within_the_bytes_at_hand() {
        let head = [1u8; 16];
        let tail = [2u8; 8];
        let file = File::new(&head, &tail, 100);
        assert_eq!(file.at(0, 16), Some(head.as_slice()));
        assert_eq!(file.at(92, 8), Some(tail.as_slice()));
        assert_eq!(file.at(96, 4), Some([2u8; 4].as_slice()));
        assert_eq!(file.at(10, 10), None);
        assert_eq!(file.at(96, 8), None);
        assert_eq!(file.at(u64::MAX, 2), None);
        // A tail longer than the file is not placed at all.
        let odd = File::new(&head, &[3u8; 64], 20);
        assert_eq!(odd.at(18, 2), None);
        assert_eq!(odd.size, 20);
        // A size smaller than the head is raised to it.
        assert_eq!(File::new(&head, &[], 3).size, 16);
    }
}
