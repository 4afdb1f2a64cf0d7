//! qcow2: its header, feature bits and header extensions.

use super::{be_u32, be_u64, disk_bytes, info, DiskFormat, DiskInfo};

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
const QCOW2_BEYOND_REACH: &str =
    "a qcow2 image whose header extensions run past its first MiB, where Depot cannot check them";

/// A qcow2 header: refused when it names another file (a backing file, an
/// external data file), is marked corrupt, or asks for an incompatible
/// feature this code does not know.
///
/// Unknown incompatible features are refused because QEMU itself refuses to
/// open such an image, and because such a bit changes how the file's bytes
/// are read: the external data file was once exactly such an unknown bit.
pub(super) fn qcow2(head: &[u8]) -> Result<DiskInfo, String> {
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
/// feature bit is clear, since a reader could honour either. So is a walk
/// that runs past the bytes held (the first MiB of a file with clusters of
/// 2 MiB), where such an extension could lie unseen.
fn qcow2_extensions(head: &[u8], from: usize, cluster_size: usize) -> Result<(), String> {
    let end = cluster_size.min(head.len());
    let mut at = from;
    loop {
        if at >= end {
            // A file that ends inside its first cluster is read whole.
            if at < cluster_size && head.len() >= super::HEAD_LEN {
                return Err(QCOW2_BEYOND_REACH.into());
            }
            break;
        }
        let (Some(kind), Some(length)) = (be_u32(head, at), be_u32(head, at + 4)) else {
            at = end;
            continue;
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::disk::test_support::*;
    use crate::disk::{IMPOSSIBLE_SIZE, MAX_DISK_BYTES};

    /// `qemu-img create -f qcow2 q3.qcow2 1G`, bytes 0..0x78: the header and
    /// the start of its feature-name table extension.
    pub(crate) const QCOW2_V3: &str =
        "514649fb00000003000000000000000000000000000000100000000040000000000000\
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
    pub(crate) fn qcow2_file(header_hex: &str) -> Vec<u8> {
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

    /// Clusters of 2 MiB, and the header's extensions walked past the first
    /// MiB (one unknown extension that long): whatever follows is unseen.
    #[test]
    fn qcow2_extensions_past_the_bytes_held_are_refused() {
        let mut file = zeros(3 << 20);
        put(&mut file, 0, &hex::decode(QCOW2_V3).unwrap());
        put(&mut file, 20, &21u32.to_be_bytes());
        // The feature-name table's place, taken by a long unknown extension.
        put(&mut file, 0x70, &0x1234_5678u32.to_be_bytes());
        put(&mut file, 0x74, &(1u32 << 20).to_be_bytes());
        let data_at = 0x70 + 8 + (1 << 20);
        put(&mut file, data_at, &QCOW2_EXT_DATA_FILE.to_be_bytes());
        refused(&file, "run past its first MiB");
        // Ended before the first MiB, the same file is read.
        put(&mut file, 0x74, &4096u32.to_be_bytes());
        put(&mut file, data_at, &[0; 4]);
        assert_eq!(inspect(&file).unwrap().detail, "qcow2 v3");
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
}
