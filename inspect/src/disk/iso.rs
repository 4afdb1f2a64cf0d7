//! Optical media: ISO 9660 and UDF, with their volume labels.

use super::{le_u16, le_u32, len64, DiskFormat, DiskInfo};

/// Optical media, told by the volume descriptors from 32 KiB on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Optical {
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
    pub(super) fn of(head: &[u8]) -> Option<Self> {
        if head.get(0x8001..0x8006) == Some(b"CD001".as_slice()) {
            Some(Self::Iso9660)
        } else if udf_recognised(head) {
            Some(Self::Udf)
        } else {
            None
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Iso9660 => "an ISO 9660 image",
            Self::Udf => "a UDF image",
        }
    }

    /// An ISO that also carries UDF (a bridge disc) is told as iso9660, with
    /// the ISO label or, when that is blank, the UDF one.
    pub(super) fn info(self, head: &[u8]) -> DiskInfo {
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

/// A label as shown: without control or bidirectional formatting
/// characters, which the rest of Depot refuses in names.
fn clean_label(text: &str) -> Option<String> {
    let printable: String = text
        .chars()
        .filter(|&c| !c.is_control() && !crate::is_bidi_control(c))
        .collect();
    let trimmed = printable.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::disk::test_support::*;

    pub(in crate::disk) fn iso(label: &[u8]) -> Vec<u8> {
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
    pub(in crate::disk) fn udf(block: usize, label: &[u8]) -> Vec<u8> {
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
        assert_eq!(clean_label("gpj.\u{202e}exe"), Some("gpj.exe".into()));
    }
}
