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

fn two_formats(first: &str, second: &str) -> String {
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

// ---------------------------------------------------------------- qcow2

/// Incompatible feature bits of qcow2 v3 (docs/interop/qcow2.txt).
const QCOW2_DIRTY: u64 = 1;
const QCOW2_CORRUPT: u64 = 1 << 1;
const QCOW2_EXTERNAL_DATA_FILE: u64 = 1 << 2;
const QCOW2_COMPRESSION_TYPE: u64 = 1 << 3;
const QCOW2_EXTENDED_L2: u64 = 1 << 4;
const QCOW2_KNOWN_INCOMPATIBLE: u64 = QCOW2_DIRTY
    | QCOW2_CORRUPT
    | QCOW2_EXTERNAL_DATA_FILE
    | QCOW2_COMPRESSION_TYPE
    | QCOW2_EXTENDED_L2;
/// The header extension that names an external data file ("DATA").
const QCOW2_EXT_DATA_FILE: u32 = 0x4441_5441;
const QCOW2_DATA_FILE: &str = "a qcow2 image with an external data file";

/// A qcow2 header: refused when it names another file (a backing file, an
/// external data file), is marked corrupt, or asks for an incompatible
/// feature this code does not know.
///
/// Unknown incompatible features are refused because QEMU itself refuses to
/// open such an image, and because such a bit changes how the file's bytes
/// are read: the external data file was once exactly such an unknown bit.
fn qcow2(head: &[u8]) -> Result<DiskInfo, String> {
    const TRUNCATED: &str = "a truncated qcow2 header";
    const DAMAGED: &str = "a qcow2 image with a damaged header";
    let version = be_u32(head, 4).ok_or(TRUNCATED)?;
    let header_len = match version {
        1 => {
            return Err("a qcow version 1 image: convert it to qcow2 with qemu-img convert".into())
        }
        2 => 72,
        3 => 104,
        other => return Err(format!("a qcow2 image of unknown version {other}")),
    };
    if head.len() < header_len {
        return Err(TRUNCATED.into());
    }
    if be_u64(head, 8) != Some(0) {
        return Err("a qcow2 image with a backing file".into());
    }
    let cluster_bits = be_u32(head, 20).ok_or(TRUNCATED)?;
    if !(9..=21).contains(&cluster_bits) {
        return Err(DAMAGED.into());
    }
    let cluster_size = 1usize << cluster_bits;
    let virtual_size = disk_bytes(be_u64(head, 24).ok_or(TRUNCATED)?)?;

    let extensions_at = if version == 3 {
        let incompatible = be_u64(head, 72).ok_or(TRUNCATED)?;
        if incompatible & QCOW2_EXTERNAL_DATA_FILE != 0 {
            return Err(QCOW2_DATA_FILE.into());
        }
        if incompatible & QCOW2_CORRUPT != 0 {
            return Err(
                "a qcow2 image marked corrupt: repair it with qemu-img check -r all".into(),
            );
        }
        let unknown = incompatible & !QCOW2_KNOWN_INCOMPATIBLE;
        if unknown != 0 {
            return Err(format!(
                "a qcow2 image with incompatible features Depot does not know (0x{unknown:x})"
            ));
        }
        let length = be_u32(head, 100)
            .and_then(|length| usize::try_from(length).ok())
            .ok_or(TRUNCATED)?;
        if !(104..=cluster_size).contains(&length) {
            return Err(DAMAGED.into());
        }
        length
    } else {
        72
    };
    qcow2_extensions(head, extensions_at, cluster_size)?;
    Ok(info(
        DiskFormat::Qcow2,
        Some(virtual_size),
        if version == 3 { "qcow2 v3" } else { "qcow2 v2" },
    ))
}

/// Walks the header extensions (they end at a zero type, within the first
/// cluster): one naming an external data file is refused even when the
/// feature bit is clear, since a reader could honour either.
fn qcow2_extensions(head: &[u8], from: usize, cluster_size: usize) -> Result<(), String> {
    let end = cluster_size.min(head.len());
    let mut at = from;
    while at < end {
        let (Some(kind), Some(length)) = (be_u32(head, at), be_u32(head, at + 4)) else {
            break;
        };
        if kind == 0 {
            break;
        }
        if kind == QCOW2_EXT_DATA_FILE {
            return Err(QCOW2_DATA_FILE.into());
        }
        // The data is padded to a multiple of 8 bytes.
        let padded = usize::try_from(length)
            .ok()
            .and_then(|length| length.checked_next_multiple_of(8));
        // QEMU refuses an extension that runs past the first cluster.
        at = padded
            .and_then(|padded| at.checked_add(8)?.checked_add(padded))
            .filter(|next| *next <= cluster_size)
            .ok_or("a qcow2 image with a damaged header")?;
    }
    Ok(())
}

// ---------------------------------------------------------------- VMDK, sparse

/// A hosted sparse extent header (`KDMV`), the fields this code reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SparseHeader {
    version: u32,
    flags: u32,
    /// The disk size in 512-byte sectors.
    capacity: u64,
    /// The embedded descriptor, in sectors (offset 0: none).
    desc_offset: u64,
    desc_size: u64,
    gd_offset: u64,
    /// "\n \r\n", to detect a file damaged by a text-mode transfer.
    check_bytes: [u8; 4],
    compression: u16,
}

impl SparseHeader {
    fn parse(bytes: &[u8]) -> Option<Self> {
        if !bytes.starts_with(b"KDMV") {
            return None;
        }
        Some(Self {
            version: le_u32(bytes, 4)?,
            flags: le_u32(bytes, 8)?,
            capacity: le_u64(bytes, 12)?,
            desc_offset: le_u64(bytes, 28)?,
            desc_size: le_u64(bytes, 36)?,
            gd_offset: le_u64(bytes, 56)?,
            check_bytes: array(bytes, 73)?,
            compression: le_u16(bytes, 77)?,
        })
    }

    fn check_bytes_intact(&self) -> bool {
        self.flags & VMDK_FLAG_NL_DETECT == 0 || self.check_bytes == *b"\n \r\n"
    }
}

/// The grain directory offset that says "the real header is in the footer".
const GD_AT_END: u64 = u64::MAX;
const VMDK_FLAG_NL_DETECT: u32 = 1;
const VMDK_FLAG_COMPRESSED: u32 = 1 << 16;
const VMDK_COMPRESSION_DEFLATE: u16 = 1;
const VMDK_MARKER_EOS: u32 = 0;
const VMDK_MARKER_FOOTER: u32 = 3;
/// QEMU reads at most this much of an embedded descriptor (`vmdk_read_desc`).
const QEMU_DESCRIPTOR_MAX: u64 = (1 << 20) - 1;
/// QEMU looks for `parentFileNameHint` in this many bytes from offset 0x200
/// of every sparse file, wherever its descriptor is (`vmdk_parent_open`).
const QEMU_PARENT_WINDOW: usize = 20 * 512;
const VMDK_TEXT_MODE: &str =
    "a VMDK damaged by a text-mode transfer (its line-ending check bytes were changed): \
     transfer it again in binary mode";
const PARENT_HINT: &str = "a VMDK that names a parent disk (parentFileNameHint)";

/// A sparse VMDK: monolithicSparse or streamOptimized, or a bare sparse
/// extent without a descriptor (a part of a twoGbMaxExtentSparse disk).
fn vmdk_sparse(file: &File) -> Result<DiskInfo, String> {
    let header = SparseHeader::parse(file.head).ok_or("a truncated VMDK header")?;
    if !(1..=3).contains(&header.version) {
        return Err(format!(
            "a VMDK sparse extent of unsupported version {}",
            header.version
        ));
    }
    if !header.check_bytes_intact() {
        return Err(VMDK_TEXT_MODE.into());
    }
    if header.capacity == 0 && header.desc_offset != 0 {
        // QEMU then opens the embedded descriptor as a descriptor file and
        // follows its extents, whatever they name.
        return Err(
            "a VMDK whose header claims no capacity but carries a descriptor \
             (QEMU would open the extents that descriptor names)"
                .into(),
        );
    }
    let effective = if header.gd_offset == GD_AT_END {
        stream_footer(file, &header)?
    } else {
        header
    };
    let virtual_size = sector_bytes(effective.capacity)?;
    let compressed = effective.compression == VMDK_COMPRESSION_DEFLATE
        || effective.flags & VMDK_FLAG_COMPRESSED != 0;

    let qemu_window = file
        .head
        .get(0x200..)
        .map(|rest| {
            let rest = rest.get(..QEMU_PARENT_WINDOW).unwrap_or(rest);
            rest.split(|&byte| byte == 0).next().unwrap_or(rest)
        })
        .unwrap_or_default();
    refuse_parent_hint(qemu_window)?;

    // The parts of a twoGbMaxExtentSparse disk reserve a descriptor area
    // and leave it empty (qemu-img writes them so): they name nothing.
    let text = embedded_descriptor(file, &header)?
        .filter(|text| !text.iter().all(u8::is_ascii_whitespace));
    let Some(text) = text else {
        let detail = if compressed {
            "vmdk streamOptimized"
        } else {
            "vmdk sparse extent"
        };
        return Ok(info(DiskFormat::Vmdk, Some(virtual_size), detail));
    };
    let text = String::from_utf8_lossy(text);
    let descriptor = parse_descriptor(&text)?;
    let stream = match descriptor.create_type {
        Some(kind) if kind.eq_ignore_ascii_case("streamOptimized") => true,
        Some(kind) if kind.eq_ignore_ascii_case("monolithicSparse") => false,
        Some(_) => {
            return Err(
                "a sparse VMDK whose embedded descriptor claims another layout \
                 (createType)"
                    .into(),
            )
        }
        None => return Err("a sparse VMDK whose embedded descriptor has no createType".into()),
    };
    if descriptor.change_track.is_some() {
        return Err("a sparse VMDK whose descriptor names a change-tracking file".into());
    }
    let [extent] = descriptor.extents.as_slice() else {
        return Err(
            "a sparse VMDK whose embedded descriptor names other extents than itself".into(),
        );
    };
    if extent.kind != "SPARSE" {
        return Err(
            "a sparse VMDK whose embedded descriptor describes another kind of extent".into(),
        );
    }
    // The name is that of the file as it was first written, which need not
    // be its name here; it must still be a plain name, never a path or URL.
    if let Some(name) = extent.name.filter(|name| !plain_name(name)) {
        return Err(format!(
            "a sparse VMDK whose embedded descriptor names {:?}, which is not a plain file name",
            excerpt(name)
        ));
    }
    if extent.sectors != effective.capacity {
        return Err("a VMDK whose descriptor and header disagree on the disk size".into());
    }
    let detail = if stream || compressed {
        "vmdk streamOptimized"
    } else {
        "vmdk monolithicSparse"
    };
    Ok(info(DiskFormat::Vmdk, Some(virtual_size), detail))
}

/// The header a streamOptimized VMDK keeps at its end when the one at its
/// start says `GD_AT_END`: a footer marker, the footer, an end-of-stream
/// marker, in the last three sectors (as QEMU reads it, at the file's size
/// rounded down to a sector).
fn stream_footer(file: &File, header: &SparseHeader) -> Result<SparseHeader, String> {
    const MISSING: &str = "a streamOptimized VMDK whose footer is missing or damaged";
    let end = file.size - file.size % SECTOR;
    let bytes = end
        .checked_sub(3 * SECTOR)
        .and_then(|start| file.at(start, 1536))
        .ok_or(MISSING)?;
    let footer_marker =
        le_u32(bytes, 8) == Some(0) && le_u32(bytes, 12) == Some(VMDK_MARKER_FOOTER);
    let end_marker = le_u64(bytes, 1024) == Some(0)
        && le_u32(bytes, 1032) == Some(0)
        && le_u32(bytes, 1036) == Some(VMDK_MARKER_EOS);
    let footer = bytes
        .get(512..1024)
        .and_then(SparseHeader::parse)
        .filter(|_| footer_marker && end_marker)
        .ok_or(MISSING)?;
    if footer.version != header.version
        || footer.desc_offset != header.desc_offset
        || footer.desc_size != header.desc_size
        || footer.gd_offset == GD_AT_END
    {
        return Err("a streamOptimized VMDK whose footer disagrees with its header".into());
    }
    if !footer.check_bytes_intact() {
        return Err(VMDK_TEXT_MODE.into());
    }
    Ok(footer)
}

