//! Sparse VMDK extents (`KDMV`): monolithicSparse, streamOptimized and their embedded descriptors.

use super::vmdk_descriptor::{parse_descriptor, plain_name};
use super::{
    array, contains_ignore_case, excerpt, info, le_u16, le_u32, le_u64, sector_bytes, DiskFormat,
    DiskInfo, File, HEAD_LEN, SECTOR,
};

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
pub(super) fn vmdk_sparse(file: &File) -> Result<DiskInfo, String> {
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

pub(super) fn refuse_parent_hint(bytes: &[u8]) -> Result<(), String> {
    if contains_ignore_case(bytes, b"parentFileNameHint") {
        Err(PARENT_HINT.into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::disk::test_support::*;
    use crate::disk::IMPOSSIBLE_SIZE;

    /// `qemu-img create -f vmdk s.vmdk 100M`, bytes 0..0x50: version 1, flags
    /// 3, capacity 204800, descriptor at sector 1 for 20 sectors, gd at 0x26.
    pub(in crate::disk) const SPARSE_HEADER: &str =
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

    pub(in crate::disk) fn monolithic_sparse() -> Vec<u8> {
        sparse_file(
            SPARSE_HEADER,
            &embedded_text("monolithicSparse", "RW 204800 SPARSE \"s.vmdk\""),
        )
    }

    pub(in crate::disk) fn set_u64(file: &mut [u8], at: usize, value: u64) {
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
    pub(in crate::disk) fn stream_with_footer(capacity_in_footer: u64) -> Vec<u8> {
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
}
