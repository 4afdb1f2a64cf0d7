//! VHD: the footer, and a dynamic disk's header.

use super::{be_u32, be_u64, disk_bytes, info, DiskFormat, DiskInfo, File};

pub(super) const VHD_COOKIE: &[u8] = b"conectix";
pub(super) const VHD_FOOTER_LEN: u64 = 512;
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
pub(super) fn vhd(file: &File, footer: Option<&[u8]>) -> Result<DiskInfo, String> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::disk::test_support::*;
    use crate::disk::{len64, HEAD_LEN, IMPOSSIBLE_SIZE};

    /// `qemu-img create -f vpc v.vhd 100M`: the footer (0x54 significant
    /// bytes) and the dynamic header (0x28).
    const VHD_FOOTER: &str = "636f6e65637469780000000200010000000000000000020032a066f771656d750005\
        00035769326b0000000006402000000000000640200003ec0c1100000003ffffef0ab1d9764405b640c18906\
        1f1ede572d3e";
    const VHD_DYNAMIC_HEADER: &str = "6378737061727365ffffffffffffffff0000000000000600000100000000\
        003300200000fffff444";

    pub(in crate::disk) fn vhd_footer_bytes(disk_type: u32) -> Vec<u8> {
        let mut footer = zeros(512);
        put(&mut footer, 0, &hex::decode(VHD_FOOTER).unwrap());
        put(&mut footer, 60, &disk_type.to_be_bytes());
        footer
    }

    /// v.vhd as qemu-img writes it: footer copy, dynamic header, BAT, footer.
    pub(in crate::disk) fn dynamic_vhd() -> Vec<u8> {
        let mut file = zeros(0xa00);
        put(&mut file, 0, &vhd_footer_bytes(3));
        put(&mut file, 0x200, &hex::decode(VHD_DYNAMIC_HEADER).unwrap());
        put(&mut file, 0x600, &[0xff; 0x200]);
        put(&mut file, 0x800, &vhd_footer_bytes(3));
        file
    }

    pub(in crate::disk) fn fixed_vhd(data: &[u8]) -> Vec<u8> {
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
}