/// The text of a sparse VMDK's embedded descriptor, as its most generous
/// reader sees it: from `descriptorOffset` up to the first NUL, within the
/// larger of its declared size and the 1 MiB QEMU reads. None when the
/// header has no descriptor; Err when the text runs past the bytes at hand.
fn embedded_descriptor<'a>(
    file: &File<'a>,
    header: &SparseHeader,
) -> Result<Option<&'a [u8]>, String> {
    if header.desc_offset == 0 {
        return Ok(None);
    }
    let start = header
        .desc_offset
        .checked_mul(SECTOR)
        .filter(|start| *start < file.size)
        .ok_or("a VMDK whose descriptor lies outside the file")?;
    let declared = header
        .desc_size
        .checked_mul(SECTOR)
        .ok_or("a VMDK whose header claims an impossible descriptor size")?;
    let window_end = start
        .saturating_add(declared.max(QEMU_DESCRIPTOR_MAX))
        .min(file.size);
    let beyond = || {
        format!(
            "a VMDK whose embedded descriptor lies beyond the first {} KiB, where Depot \
             cannot check it",
            HEAD_LEN / 1024
        )
    };
    let visible = usize::try_from(start)
        .ok()
        .and_then(|start| file.head.get(start..))
        .filter(|visible| !visible.is_empty())
        .ok_or_else(beyond)?;
    let declared_len = usize::try_from(declared).unwrap_or(usize::MAX);
    refuse_parent_hint(visible.get(..declared_len).unwrap_or(visible))?;

    let window_len = window_end
        .checked_sub(start)
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(usize::MAX);
    let seen = visible.get(..window_len).unwrap_or(visible);
    match seen.iter().position(|&byte| byte == 0) {
        Some(nul) => Ok(seen.get(..nul)),
        None if seen.len() == window_len => Ok(Some(seen)),
        None => Err(beyond()),
    }
}

fn refuse_parent_hint(bytes: &[u8]) -> Result<(), String> {
    if contains_ignore_case(bytes, b"parentFileNameHint") {
        Err(PARENT_HINT.into())
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------- VMDK, descriptors

/// The marker text descriptors start with.
const DESCRIPTOR_MARKER: &[u8] = b"# Disk DescriptorFile";
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
/// The most extents a descriptor may list (a 2 TiB twoGbMaxExtent disk has 1024).
const MAX_EXTENTS: usize = 4096;
const EXTENT_ACCESS: [&str; 3] = ["RW", "RDONLY", "NOACCESS"];
const NOT_TEXT: &str = "a VMDK descriptor that is not plain text";

/// Layouts a text descriptor may have, spelled as VMware spells them.
const CREATE_TYPES: [&str; 9] = [
    "monolithicSparse",
    "streamOptimized",
    "monolithicFlat",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
    "vmfs",
    "vmfsThin",
    "vmfsPreallocated",
    "vmfsEagerZeroedThick",
];
/// Snapshot layouts: a delta over a parent disk.
const DELTA_CREATE_TYPES: [&str; 3] = ["vmfsSparse", "seSparse", "vmfsSparseEx"];
/// Layouts that map a raw device of the host.
const DEVICE_CREATE_TYPES: [&str; 5] = [
    "vmfsRaw",
    "vmfsRawDeviceMap",
    "vmfsPassthroughRawDeviceMap",
    "fullDevice",
    "partitionedDevice",
];

/// Whether a file is a VMDK text descriptor: it starts with the marker VMware
/// writes, or QEMU's probe would take it for one (comment and blank lines,
/// then `version=1`, 2 or 3), in the 2 KiB QEMU probes.
fn looks_like_vmdk_descriptor(head: &[u8]) -> bool {
    let head = head.strip_prefix(UTF8_BOM).unwrap_or(head);
    let marked = head
        .get(..DESCRIPTOR_MARKER.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(DESCRIPTOR_MARKER));
    marked || qemu_probes_descriptor(head.get(..2048).unwrap_or(head))
}

/// QEMU's `vmdk_probe` for text descriptors, byte for byte.
fn qemu_probes_descriptor(buf: &[u8]) -> bool {
    let mut rest = buf;
    while let Some(&first) = rest.first() {
        match first {
            b'#' => {
                rest = match rest.iter().position(|&byte| byte == b'\n') {
                    Some(newline) => rest.get(newline + 1..).unwrap_or_default(),
                    None => return false,
                };
            }
            b' ' => {
                let spaces = rest.iter().take_while(|&&byte| byte == b' ').count();
                rest = rest.get(spaces..).unwrap_or_default();
                rest = rest.strip_prefix(b"\r").unwrap_or(rest);
                match rest.strip_prefix(b"\n") {
                    Some(after) => rest = after,
                    None => return false,
                }
            }
            _ => {
                return [b'1', b'2', b'3'].iter().any(|&digit| {
                    let line = [b'v', b'e', b'r', b's', b'i', b'o', b'n', b'=', digit];
                    rest.strip_prefix(line.as_slice())
                        .is_some_and(|end| end.starts_with(b"\n") || end.starts_with(b"\r\n"))
                });
            }
        }
    }
    false
}

/// What a VMDK descriptor says, once every line of it has been read.
#[derive(Debug)]
struct Descriptor<'t> {
    create_type: Option<&'t str>,
    extents: Vec<Extent<'t>>,
    /// `changeTrackPath`: a file ESX opens beside the disk.
    change_track: Option<&'t str>,
}

/// One extent line: `RW 204800 SPARSE "disk.vmdk"`.
#[derive(Debug)]
struct Extent<'t> {
    sectors: u64,
    /// SPARSE, FLAT, ZERO or VMFS (the only kinds accepted).
    kind: &'static str,
    name: Option<&'t str>,
}

/// Reads a descriptor strictly: every line must be a comment, a `key = value`
/// field or a well-formed extent, so that no reader (QEMU's `sscanf` runs
/// across line ends; VMware's parser is not public) can find an extent this
/// code did not check. Parent references anywhere, comments included, are
/// refused, since QEMU finds `parentFileNameHint` with a plain substring
/// search.
fn parse_descriptor(text: &str) -> Result<Descriptor<'_>, String> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(NOT_TEXT.into());
    }
    refuse_parent_hint(text.as_bytes())?;
    if count_ignore_case(text.as_bytes(), b"createType") > 1 {
        return Err("a VMDK descriptor with more than one createType".into());
    }
    let mut descriptor = Descriptor {
        create_type: None,
        extents: Vec::new(),
        change_track: None,
    };
    for (index, numbered) in text.split('\n').enumerate() {
        // A carriage return inside a line is a line end to some readers.
        for line in numbered.split('\r') {
            read_descriptor_line(line.trim_matches([' ', '\t']), index + 1, &mut descriptor)?;
        }
    }
    Ok(descriptor)
}

fn read_descriptor_line<'t>(
    line: &'t str,
    number: usize,
    descriptor: &mut Descriptor<'t>,
) -> Result<(), String> {
    let field = line.split_once('=').map(|(key, value)| {
        let value = value.trim_matches([' ', '\t']);
        let value = value
            .strip_prefix('"')
            .and_then(|inner| inner.strip_suffix('"'))
            .unwrap_or(value);
        (key.trim_matches([' ', '\t']), value)
    });
    if contains_ignore_case(line.as_bytes(), b"parentCID") {
        let no_parent = field.is_some_and(|(key, value)| {
            key.eq_ignore_ascii_case("parentCID") && value.eq_ignore_ascii_case("ffffffff")
        });
        if !no_parent {
            return Err("a VMDK that names a parent disk (parentCID)".into());
        }
    }
    if line.is_empty() || line.starts_with('#') {
        return Ok(());
    }
    let first_word = line.split([' ', '\t']).next().unwrap_or_default();
    if is_access(first_word) {
        if descriptor.extents.len() >= MAX_EXTENTS {
            return Err(format!(
                "a VMDK descriptor with more than {MAX_EXTENTS} extents"
            ));
        }
        descriptor.extents.push(parse_extent(line)?);
        return Ok(());
    }
    let unreadable = || format!("a VMDK descriptor with a line Depot cannot read (line {number})");
    let (key, value) = field.ok_or_else(unreadable)?;
    let key_is_word = !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if !key_is_word || is_access(key) {
        return Err(unreadable());
    }
    if key.eq_ignore_ascii_case("createType") {
        descriptor.create_type = Some(value);
    } else if key.eq_ignore_ascii_case("changeTrackPath") {
        descriptor.change_track = Some(value);
    }
    Ok(())
}

fn is_access(word: &str) -> bool {
    EXTENT_ACCESS
        .iter()
        .any(|access| word.eq_ignore_ascii_case(access))
}

/// `ACCESS SECTORS KIND ["NAME" [OFFSET]]`, in the shapes VMware writes:
/// ZERO without a name, FLAT with a name and an offset, SPARSE and VMFS with
/// a name only.
fn parse_extent(line: &str) -> Result<Extent<'_>, String> {
    let malformed = || {
        format!(
            "a VMDK descriptor with a malformed extent line ({})",
            excerpt(line)
        )
    };
    let (_access, rest) = split_word(line);
    let (sectors, rest) = split_word(rest);
    let (kind, rest) = split_word(rest);
    let rest = rest.trim_matches([' ', '\t']);
    let (name, offset) = if rest.is_empty() {
        (None, None)
    } else {
        let quoted = rest.strip_prefix('"').ok_or_else(malformed)?;
        let (name, after) = quoted.split_once('"').ok_or_else(malformed)?;
        let after = after.trim_matches([' ', '\t']);
        let offset = if after.is_empty() {
            None
        } else {
            Some(decimal(after).ok_or_else(malformed)?)
        };
        (Some(name), offset)
    };
    if sectors.is_empty() || !sectors.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(malformed());
    }
    let sectors: u64 = sectors.parse().map_err(|_| IMPOSSIBLE_SIZE.to_owned())?;
    if sectors == 0 {
        return Err(malformed());
    }
    let kind = extent_kind(kind)?;
    let shape_ok = match kind {
        "ZERO" => name.is_none() && offset.is_none(),
        "FLAT" => name.is_some() && offset.is_some(),
        _ => name.is_some() && offset.is_none(),
    };
    if !shape_ok {
        return Err(malformed());
    }
    Ok(Extent {
        sectors,
        kind,
        name,
    })
}

/// The next word and what follows it, words being split by spaces or tabs.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches([' ', '\t']);
    text.split_once([' ', '\t']).unwrap_or((text, ""))
}

fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An extent kind, as its canonical name; refused unless the extent holds
/// the disk's own bytes (not a raw device, not a delta over a parent).
fn extent_kind(kind: &str) -> Result<&'static str, String> {
    if let Some(known) = ["SPARSE", "FLAT", "ZERO", "VMFS"]
        .into_iter()
        .find(|known| kind.eq_ignore_ascii_case(known))
    {
        return Ok(known);
    }
    if ["VMFSRAW", "VMFSRDM", "VMFSRDMP"]
        .iter()
        .any(|device| kind.eq_ignore_ascii_case(device))
    {
        return Err(format!(
            "a VMDK that maps a raw host device ({} extent)",
            excerpt(kind)
        ));
    }
    if ["VMFSSPARSE", "SESPARSE"]
        .iter()
        .any(|delta| kind.eq_ignore_ascii_case(delta))
    {
        return Err(format!(
            "a VMDK snapshot (delta) extent ({}), which needs its parent disk",
            excerpt(kind)
        ));
    }
    Err(format!(
        "a VMDK descriptor with an extent of a kind Depot does not know ({})",
        excerpt(kind)
    ))
}

