//! VMDK text descriptors: how QEMU finds them, and the extents and parents they name.

use super::vmdk_sparse::refuse_parent_hint;
use super::{
    contains_ignore_case, count_ignore_case, excerpt, sector_bytes, Cow, DiskFormat, DiskInfo,
    File, HEAD_LEN, IMPOSSIBLE_SIZE,
};

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
pub(super) fn looks_like_vmdk_descriptor(head: &[u8]) -> bool {
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
pub(super) struct Descriptor<'t> {
    pub(super) create_type: Option<&'t str>,
    pub(super) extents: Vec<Extent<'t>>,
    /// `changeTrackPath`: a file ESX opens beside the disk.
    pub(super) change_track: Option<&'t str>,
}

/// One extent line: `RW 204800 SPARSE "disk.vmdk"`.
#[derive(Debug)]
pub(super) struct Extent<'t> {
    pub(super) sectors: u64,
    /// SPARSE, FLAT, ZERO or VMFS (the only kinds accepted).
    pub(super) kind: &'static str,
    pub(super) name: Option<&'t str>,
}

/// Reads a descriptor strictly: every line must be a comment, a `key = value`
/// field or a well-formed extent, so that no reader (QEMU's `sscanf` runs
/// across line ends; VMware's parser is not public) can find an extent this
/// code did not check. Parent references anywhere, comments included, are
/// refused, since QEMU finds `parentFileNameHint` with a plain substring
/// search.
pub(super) fn parse_descriptor(text: &str) -> Result<Descriptor<'_>, String> {
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
pub(super) fn plain_name(name: &str) -> bool {
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
pub(super) fn vmdk_text(file: &File, beside: &dyn Fn(&str) -> bool) -> Result<DiskInfo, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::test_support::*;

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
}