/// A name a reader resolves beside the descriptor and nowhere else: no path,
/// no parent folder, no URL or drive (`http:`, `file:`, `C:`, QEMU's
/// `json:`), no control characters.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && !name.contains(['/', '\\', ':'])
        && !name.contains("..")
        && !name.chars().any(char::is_control)
}

/// A file a text descriptor names: a plain name, present beside it.
fn check_beside(name: &str, beside: &dyn Fn(&str) -> bool) -> Result<(), String> {
    if !plain_name(name) {
        return Err(format!(
            "a VMDK descriptor that names {:?}, which is not a plain file name beside it",
            excerpt(name)
        ));
    }
    if !beside(name) {
        return Err(format!(
            "a VMDK descriptor that names {:?}, which is not in the same folder or OVA",
            excerpt(name)
        ));
    }
    Ok(())
}

/// A text descriptor (monolithicFlat, twoGbMaxExtentSparse, …): kept when
/// every extent it names is a plain file beside it.
fn vmdk_text(file: &File, beside: &dyn Fn(&str) -> bool) -> Result<DiskInfo, String> {
    if !file.head_is_whole() {
        return Err(format!(
            "a VMDK descriptor larger than {} KiB, more than Depot reads",
            HEAD_LEN / 1024
        ));
    }
    let bytes = file.head.strip_prefix(UTF8_BOM).unwrap_or(file.head);
    // QEMU stops at a NUL and other readers may not: nothing may hide there.
    if bytes.contains(&0) {
        return Err(NOT_TEXT.into());
    }
    let text: Cow<str> = String::from_utf8_lossy(bytes);
    let descriptor = parse_descriptor(&text)?;
    let create_type = text_create_type(descriptor.create_type)?;
    if descriptor.extents.is_empty() {
        return Err("a VMDK descriptor that names no extent".into());
    }
    let mut sectors: u64 = 0;
    for extent in &descriptor.extents {
        if let Some(name) = extent.name {
            check_beside(name, beside)?;
        }
        sectors = sectors.checked_add(extent.sectors).ok_or(IMPOSSIBLE_SIZE)?;
    }
    if let Some(path) = descriptor.change_track {
        check_beside(path, beside)?;
    }
    Ok(DiskInfo {
        format: DiskFormat::Vmdk,
        virtual_size: Some(sector_bytes(sectors)?),
        detail: format!("vmdk {create_type} descriptor"),
        volume_label: None,
    })
}

fn text_create_type(create_type: Option<&str>) -> Result<&'static str, String> {
    let create_type = create_type.ok_or("a VMDK descriptor without a createType")?;
    let is = |known: &str| create_type.eq_ignore_ascii_case(known);
    if let Some(known) = CREATE_TYPES.into_iter().find(|known| is(known)) {
        return Ok(known);
    }
    if DELTA_CREATE_TYPES.into_iter().any(is) {
        return Err("a VMDK snapshot (delta) disk, which needs its parent disk".into());
    }
    if DEVICE_CREATE_TYPES.into_iter().any(is) {
        return Err("a VMDK that maps a raw host device".into());
    }
    Err(format!(
        "a VMDK descriptor of a type Depot does not know ({})",
        excerpt(create_type)
    ))
}

// ---------------------------------------------------------------- VHD

const VHD_COOKIE: &[u8] = b"conectix";
const VHD_FOOTER_LEN: u64 = 512;
const VHD_FIXED: u32 = 2;
const VHD_DYNAMIC: u32 = 3;
const VHD_DIFFERENCING: u32 = 4;

/// The fields of a VHD footer this code reads (all big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VhdFooter {
    /// Where a dynamic disk's header ("cxsparse") is.
    data_offset: u64,
    current_size: u64,
    disk_type: u32,
}

impl VhdFooter {
    fn parse(bytes: &[u8]) -> Option<Self> {
        if !bytes.starts_with(VHD_COOKIE) {
            return None;
        }
        Some(Self {
            data_offset: be_u64(bytes, 16)?,
            current_size: be_u64(bytes, 48)?,
            disk_type: be_u32(bytes, 60)?,
        })
    }
}

/// A VHD: its footer in the last 512 bytes (Hyper-V reads it there), and for
/// a dynamic disk a copy in the first 512 (QEMU reads that one); both must
/// agree. A differencing disk names its parent and is refused.
fn vhd(file: &File, footer: Option<&[u8]>) -> Result<DiskInfo, String> {
    let copy = file.head.get(..512).and_then(VhdFooter::parse);
    let footer = footer.and_then(VhdFooter::parse);
    if [copy, footer]
        .iter()
        .flatten()
        .any(|footer| footer.disk_type == VHD_DIFFERENCING)
    {
        return Err("a differencing VHD (it names a parent disk)".into());
    }
    let footer = match (copy, footer) {
        (Some(copy), Some(footer)) if copy != footer => {
            return Err("a VHD whose footer and its copy at the start disagree".into())
        }
        (_, Some(footer)) => footer,
        (Some(_), None) => {
            return Err("a VHD without its footer at the end (the file looks truncated)".into())
        }
        (None, None) => return Err("a truncated VHD".into()),
    };
    let virtual_size = Some(disk_bytes(footer.current_size)?);
    match footer.disk_type {
        VHD_FIXED => Ok(info(DiskFormat::Vhd, virtual_size, "vhd fixed")),
        VHD_DYNAMIC => {
            if copy.is_none() {
                return Err("a dynamic VHD without the copy of its footer at the start".into());
            }
            if file.at(footer.data_offset, 8) != Some(b"cxsparse".as_slice()) {
                return Err("a dynamic VHD whose dynamic header is missing or damaged".into());
            }
            Ok(info(DiskFormat::Vhd, virtual_size, "vhd dynamic"))
        }
        other => Err(format!("a VHD of unknown disk type {other}")),
    }
}

// ---------------------------------------------------------------- VHDX

/// Builds the on-disk (mixed-endian) bytes of a GUID written as text.
const fn guid(text: &str) -> [u8; 16] {
    let text = text.as_bytes();
    let mut raw = [0u8; 16];
    let mut nibbles = 0;
    let mut index = 0;
    while index < text.len() {
        let byte = text[index];
        index += 1;
        let value = match byte {
            b'-' => continue,
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => panic!("not a GUID"),
        };
        raw[nibbles / 2] = (raw[nibbles / 2] << 4) | value;
        nibbles += 1;
    }
    assert!(nibbles == 32, "not a GUID");
    // The first three fields are stored little-endian, the rest as written.
    [
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ]
}

const VHDX_BAT_REGION: [u8; 16] = guid("2DC27766-F623-4200-9D64-115E9BFD4A08");
const VHDX_METADATA_REGION: [u8; 16] = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E");
const VHDX_FILE_PARAMETERS: [u8; 16] = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
const VHDX_VIRTUAL_DISK_SIZE: [u8; 16] = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
const VHDX_PAGE_83: [u8; 16] = guid("BECA12AB-B2E6-4523-93EF-C309E000C746");
const VHDX_LOGICAL_SECTOR_SIZE: [u8; 16] = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
const VHDX_PHYSICAL_SECTOR_SIZE: [u8; 16] = guid("CDA348C7-445D-4471-9CC9-E9885251C556");
const VHDX_PARENT_LOCATOR: [u8; 16] = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
/// The region table and its copy, each 64 KiB.
const VHDX_REGION_TABLES: [usize; 2] = [192 * 1024, 256 * 1024];
const VHDX_REGION_TABLE_LEN: usize = 64 * 1024;
/// The most entries a region or metadata table may have.
const VHDX_MAX_ENTRIES: usize = 2047;
/// File Parameters flag: the disk is a differencing disk.
const VHDX_HAS_PARENT: u32 = 1 << 1;
/// Metadata entry flag: a reader must understand the item to open the disk.
const VHDX_IS_REQUIRED: u32 = 1 << 2;
const VHDX_DIFFERENCING: &str = "a differencing VHDX (it names a parent disk)";
const VHDX_DAMAGED_METADATA: &str = "a VHDX image whose metadata table is damaged";

fn vhdx(file: &File) -> Result<DiskInfo, String> {
    let (offset, length) = vhdx_metadata_region(file.head)?;
    let virtual_size = vhdx_metadata_in(file, offset, length)?;
    Ok(info(DiskFormat::Vhdx, virtual_size, "vhdx"))
}

/// The metadata region's (offset, length), from the first region table
/// whose signature and CRC-32C hold (as the specification has readers do).
fn vhdx_metadata_region(head: &[u8]) -> Result<(u64, u64), String> {
    let table = VHDX_REGION_TABLES
        .iter()
        .find_map(|&at| valid_region_table(head, at))
        .ok_or("a VHDX image whose region tables are missing or damaged")?;
    let count = le_u32(table, 8)
        .and_then(|count| usize::try_from(count).ok())
        .unwrap_or_default();
    let mut metadata = None;
    let entries = table.get(16..).unwrap_or_default();
    for entry in entries.chunks_exact(32).take(count) {
        let id: Option<[u8; 16]> = array(entry, 0);
        let required = le_u32(entry, 28).unwrap_or_default() & 1 != 0;
        match id {
            Some(VHDX_METADATA_REGION) => {
                if metadata.is_some() {
                    return Err("a VHDX image with two metadata regions".into());
                }
                let offset = le_u64(entry, 16).unwrap_or_default();
                let length = u64::from(le_u32(entry, 24).unwrap_or_default());
                metadata = Some((offset, length));
            }
            Some(VHDX_BAT_REGION) => {}
            _ if required => {
                return Err("a VHDX image with a required region Depot does not know".into())
            }
            _ => {}
        }
    }
    metadata.ok_or_else(|| "a VHDX image without a metadata region".into())
}

fn valid_region_table(head: &[u8], at: usize) -> Option<&[u8]> {
    let table = head.get(at..at.checked_add(VHDX_REGION_TABLE_LEN)?)?;
    let count = usize::try_from(le_u32(table, 8)?).ok()?;
    let sound = table.starts_with(b"regi")
        && count <= VHDX_MAX_ENTRIES
        && le_u32(table, 4) == Some(crc32c_without_checksum(table));
    sound.then_some(table)
}

/// Reads the metadata table at `base` and the items it points to, as far as
/// the bytes at hand reach: a parent locator or the has-parent flag refuses
/// the disk, the virtual disk size is returned when reachable.
fn vhdx_metadata_in(file: &File, base: u64, length: u64) -> Result<Option<u64>, String> {
    let Some(header) = file.at(base, 32) else {
        return Ok(None);
    };
    if !header.starts_with(b"metadata") {
        return Err(VHDX_DAMAGED_METADATA.into());
    }
    let count = usize::from(le_u16(header, 10).unwrap_or_default());
    if count > VHDX_MAX_ENTRIES {
        return Err(VHDX_DAMAGED_METADATA.into());
    }
    let entries_at = base.checked_add(32).ok_or(VHDX_DAMAGED_METADATA)?;
    let Some(entries) = count
        .checked_mul(32)
        .and_then(|len| file.at(entries_at, len))
    else {
        return Ok(None);
    };
    let mut virtual_size = None;
    for entry in entries.chunks_exact(32) {
        let id: Option<[u8; 16]> = array(entry, 0);
        let item_offset = u64::from(le_u32(entry, 16).unwrap_or_default());
        let item_len = le_u32(entry, 20).unwrap_or_default();
        let flags = le_u32(entry, 24).unwrap_or_default();
        if item_offset
            .checked_add(u64::from(item_len))
            .is_none_or(|end| end > length)
        {
            return Err(VHDX_DAMAGED_METADATA.into());
        }
        let item = |len: usize| {
            base.checked_add(item_offset)
                .and_then(|at| file.at(at, len))
        };
        match id {
            Some(VHDX_PARENT_LOCATOR) => return Err(VHDX_DIFFERENCING.into()),
            Some(VHDX_FILE_PARAMETERS) => {
                let flags = item(8).and_then(|params| le_u32(params, 4));
                if flags.is_some_and(|flags| flags & VHDX_HAS_PARENT != 0) {
                    return Err(VHDX_DIFFERENCING.into());
                }
            }
            Some(VHDX_VIRTUAL_DISK_SIZE) => {
                if item_len != 8 {
                    return Err(VHDX_DAMAGED_METADATA.into());
                }
                if let Some(size) = item(8).and_then(|bytes| le_u64(bytes, 0)) {
                    virtual_size = Some(disk_bytes(size)?);
                }
            }
            Some(VHDX_PAGE_83 | VHDX_LOGICAL_SECTOR_SIZE | VHDX_PHYSICAL_SECTOR_SIZE) => {}
            _ if flags & VHDX_IS_REQUIRED != 0 => {
                return Err("a VHDX image with required metadata Depot does not know".into())
            }
            _ => {}
        }
    }
    Ok(virtual_size)
}

/// CRC-32C (Castagnoli, reflected), the checksum VHDX uses.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut index = 0;
    let mut value: u32 = 0;
    while index < 256 {
        let mut crc = value;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
        value += 1;
    }
    table
}

fn crc32c_update(crc: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(crc, |crc, &byte| {
        let index = usize::from(crc.to_le_bytes()[0] ^ byte);
        (crc >> 8) ^ CRC32C_TABLE.get(index).copied().unwrap_or_default()
    })
}

/// The CRC-32C of a VHDX structure whose checksum field (bytes 4..8) counts
/// as zero.
fn crc32c_without_checksum(bytes: &[u8]) -> u32 {
    let crc = crc32c_update(!0, bytes.get(..4).unwrap_or_default());
    let crc = crc32c_update(crc, &[0; 4]);
    !crc32c_update(crc, bytes.get(8..).unwrap_or_default())
}

// ---------------------------------------------------------------- ISO 9660 and UDF

/// Optical media, told by the volume descriptors from 32 KiB on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Optical {
    Iso9660,
    Udf,
}

const ISO_DESCRIPTORS_AT: usize = 0x8000;
/// The most volume descriptors read (real discs have a handful).
const MAX_VOLUME_DESCRIPTORS: usize = 64;
const UDF_TAG_ANCHOR: u16 = 2;
const UDF_TAG_LOGICAL_VOLUME: u16 = 6;
const UDF_TAG_TERMINATING: u16 = 8;

impl Optical {
    fn of(head: &[u8]) -> Option<Self> {
        if head.get(0x8001..0x8006) == Some(b"CD001".as_slice()) {
            Some(Self::Iso9660)
        } else if udf_recognised(head) {
            Some(Self::Udf)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Iso9660 => "an ISO 9660 image",
            Self::Udf => "a UDF image",
        }
    }

    /// An ISO that also carries UDF (a bridge disc) is told as iso9660, with
    /// the ISO label or, when that is blank, the UDF one.
    fn info(self, head: &[u8]) -> DiskInfo {
        let (detail, volume_label) = match self {
            Self::Iso9660 => ("iso9660", iso_label(head).or_else(|| udf_label(head))),
            Self::Udf => ("udf", udf_label(head)),
        };
        DiskInfo {
            format: DiskFormat::Iso,
            virtual_size: None,
            detail: detail.to_owned(),
            volume_label,
        }
    }
}

/// The identifier of the volume descriptor `index` sectors after 32 KiB,
/// with descriptors `stride` bytes apart.
fn volume_descriptor(head: &[u8], index: usize, stride: usize) -> Option<(u8, &[u8])> {
    let at = index.checked_mul(stride)?.checked_add(ISO_DESCRIPTORS_AT)?;
    let kind = *head.get(at)?;
    let identifier = head.get(at.checked_add(1)?..at.checked_add(6)?)?;
    Some((kind, identifier))
}

/// A UDF volume recognition sequence: BEA01, then NSR02 or NSR03, among
/// descriptors 2 KiB apart (or one per 4 KiB block).
fn udf_recognised(head: &[u8]) -> bool {
    [2048, 4096].into_iter().any(|stride| {
        let mut begun = false;
        for index in 0..MAX_VOLUME_DESCRIPTORS {
            match volume_descriptor(head, index, stride).map(|(_, id)| id) {
                Some(b"BEA01") => begun = true,
                Some(b"NSR02" | b"NSR03") if begun => return true,
                Some(b"CD001" | b"CDW02" | b"BOOT2" | b"TEA01" | b"NSR02" | b"NSR03") => {}
                _ => return false,
            }
        }
        false
    })
}

/// The volume identifier of the primary volume descriptor.
fn iso_label(head: &[u8]) -> Option<String> {
    for index in 0..MAX_VOLUME_DESCRIPTORS {
        match volume_descriptor(head, index, 2048)? {
            (1, b"CD001") => {
                let at = ISO_DESCRIPTORS_AT.checked_add(index.checked_mul(2048)?)?;
                let field = head.get(at.checked_add(40)?..at.checked_add(72)?)?;
                return clean_label(&String::from_utf8_lossy(field));
            }
            (255, _) => return None,
            (_, b"CD001") => {}
            _ => return None,
        }
    }
    None
}

/// The logical volume identifier of a UDF volume: the anchor at sector 256
/// (for 2048, 512 or 4096-byte sectors) points to the main volume descriptor
/// sequence, which holds the logical volume descriptor.
fn udf_label(head: &[u8]) -> Option<String> {
    for block in [2048usize, 512, 4096] {
        let anchor_at = block.checked_mul(256)?;
        if udf_tag(head, anchor_at, 256) != Some(UDF_TAG_ANCHOR) {
            continue;
        }
        let length = le_u32(head, anchor_at.checked_add(16)?)?;
        let location = le_u32(head, anchor_at.checked_add(20)?)?;
        let count = usize::try_from(length)
            .ok()?
            .checked_div(block)?
            .min(MAX_VOLUME_DESCRIPTORS);
        for index in 0..count {
            let sector = u64::from(location).checked_add(len64(index))?;
            let at = usize::try_from(sector.checked_mul(len64(block))?).ok()?;
            match udf_tag(head, at, sector) {
                Some(UDF_TAG_LOGICAL_VOLUME) => {
                    let field = head.get(at.checked_add(84)?..at.checked_add(212)?)?;
                    return dstring(field);
                }
                Some(UDF_TAG_TERMINATING) | None => return None,
                Some(_) => {}
            }
        }
        return None;
    }
    None
}

/// The identifier of the UDF descriptor tag at `at`, when its checksum holds
/// and it says it lies at `sector`.
fn udf_tag(head: &[u8], at: usize, sector: u64) -> Option<u16> {
    let tag = head.get(at..at.checked_add(16)?)?;
    let sum = tag
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != 4)
        .fold(0u8, |sum, (_, byte)| sum.wrapping_add(*byte));
    let location = u64::from(le_u32(tag, 12)?);
    if tag.get(4) == Some(&sum) && location == sector {
        le_u16(tag, 0)
    } else {
        None
    }
}

/// A UDF `dstring`: a compression id (8: one byte a character, 16: UCS-2
/// big-endian), the characters, and in the last byte the length used.
fn dstring(field: &[u8]) -> Option<String> {
    let (&used, body) = field.split_last()?;
    let (&compression, characters) = body.get(..usize::from(used))?.split_first()?;
    let text: String = match compression {
        8 => characters.iter().map(|&byte| char::from(byte)).collect(),
        16 => characters
            .chunks_exact(2)
            .map(|pair| match pair {
                [high, low] => char::from_u32(u32::from(u16::from_be_bytes([*high, *low])))
                    .unwrap_or(char::REPLACEMENT_CHARACTER),
                _ => char::REPLACEMENT_CHARACTER,
            })
            .collect(),
        _ => return None,
    };
    clean_label(&text)
}

fn clean_label(text: &str) -> Option<String> {
    let printable: String = text.chars().filter(|c| !c.is_control()).collect();
    let trimmed = printable.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

// ---------------------------------------------------------------- raw

/// A file no format claims: raw, with its partition table noted. A FAT boot
/// sector also ends in 0x55AA, so an MBR must also have sane entries.
fn raw(head: &[u8]) -> DiskInfo {
    let gpt = [512, 4096]
        .into_iter()
        .any(|at| head.get(at..at + 8) == Some(b"EFI PART".as_slice()));
    let detail = if gpt {
        "raw (GPT)"
    } else if mbr(head) {
        "raw (MBR)"
    } else {
        "raw"
    };
    info(DiskFormat::Raw, None, detail)
}

fn mbr(head: &[u8]) -> bool {
    let Some(entries) = head.get(446..510) else {
        return false;
    };
    head.get(510..512) == Some([0x55, 0xaa].as_slice())
        && entries
            .chunks_exact(16)
            .all(|entry| matches!(entry.first(), Some(0x00 | 0x80)))
        && entries
            .chunks_exact(16)
            .any(|entry| entry.get(4).is_some_and(|kind| *kind != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing_beside(_: &str) -> bool {
        false
    }

    /// Inspects a whole file as the caller would: its first HEAD_LEN bytes,
    /// its last TAIL_LEN.
    fn inspect_with(bytes: &[u8], beside: &dyn Fn(&str) -> bool) -> Result<DiskInfo, String> {
        let head = &bytes[..bytes.len().min(HEAD_LEN)];
        let tail = &bytes[bytes.len() - bytes.len().min(TAIL_LEN)..];
        detect(head, tail, len64(bytes.len()), beside)
    }

    fn inspect(bytes: &[u8]) -> Result<DiskInfo, String> {
        inspect_with(bytes, &nothing_beside)
    }

    fn refused(bytes: &[u8], reason: &str) {
        match inspect(bytes) {
            Err(why) => assert!(why.contains(reason), "refused for {why:?}, not {reason:?}"),
            Ok(info) => panic!("accepted {info:?}, expected a refusal for {reason:?}"),
        }
    }

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn zeros(len: usize) -> Vec<u8> {
        vec![0; len]
    }

    // ------------------------------------------------------------ qcow2

    /// `qemu-img create -f qcow2 q3.qcow2 1G`, bytes 0..0x78: the header and
    /// the start of its feature-name table extension.
    const QCOW2_V3: &str = "514649fb00000003000000000000000000000000000000100000000040000000000000\
        0000000002000000000003000000000000000100000000000100000000000000000000000000000000000000\
        0000000000000000000000000000000000000000040000007000000000000000006803f85700000180";
    /// `qemu-img create -f qcow2 -o compat=0.10 q2.qcow2 1G`, bytes 0..0x48.
    const QCOW2_V2: &str = "514649fb00000002000000000000000000000000000000100000000040000000000000\
        00000000020000000000030000000000000001000000000001000000000000000000000000";
    /// `qemu-img create -f qcow2 -b q3.qcow2 -F qcow2 qb.qcow2`, bytes 0..0x68.
    const QCOW2_BACKING: &str =
        "514649fb0000000300000000000002100000000800000010000000004000000000\
        0000000000000200000000000300000000000000010000000000010000000000000000000000000000000000\
        000000000000000000000000000000000000000000000400000070";
    /// `qemu-img create -f qcow2 -o data_file=data.raw qd.qcow2 1G`, bytes 0..0x88:
    /// incompatible bit 2 and the "DATA" extension naming data.raw.
    const QCOW2_DATA_FILE_HEADER: &str = "514649fb000000030000000000000000000000000000001000000000\
        4000000000000000000000020000000000030000000000000001000000000001000000000000000000000000\
        0000000000000004000000000000000000000000000000000000000400000070000000000000000044415441\
        00000008646174612e7261776803f85700000180";

    /// A qcow2 file of 192 KiB (as qemu-img makes) with the header bytes given.
    fn qcow2_file(header_hex: &str) -> Vec<u8> {
        let mut file = zeros(196_624);
        put(&mut file, 0, &hex::decode(header_hex).unwrap());
        file
    }

    fn qcow2_with(version: u32, set: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut file = qcow2_file(if version == 2 { QCOW2_V2 } else { QCOW2_V3 });
        set(&mut file);
        file
    }

    #[test]
    fn qcow2_v3_and_v2_from_qemu_img_are_read() {
        let v3 = inspect(&qcow2_file(QCOW2_V3)).unwrap();
        assert_eq!(
            v3,
            DiskInfo {
                format: DiskFormat::Qcow2,
                virtual_size: Some(1 << 30),
                detail: "qcow2 v3".into(),
                volume_label: None,
            }
        );
        let v2 = inspect(&qcow2_file(QCOW2_V2)).unwrap();
        assert_eq!(v2.detail, "qcow2 v2");
        assert_eq!(v2.virtual_size, Some(1 << 30));
    }

    #[test]
    fn qcow2_naming_other_files_is_refused() {
        refused(
            &qcow2_file(QCOW2_BACKING),
            "a qcow2 image with a backing file",
        );
        refused(
            &qcow2_file(QCOW2_DATA_FILE_HEADER),
            "a qcow2 image with an external data file",
        );
        // The feature bit cleared, the extension naming the file kept.
        let mut extension_only = qcow2_file(QCOW2_DATA_FILE_HEADER);
        extension_only[0x4f] = 0;
        refused(&extension_only, "external data file");
        // The bit alone, without the extension.
        let bit_only = qcow2_with(3, |file| file[0x4f] = 4);
        refused(&bit_only, "external data file");
        // A v2 header with a backing file.
        let v2_backing = qcow2_with(2, |file| put(file, 8, &0x200u64.to_be_bytes()));
        refused(&v2_backing, "backing file");
    }

    #[test]
    fn qcow2_features_decide() {
        let dirty = qcow2_with(3, |file| file[0x4f] = 1);
        assert!(inspect(&dirty).is_ok());
        let zstd_and_extended_l2 = qcow2_with(3, |file| file[0x4f] = 0b1_1000);
        assert!(inspect(&zstd_and_extended_l2).is_ok());
        refused(&qcow2_with(3, |file| file[0x4f] = 2), "marked corrupt");
        refused(
            &qcow2_with(3, |file| file[0x4d] = 0x10),
            "incompatible features Depot does not know (0x100000)",
        );
        refused(
            &qcow2_with(3, |file| file[0x48] = 0x80),
            "incompatible features",
        );
    }

    #[test]
    fn qcow2_versions_and_damage_are_refused() {
        refused(&qcow2_with(3, |file| file[7] = 1), "qcow version 1");
        refused(&qcow2_with(3, |file| file[7] = 4), "unknown version 4");
        refused(&qcow2_with(3, |file| file[0x17] = 8), "damaged header");
        refused(&qcow2_with(3, |file| file[0x17] = 22), "damaged header");
        // header_length smaller than the v3 header, or past the cluster.
        refused(&qcow2_with(3, |file| file[0x67] = 0x60), "damaged header");
        refused(
            &qcow2_with(3, |file| put(file, 100, &0x20000u32.to_be_bytes())),
            "damaged header",
        );
        // An extension whose length runs the walk out of range.
        refused(
            &qcow2_with(3, |file| put(file, 0x74, &u32::MAX.to_be_bytes())),
            "damaged header",
        );
        refused(b"QFI\xfb", "truncated qcow2");
        refused(&hex::decode(QCOW2_V3).unwrap()[..80], "truncated qcow2");
        refused(&hex::decode(QCOW2_V2).unwrap()[..40], "truncated qcow2");
    }

    #[test]
    fn qcow2_sizes_past_i64_are_refused_not_wrapped() {
        assert_eq!(MAX_DISK_BYTES, u64::try_from(i64::MAX).unwrap());
        let huge = qcow2_with(3, |file| put(file, 24, &u64::MAX.to_be_bytes()));
        refused(&huge, IMPOSSIBLE_SIZE);
        let just = qcow2_with(3, |file| put(file, 24, &MAX_DISK_BYTES.to_be_bytes()));
        assert_eq!(inspect(&just).unwrap().virtual_size, Some(MAX_DISK_BYTES));
        let over = qcow2_with(3, |file| put(file, 24, &(MAX_DISK_BYTES + 1).to_be_bytes()));
        refused(&over, IMPOSSIBLE_SIZE);
    }

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

    // ------------------------------------------------------------ VMDK, sparse

    /// `qemu-img create -f vmdk s.vmdk 100M`, bytes 0..0x50: version 1, flags
    /// 3, capacity 204800, descriptor at sector 1 for 20 sectors, gd at 0x26.
    const SPARSE_HEADER: &str =
        "4b444d560100000003000000002003000000000080000000000000000100000000\
        000000140000000000000000020000150000000000000026000000000000008000000000000000000a200d0a\
        000000";
    /// `qemu-img create -f vmdk -o subformat=streamOptimized so.vmdk 100M`:
    /// version 3, flags 0x30003 (compressed grains, markers), deflate.
    const STREAM_HEADER: &str =
        "4b444d560300000003000300002003000000000080000000000000000100000000\
        000000140000000000000000020000150000000000000026000000000000008000000000000000000a200d0a\
        010000";

    /// The descriptor qemu-img embeds, with its createType and extent line.
    fn embedded_text(create_type: &str, extent: &str) -> String {
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=b5512fe7\nparentCID=ffffffff\n\
             createType=\"{create_type}\"\n\n# Extent description\n{extent}\n\n\
             # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n\
             ddb.geometry.cylinders = \"203\"\nddb.geometry.heads = \"16\"\n\
             ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n\
             ddb.toolsVersion = \"2147483647\"\n"
        )
    }

    /// A 64 KiB sparse file as qemu-img lays it out: header, then descriptor
    /// at 0x200.
    fn sparse_file(header_hex: &str, descriptor: &str) -> Vec<u8> {
        let mut file = zeros(64 * 1024);
        put(&mut file, 0, &hex::decode(header_hex).unwrap());
        put(&mut file, 0x200, descriptor.as_bytes());
        file
    }

    fn monolithic_sparse() -> Vec<u8> {
        sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicSparse", "RW 204800 SPARSE \"s.vmdk\""),
        )
    }

    fn set_u64(file: &mut [u8], at: usize, value: u64) {
        put(file, at, &value.to_le_bytes());
    }

    #[test]
    fn monolithic_sparse_from_qemu_img_is_read() {
        let info = inspect(&monolithic_sparse()).unwrap();
        assert_eq!(
            info,
            DiskInfo {
                format: DiskFormat::Vmdk,
                virtual_size: Some(104_857_600),
                detail: "vmdk monolithicSparse".into(),
                volume_label: None,
            }
        );
        // Any single plain extent name: the file was first written under it.
        let renamed = sparse_file(
            SPARSE_HEADER,
            &embedded_text(
                "monolithicSparse",
                "RW 204800 SPARSE \"original name.vmdk\"",
            ),
        );
        assert!(inspect(&renamed).is_ok());
    }

    #[test]
    fn stream_optimized_is_told_by_header_or_descriptor() {
        let stream = sparse_file(
            STREAM_HEADER,
            &embedded_text("streamOptimized", "RW 204800 SPARSE \"so.vmdk\""),
        );
        let info = inspect(&stream).unwrap();
        assert_eq!(info.detail, "vmdk streamOptimized");
        assert_eq!(info.virtual_size, Some(104_857_600));
        // Compressed grains in the header, whatever the descriptor says.
        let by_header = sparse_file(
            STREAM_HEADER,
            &embedded_text("monolithicSparse", "RW 204800 SPARSE \"so.vmdk\""),
        );
        assert_eq!(inspect(&by_header).unwrap().detail, "vmdk streamOptimized");
        // The descriptor alone.
        let by_descriptor = sparse_file(
            SPARSE_HEADER,
            &embedded_text("streamOptimized", "RW 204800 SPARSE \"so.vmdk\""),
        );
        assert_eq!(
            inspect(&by_descriptor).unwrap().detail,
            "vmdk streamOptimized"
        );
    }

    /// A streamOptimized file whose header says GD_AT_END and whose real
    /// header is in the footer: the layout `qemu-img info` and `qemu-img
    /// check` accept when built from so.vmdk by the same steps.
    fn stream_with_footer(capacity_in_footer: u64) -> Vec<u8> {
        let mut file = sparse_file(
            STREAM_HEADER,
            &embedded_text("streamOptimized", "RW 204800 SPARSE \"so.vmdk\""),
        );
        let mut footer_header = file[..512].to_vec();
        set_u64(&mut footer_header, 12, capacity_in_footer);
        set_u64(&mut file, 56, GD_AT_END);
        set_u64(&mut file, 12, 204_800);
        let mut marker = zeros(512);
        set_u64(&mut marker, 0, 1);
        put(&mut marker, 12, &VMDK_MARKER_FOOTER.to_le_bytes());
        file.extend_from_slice(&marker);
        file.extend_from_slice(&footer_header);
        file.extend_from_slice(&zeros(512));
        file
    }

    #[test]
    fn stream_footer_at_the_end_is_read() {
        let info = inspect(&stream_with_footer(204_800)).unwrap();
        assert_eq!(info.detail, "vmdk streamOptimized");
        assert_eq!(info.virtual_size, Some(104_857_600));
        // A big file: the footer is only in the tail.
        let mut big = stream_with_footer(204_800);
        let footer = big.split_off(big.len() - 1536);
        big.resize(3 * HEAD_LEN, 0);
        big.extend_from_slice(&footer);
        assert_eq!(inspect(&big).unwrap().detail, "vmdk streamOptimized");
        // The footer's capacity is the one that counts, and must match the descriptor.
        refused(&stream_with_footer(2048), "disagree on the disk size");
    }

    #[test]
    fn stream_footer_missing_or_lying_is_refused() {
        let mut no_footer = stream_with_footer(204_800);
        no_footer.truncate(64 * 1024);
        refused(&no_footer, "footer is missing or damaged");
        let mut bad_marker = stream_with_footer(204_800);
        let at = bad_marker.len() - 1536 + 12;
        bad_marker[at] = 2;
        refused(&bad_marker, "footer is missing or damaged");
        let mut bad_eos = stream_with_footer(204_800);
        let at = bad_eos.len() - 512 + 12;
        bad_eos[at] = 1;
        refused(&bad_eos, "footer is missing or damaged");
        let mut footer_at_end_again = stream_with_footer(204_800);
        let at = footer_at_end_again.len() - 1024 + 56;
        set_u64(&mut footer_at_end_again, at, GD_AT_END);
        refused(&footer_at_end_again, "disagrees with its header");
        let mut other_descriptor = stream_with_footer(204_800);
        let at = other_descriptor.len() - 1024 + 28;
        set_u64(&mut other_descriptor, at, 2);
        refused(&other_descriptor, "disagrees with its header");
        // Too small to hold a footer at all.
        let mut tiny = hex::decode(STREAM_HEADER).unwrap();
        set_u64(&mut tiny, 56, GD_AT_END);
        set_u64(&mut tiny, 28, 0);
        refused(&tiny, "footer is missing or damaged");
    }

    #[test]
    fn embedded_descriptor_naming_other_files_is_refused() {
        let two = sparse_file(
            SPARSE_HEADER,
            &embedded_text(
                "monolithicSparse",
                "RW 102400 SPARSE \"s.vmdk\"\nRW 102400 FLAT \"other.raw\" 0",
            ),
        );
        refused(&two, "names other extents than itself");
        for name in [
            "../s.vmdk",
            "/etc/passwd",
            "C:\\disk.vmdk",
            "http://x/s.vmdk",
            "json:{}",
        ] {
            let line = format!("RW 204800 SPARSE \"{name}\"");
            let file = sparse_file(SPARSE_HEADER, &embedded_text("monolithicSparse", &line));
            refused(&file, "not a plain file name");
        }
        let flat = sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicSparse", "RW 204800 FLAT \"s.vmdk\" 0"),
        );
        refused(&flat, "another kind of extent");
        let layout = sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicFlat", "RW 204800 SPARSE \"s.vmdk\""),
        );
        refused(&layout, "claims another layout");
        let size = sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicSparse", "RW 2048 SPARSE \"s.vmdk\""),
        );
        refused(&size, "disagree on the disk size");
        let none = sparse_file(SPARSE_HEADER, &embedded_text("monolithicSparse", ""));
        refused(&none, "names other extents than itself");
        let raw_device = sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicSparse", "RW 204800 VMFSRDM \"/dev/sda\""),
        );
        refused(&raw_device, "raw host device");
        let tracked = sparse_file(
            SPARSE_HEADER,
            &format!(
                "changeTrackPath=\"s-ctk.vmdk\"\n{}",
                embedded_text("monolithicSparse", "RW 204800 SPARSE \"s.vmdk\"")
            ),
        );
        refused(&tracked, "change-tracking file");
        let untyped = sparse_file(
            SPARSE_HEADER,
            "# Disk DescriptorFile\nversion=1\nRW 204800 SPARSE \"s.vmdk\"\n",
        );
        refused(&untyped, "no createType");
    }

    #[test]
    fn embedded_parent_hints_are_refused_wherever_qemu_looks() {
        let hinted = sparse_file(
            SPARSE_HEADER,
            &format!(
                "{}parentFileNameHint=\"/etc/shadow\"\n",
                embedded_text("monolithicSparse", "RW 204800 SPARSE \"s.vmdk\"")
            ),
        );
        refused(&hinted, "parentFileNameHint");
        let commented = sparse_file(
            SPARSE_HEADER,
            &format!(
                "# parentFileNameHint=\"base.vmdk\"\n{}",
                embedded_text("monolithicSparse", "RW 204800 SPARSE \"s.vmdk\"")
            ),
        );
        refused(&commented, "parentFileNameHint");
        let parent = sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicSparse", "RW 204800 SPARSE \"s.vmdk\"")
                .replace("parentCID=ffffffff", "parentCID=1234abcd"),
        );
        refused(&parent, "parentCID");
        // The descriptor moved to sector 8; QEMU still searches 0x200 for a hint.
        let mut moved = sparse_file(SPARSE_HEADER, "parentFileNameHint=\"/etc/shadow\"\n");
        set_u64(&mut moved, 28, 8);
        put(
            &mut moved,
            8 * 512,
            embedded_text("monolithicSparse", "RW 204800 SPARSE \"s.vmdk\"").as_bytes(),
        );
        refused(&moved, "parentFileNameHint");
        // After the NUL, inside the declared descriptor sectors.
        let mut hidden = monolithic_sparse();
        put(&mut hidden, 0x200 + 4096, b"parentFileNameHint=\"x\"");
        refused(&hidden, "parentFileNameHint");
    }

    #[test]
    fn zero_capacity_with_a_descriptor_is_refused() {
        // QEMU opens such a descriptor as a descriptor file (checked with
        // qemu-img info: it followed a FLAT extent to a file beside it).
        let mut file = sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicFlat", "RW 2048 FLAT \"secret.raw\" 0"),
        );
        set_u64(&mut file, 12, 0);
        refused(&file, "claims no capacity");
        // No descriptor: an empty extent, harmless.
        set_u64(&mut file, 28, 0);
        assert_eq!(inspect(&file).unwrap().virtual_size, Some(0));
    }

    #[test]
    fn a_bare_sparse_extent_is_kept() {
        // Like t-s001.vmdk of a twoGbMaxExtentSparse disk, as qemu-img
        // writes it: a descriptor area at sector 1, left empty.
        let mut extent = zeros(64 * 1024);
        put(&mut extent, 0, &hex::decode(SPARSE_HEADER).unwrap());
        let info = inspect(&extent).unwrap();
        assert_eq!(info.detail, "vmdk sparse extent");
        assert_eq!(info.virtual_size, Some(104_857_600));
        // No descriptor area at all.
        set_u64(&mut extent, 28, 0);
        assert_eq!(inspect(&extent).unwrap().detail, "vmdk sparse extent");
        // Blank lines are still nothing; a comment is a descriptor to check.
        put(&mut extent, 0x200, b"\n \r\n");
        set_u64(&mut extent, 28, 1);
        assert_eq!(inspect(&extent).unwrap().detail, "vmdk sparse extent");
        put(&mut extent, 0x200, b"# x\n");
        refused(&extent, "no createType");
    }

    #[test]
    fn sparse_header_damage_is_refused() {
        let mut text_mode = monolithic_sparse();
        put(&mut text_mode, 73, b"\r\n \r");
        refused(&text_mode, "text-mode transfer");
        let mut version = monolithic_sparse();
        version[4] = 4;
        refused(&version, "unsupported version 4");
        let mut capacity = monolithic_sparse();
        set_u64(&mut capacity, 12, u64::MAX / 256);
        refused(&capacity, IMPOSSIBLE_SIZE);
        refused(b"KDMV\x01\0\0\0", "truncated VMDK header");
        refused(&monolithic_sparse()[..70], "truncated VMDK header");
    }

    /// Turns every NUL after the header into a comment character, so that
    /// the descriptor runs to the end of the file.
    fn no_nul_after_header(file: &mut [u8]) {
        for byte in file[0x200..].iter_mut().filter(|byte| **byte == 0) {
            *byte = b'#';
        }
    }

    #[test]
    fn hostile_descriptor_offsets_and_sizes_do_not_panic() {
        // Past the head, inside a 4 MiB file.
        let mut far = monolithic_sparse();
        far.resize(4 * HEAD_LEN, 0);
        set_u64(&mut far, 28, 4096);
        refused(&far, "beyond the first 1024 KiB");
        // Past the end of the file, and at offsets that overflow.
        for offset in [200, u64::MAX / 512, u64::MAX / 512 + 1, u64::MAX] {
            let mut file = monolithic_sparse();
            set_u64(&mut file, 28, offset);
            assert!(inspect(&file).is_err(), "descriptor at {offset}");
        }
        // A huge declared size: still the text up to the NUL is what counts.
        let mut big = monolithic_sparse();
        set_u64(&mut big, 36, u64::MAX / 1024);
        assert!(inspect(&big).is_ok());
        let mut overflowing = monolithic_sparse();
        set_u64(&mut overflowing, 36, u64::MAX);
        refused(&overflowing, "impossible descriptor size");
        // Text running to the end of the head with no NUL, in a larger file.
        let mut unterminated = monolithic_sparse();
        unterminated.resize(2 * HEAD_LEN, 0);
        no_nul_after_header(&mut unterminated);
        refused(&unterminated, "beyond the first");
        // The same, but the whole file is at hand: then it is all read.
        let mut small = monolithic_sparse();
        no_nul_after_header(&mut small);
        assert!(inspect(&small).is_ok());
    }

    // ------------------------------------------------------------ VMDK, text

    /// `qemu-img create -f vmdk -o subformat=monolithicFlat f.vmdk 100M`.
    const FLAT_DESCRIPTOR: &str = "# Disk DescriptorFile\nversion=1\nCID=323ef151\n\
        parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n# Extent description\n\
        RW 204800 FLAT \"f-flat.vmdk\" 0\n\n# The Disk Data Base\n#DDB\n\n\
        ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"203\"\n\
        ddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\n\
        ddb.adapterType = \"ide\"\nddb.toolsVersion = \"2147483647\"\n";
    /// `qemu-img create -f vmdk -o subformat=twoGbMaxExtentSparse t.vmdk 5G`.
    const SPLIT_DESCRIPTOR: &str = "# Disk DescriptorFile\nversion=1\nCID=5685c450\n\
        parentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\n# Extent description\n\
        RW 4194304 SPARSE \"t-s001.vmdk\"\nRW 4194304 SPARSE \"t-s002.vmdk\"\n\
        RW 2097152 SPARSE \"t-s003.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n\
        ddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n";

    fn descriptor_refused(text: &str, reason: &str) {
        match inspect_with(text.as_bytes(), &|_| true) {
            Err(why) => assert!(why.contains(reason), "refused for {why:?}, not {reason:?}"),
            Ok(info) => panic!("accepted {info:?}, expected a refusal for {reason:?}"),
        }
    }

    fn flat_with_extent(extent: &str) -> String {
        FLAT_DESCRIPTOR.replace("RW 204800 FLAT \"f-flat.vmdk\" 0", extent)
    }

    #[test]
    fn text_descriptors_naming_files_beside_them_are_kept() {
        let beside = |name: &str| name == "f-flat.vmdk";
        let info = inspect_with(FLAT_DESCRIPTOR.as_bytes(), &beside).unwrap();
        assert_eq!(
            info,
            DiskInfo {
                format: DiskFormat::Vmdk,
                virtual_size: Some(104_857_600),
                detail: "vmdk monolithicFlat descriptor".into(),
                volume_label: None,
            }
        );
        let parts = |name: &str| name.starts_with("t-s00");
        let split = inspect_with(SPLIT_DESCRIPTOR.as_bytes(), &parts).unwrap();
        assert_eq!(split.detail, "vmdk twoGbMaxExtentSparse descriptor");
        assert_eq!(split.virtual_size, Some(5 << 30));
        // Windows line ends, a byte-order mark, a ZERO extent.
        let crlf = format!("\u{feff}{}", FLAT_DESCRIPTOR.replace('\n', "\r\n"));
        assert!(inspect_with(crlf.as_bytes(), &beside).is_ok());
        let zero = flat_with_extent("RW 204800 FLAT \"f-flat.vmdk\" 0\nRW 2048 ZERO");
        assert_eq!(
            inspect_with(zero.as_bytes(), &beside).unwrap().virtual_size,
            Some(104_857_600 + 2048 * 512)
        );
    }

    #[test]
    fn text_descriptors_naming_other_files_are_refused() {
        match inspect(FLAT_DESCRIPTOR.as_bytes()) {
            Err(why) => assert!(why.contains("not in the same folder or OVA"), "{why}"),
            Ok(info) => panic!("accepted {info:?}"),
        }
        for name in [
            "/etc/passwd",
            "../f-flat.vmdk",
            "dir/f-flat.vmdk",
            "..\\f-flat.vmdk",
            "dir\\f-flat.vmdk",
            "C:f-flat.vmdk",
            "http://example.com/f-flat.vmdk",
            "https:f",
            "file:f-flat.vmdk",
            "json:{}",
            "a..b",
            ".",
            "",
        ] {
            let text = flat_with_extent(&format!("RW 204800 FLAT \"{name}\" 0"));
            descriptor_refused(&text, "not a plain file name beside it");
        }
        let tracked = format!("{FLAT_DESCRIPTOR}changeTrackPath=\"/var/ctk\"\n");
        descriptor_refused(&tracked, "not a plain file name");
    }

    #[test]
    fn text_descriptor_extent_kinds_and_parents_decide() {
        for kind in ["VMFSRAW", "VMFSRDM", "VMFSRDMP"] {
            let text = flat_with_extent(&format!("RW 204800 {kind} \"disk-rdm.vmdk\""));
            descriptor_refused(&text, "raw host device");
        }
        for kind in ["VMFSSPARSE", "SESPARSE"] {
            let text = flat_with_extent(&format!("RW 204800 {kind} \"disk-delta.vmdk\""));
            descriptor_refused(&text, "snapshot (delta) extent");
        }
        descriptor_refused(
            &flat_with_extent("RW 204800 MAGIC \"x.vmdk\""),
            "kind Depot does not know",
        );
        descriptor_refused(
            &format!("{FLAT_DESCRIPTOR}parentFileNameHint=\"base.vmdk\"\n"),
            "parentFileNameHint",
        );
        descriptor_refused(
            &FLAT_DESCRIPTOR.replace("parentCID=ffffffff", "parentCID=0badf00d"),
            "parentCID",
        );
        descriptor_refused(
            &format!("{FLAT_DESCRIPTOR}# parentCID=0badf00d\n"),
            "parentCID",
        );
        for (create_type, reason) in [
            ("vmfsSparse", "snapshot (delta) disk"),
            ("seSparse", "snapshot (delta) disk"),
            ("fullDevice", "raw host device"),
            ("partitionedDevice", "raw host device"),
            ("vmfsRawDeviceMap", "raw host device"),
            ("custom", "type Depot does not know"),
        ] {
            let text = FLAT_DESCRIPTOR.replace("monolithicFlat", create_type);
            descriptor_refused(&text, reason);
        }
        descriptor_refused(
            &FLAT_DESCRIPTOR.replace("createType=\"monolithicFlat\"\n", ""),
            "without a createType",
        );
        descriptor_refused(
            &format!("{FLAT_DESCRIPTOR}#createType=\"vmfs\"\n"),
            "more than one createType",
        );
    }

    #[test]
    fn text_descriptor_lines_are_read_strictly() {
        // QEMU's sscanf would read this extent across the line end.
        descriptor_refused(
            &flat_with_extent("RW\n204800 FLAT \"/etc/passwd\" 0"),
            "malformed extent line",
        );
        // Some readers end a line at a lone carriage return.
        descriptor_refused(
            &FLAT_DESCRIPTOR.replace(
                "ddb.adapterType = \"ide\"",
                "ddb.adapterType = \"ide\"\rRW 8 FLAT \"/etc/passwd\" 0",
            ),
            "not a plain file name",
        );
        descriptor_refused(
            &format!("{FLAT_DESCRIPTOR}what is this\n"),
            "cannot read (line 19)",
        );
        descriptor_refused(&format!("{FLAT_DESCRIPTOR}RW=1\n"), "cannot read");
        descriptor_refused(
            &format!("{FLAT_DESCRIPTOR}\x0bRW 1 ZERO\n"),
            "not plain text",
        );
        descriptor_refused(&format!("{FLAT_DESCRIPTOR}\0"), "not plain text");
        for extent in [
            "RW 204800 FLAT \"f-flat.vmdk\"",
            "RW 204800 FLAT f-flat.vmdk 0",
            "RW 204800 FLAT \"f-flat.vmdk 0",
            "RW 0 FLAT \"f-flat.vmdk\" 0",
            "RW -1 FLAT \"f-flat.vmdk\" 0",
            "RW 204800 FLAT \"f-flat.vmdk\" 0 extra",
            "RW 204800 SPARSE \"f-flat.vmdk\" 0",
            "RW 204800 ZERO \"f-flat.vmdk\"",
            "RW",
        ] {
            descriptor_refused(&flat_with_extent(extent), "malformed extent line");
        }
        descriptor_refused(
            &flat_with_extent("RW 99999999999999999999 FLAT \"f-flat.vmdk\" 0"),
            IMPOSSIBLE_SIZE,
        );
        descriptor_refused(
            &flat_with_extent(
                "RW 18014398509481983 FLAT \"f-flat.vmdk\" 0\n\
                 RW 18014398509481983 FLAT \"f-flat.vmdk\" 0",
            ),
            IMPOSSIBLE_SIZE,
        );
        descriptor_refused(&flat_with_extent(""), "names no extent");
    }

    #[test]
    fn text_descriptors_are_found_as_qemu_probes_them() {
        assert!(looks_like_vmdk_descriptor(b"version=1\nRW 1 ZERO\n"));
        assert!(looks_like_vmdk_descriptor(b"# c\n   \r\nversion=3\r\n"));
        assert!(looks_like_vmdk_descriptor(b"# disk descriptorfile"));
        assert!(!looks_like_vmdk_descriptor(b"version=4\n"));
        assert!(!looks_like_vmdk_descriptor(b"\nversion=1\n"));
        assert!(!looks_like_vmdk_descriptor(b"  x\nversion=1\n"));
        assert!(!looks_like_vmdk_descriptor(b"# no newline"));
        // A raw disk that QEMU would probe as a descriptor is refused, not raw.
        let mut disk = b"version=1\n".to_vec();
        disk.resize(2 * HEAD_LEN, 0);
        refused(&disk, "larger than 1024 KiB");
    }

    // ------------------------------------------------------------ VHD

    /// `qemu-img create -f vpc v.vhd 100M`: the footer (0x54 significant
    /// bytes) and the dynamic header (0x28).
    const VHD_FOOTER: &str = "636f6e65637469780000000200010000000000000000020032a066f771656d750005\
        00035769326b0000000006402000000000000640200003ec0c1100000003ffffef0ab1d9764405b640c18906\
        1f1ede572d3e";
    const VHD_DYNAMIC_HEADER: &str = "6378737061727365ffffffffffffffff0000000000000600000100000000\
        003300200000fffff444";

    fn vhd_footer_bytes(disk_type: u32) -> Vec<u8> {
        let mut footer = zeros(512);
        put(&mut footer, 0, &hex::decode(VHD_FOOTER).unwrap());
        put(&mut footer, 60, &disk_type.to_be_bytes());
        footer
    }

    /// v.vhd as qemu-img writes it: footer copy, dynamic header, BAT, footer.
    fn dynamic_vhd() -> Vec<u8> {
        let mut file = zeros(0xa00);
        put(&mut file, 0, &vhd_footer_bytes(3));
        put(&mut file, 0x200, &hex::decode(VHD_DYNAMIC_HEADER).unwrap());
        put(&mut file, 0x600, &[0xff; 0x200]);
        put(&mut file, 0x800, &vhd_footer_bytes(3));
        file
    }

    fn fixed_vhd(data: &[u8]) -> Vec<u8> {
        let mut footer = vhd_footer_bytes(2);
        put(&mut footer, 16, &u64::MAX.to_be_bytes());
        put(&mut footer, 48, &len64(data.len()).to_be_bytes());
        let mut file = data.to_vec();
        file.extend_from_slice(&footer);
        file
    }

    #[test]
    fn vhd_dynamic_and_fixed_are_read() {
        let dynamic = inspect(&dynamic_vhd()).unwrap();
        assert_eq!(
            dynamic,
            DiskInfo {
                format: DiskFormat::Vhd,
                virtual_size: Some(104_865_792),
                detail: "vhd dynamic".into(),
                volume_label: None,
            }
        );
        let mut data = zeros(3 * HEAD_LEN);
        put(&mut data, 510, &[0x55, 0xaa]);
        put(&mut data, 446 + 4, &[0x83]);
        let fixed = inspect(&fixed_vhd(&data)).unwrap();
        assert_eq!(fixed.detail, "vhd fixed");
        assert_eq!(fixed.virtual_size, Some(3 << 20));
    }

    #[test]
    fn vhd_differencing_and_inconsistent_are_refused() {
        let mut differencing = dynamic_vhd();
        put(&mut differencing, 60, &4u32.to_be_bytes());
        put(&mut differencing, 0x800 + 60, &4u32.to_be_bytes());
        refused(&differencing, "differencing VHD");
        // Only the copy at the start says so: QEMU reads that one.
        let mut copy_differencing = dynamic_vhd();
        put(&mut copy_differencing, 60, &4u32.to_be_bytes());
        refused(&copy_differencing, "differencing VHD");
        let mut truncated = dynamic_vhd();
        truncated.truncate(0x800);
        refused(&truncated, "without its footer at the end");
        let mut disagree = dynamic_vhd();
        put(&mut disagree, 0x800 + 48, &(1u64 << 30).to_be_bytes());
        refused(&disagree, "disagree");
        let mut no_header = dynamic_vhd();
        put(&mut no_header, 0x200, b"xxxxxxxx");
        refused(&no_header, "dynamic header is missing");
        let mut unknown = dynamic_vhd();
        put(&mut unknown, 60, &7u32.to_be_bytes());
        put(&mut unknown, 0x800 + 60, &7u32.to_be_bytes());
        refused(&unknown, "unknown disk type 7");
        let dynamic_without_copy = fixed_vhd(&zeros(4096));
        let mut dynamic_without_copy = dynamic_without_copy;
        let at = dynamic_without_copy.len() - 512 + 60;
        put(&mut dynamic_without_copy, at, &3u32.to_be_bytes());
        refused(&dynamic_without_copy, "without the copy");
        let mut huge = fixed_vhd(&zeros(4096));
        let at = huge.len() - 512 + 48;
        put(&mut huge, at, &u64::MAX.to_be_bytes());
        refused(&huge, IMPOSSIBLE_SIZE);
        refused(b"conectix\0\0", "truncated VHD");
    }

    // ------------------------------------------------------------ VHDX

    /// The region table of `qemu-img create -f vhdx x.vhdx 100M` (its first
    /// 0x50 bytes; the rest of the 64 KiB is zero), stored CRC 0x2c6fce83.
    const VHDX_REGION_TABLE: &str =
        "7265676983ce6f2c02000000000000006677c22d23f600429d64115e9bfd4a\
        080000200000000000000010000000000006a27c8b90479a4bb8fe575f050f886e0000300000000000000010\
        0000000000";

    struct Item {
        id: [u8; 16],
        data: Vec<u8>,
        flags: u32,
    }

    fn standard_items(size: u64) -> Vec<Item> {
        vec![
            Item {
                id: VHDX_FILE_PARAMETERS,
                data: [0x0080_0000u32.to_le_bytes(), 0u32.to_le_bytes()].concat(),
                flags: 4,
            },
            Item {
                id: VHDX_VIRTUAL_DISK_SIZE,
                data: size.to_le_bytes().to_vec(),
                flags: 6,
            },
            Item {
                id: VHDX_LOGICAL_SECTOR_SIZE,
                data: 512u32.to_le_bytes().to_vec(),
                flags: 6,
            },
        ]
    }

    /// A VHDX laid out as qemu-img lays it out, the metadata region at
    /// `metadata_at` (1 MiB aligned, as the format requires).
    fn vhdx_file(metadata_at: usize, len: usize, items: &[Item]) -> Vec<u8> {
        let mut file = zeros(len);
        put(&mut file, 0, b"vhdxfile");
        let mut table = zeros(VHDX_REGION_TABLE_LEN);
        put(&mut table, 0, b"regi");
        put(&mut table, 8, &2u32.to_le_bytes());
        put(&mut table, 16, &VHDX_BAT_REGION);
        put(&mut table, 32, &(2u64 << 20).to_le_bytes());
        put(&mut table, 40, &(1u32 << 20).to_le_bytes());
        put(&mut table, 44, &1u32.to_le_bytes());
        put(&mut table, 48, &VHDX_METADATA_REGION);
        put(&mut table, 64, &len64(metadata_at).to_le_bytes());
        put(&mut table, 72, &(1u32 << 20).to_le_bytes());
        put(&mut table, 76, &1u32.to_le_bytes());
        let crc = crc32c_without_checksum(&table);
        put(&mut table, 4, &crc.to_le_bytes());
        for at in VHDX_REGION_TABLES {
            put(&mut file, at, &table);
        }
        put(&mut file, metadata_at, b"metadata");
        let count = u16::try_from(items.len()).unwrap();
        put(&mut file, metadata_at + 10, &count.to_le_bytes());
        let mut data_at = 0x10000u32;
        for (index, item) in items.iter().enumerate() {
            let entry = metadata_at + 32 + 32 * index;
            put(&mut file, entry, &item.id);
            put(&mut file, entry + 16, &data_at.to_le_bytes());
            let item_len = u32::try_from(item.data.len()).unwrap();
            put(&mut file, entry + 20, &item_len.to_le_bytes());
            put(&mut file, entry + 24, &item.flags.to_le_bytes());
            let at = metadata_at + usize::try_from(data_at).unwrap();
            put(&mut file, at, &item.data);
            data_at += item_len;
        }
        file
    }

    fn whole(file: &[u8]) -> Result<DiskInfo, String> {
        detect(file, &[], len64(file.len()), &nothing_beside)
    }

    #[test]
    fn vhdx_guids_and_checksum_match_the_real_thing() {
        assert_eq!(
            VHDX_METADATA_REGION,
            [
                0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f,
                0x88, 0x6e
            ]
        );
        assert_eq!(
            VHDX_VIRTUAL_DISK_SIZE,
            [
                0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b,
                0xf4, 0xb8
            ]
        );
        assert_eq!(crc32c_update(!0, b"123456789") ^ !0, 0xe306_9283);
        let mut table = zeros(VHDX_REGION_TABLE_LEN);
        put(&mut table, 0, &hex::decode(VHDX_REGION_TABLE).unwrap());
        assert_eq!(crc32c_without_checksum(&table), 0x2c6f_ce83);
        assert_eq!(le_u32(&table, 4), Some(0x2c6f_ce83));
    }

    #[test]
    fn vhdx_size_is_read_when_the_metadata_is_at_hand() {
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(100 << 20));
        let info = whole(&file).unwrap();
        assert_eq!(
            info,
            DiskInfo {
                format: DiskFormat::Vhdx,
                virtual_size: Some(100 << 20),
                detail: "vhdx".into(),
                volume_label: None,
            }
        );
        // As the caller hands it: 1 MiB of head, so the metadata is out of reach.
        let far = vhdx_file(3 << 20, 4 << 20, &standard_items(100 << 20));
        let info = inspect(&far).unwrap();
        assert_eq!(info.virtual_size, None);
        assert_eq!(info.detail, "vhdx");
        // … and the caller can fetch it and ask.
        let (offset, length) = vhdx_metadata_span(&far[..HEAD_LEN]).unwrap();
        assert_eq!((offset, length), (3 << 20, 1 << 20));
        let region = &far[3 << 20..(3 << 20) + 0x20000];
        assert_eq!(vhdx_metadata(region), Ok(Some(100 << 20)));
        assert_eq!(vhdx_metadata_span(&dynamic_vhd()), None);
    }

    #[test]
    fn vhdx_differencing_and_damage_are_refused() {
        let mut parent = standard_items(100 << 20);
        parent.push(Item {
            id: VHDX_PARENT_LOCATOR,
            data: zeros(64),
            flags: 4,
        });
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &parent);
        assert!(whole(&file).unwrap_err().contains("differencing VHDX"));
        let region = &file[1 << 20..];
        assert!(vhdx_metadata(region)
            .unwrap_err()
            .contains("differencing VHDX"));

        let mut has_parent = standard_items(100 << 20);
        has_parent[0].data = [0x0080_0000u32.to_le_bytes(), 2u32.to_le_bytes()].concat();
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &has_parent);
        assert!(whole(&file).unwrap_err().contains("differencing VHDX"));

        let mut unknown = standard_items(100 << 20);
        unknown.push(Item {
            id: [7; 16],
            data: zeros(8),
            flags: 4,
        });
        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &unknown);
        assert!(whole(&file).unwrap_err().contains("required metadata"));

        let file = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(u64::MAX));
        assert_eq!(whole(&file), Err(IMPOSSIBLE_SIZE.to_owned()));

        let mut bad_crc = vhdx_file(3 << 20, 4 << 20, &standard_items(1 << 30));
        for at in VHDX_REGION_TABLES {
            bad_crc[at + 100] = 1;
        }
        refused(&bad_crc, "region tables are missing or damaged");
        // One damaged copy is fine: the other is read.
        let mut one_bad = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1 << 30));
        one_bad[VHDX_REGION_TABLES[0] + 100] = 1;
        assert_eq!(whole(&one_bad).unwrap().virtual_size, Some(1 << 30));

        let mut bad_signature = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1));
        put(&mut bad_signature, 1 << 20, b"metadatX");
        assert!(whole(&bad_signature)
            .unwrap_err()
            .contains("metadata table is damaged"));
        let mut many = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1));
        put(&mut many, (1 << 20) + 10, &u16::MAX.to_le_bytes());
        assert!(whole(&many)
            .unwrap_err()
            .contains("metadata table is damaged"));
        let mut outside = vhdx_file(1 << 20, (1 << 20) + 0x20000, &standard_items(1));
        put(
            &mut outside,
            (1 << 20) + 32 + 32 + 16,
            &u32::MAX.to_le_bytes(),
        );
        assert!(whole(&outside)
            .unwrap_err()
            .contains("metadata table is damaged"));
        refused(b"vhdxfile", "region tables are missing");
    }

    // ------------------------------------------------------------ ISO 9660 and UDF

    fn iso(label: &[u8]) -> Vec<u8> {
        let mut file = zeros(0xa000);
        put(&mut file, 0x8000, b"\x01CD001\x01");
        put(&mut file, 0x8028, &[b' '; 32]);
        put(&mut file, 0x8028, label);
        put(&mut file, 0x8800, b"\xffCD001\x01");
        file
    }

    fn udf_tag_at(file: &mut [u8], at: usize, id: u16, sector: u32) {
        put(file, at, &id.to_le_bytes());
        put(file, at + 2, &3u16.to_le_bytes());
        put(file, at + 12, &sector.to_le_bytes());
        let sum = file[at..at + 16]
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != 4)
            .fold(0u8, |sum, (_, byte)| sum.wrapping_add(*byte));
        file[at + 4] = sum;
    }

    /// A UDF volume as mkudffs lays it out (VRS, anchor at sector 256, main
    /// sequence with a primary and a logical volume descriptor), for
    /// `block`-byte sectors.
    fn udf(block: usize, label: &[u8]) -> Vec<u8> {
        let mut file = zeros(257 * block.max(2048));
        put(&mut file, 0x8000, b"\0BEA01\x01");
        put(&mut file, 0x8800, b"\0NSR03\x01");
        put(&mut file, 0x9000, b"\0TEA01\x01");
        let anchor = 256 * block;
        put(
            &mut file,
            anchor + 16,
            &u32::try_from(16 * block).unwrap().to_le_bytes(),
        );
        put(&mut file, anchor + 20, &96u32.to_le_bytes());
        udf_tag_at(&mut file, anchor, UDF_TAG_ANCHOR, 256);
        udf_tag_at(&mut file, 96 * block, 1, 96);
        let lvd = 97 * block;
        file[lvd + 84] = 8;
        put(&mut file, lvd + 85, label);
        file[lvd + 84 + 127] = u8::try_from(label.len() + 1).unwrap();
        udf_tag_at(&mut file, lvd, UDF_TAG_LOGICAL_VOLUME, 97);
        udf_tag_at(&mut file, 98 * block, UDF_TAG_TERMINATING, 98);
        file
    }

    #[test]
    fn iso9660_is_read_with_its_label() {
        let info = inspect(&iso(b"MY LABEL")).unwrap();
        assert_eq!(
            info,
            DiskInfo {
                format: DiskFormat::Iso,
                virtual_size: None,
                detail: "iso9660".into(),
                volume_label: Some("MY LABEL".into()),
            }
        );
        assert_eq!(inspect(&iso(b"")).unwrap().volume_label, None);
        // A boot record before the primary descriptor.
        let mut boot_first = iso(b"");
        put(&mut boot_first, 0x8000, b"\x00CD001\x01");
        put(&mut boot_first, 0x8800, b"\x01CD001\x01");
        put(&mut boot_first, 0x8828, b"UBUNTU");
        put(&mut boot_first, 0x9000, b"\xffCD001\x01");
        assert_eq!(
            inspect(&boot_first).unwrap().volume_label,
            Some("UBUNTU".into())
        );
    }

    #[test]
    fn hybrid_iso_is_an_iso() {
        // isohybrid: an MBR and a GPT in the system area, as Ubuntu ships.
        let mut hybrid = iso(b"Ubuntu 24.04 LTS amd64");
        put(&mut hybrid, 446, &[0x80, 0, 1, 0, 0x00, 0, 0, 0]);
        put(&mut hybrid, 462 + 4, &[0xee]);
        put(&mut hybrid, 510, &[0x55, 0xaa]);
        put(&mut hybrid, 512, b"EFI PART");
        let info = inspect(&hybrid).unwrap();
        assert_eq!(info.format, DiskFormat::Iso);
        assert_eq!(info.volume_label, Some("Ubuntu 24.04 LTS amd64".into()));
    }

    #[test]
    fn udf_is_read_with_its_logical_volume_label() {
        let info = inspect(&udf(2048, b"Udf Label")).unwrap();
        assert_eq!(
            info,
            DiskInfo {
                format: DiskFormat::Iso,
                virtual_size: None,
                detail: "udf".into(),
                volume_label: Some("Udf Label".into()),
            }
        );
        assert_eq!(
            inspect(&udf(512, b"Small Blocks")).unwrap().volume_label,
            Some("Small Blocks".into())
        );
        // No anchor within reach: still UDF, without a label.
        let mut no_anchor = udf(2048, b"x");
        no_anchor[256 * 2048 + 4] ^= 1;
        let info = inspect(&no_anchor).unwrap();
        assert_eq!((info.detail.as_str(), info.volume_label), ("udf", None));
        // A bridge disc (genisoimage -udf): ISO label first.
        let mut bridge = udf(2048, b"UDF SIDE");
        put(&mut bridge, 0x8000, b"\x01CD001\x01");
        put(&mut bridge, 0x8028, b"BRIDGE_VOL");
        put(&mut bridge, 0x8800, b"\xffCD001\x01");
        put(&mut bridge, 0x9000, b"\0BEA01\x01");
        put(&mut bridge, 0x9800, b"\0NSR02\x01");
        let info = inspect(&bridge).unwrap();
        assert_eq!(info.detail, "iso9660");
        assert_eq!(info.volume_label, Some("BRIDGE_VOL".into()));
        put(&mut bridge, 0x8028, &[b' '; 32]);
        assert_eq!(
            inspect(&bridge).unwrap().volume_label,
            Some("UDF SIDE".into())
        );
    }

    #[test]
    fn udf_strings_decode_both_ways() {
        let mut field = [0u8; 32];
        field[0] = 16;
        put(&mut field, 1, &[0, b'H', 0x00, 0xe9, 0xd8, 0x00]);
        field[31] = 7;
        assert_eq!(dstring(&field), Some("Hé\u{fffd}".into()));
        field[31] = 200;
        assert_eq!(dstring(&field), None);
        field[0] = 3;
        field[31] = 5;
        assert_eq!(dstring(&field), None);
        assert_eq!(dstring(&[]), None);
        assert_eq!(clean_label(" \0A\u{7}B\0 "), Some("AB".into()));
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

    // ------------------------------------------------------------ raw

    #[test]
    fn raw_notes_its_partition_table() {
        assert_eq!(
            inspect(b"").unwrap(),
            DiskInfo {
                format: DiskFormat::Raw,
                virtual_size: None,
                detail: "raw".into(),
                volume_label: None,
            }
        );
        let mut mbr = zeros(4096);
        put(&mut mbr, 446, &[0x80, 0x20, 0x21, 0x00, 0x83]);
        put(&mut mbr, 510, &[0x55, 0xaa]);
        assert_eq!(inspect(&mbr).unwrap().detail, "raw (MBR)");
        let mut gpt = mbr.clone();
        put(&mut gpt, 446 + 4, &[0xee]);
        put(&mut gpt, 512, b"EFI PART");
        assert_eq!(inspect(&gpt).unwrap().detail, "raw (GPT)");
        let mut gpt_4k = zeros(16384);
        put(&mut gpt_4k, 4096, b"EFI PART");
        assert_eq!(inspect(&gpt_4k).unwrap().detail, "raw (GPT)");
        // A FAT boot sector ends in 0x55AA too, but has no partition entries.
        let mut fat = zeros(4096);
        put(&mut fat, 0, b"\xeb\x3c\x90mkfs.fat");
        put(&mut fat, 446, b"\x0e\x1f\xbe\x5b\x7c\xac\x22\xc0");
        put(&mut fat, 510, &[0x55, 0xaa]);
        assert_eq!(inspect(&fat).unwrap().detail, "raw");
        assert_eq!(inspect(b"just some bytes").unwrap().format, DiskFormat::Raw);
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
